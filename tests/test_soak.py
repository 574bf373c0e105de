"""The short fault soak (issue 11; `make soak-short`): the whole system under at least 100
seeded faults, checked against the stream stand-in's ledger. Minutes, not seconds: integration.
Also the soak's own small parts (its clock, the traces rules), fast."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.devtools.soak.copies import (
    Spot,
    carried,
    day_disagreements,
    flip,
    hour_disagreements,
    repairable,
    spot_problem,
    still_flipped,
)
from ingest.devtools.soak.faults import Fault, longest_run
from ingest.devtools.soak.ledger import StandInLedger, flips_not_repaired
from ingest.devtools.soak.run import clock_start
from ingest.devtools.soak.traces import Event, assess
from ingest.devtools.soak.world import Run, Tool
from ingest.devtools.sshd import SSHD
from ingest.layout import Hour
from ingest.vault import records
from ingest.vault.day import derive_manifest
from ingest.vault.records import FileEntry, HourRecord

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


def test_a_stream_fault_whose_collector_stopped_at_once_is_not_met() -> None:
    """Seen in the soak: a 2.9 s stall ended 2 s in by a SIGTERM of its collector, which then
    reconnected afresh: the stall was never one for it to see."""
    stall = Fault(1, 100.0, "stand-in stall", "server2", "seconds=2.9")
    stopped = Event(102.5, "server2", "mail", "[sampled-stream] collector stopped (SIGTERM)")
    assert assess([stall], [stopped], [], [])["stand-in stall"]["not met"] == 1
    later = Event(130.0, "server2", "mail", "[sampled-stream] collector stopped (SIGTERM)")
    other = Event(102.5, "server1", "mail", "[sampled-stream] collector stopped (SIGTERM)")
    assert assess([stall], [later, other], [], [])["stand-in stall"]["no trace"] == 1


def test_a_clock_step_no_collector_ran_long_enough_to_judge_is_not_met() -> None:
    """Seen in CI: a 14.5 s step of server2's clock during which its collector was killed,
    SIGTERMed and killed again; no process ran long enough to judge the clock by the tweets."""
    churn = [[97.4, 103.0], [105.2, 106.5], [112.6, 116.0]]
    assert longest_run(churn, 100.0, 114.5) == pytest.approx(6.1)  # 106.5 to 112.6
    assert longest_run([[97.4, 101.0], [103.0, 105.0], [107.0, 111.0]], 100, 114.5) == 3.5
    assert longest_run([[90.0, 95.0], [120.0, None]], 100.0, 114.5) == 14.5  # up throughout
    assert longest_run([[99.0, None]], 100.0, 114.5) == 0.0  # down throughout

    def step(run: float) -> Fault:
        return Fault(
            1, 100.0, "collector clock step", "server2", "-76 min", 114.5, {"longest run": run}
        )

    assert assess([step(3.5)], [], [], [])["collector clock step"]["not met"] == 1
    assert assess([step(6.1)], [], [], [])["collector clock step"]["no trace"] == 1
    traced = Event(104.0, "server2", "status", "clock step (clock_steps 1)")
    assert assess([step(6.1)], [traced], [], [])["collector clock step"]["traced"] == 1


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


DAY, LABEL = "2026-12-07", "2026-12-07_14"


def _built_day(root: Path, generation: int = 1) -> Path:
    """A day folder as a build leaves it: one hour's four files and record, the report, the
    manifest derived from them."""
    day_dir = root / DAY
    day_dir.mkdir(parents=True)
    files = {}
    for name in records.hour_file_names(Hour.parse(LABEL)):
        data = f"{name} of generation {generation}\n".encode() * 40
        (day_dir / name).write_bytes(data)
        files[name] = FileEntry(hashlib.sha256(data).hexdigest(), len(data), None)
    record = HourRecord(LABEL, generation, files)
    records.write_record(day_dir / records.record_name(LABEL), record)
    (day_dir / f"{DAY}_report.txt").write_text("the day's report\n")
    derive_manifest(day_dir, root / "manifest.lock")
    return day_dir


def test_a_flipped_bit_shows_against_its_record_until_a_new_file_replaces_it(
    tmp_path: Path,
) -> None:
    copies = {"primary": tmp_path / "vault", "usb": tmp_path / "usb"}
    for root in copies.values():
        _built_day(root)
    spot = Spot("usb", DAY, f"{LABEL}_tweets.csv.xz")
    assert repairable(copies, spot) and spot_problem(copies, spot) == ""
    path = spot.path(copies)
    mtime = path.stat().st_mtime_ns
    flipped = flip(path, random.Random(1))
    # Rot changes no time stamp: scrub takes a report newer than its manifest as rewritten.
    assert path.stat().st_mtime_ns == mtime and still_flipped(path, flipped)
    assert spot_problem(copies, spot).startswith("differs from its record")
    assert hour_disagreements(copies) == [f"{LABEL}: usb: {spot.name} differ from its record"]
    # The primary's copy is the last good one now: the injector leaves it alone.
    assert not repairable(copies, Spot("primary", DAY, spot.name))

    fresh = path.with_name(".mended")
    shutil.copyfile(copies["primary"] / DAY / spot.name, fresh)
    os.replace(fresh, path)  # as scrub mends a file: a new one renamed over it
    assert not still_flipped(path, flipped) and spot_problem(copies, spot) == ""
    assert hour_disagreements(copies) == [] and day_disagreements(copies) == []


def test_a_flipped_manifest_or_a_replica_behind_is_a_disagreement(tmp_path: Path) -> None:
    copies = {"primary": tmp_path / "vault", "server2": tmp_path / "server2"}
    _built_day(copies["primary"], generation=2)
    _built_day(copies["server2"], generation=1)
    assert hour_disagreements(copies) == [
        f"{LABEL}: server2: generation 1 (generation), primary's 2"
    ]
    manifest = Spot("primary", DAY, f"{DAY}_SHA256SUMS")
    flip(manifest.path(copies), random.Random(3))
    assert spot_problem(copies, manifest) != ""
    assert any("on the primary" in d for d in day_disagreements(copies))


def test_a_flip_is_traced_by_a_finding_and_meets_nothing_when_a_build_replaced_it(
    tmp_path: Path,
) -> None:
    def flipped(n: int, name: str, **more) -> Fault:
        path = str(tmp_path / "usb" / DAY / name)
        ev = {"location": "usb", "day": DAY, "file": name, "path": path, **more}
        return Fault(n, 100.0, "vault bit flip", "usb", evidence=ev)

    found = flipped(1, f"{LABEL}_IDs.txt.xz")
    rebuilt = flipped(2, f"{LABEL}_users.csv.xz", gone=[110.0, 110.05])
    silent = flipped(3, f"{DAY}_SHA256SUMS", gone=[140.0, 140.05])
    finding = f"  usb: {DAY}/{LABEL}_IDs.txt.xz mismatch (sha256 0a) -> copied again"
    scrub_log = Event(150.0, None, "scrub log", f"scrub 2: scrub: 1 day(s) ...\n{finding}\n")
    # A cron run that held the lock while the users file went; only a scrub while the manifest
    # did: it rewrote the manifest without a finding naming it.
    run = Run(7, "cron", 105.0, None, tmp_path / "run.log", rc=0, ended=115.0)
    scrub = Tool(2, "cron", 135.0, None, tmp_path / "scrub.log", rc=0, ended=150.0, kind="scrub")
    kinds = assess([found, rebuilt, silent], [scrub_log], [run], [], [scrub])["vault bit flip"]
    assert (kinds["traced"], kinds["not met"], kinds["no trace"]) == (1, 1, 1)
    assert [f.evidence["trace"] for f in (found, rebuilt, silent)] == [
        "traced",
        "not met",
        "no trace",
    ]
    # A scrub killed with kill -9 mended a record and died before printing its findings (the
    # short soak, seed 1): its report went with it; the kill is what the operator hears.
    mended = flipped(4, f"{LABEL}_record.json", gone=[200.0, 200.05])
    killed = Tool(5, "to-kill", 195.0, None, tmp_path / "k.log", ended=201.0, kind="scrub")
    killed.killed = "kill -9"
    assert assess([mended], [], [], [], [killed])["vault bit flip"]["not met"] == 1
    copies = {"primary": tmp_path / "vault", "usb": tmp_path / "usb"}
    for root in copies.values():
        _built_day(root)
    unrepaired = flips_not_repaired([found, rebuilt, silent], copies)
    assert unrepaired == [f"{silent.describe()}: never found (gone with no finding naming it)"]


def test_a_flip_a_rebuild_carried_into_its_new_generation_is_not_repaired(tmp_path: Path) -> None:
    # The short soak's finding: a flipped stats file merged into the hour's next build.
    copies = {"primary": tmp_path / "vault", "usb": tmp_path / "usb"}
    for root in copies.values():
        _built_day(root)
    spot = Spot("primary", DAY, f"{LABEL}_stats.json")
    path = spot.path(copies)
    flipped = flip(path, random.Random(5))
    data = path.read_bytes()
    record_file = path.with_name(records.record_name(LABEL))
    old = records.read_record(record_file)
    assert old is not None
    files = {**old.files, spot.name: FileEntry(hashlib.sha256(data).hexdigest(), len(data))}
    fresh = path.with_name(".rebuilt")
    fresh.write_bytes(data)
    os.replace(fresh, path)  # a new file, as a build writes it
    records.write_record(record_file, HourRecord(LABEL, 2, files))
    assert spot_problem(copies, spot) == ""  # generation 2 vouches for it

    ev = {"location": "primary", "day": DAY, "file": spot.name, "path": str(path), **flipped}
    superseded = Fault(1, 100.0, "vault bit flip", "primary", evidence={**ev, "trace": "not met"})
    assert flips_not_repaired([superseded], copies) == [
        f"{superseded.describe()}: the flipped bytes are still in it"
    ]


def test_flipped_bytes_that_also_read_elsewhere_in_a_mended_file_are_not_carried(
    tmp_path: Path,
) -> None:
    # The full soak's false finding: '"19:12": 20' flipped to '"19:52": 20', mended, and minute
    # 19:52 also had 20 tweets.
    path = tmp_path / "stats.json"
    path.write_bytes(b'{"19:12": 20, "19:30": 7}')
    flipped = flip(path, random.Random(5))
    bad = path.read_bytes()
    good = bytearray(bad)
    good[flipped["offset"]] = flipped["before"]
    path.write_bytes(bytes(good) + b" " + bad)  # the mended bytes and, elsewhere, the same text
    assert not carried(path, flipped)
    path.write_bytes(bad + b" ")  # a new file that took the flipped bytes over
    assert carried(path, flipped)


def test_a_killed_scrub_is_traced_by_the_run_naming_its_pid_and_a_restore_by_its_output() -> None:
    def unfinished(t: float, pid: int) -> Event:
        text = f"the previous workflow run (pid {pid} on vm, started 2026-12-07T13:04:40+00:00) "
        return Event(t, None, "run log", f"run 9: {text}never finished: redoing its jobs")

    holding = {"tool": 3, "held the run lock": True, "pids": [4242, 4243]}
    killed = Fault(1, 100.0, "scrub killed", "primary", "scrub 3", end=101.0, evidence=holding)
    reading = {"tool": 4, "held the run lock": False, "pids": [5151]}
    early = Fault(2, 100.0, "scrub killed", "primary", "scrub 4", end=101.0, evidence=reading)
    # Another killed run's notice is not the scrub's; one that only read met nothing.
    kinds = assess([killed, early], [unfinished(105.0, 999)], [], [])["scrub killed"]
    assert (kinds["no trace"], kinds["not met"]) == (1, 1)
    assert assess([killed], [unfinished(106.0, 4243)], [], [])["scrub killed"]["traced"] == 1

    ev = {"day": DAY, "tool": 9}
    restore = Fault(3, 100.0, "vault day deleted, restored", "server2", DAY, evidence=ev)
    error = "sampled-stream restore: error: no replica could be read: replica server2: ..."
    other = Event(110.0, None, "restore log", f"restore 8: {DAY}: 16 restored, 0 intact")
    kinds = assess([restore], [other], [], [])["vault day deleted, restored"]
    assert kinds["no trace"] == 1  # another restore's output
    failed = Event(110.0, None, "restore log", f"restore 9: {error}\n")
    assert assess([restore], [failed], [], [])["vault day deleted, restored"]["traced"] == 1


@pytest.mark.integration
@pytest.mark.alone
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
    # The vault's side (issue 21): bits flipped on the copies and scrubs ran, and at the end
    # the copies were compared hour by hour.
    assert result["faults"].get("vault bit flip", 0) >= 1, result["faults"]
    assert result["faults"].get("scrub run", 0) >= 1, result["faults"]
    copies = result["copies"]
    assert copies["bit flips"] == result["faults"]["vault bit flip"]
    assert copies["bit flips not repaired"] == problems["bit flips not repaired"]["count"]
    disagree = "hours where primary and replicas disagree"
    assert copies[disagree] == problems[disagree]["count"]
    assert "ok" in result["tools"]["scrub"]  # the final one at least
    # Deletion compliance (issue 24): passes ran (the final one at least) and removed posts
    # and accounts, which the compliance checks then looked for everywhere.
    assert "ok" in result["tools"]["comply"], result["tools"]["comply"]
    assert result["complied"]["posts archived"] > 0 and result["complied"]["accounts"] > 0
    for name, p in problems.items():
        assert p["count"] == 0 or p["items"], name  # a failure names what failed
    assert proc.stdout.rstrip().endswith("PASS" if proc.returncode == 0 else "FAILED (seed 1)")

    # The goal: nothing lost, nothing duplicated, every check passed.
    failed = {k: p["items"][:3] for k, p in problems.items() if p["count"]}
    assert proc.returncode == 0 and not failed, f"{failed}\n{proc.stdout[-4000:]}"


def test_an_unplugged_replica_nothing_tried_to_reach_is_not_met() -> None:
    # The full soak's untraced fault: the local replica away for 24 s (cut short at the end),
    # while no copy to it and no scrub ran.
    idle = Fault(1, 100.0, "replica unplugged", "unplugged", end=124.0)
    idle.evidence["copies tried"] = 0
    tried = Fault(2, 200.0, "replica unplugged", "unplugged", end=260.0)
    tried.evidence["copies tried"] = 2
    kinds = assess([idle, tried], [], [], [])["replica unplugged"]
    assert (kinds["not met"], kinds["no trace"]) == (1, 1)
    log = "replica usb: /soak/replica-usb is not a folder (not mounted?)"
    traced = assess([tried], [Event(230.0, None, "job log", log)], [], [])["replica unplugged"]
    assert traced["traced"] == 1
