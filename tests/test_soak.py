"""The short fault soak (issue 11; `make soak-short`): the whole system under at least 100
seeded faults, checked against the stream stand-in's ledger. Minutes, not seconds: integration."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.devtools.sshd import SSHD

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[1]


def test_short_soak_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    if shutil.which(SSHD) is None:
        pytest.skip(f"the soak pulls server2 over a loopback sshd: {SSHD} not installed")
    result_file = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, "-m", "ingest.devtools.soak", "--seed", "1", "--hours", "2"]
        + ["--faults", "100", "--dir", str(tmp_path / "soak"), "--json", str(result_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result_file.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(result_file.read_text())
    tweets, problems = result["tweets"], result["problems"]

    # The table's invariants, whatever the product did.
    assert sum(result["faults"].values()) >= 100
    assert len(result["faults"]) >= 12, result["faults"]  # most kinds drawn at this seed
    assert tweets["delivered"] <= tweets["sent"] <= tweets["made"]
    assert tweets["delivered"] > 1000  # the collectors collected
    assert tweets["lost"] == problems["lost"]["count"]
    assert tweets["duplicated"] == problems["duplicated"]["count"]
    assert result["hours"]["built"] >= 2
    assert "ok" in result["runs"]
    for name, p in problems.items():
        assert p["count"] == 0 or p["items"], name  # a failure names what failed
    assert proc.stdout.rstrip().endswith("PASS" if proc.returncode == 0 else "FAILED (seed 1)")

    # The goal: nothing lost, nothing duplicated, every check passed.
    failed = {k: p["items"][:3] for k, p in problems.items() if p["count"]}
    assert proc.returncode == 0 and not failed, f"{failed}\n{proc.stdout[-4000:]}"
