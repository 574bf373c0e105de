"""Pieces `make demo` and `make soak` share: a fast clock the processes agree on, the stream
stand-in and the collectors as subprocesses, and the stand-in's fault endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import requests

from ingest.clock import ScaledClock

REPO = Path(__file__).resolve().parents[2]  # ingest/devtools/stack.py


@dataclass
class FastClock:
    """One fast timeline: ``start`` at the real instant ``epoch``, ``speed`` times real time.
    Every process gets ``args()`` and so reads the same time."""

    speed: float
    start: datetime
    epoch: float = field(default_factory=lambda: time.time() + 3)

    def args(self) -> list[str]:
        return [
            "--speed",
            str(self.speed),
            "--clock-start",
            self.start.isoformat(),
            "--clock-epoch",
            f"{self.epoch:.3f}",
        ]

    def now(self) -> datetime:
        return ScaledClock(self.speed, self.start, self.epoch).now()

    def real_seconds(self, minutes: float) -> float:
        """Real seconds that ``minutes`` of clock time last."""
        return minutes * 60 / self.speed

    def skip_to(self, instant: datetime) -> None:
        """Jump ahead to ``instant`` (if it is ahead), for this object only: processes started
        with ``args()`` before keep the old timeline."""
        ahead = instant - self.now()
        if ahead.total_seconds() > 0:
            self.start += ahead

    def real_time(self, instant: datetime) -> float:
        """The real (unix) time at which this clock reads ``instant``."""
        return self.epoch + (instant - self.start).total_seconds() / self.speed


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ingest.cli", *args]


def start_stand_in(
    log_dir: Path,
    clock: FastClock,
    token: str,
    *,
    rate: float,
    keepalive: float,
    extra: tuple[str, ...] = (),
) -> tuple[subprocess.Popen, str]:
    """``python -m ingest.devtools.emulate`` on a free port: (process, stream URL)."""
    token_file = log_dir / "stand-in-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    with open(log_dir / "emulator.log", "a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ingest.devtools.emulate", "--port", "0"]
            + ["--rate", str(rate), "--keepalive", str(keepalive)]
            + ["--token-file", str(token_file), *extra, *clock.args()],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env(),
        )
    return proc, proc.stdout.readline().strip()


def start_collector(
    config: Path,
    server: str,
    clock: FastClock,
    log_file: Path,
    module: str = "ingest.cli",
    extra: tuple[str, ...] = (),
) -> subprocess.Popen:
    """The collector of ``server`` (``sampled-stream collect``, or a wrapper ``module`` taking
    the same arguments), logging to ``log_file``."""
    with open(log_file, "a") as log:
        return subprocess.Popen(
            [sys.executable, "-m", module, *extra, "collect", "--config", str(config)]
            + ["--server", server, "--backoff-scale", "0.01", *clock.args()],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env(),
        )


def stand_in_fault(url: str, kind: str, client: str | None = None, **params: str) -> None:
    """Queue a fault on the stand-in at ``url`` (``POST /_fault``)."""
    base = url.split("/2/")[0]
    query = {"kind": kind, **({"client": client} if client else {}), **params}
    requests.post(f"{base}/_fault", params=query, timeout=5).raise_for_status()
