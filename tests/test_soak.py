"""The short fault soak (issue 11; `make soak-short`): the whole system under at least 100
seeded faults, checked against the stream stand-in's ledger. Minutes, not seconds: integration.
Also the soak's own small parts (its clock, the traces rules), fast."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.devtools.soak.faults import Fault
from ingest.devtools.soak.ledger import StandInLedger
from ingest.devtools.soak.run import clock_start
from ingest.devtools.soak.traces import Event, assess
from ingest.devtools.sshd import SSHD

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "real", ["2026-11-29T21:07:15", "2026-11-29T21:55:00.5", "2026-12-31T23:56"]
)
def test_the_clock_starts_at_the_next_hh55_not_before_the_real_time(real: str) -> None:
    # Files get real modification times: a clock behind them would keep retention from ever
    # finding a raw file old enough (the soak's finding 4).
    epoch = datetime.fromisoformat(real).replace(tzinfo=UTC).timestamp()
    start = clock_start(epoch)
    assert start.minute == 55 and start.second == 0
    assert 0 <= start.timestamp() - epoch < 3600


def test_a_fault_is_traced_only_by_an_event_of_its_server_in_its_window() -> None:
    cut = Fault(1, 100.0, "stand-in cut", "server2")
    other_server = Event(101.0, "server1", "status", "reconnected (reconnects 3)")
    too_late = Event(100.0 + 61, "server2", "status", "reconnected (reconnects 3)")
    assert assess([cut], [other_server, too_late], [], [])["stand-in cut"]["no trace"] == 1
    right = Event(101.0, "server2", "status", "reconnected (reconnects 3)")
    traced = assess([cut], [other_server, right], [], [])["stand-in cut"]
    assert traced["traced"] == 1 and traced["where"] == {"status": 1}


def test_a_bad_files_trace_is_its_own_hours_skipped_lines() -> None:
    bad = Fault(
        1, 100.0, "bad file: invalid JSON", "server1", "2026-11-29/23/2026-11-29T2302+0100.jsonl"
    )
    other_hour = Event(None, "server1", "stats", "2026-11-29_22_stats.json: skipped 2 line(s)")
    assert assess([bad], [other_hour], [], [])["bad file: invalid JSON"]["no trace"] == 1
    its_hour = Event(None, "server1", "stats", "2026-11-29_23_stats.json: skipped 2 line(s)")
    assert assess([bad], [its_hour], [], [])["bad file: invalid JSON"]["traced"] == 1


def test_a_stretch_nothing_ran_into_is_not_met_and_a_killed_run_needs_a_trace() -> None:
    away = Fault(1, 100.0, "secondary unreachable < wait", "sshd", "5 s", end=105.0)
    killed = Fault(2, 100.0, "workflow killed", "primary", "run 3 during build_hour")
    killed.evidence["run"] = 3
    void = Fault(3, 100.0, "workflow killed", "primary", "no run came")
    # A pull that ended just before sshd went away met nothing (the full soak's #188: its run
    # went on for a second more); one that ran into it did.
    missed = Fault(4, 200.0, "secondary unreachable < wait", "sshd", "8 s", end=208.0)
    hit = Fault(5, 300.0, "secondary unreachable < wait", "sshd", "8 s", end=308.0)
    pulls = [(199.0, 199.9), (305.0, 306.0)]
    # A run killed before it took the run lock (starting, or finding it busy) did nothing.
    early = Fault(6, 400.0, "workflow killed", "primary", "run 9 mid-run (no build_hour came)")
    early.evidence.update({"run": 9, "held the run lock": False})
    kinds = assess([away, killed, void, missed, hit, early], [], [], pulls)  # no run, no event
    assert kinds["workflow killed"]["not met"] == 2
    assert kinds["secondary unreachable < wait"]["not met"] == 2
    assert kinds["secondary unreachable < wait"]["untraced"] == [hit.describe()]
    assert kinds["workflow killed"]["no trace"] == 1
    assert kinds["workflow killed"]["untraced"] == [killed.describe()]


def test_a_tweet_written_while_its_collector_was_stopping_is_not_delivered() -> None:
    # SIGTERM at 100.0; the collector closes its minute, reads a moment longer, exits; it is
    # started again at 105.0. Only writes with the collector running 2 s later count.
    sends = [(99.0, "server1", ["a"]), (100.004, "server1", ["b"]), (106.0, "server1", ["c"])]
    sends += [(100.004, "server2", ["d"])]
    ledger = StandInLedger({}, sends)
    delivered = ledger.delivered({"server1": [[100.0, 105.0]], "server2": []})
    assert sorted(delivered) == ["c", "d"]


@pytest.mark.integration
@pytest.mark.timeout(600)
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
    # Retention ran: the clock runs ahead of the files' real modification times as it does of
    # their names, so raw files were deleted and the "deleted but not archived" check had work.
    assert result["raw files"]["server1"]["deleted"] > 0, result["raw files"]
    # Every fault kind has its line: injected = traced + not met + no trace.
    for kind, n in result["faults"].items():
        t = result["traces"][kind]
        assert t["injected"] == n == t["traced"] + t["not met"] + t["no trace"], (kind, t)
    untraced = sum(t["no trace"] for t in result["traces"].values())
    assert untraced == problems["faults that left no trace for the operator"]["count"]
    for name, p in problems.items():
        assert p["count"] == 0 or p["items"], name  # a failure names what failed
    assert proc.stdout.rstrip().endswith("PASS" if proc.returncode == 0 else "FAILED (seed 1)")

    # The goal: nothing lost, nothing duplicated, every check passed.
    failed = {k: p["items"][:3] for k, p in problems.items() if p["count"]}
    assert proc.returncode == 0 and not failed, f"{failed}\n{proc.stdout[-4000:]}"
