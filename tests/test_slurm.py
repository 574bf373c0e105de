"""A backfill on a real SLURM (issue 13): the same hours built through workflow/profiles/slurm
and locally (--cores) decompress byte-identical, and the jobs went through SLURM.

Needs a running SLURM with partition ``main`` (CI: ``.ci/slurm-setup``, from .ci/run) and the
``slurm`` extra (``make setup-slurm``); skipped, saying why, when either is missing, except where
``SAMPLED_STREAM_SLURM_TEST=required`` (CI, ``make slurm-test``): there it fails. Each SLURM job
costs ~7 s here plus the executor's polling, so the data are small: 6 hours of two servers at
~300 tweets an hour.
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from ingest.devtools.generate import generate_raw_tree

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
TZ = ZoneInfo("Europe/Berlin")
DAY = "2026-01-14"
HOURS = f"{DAY}_07..{DAY}_12"  # local; 6 hours
SERVERS = ("server1", "server2")
# Set by .ci/run and make slurm-test: where the test must run, a missing SLURM is a failure.
REQUIRED = os.environ.get("SAMPLED_STREAM_SLURM_TEST") == "required"


def slurm_problem() -> str | None:
    """Why no SLURM job can run here, or None."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM client (sinfo, sbatch): run .ci/slurm-setup as root"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-p", "main", "-o", "%T"], capture_output=True, text=True, timeout=10
        )
    except subprocess.TimeoutExpired:
        return "sinfo hangs: slurmctld is not answering"
    states = out.stdout.split()
    if out.returncode != 0 or not any(s in ("idle", "mixed", "allocated") for s in states):
        return f"no SLURM node up in partition main ({(out.stderr or out.stdout).strip()})"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm not installed (pip install -e '.[slurm]')"
    return None


def world(root: Path) -> Path:
    """Two servers' raw minute files around the 6 hours, and a config; returns the config."""
    start = datetime(2026, 1, 14, 5, 55, tzinfo=UTC)  # 06:55 local
    raw = [(s, root / "raw" / s) for s in SERVERS]
    generate_raw_tree(
        raw, start, start + timedelta(hours=6, minutes=15), TZ, 5, seed=13, bad_lines=True
    )
    config = {
        "timezone": "Europe/Berlin",
        "vault_dir": str(root / "vault"),
        "work_dir": str(root / "work"),
        "servers": [{"name": s, "raw_dir": str(d)} for s, d in raw],
        "osf": {"enabled": False},
        "email": {"enabled": False},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def backfill(root: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile")]
    cmd += ["--directory", str(root), "--configfile", str(root / "config.yaml")]
    cmd += ["--config", f"hours={HOURS}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def vault_contents(vault: Path) -> dict[str, bytes]:
    """Every file of the day, .xz decompressed (the dashboard shows the run's time: left out)."""
    out = {}
    for p in sorted((vault / DAY).iterdir()):
        data = p.read_bytes()
        out[p.name] = lzma.decompress(data) if p.suffix == ".xz" else data
    return out


def test_a_backfill_on_slurm_equals_the_same_backfill_run_locally(tmp_path):
    problem = slurm_problem()
    if problem and REQUIRED:
        pytest.fail(f"SAMPLED_STREAM_SLURM_TEST=required, but {problem}")
    if problem:
        pytest.skip(problem)
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    world(local)
    shutil.copytree(local / "raw", cluster / "raw", copy_function=shutil.copy2)
    (cluster / "config.yaml").write_text(
        (local / "config.yaml").read_text().replace(str(local), str(cluster))
    )

    backfill(local, "--cores", "2")
    run = backfill(cluster, "--profile", str(REPO / "workflow" / "profiles" / "slurm"))

    # Every hour went through SLURM as its own job, and SLURM ran each to completion.
    submitted = re.findall(
        r"submitted with SLURM jobid (\d+) \(log: \S*/rule_build_hour/(\S+?)/", run.stderr
    )
    assert sorted(h for _, h in submitted) == [f"{DAY}_{h:02d}" for h in range(7, 13)]
    ids = [job for job, _ in submitted]
    listed = subprocess.run(
        ["squeue", "--states=all", "-h", "-o", "%i %T", "-j", ",".join(ids)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert dict(line.split() for line in listed.splitlines()) == dict.fromkeys(ids, "COMPLETED")

    built = vault_contents(cluster / "vault")
    assert sorted(n for n in built if n.endswith("_stats.json")) == [
        f"{DAY}_{h:02d}_stats.json" for h in range(7, 13)
    ]
    assert built == vault_contents(local / "vault")
    assert all(len(built[f"{DAY}_{h:02d}_IDs.txt.xz"].split()) > 100 for h in range(7, 13))
