"""The SLURM executor is an extra of its own, so the cron path never pays for the cluster path
(issue 23): installed, snakemake-executor-plugin-slurm is imported at every Snakemake start and
runs `scontrol show config` (10 s timeout), ~9 s a run where SLURM's client has no controller.
CI and make slurm-test still install it, and there the SLURM test may not skip.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "snakemake-executor-plugin-slurm"


def requirement_names(reqs: list[str]) -> set[str]:
    return {re.split(r"[\s~=<>!;\[]", r, maxsplit=1)[0].lower() for r in reqs}


def test_only_the_slurm_extra_brings_the_slurm_executor():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert PLUGIN in requirement_names(extras["slurm"])
    assert PLUGIN not in requirement_names(project["dependencies"])
    for name, reqs in extras.items():
        if name != "slurm":
            assert PLUGIN not in requirement_names(reqs), f"extra {name!r} brings {PLUGIN}"
    # The lock pins it still (make lock compiles every extra).
    assert re.search(rf"^{PLUGIN}==", (ROOT / "constraints.txt").read_text(), re.M)


def make_plan(target: str) -> str:
    """The commands ``make TARGET`` would run from scratch (-B: as if nothing were made)."""
    out = subprocess.run(
        ["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout


def test_setup_and_slurm_test_install_the_slurm_extra_and_setup_does_not():
    assert "'.[slurm]'" in make_plan("setup-slurm")
    slurm_test = make_plan("slurm-test")
    assert "'.[slurm]'" in slurm_test
    assert "SAMPLED_STREAM_SLURM_TEST=required" in slurm_test
    assert "slurm" not in make_plan("setup")


def test_ci_installs_the_slurm_extra_before_the_suite_and_requires_the_slurm_test():
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    setup = lines.index("make setup-slurm")
    suite = lines.index("SAMPLED_STREAM_SLURM_TEST=required make test")
    assert setup < suite


def run_slurm_test(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """tests/test_slurm.py where no SLURM client is on PATH (an empty folder)."""
    (tmp_path / "bin").mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    cmd += [str(ROOT / "tests" / "test_slurm.py")]
    return subprocess.run(
        cmd,
        cwd=ROOT,
        env={"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_slurm_test_skips_without_slurm_but_fails_where_it_is_required(tmp_path):
    free = run_slurm_test(tmp_path)
    assert free.returncode == 0, free.stdout[-2000:]
    assert "1 skipped" in free.stdout and "no SLURM client" in free.stdout

    required = run_slurm_test(tmp_path, SAMPLED_STREAM_SLURM_TEST="required")
    assert required.returncode == 1, required.stdout[-2000:]
    assert "1 failed" in required.stdout
    assert "SAMPLED_STREAM_SLURM_TEST=required, but no SLURM client" in required.stdout
