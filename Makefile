# Everything runs from the project's own .venv, made by `make setup`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCALE ?= 1
ROUNDS ?= 3
BENCH_CACHE ?= bench-cache
# Every package's exact version (pyproject.toml gives the ranges): setup and CI install from it.
LOCK := constraints.txt

.PHONY: setup setup-slurm lock test test-fast lint format demo bench bench-day soak soak-short slurm-test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c $(LOCK) -e '.[test]'
	touch $@

# The SLURM executor (workflow/profiles/slurm) is an extra of its own: installed, Snakemake
# imports it at every start, which costs ~9 s where SLURM's client runs without a controller.
setup-slurm: $(VENV)/.extra-slurm

# make demo and make bench add their extra (demo: the SMTP sink; bench: pandas) to the venv.
$(VENV)/.extra-%: $(VENV)/.installed
	$(BIN)/pip install -q -c $(LOCK) -e '.[$*]'
	touch $@

# The lock at the newest releases pyproject.toml's ranges allow, for Python 3.11 on Linux.
# pip-tools gets a venv of its own so it never changes the project's. Then: make test, commit.
lock:
	$(PYTHON) -m venv $(VENV)/pip-tools
	$(VENV)/pip-tools/bin/pip install -q pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/pip-tools/bin/pip-compile -q --upgrade \
		--all-extras --strip-extras --no-emit-index-url --no-emit-find-links \
		--no-emit-trusted-host -o $(LOCK) pyproject.toml

# Tests run in a new random order each time (pytest-randomly), so one leaning on another's
# leftovers fails; the last line names the seed that repeats the order.
# Two runs: every test but the short soak on every core (pytest-xdist: most of their time is
# waiting for Snakemake, servers and SLURM), then the soak alone, whose real-time faults need
# the cores. The first failing run stops make.
test: setup
	$(BIN)/python -m pytest -q -n auto -m 'not alone'
	$(BIN)/python -m pytest -q -m alone

# The unit tier: no servers, processes or Snakemake runs; under a minute. The rest (marked
# integration) is the integration tier: make test runs both.
test-fast: setup
	$(BIN)/python -m pytest -q -n auto -m 'not integration'

# ruff cannot parse the rule files: snakefmt formats them, and lint_workflow runs ruff on the
# Python Snakemake compiles them to, then snakemake --lint (with a config in a temp folder).
lint: setup
	$(BIN)/ruff check ingest scripts tests
	$(BIN)/ruff format --check ingest scripts tests
	$(BIN)/snakefmt --check workflow
	$(BIN)/python -m ingest.devtools.lint_workflow

format: setup
	$(BIN)/ruff format ingest scripts tests
	$(BIN)/ruff check --fix ingest scripts tests
	$(BIN)/snakefmt workflow

demo: $(VENV)/.extra-demo
	$(BIN)/python -m ingest.devtools.demo

# The fault soak (issue 11): the whole system on a fast clock (a minute a second) under seeded
# faults, checked against the stream stand-in's ledger; exit 1 names what was lost or
# duplicated. SEED picks the faults; a failure repeats with the same SEED. Root mounts a small
# tmpfs for the vault (disk-full faults). The table is printed and written to soak-run/soak.json.
SEED ?= 1
soak: $(VENV)/.extra-demo
	$(BIN)/python -m ingest.devtools.soak --seed $(SEED) --hours 20 --faults 1000 --dir soak-run

# The short soak CI runs on every submission: at least 100 faults in under 4 minutes.
soak-short: $(VENV)/.extra-demo
	$(BIN)/python -m ingest.devtools.soak --seed $(SEED) --hours 2 --faults 100 --dir soak-run

# The SLURM test alone: a one-node SLURM started first if none runs (as root, like CI), then a
# backfill through workflow/profiles/slurm checked against the same one run locally. Required:
# no SLURM or no plugin fails the test instead of skipping it.
slurm-test: setup-slurm
	.ci/slurm-setup
	SAMPLED_STREAM_SLURM_TEST=required $(BIN)/python -m pytest -q -p no:randomly tests/test_slurm.py

bench: $(VENV)/.extra-bench
	$(BIN)/python tests/bench/bench.py --scale $(SCALE) --rounds $(ROUNDS) --cache $(BENCH_CACHE)

# A day's backfill (issue 13): 24 hours of two servers on --cores 2 vs the sum of the hours'
# xz floors, and the peak memory per job; the day's raw data (~20 GB at SCALE=1) is cached.
bench-day: $(VENV)/.extra-bench
	$(BIN)/python tests/bench/day.py --scale $(SCALE) --cache $(BENCH_CACHE)

clean:
	if mountpoint -q soak-run/primary/vault 2>/dev/null; then umount soak-run/primary/vault; fi
	rm -rf demo-run soak-run .pytest_cache .ruff_cache
