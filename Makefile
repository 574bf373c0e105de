# Everything runs from the project's own .venv, made by `make setup`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCALE ?= 1
BENCH_CACHE ?= bench-cache

.PHONY: setup test test-fast lint format demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

test: setup
	$(BIN)/python -m pytest -q

# The unit tier: no servers, no Snakemake runs; under a minute.
test-fast: setup
	$(BIN)/python -m pytest -q -m 'not integration'

lint: setup
	$(BIN)/ruff check ingest scripts tests
	$(BIN)/ruff format --check ingest scripts tests

format: setup
	$(BIN)/ruff format ingest scripts tests
	$(BIN)/ruff check --fix ingest scripts tests

demo: setup
	$(BIN)/python -m ingest.devtools.demo

bench: setup
	$(BIN)/python tests/bench/bench.py --scale $(SCALE) --cache $(BENCH_CACHE)

clean:
	rm -rf demo-run .pytest_cache .ruff_cache
