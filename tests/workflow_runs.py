"""The workflow run as cron runs it, for the tests that drive Snakemake end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from ingest.config import TEST_CLOCK_ENV

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
# A run that writes at a given `now` is refused without the test-only switch.
TEST_ENV = {**os.environ, TEST_CLOCK_ENV: "1"}


def snakemake(
    root: Path,
    *args: str,
    now: str | None = None,
    config: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = False,
    **run: Any,
) -> subprocess.CompletedProcess:
    """One run in ``root`` with cron's options (``--nolock``), ``root/config.yaml`` unless
    ``config`` is given, ``now`` added to the run's ``--config``, and the test clock allowed
    unless ``env`` says otherwise. ``check``: fail the test, with Snakemake's output, if it
    fails."""
    args = list(args)
    if now is not None:
        if "--config" in args:
            args.insert(args.index("--config") + 1, f"now={now}")
        else:
            args += ["--config", f"now={now}"]
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--nolock"]
    cmd += ["--directory", str(root), "--configfile", str(config or root / "config.yaml"), *args]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd="/", env=TEST_ENV if env is None else env, **run
    )
    if check:
        ok(proc)
    return proc


def ok(proc: subprocess.CompletedProcess) -> str:
    """Everything the run said; the test fails with its tail if the run failed."""
    said = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"snakemake failed ({proc.returncode}):\n{said[-4000:]}"
    return said


def smtp_email(port: int, **extra: Any) -> dict[str, Any]:
    """An ``email:`` section mailing the loopback SMTP sink on ``port``."""
    return {
        "enabled": True,
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "security": "none",
        "from": "archive@example.org",
        "to": ["ops@example.org"],
        **extra,
    }


def write_fast_config(root: Path, servers: list[dict] | None = None, **extra: Any) -> Path:
    """``root/config.yaml`` for a quick run: a 1-minute late window and grace, xz -1, OSF and
    mail off unless ``extra`` says otherwise; one server, server1, unless ``servers`` given."""
    config = {
        "timezone": "Europe/Berlin",
        "vault_dir": str(root / "vault"),
        "work_dir": str(root / "work"),
        "servers": servers or [{"name": "server1", "raw_dir": str(root / "raw" / "server1")}],
        "late_minutes": 1,
        "grace_minutes": 1,
        "xz_preset": 1,
        "osf": {"enabled": False},
        "email": {"enabled": False},
        **extra,
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
