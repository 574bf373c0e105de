"""Issue 22: what ``sampled-stream import`` promises on the inputs people actually hold.

Each tweet exactly once (pages retrieved long after their tweets go by ``created_at``), only
verified bytes from compressed inputs, the run lock, honest fields, a clear failure for an
input that holds no tweets. The real payloads of ../shared/fixtures/twitter-v2 are the input.
"""

from __future__ import annotations

import gzip
import json
import lzma
import subprocess
import sys
import zlib
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

from ingest import layout
from ingest.hours.assign import HourAssigner
from ingest.hours.parse import datetime_key, parse_line
from ingest.imports.importer import import_sources
from ingest.layout import parse_minute_name
from tests.test_import import (
    TZ,
    config,
    config_path,
    fixture,
    raw_lines,
    run_cli,
    twarc_sample,
)
from tests.test_run_lock import hold_run_lock

LATE = 5  # the schema's default late_minutes


def hours_of_ids(raw_dir: Path) -> dict[str, set[str]]:
    """Tweet ID -> the hour labels its landed copies count for, by the build's own rule."""
    out: dict[str, set[str]] = defaultdict(set)
    for p in sorted(raw_dir.rglob("*.jsonl")):
        minute = parse_minute_name(p.name, TZ)
        assigner = HourAssigner(TZ, LATE, minute)
        for raw in p.read_bytes().splitlines():
            line = parse_line(raw, default_retrieved=datetime_key(minute))
            for t in line.tweets:
                out[str(t.id)].add(assigner.label(t.created_key, t.retrieved_key))
    return out


def with_retrieved_at(page: dict, at: datetime) -> bytes:
    return json.dumps({**page, "__twarc": {**page["__twarc"], "retrieved_at": at.isoformat()}})


# --- D: each tweet in exactly one hour ------------------------------------------------------


def test_a_tweet_in_pages_retrieved_at_different_times_lands_in_one_hour(tmp_path: Path) -> None:
    """The same search page fetched twice, two hours apart: its tweets count for their created
    hour once, never once per retrieval."""
    page = json.loads(fixture("brexit.jsonl").read_bytes().splitlines()[0])
    retrieved = datetime.fromisoformat(page["__twarc"]["retrieved_at"])
    first, again = tmp_path / "first.jsonl", tmp_path / "again.jsonl"
    first.write_bytes(with_retrieved_at(page, retrieved).encode() + b"\n")
    again.write_bytes(with_retrieved_at(page, retrieved + timedelta(hours=2)).encode() + b"\n")
    report = import_sources(config(tmp_path), "old", [first, again])
    assert [r["status"] for r in report.results] == ["imported", "imported"]
    hours = hours_of_ids(tmp_path / "raw")
    assert set(hours) == {t["id"] for t in page["data"]}
    for tid, labels in hours.items():
        created = next(t["created_at"] for t in page["data"] if t["id"] == tid)
        assert labels == {layout.hour_of(datetime.fromisoformat(created), TZ).label}, tid


def test_a_page_of_old_tweets_goes_by_each_tweets_created_at(tmp_path: Path) -> None:
    """A timeline page: 100 tweets over three weeks, fetched a year later. Each tweet counts for
    its own created hour, with its author and its real retrieved_at."""
    src = tmp_path / "timeline.jsonl"
    src.write_bytes(fixture("withheld.jsonl").read_bytes().splitlines(keepends=True)[3])
    page = json.loads(src.read_bytes())
    [result] = import_sources(config(tmp_path), "old", [src]).results
    assert result["status"] == "imported" and result["by_created_at"] == len(page["data"])
    hours = hours_of_ids(tmp_path / "raw")
    for t in page["data"]:
        assert hours[t["id"]] == {layout.hour_of(datetime.fromisoformat(t["created_at"]), TZ).label}
    users = {u["id"]: u for u in page["includes"]["users"]}
    for p in (tmp_path / "raw").rglob("*.jsonl"):
        for raw in p.read_bytes().splitlines():
            [t] = parse_line(raw).tweets
            assert t.has_author == (t.author_id in users)
            assert t.retrieved_at == datetime.fromisoformat(page["__twarc"]["retrieved_at"])


def test_sample_lines_keep_filing_by_retrieved_at(tmp_path: Path) -> None:
    """Stream lines keep the collector's rule, byte for byte, even when late."""
    src = tmp_path / "sample.jsonl"
    lines = twarc_sample(src)
    import_sources(config(tmp_path), "old", [src])
    landed = sorted(line for ls in raw_lines(tmp_path / "raw").values() for line in ls)
    assert landed == sorted(lines)


# --- E: only verified bytes of a compressed input --------------------------------------------


def gzip_member_stored(data: bytes) -> bytes:
    """A gzip member whose deflate blocks are stored (level 0): a flipped payload byte comes
    out as an altered byte, and only the member's CRC can tell."""
    c = zlib.compressobj(0, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def test_a_damaged_gzip_member_places_nothing_of_that_member(tmp_path: Path) -> None:
    plain = tmp_path / "sample.jsonl"
    lines = twarc_sample(plain)
    half = len(lines) // 2
    good = gzip.compress(b"".join(lines[:half]))
    bad = bytearray(gzip_member_stored(b"".join(lines[half:])))
    at = bad.index(b'"id": "') + 8
    bad[at] = ord("7") if bad[at] != ord("7") else ord("3")  # an ID digit, still valid JSON
    src = tmp_path / "archive.jsonl.gz"
    src.write_bytes(good + bytes(bad))
    cfg = config_path(tmp_path)
    proc = run_cli("--config", str(cfg), "--server", "old", str(src))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "archive.jsonl.gz" in proc.stdout and "DAMAGED" in proc.stdout
    assert f"offset {len(good):,}" in proc.stdout  # where the unverified member starts
    landed = sorted(line for ls in raw_lines(tmp_path / "raw").values() for line in ls)
    assert landed == sorted(lines[:half])  # the verified member, nothing of the damaged one


def xz_with_bad_check(data: bytes) -> bytes:
    """An .xz stream whose data is intact but whose block check (CRC64) is wrong."""
    packed = bytearray(lzma.compress(data, check=lzma.CHECK_CRC64))
    backward = int.from_bytes(packed[-8:-4], "little")
    index_size = (backward + 1) * 4
    packed[len(packed) - 12 - index_size - 1] ^= 0xFF
    return bytes(packed)


def test_an_xz_stream_whose_check_fails_places_nothing_of_it(tmp_path: Path) -> None:
    plain = tmp_path / "sample.jsonl"
    lines = twarc_sample(plain)
    half = len(lines) // 2
    src = tmp_path / "archive.jsonl.xz"
    src.write_bytes(
        lzma.compress(b"".join(lines[:half])) + xz_with_bad_check(b"".join(lines[half:]))
    )
    [result] = import_sources(config(tmp_path), "old", [src]).results
    assert result["damaged"] and result["lines"] == {"stream": half}
    landed = sorted(line for ls in raw_lines(tmp_path / "raw").values() for line in ls)
    assert landed == sorted(lines[:half])


# --- G: the run lock -------------------------------------------------------------------------


def test_import_waits_for_the_run_lock_or_fails_at_once(tmp_path: Path) -> None:
    src = tmp_path / "sample.jsonl"
    twarc_sample(src)
    cfg = config_path(tmp_path)
    lock = Path(config(tmp_path)["work_dir"]) / "run.lock"
    holder = hold_run_lock(lock, "wait")
    try:
        proc = run_cli("--config", str(cfg), "--server", "old", "--no-wait", str(src))
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"pid {holder.pid}" in proc.stderr and "run lock" in proc.stderr
        assert not list((tmp_path / "raw").rglob("*.jsonl"))  # nothing placed meanwhile
        waiting = subprocess.Popen(
            [sys.executable, "-m", "ingest.cli", "import", "--config", str(cfg)]
            + ["--server", "old", str(src)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert "waiting for" in waiting.stderr.readline()
    finally:
        holder.kill()
        holder.wait()
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, out + err
    assert "522 lines written" in out
    assert list((tmp_path / "raw").rglob("*.jsonl"))


# --- honest fields and exit status ------------------------------------------------------------


def test_a_line_without_retrieved_at_leaves_the_column_empty() -> None:
    raw = fixture("sample-stream-lines.jsonl").read_bytes().splitlines()[0]  # no __twarc
    [t] = parse_line(raw, default_retrieved="2021-04-01T15:52:00.000000+00:00").tweets
    assert t.head.split(",")[4] == ""  # the tweets CSV's retrieved_at column
    assert t.retrieved_key is not None  # the copy still sorts (by its file's minute)


def test_an_input_without_tweets_fails_naming_the_file_and_what_it_holds(tmp_path: Path) -> None:
    cfg = config_path(tmp_path)
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\x00\x01 binary junk\nmore junk\n")
    csv = tmp_path / "tweets.csv"
    csv.write_text("id,conversation_id,author_id,created_at\n1,1,2,2021-04-01 15:52:31+00:00\n")
    for src, what in (
        (empty, "empty"),
        (garbage, "2 lines, none a tweet"),
        (csv, "first line: id,conversation_id,author_id,created_at"),
    ):
        proc = run_cli("--config", str(cfg), "--server", "old", str(src))
        assert proc.returncode == 1, proc.stdout
        [line] = [x for x in proc.stdout.splitlines() if x.startswith(str(src))]
        assert "no tweet" in line and what in line, line
    assert not (tmp_path / "raw").exists() or not list((tmp_path / "raw").rglob("*.jsonl"))


# --- archives in the health; a raw_dir that is not there -------------------------------------


def test_an_archive_is_not_a_collector_in_health_status_and_metrics(tmp_path: Path) -> None:
    from ingest.observe import health
    from ingest.observe.metrics import metrics_text

    src = tmp_path / "sample.jsonl"
    twarc_sample(src)
    cfg = config_path(tmp_path)
    c = config(tmp_path)
    import_sources(c, "old", [src])
    now = datetime.fromisoformat("2026-12-07T12:00:00+00:00")
    health.record_run(c, "r", now, now, "ok")  # the primary
    h = health.system_health(c, now)
    [check] = [x for x in h.checks if x.name.endswith(" old")]
    assert check.name == "archive old" and check.level == health.OK, check
    assert "522 lines from 1 input" in check.summary and "2021-09-22" in check.summary
    text = metrics_text(h)
    assert 'health_level{check="archive old"} 0' in text
    assert 'archive_lines{server="old"} 522' in text and 'age_seconds{server="old"}' not in text
    proc = run_cli_command("status", "--config", str(cfg))
    assert "old: archive (imported)" in proc.stdout and "522 lines" in proc.stdout
    assert "newest minute file" not in proc.stdout.split("health:")[0]


def test_a_missing_raw_dir_is_said_in_the_plan_status_and_health(tmp_path: Path) -> None:
    from ingest.hours.plan import make_plan
    from ingest.observe import health

    cfg = config_path(tmp_path, imported=False)
    c = config(tmp_path, imported=False)
    missing = f"raw_dir {tmp_path / 'raw'} does not exist"
    now = datetime.fromisoformat("2026-12-07T12:00:00+00:00")
    assert any(missing in w for w in make_plan(c, now).warnings)
    h = health.system_health(c, now)
    [check] = [x for x in h.checks if x.name == "collector old"]
    assert check.level == health.FAILING and missing in check.summary
    proc = run_cli_command("status", "--config", str(cfg))
    assert missing in proc.stdout


def run_cli_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ingest.cli", *args], capture_output=True, text=True, timeout=60
    )


# --- I: a run's cost does not grow with what was ever imported --------------------------------


def build_all(c: dict, hours) -> None:
    """Stand in for the builds: each hour's stats name the files its window read, at their
    sizes (what the plan and retention compare against)."""
    from ingest.hours import plan

    for hour in hours:
        files = plan.window_files(c, hour)
        p = layout.vault_paths(c["vault_dir"], hour)["stats"]
        p.parent.mkdir(parents=True, exist_ok=True)
        inputs = {s: {f.path.name: f.path.stat().st_size for f in fs} for s, fs in files.items()}
        p.write_text(json.dumps({"inputs": inputs}))


def test_runs_look_only_at_imported_hours_that_changed(tmp_path: Path, monkeypatch) -> None:
    """Once an imported hour is built, neither the plan nor retention lists its folder again
    (a year of imports would cost ~80 CPU s a run); a new import into it is seen at once."""
    from ingest.hours import plan, retention

    src = tmp_path / "sample.jsonl"
    twarc_sample(src)
    c = config(tmp_path)
    import_sources(c, "old", [src])
    now = datetime.fromisoformat("2026-12-07T12:00:00+00:00")
    hours = plan.make_plan(c, now).build
    assert hours  # the imported hours, found through their marks
    build_all(c, hours)
    retention.clean(c, now)  # every mark settled: the hours are built from their files
    assert changed_hours_of(c) == set()

    listed: list = []
    real = layout.minute_files
    monkeypatch.setattr(layout, "minute_files", lambda *a, **k: listed.append(a) or real(*a, **k))
    assert plan.make_plan(c, now).build == [] and retention.clean(c, now).intermediates_removed == 0
    assert listed == []  # not a single folder of the archive listed

    # Another input with a late page of one built hour: that hour (and its neighbour that
    # reads its first minute) is built again.
    page = json.loads(fixture("brexit.jsonl").read_bytes().splitlines()[0])
    late = tmp_path / "late.jsonl"
    late.write_bytes(with_retrieved_at(page, now).encode() + b"\n")
    import_sources(c, "old", [late])
    again = plan.make_plan(c, now).build
    created = {layout.hour_of(datetime.fromisoformat(t["created_at"]), TZ) for t in page["data"]}
    assert created <= set(again) and set(again) <= set(hours) | created


def changed_hours_of(c: dict) -> set:
    from ingest import changed_hours

    return changed_hours.changed(c["work_dir"], "old")


def test_an_archive_imported_before_the_marks_is_walked_once(tmp_path: Path) -> None:
    """A raw_dir an older version imported has no marks: the plan walks it, and the first
    retention pass marks the hours still to build and makes the marks complete."""
    from ingest import changed_hours
    from ingest.hours import plan, retention

    src = tmp_path / "sample.jsonl"
    twarc_sample(src)
    c = config(tmp_path)
    import_sources(c, "old", [src])
    shutil_rmtree(changed_hours.changed_dir(c["work_dir"], "old"))  # as an older version left it
    now = datetime.fromisoformat("2026-12-07T12:00:00+00:00")
    hours = plan.make_plan(c, now).build
    assert hours and changed_hours_of(c) is None
    build_all(c, hours[:1])
    retention.clean(c, now)
    marked = changed_hours_of(c)
    assert marked is not None and hours[0] not in marked
    assert plan.make_plan(c, now).build == hours[1:]  # the rest still to build, from the marks


def shutil_rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)
