"""The Snakemake workflow end to end: generated raw data of two servers -> the hourly vault.

One world is built once per module (Snakemake runs dominate the time); each test starts from
it as the first run left it and may run the workflow again: idempotence, late data, a day
rebuild, an interrupted run. No test sees another's changes, whatever the order.
"""

from __future__ import annotations

import csv
import io
import json
import lzma
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from ingest import layout
from ingest.devtools.generate import TweetFactory, generate_raw_tree, stream_line
from ingest.layout import Hour
from tests import workflow_runs
from tests.workflow_runs import SNAKEFILE, TEST_ENV, write_fast_config

# Every run here checks its exit status unless told otherwise.
snakemake = partial(workflow_runs.snakemake, check=True)

pytestmark = pytest.mark.integration  # Snakemake runs

TZ = ZoneInfo("Europe/Berlin")
SEED_COLUMNS = (
    "id,conversation_id,author_id,created_at,retrieved_at,source,lang,text,reference_type,"
    "referenced_tweet_id,author.created_at,author.location,author.name,author.username,"
    "author.verified,author.protected,author.public_metrics.followers_count,"
    "author.public_metrics.following_count,author.public_metrics.tweet_count,"
    "author.public_metrics.listed_count"
).split(",")
# Local 11:00-12:00 (10:00-11:00 UTC) is the hour under test; data runs from 10:55 local.
START = datetime(2026, 1, 14, 9, 55, tzinfo=UTC)
END = datetime(2026, 1, 14, 11, 7, tzinfo=UTC)
NOW = "2026-01-14T11:12:00+00:00"  # hour 11 complete (end + 6 late + 5 grace), hour 12 not
H10, H11 = Hour("2026-01-14", 10), Hour("2026-01-14", 11)


def write_config(root: Path, servers=("server1", "server2"), **extra) -> Path:
    config = {
        "timezone": "Europe/Berlin",
        "vault_dir": str(root / "vault"),
        "work_dir": str(root / "work"),
        "servers": [{"name": s, "raw_dir": str(root / "raw" / s)} for s in servers],
        "osf": {"enabled": False},
        "email": {"enabled": False},
        "now": NOW,
        **extra,
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def read_xz_lines(path: Path) -> list[str]:
    return lzma.decompress(path.read_bytes()).decode().splitlines()


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(lzma.decompress(path.read_bytes()).decode())))


@pytest.fixture(scope="module")
def built_world(tmp_path_factory):
    """Raw data of two servers, a dry run and the first run over it, and a snapshot of the
    result; tests use ``world``."""
    root = tmp_path_factory.mktemp("world")
    write_config(root)
    summary = generate_raw_tree(
        [(s, root / "raw" / s) for s in ("server1", "server2")],
        START,
        END,
        TZ,
        rate_per_minute=40,
        bad_lines=True,
        seed=7,
    )
    dry = snakemake(root, "-n")
    vault_after_dry_run = (root / "vault").exists()
    first = snakemake(root)
    snapshot = tmp_path_factory.mktemp("world-snapshot") / "world"
    shutil.copytree(root, snapshot, symlinks=True)
    return {
        "root": root,
        "summary": summary,
        "dry": dry,
        "vault_after_dry_run": vault_after_dry_run,
        "first": first,
        "snapshot": snapshot,
    }


@pytest.fixture
def world(built_world):
    """The built world as the first run left it, for this test alone: the snapshot is copied back
    to the same path (Snakemake's metadata is keyed by absolute output paths), file times kept
    (copy2), so the next run sees exactly what the first one left."""
    root = built_world["root"]
    shutil.rmtree(root)
    shutil.copytree(built_world["snapshot"], root, symlinks=True)
    return dict(built_world)


def test_dry_run_lists_pending_hours_and_writes_nothing(world):
    out = world["dry"].stdout + world["dry"].stderr
    assert "2026-01-14_11" in out and "2026-01-14_10" in out
    assert "2026-01-14_12" not in out  # not complete at NOW
    assert "build_hour" in out
    assert not world["vault_after_dry_run"]


def test_every_output_of_the_hour(world):
    vault = world["root"] / "vault"
    summary = world["summary"]
    paths = layout.vault_paths(vault, H11)
    expected = summary.ids_by_hour(TZ)[H11]

    ids = read_xz_lines(paths["ids"])
    assert [int(i) for i in ids] == sorted(expected)  # numeric order, no duplicates

    rows = read_csv(paths["tweets"])
    assert rows[0] == SEED_COLUMNS
    assert [int(r[0]) for r in rows[1:]] == sorted(expected)
    for r in rows[1:]:
        assert len(r) == 20
        assert r[3].endswith("+00:00") and len(r[3]) == 25  # created_at, seed format
        assert r[8] in {"original", "retweeted", "quoted", "replied_to"}
        assert r[14] in {"true", "false", ""}
        assert "\n" not in r[7] and "\r" not in r[7]
    created = {layout.hour_of(datetime.fromisoformat(r[3]), TZ) for r in rows[1:]}
    assert created == {H11}

    users = read_csv(paths["users"])
    assert users[0][:2] == ["author_id", "lang"] and len(users[0]) == 12
    authors = [int(u[0]) for u in users[1:]]
    assert authors == sorted(set(authors))
    assert set(authors) == {int(r[2]) for r in rows[1:] if r[10]}

    stats = json.loads(paths["stats"].read_text())
    s1 = summary.ids_by_hour(TZ, "server1")[H11]
    s2 = summary.ids_by_hour(TZ, "server2")[H11]
    assert stats["counts"] == {"server1": len(s1), "server2": len(s2)}
    assert stats["total"] == len(expected)
    assert stats["diff"] == len(s1 ^ s2)
    assert sum(sum(n.values()) for n in stats["skipped"].values()) > 0  # bad lines counted
    assert len(stats["minutes"]["server1"]) == 60


def test_each_tweet_lands_in_exactly_one_hour(world):
    vault = world["root"] / "vault"
    seen: dict[int, Hour] = {}
    for hour in (H10, H11):
        for i in read_xz_lines(layout.vault_paths(vault, hour)["ids"]):
            assert int(i) not in seen, f"{i} in {seen.get(int(i))} and {hour}"
            seen[int(i)] = hour
    by_hour = world["summary"].ids_by_hour(TZ)
    assert set(seen) == by_hour[H10] | by_hour[H11]


def test_day_report(world):
    report = (world["root"] / "vault" / "2026-01-14" / "2026-01-14_report.txt").read_text()
    lines = report.splitlines()
    assert lines[0] == "hour\tserv 1\tserv 2\ttotal\tdiff\tdiff %"
    stats = json.loads(layout.vault_paths(world["root"] / "vault", H11)["stats"].read_text())
    c = stats["counts"]
    pct = f"{100 * stats['diff'] / stats['total']:.2f}%"
    assert f"11\t{c['server1']}\t{c['server2']}\t{stats['total']}\t{stats['diff']}\t{pct}" in lines
    assert [line.split("\t")[0] for line in lines[1:]] == ["10", "11"]


def test_intermediates_go_once_built(world):
    minutes = world["root"] / "work" / "minutes"
    left = [p for p in minutes.rglob("*.tsv")] if minutes.exists() else []
    # Only minutes that hour 12 (not built yet) still needs are kept.
    assert left and all("T12" in p.name or "T1159" in p.name for p in left), left[:5]
    assert any((world["root"] / "raw" / "server1").rglob("*.jsonl"))  # raw kept 48 h


def test_second_run_does_nothing(world):
    vault = world["root"] / "vault"

    def data():  # the dashboard (vault/dashboard) shows every run's health: left out
        return {p: p.stat().st_mtime_ns for p in vault.rglob("*") if "dashboard" not in p.parts}

    before = data()
    out = snakemake(world["root"])
    assert "Nothing to be done" in out.stdout + out.stderr
    assert data() == before


def test_late_minute_of_secondary_rebuilds_its_hour(world):
    root = world["root"]
    h10_files = layout.vault_paths(root / "vault", H10)
    h10_before = h10_files["ids"].stat().st_mtime_ns
    # server2 delivers a minute it had missed: a new tweet created in hour 11.
    created = datetime(2026, 1, 14, 10, 30, 5, tzinfo=UTC)
    tweet = TweetFactory(seed=99).make(created)
    path = layout.minute_path(root / "raw" / "server2", created, TZ)
    path.with_name("late.tmp").write_bytes(stream_line(tweet, created + timedelta(seconds=2)))
    # The original minute file exists; a late minute arrives under its own (seed-style) name.
    late = path.with_name("sampled_stream_2026-01-14_11:30:00_to_2026-01-14_11:31:00.jsonl")
    path.with_name("late.tmp").rename(late)
    old_total = json.loads(layout.vault_paths(root / "vault", H11)["stats"].read_text())["total"]

    snakemake(root)
    ids = {int(i) for i in read_xz_lines(layout.vault_paths(root / "vault", H11)["ids"])}
    assert int(tweet["data"]["id"]) in ids
    stats = json.loads(layout.vault_paths(root / "vault", H11)["stats"].read_text())
    assert stats["total"] == old_total + 1
    assert h10_files["ids"].stat().st_mtime_ns == h10_before  # other hours left alone


def test_rebuild_a_day_on_request(world):
    root = world["root"]
    stats_path = layout.vault_paths(root / "vault", H11)["stats"]
    before = stats_path.read_bytes()
    mtime = stats_path.stat().st_mtime_ns
    time.sleep(0.01)
    snakemake(root, "--config", "hours=2026-01-14", "--forcerun", "build_hour")
    assert stats_path.stat().st_mtime_ns > mtime
    assert stats_path.read_bytes() == before  # same raw input, same output


def test_rebuild_with_fewer_tweets_keeps_the_hour(world):
    root = world["root"]
    paths = layout.vault_paths(root / "vault", H11)
    ids_before = paths["ids"].read_bytes()
    total = json.loads(paths["stats"].read_text())["total"]
    # Raw minutes of the hour are gone (e.g. retention); a forced rebuild would have fewer.
    minute = datetime(2026, 1, 14, 10, 20, tzinfo=UTC)
    for server in ("server1", "server2"):
        layout.minute_path(root / "raw" / server, minute, TZ).unlink()
    snakemake(root, "--config", "hours=2026-01-14_11", "--forcerun", "build_hour")
    assert paths["ids"].read_bytes() == ids_before
    assert json.loads(paths["stats"].read_text())["total"] == total


# The parent of the run in the interrupted-run test, standing in for an init (PID 1 in many
# containers) that does not reap orphans: it adopts the orphans of the killed run
# (PR_SET_CHILD_SUBREAPER) and leaves them zombies, their PIDs taken, until its stdin closes.
NON_REAPING_PARENT = """
import ctypes, os, subprocess, sys
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit(f"prctl: {os.strerror(ctypes.get_errno())}")
run = subprocess.Popen(
    sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
)
print(run.pid, flush=True)
sys.stdin.read()
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
"""


def processes() -> list[tuple[int, str, int, int]]:
    """(pid, state, parent pid, process group) of every process, from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # ended meanwhile
        state, ppid, pgrp = text.rsplit(")", 1)[1].split()[:3]
        out.append((int(stat.parent.name), state, int(ppid), int(pgrp)))
    return out


def processes_of(parent: int) -> list[tuple[int, str, int, int]]:
    return [p for p in processes() if p[2] == parent]


def test_interrupted_run_leaves_no_half_written_file(tmp_path):
    config = write_config(tmp_path, servers=("server1",))
    generate_raw_tree(
        [("server1", tmp_path / "raw" / "server1")], START, END, TZ, rate_per_minute=400, seed=3
    )
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE)]
    cmd += ["--directory", str(tmp_path), "--configfile", str(config)]
    parent = subprocess.Popen(
        [sys.executable, "-c", NON_REAPING_PARENT, *cmd],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=TEST_ENV,
    )
    try:
        run = int(parent.stdout.readline())  # snakemake, leading its own process group

        def group_alive() -> bool:
            return any(g == run and s != "Z" for _, s, _, g in processes())

        vault_day = tmp_path / "vault" / "2026-01-14"
        deadline = time.monotonic() + 240
        # Wait until an hourly .xz is being written, then pull the plug. (Not any temp: the day
        # report's lives for milliseconds, and its job may be gone by the time the kill lands.)
        while time.monotonic() < deadline and group_alive():
            if vault_day.exists() and any(".xz.tmp" in p.name for p in vault_day.iterdir()):
                break
            time.sleep(0.02)
        assert group_alive(), "the run ended before it could be interrupted"
        os.killpg(run, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and group_alive():
            time.sleep(0.02)
        assert not group_alive()
        # The dead writers are zombies: their PIDs still answer kill(pid, 0).
        adopted = [p for p, s, pp, _ in processes() if pp == parent.pid and s == "Z" and p != run]
        assert adopted, f"no zombie orphans; the test needs them: {processes_of(parent.pid)}"

        for p in vault_day.iterdir():
            if p.name.endswith(".xz"):
                lzma.decompress(p.read_bytes())  # a final name always holds a complete file
        # After a crash the next run (as cron runs it, under flock) completes the hour.
        snakemake(tmp_path, "--nolock", config=config)
        for hour in (H10, H11):
            for p in layout.vault_paths(tmp_path / "vault", hour).values():
                assert p.exists()
        assert not [p for p in vault_day.iterdir() if ".tmp" in p.name]
    finally:
        parent.stdin.close()  # the parent reaps its zombies and ends
        parent.wait()


def test_bad_config_stops_with_the_key_named(tmp_path):
    config = write_config(tmp_path, late_minutes="six")
    out = snakemake(tmp_path, "-n", config=config, check=False)
    assert out.returncode != 0
    said = out.stdout + out.stderr
    assert "late_minutes" in said and "'six' is not of type 'integer'" in said


def test_day_report_waits_for_this_runs_builds_and_shows_every_built_hour(world):
    """Rebuilding hour 11 alone: the report waits for that build's receipt only (no vault file
    is a rule's input or output, so hour 10 is neither forced to rebuild nor touched) and is
    made from every built hour's stats in the vault."""
    root = world["root"]
    args = ("--config", "hours=2026-01-14_11", "--forcerun", "build_hour")
    out = snakemake(root, "-n", *args)
    said = out.stdout + out.stderr
    job = said[said.index("rule day_report:") :].split("\n\n")[0]
    (receipt,) = job.split("input:")[1].splitlines()[0].strip().split(", ")
    assert Path(receipt).parent == root / "work" / "built" / "2026-01-14"
    assert Path(receipt).name.startswith("2026-01-14_11.")
    assert said.count("rule build_hour:") == 1
    # One hour rebuilt alone takes the run's every core (--cores 2, the profile's), to parse
    # and for xz; with backfill_threads set, that many.
    build = said[said.index("rule build_hour:") :].split("\n\n")[0]
    assert "threads: 2" in build, build
    fixed = snakemake(root, "-n", *args[:-2], "backfill_threads=1", *args[-2:])
    said = fixed.stdout + fixed.stderr
    build = said[said.index("rule build_hour:") :].split("\n\n")[0]
    assert "threads:" not in build, build
    report = layout.report_path(root / "vault", "2026-01-14")
    h10 = layout.vault_paths(root / "vault", H10)["stats"].stat().st_mtime_ns
    snakemake(root, *args)
    assert [line.split("\t")[0] for line in report.read_text().splitlines()[1:]] == ["10", "11"]
    assert layout.vault_paths(root / "vault", H10)["stats"].stat().st_mtime_ns == h10


@pytest.mark.integration
def test_a_config_error_through_snakemake_names_the_key_and_reason_in_a_few_lines(tmp_path):
    config = write_fast_config(
        tmp_path, late_minutes="five", email={"enabled": False, "smtp_hots": "x"}
    )
    run = workflow_runs.snakemake(tmp_path, "-n")
    assert run.returncode != 0
    said = (run.stdout + run.stderr).strip().splitlines()
    assert f"  {config}: late_minutes: 'five' is not of type 'integer'" in said, said
    assert any(
        f"{config}: email: Additional properties are not allowed ('smtp_hots'" in line
        for line in said
    ), said
    assert len(said) <= 8, said  # not the schema around it
    assert not any("Failed validating" in line or "'default'" in line for line in said), said
