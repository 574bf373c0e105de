"""Per-minute intermediates: one raw minute file -> sorted tweets and users lines + metadata."""

from __future__ import annotations

import csv
import errno
import io
import json
import logging
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from ingest import layout
from ingest.hours import plan
from ingest.hours.jobs import parse_job
from ingest.hours.minutes import (
    NOT_REGULAR,
    T_KEY_END,
    T_LABEL,
    T_ROW,
    U_KEY_END,
    U_LABEL,
    U_ROW,
    U_TWEET_END,
    main,
    parse_many,
    parse_minute_file,
    read_meta,
)
from tests.configs import loaded_config
from tests.workflow_runs import smtp_email

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures" / "twitter-v2"
CET = ZoneInfo("CET")


def tweet(tid, created, author="42", text="hi", **extra) -> dict:
    return {
        "id": str(tid),
        "author_id": author,
        "created_at": created,
        "text": text,
        "lang": "en",
        "conversation_id": str(tid),
        **extra,
    }


def user(uid="42", name="Ada", followers=1) -> dict:
    return {
        "id": uid,
        "name": name,
        "username": f"u{uid}",
        "created_at": "2010-01-02T03:04:05.000Z",
        "verified": False,
        "protected": False,
        "public_metrics": {
            "followers_count": followers,
            "following_count": 2,
            "tweet_count": 3,
            "listed_count": 4,
        },
    }


def line(t: dict, users: list[dict] | None, retrieved: str | None) -> bytes:
    obj: dict = {"data": t, "includes": {"users": users or []}}
    if retrieved:
        obj["__twarc"] = {"url": "u", "version": "2.14.0", "retrieved_at": retrieved}
    return json.dumps(obj, ensure_ascii=False).encode()


def write_raw(d: Path, name: str, lines: list[bytes], terminated: bool = True) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    data = b"\n".join(lines) + (b"\n" if terminated and lines else b"")
    p.write_bytes(data)
    return p


def body(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[1:-1]


@pytest.fixture
def minute_file(tmp_path):
    """11:06 CET file with every kind of line."""
    lines = [
        line(tweet(300, "2026-01-14T10:05:59.000Z"), [user()], "2026-01-14T10:06:01+00:00"),
        b"",
        line(
            tweet(100, "2026-01-14T10:06:00.500Z", author="7"),
            [user("7")],
            "2026-01-14T10:06:02+00:00",
        ),
        b'{"errors": [{"title": "operational-disconnect"}]}',
        b"\xff\xfe not utf8",
        b"{not json",
        line(tweet(99, "2026-01-14T09:59:59.000Z"), [], "2026-01-14T10:06:03+00:00"),  # late copy
        line(
            tweet(5, "2026-01-14T07:00:00.000Z"), [user()], "2026-01-14T10:06:04+00:00"
        ),  # v. late
        b"   ",
        line(tweet(300, "2026-01-14T10:05:59.000Z"), [user()], "2026-01-14T10:06:00.250000+00:00"),
        b'{"data": {"id": "77"',  # cut
    ]
    return write_raw(
        tmp_path / "raw" / "2026-01-14" / "11", "2026-01-14T1106+0100.jsonl", lines, False
    )


def test_meta_counts_every_line_kind(minute_file, tmp_path):
    log = io.StringIO()
    s = parse_minute_file(
        minute_file, tmp_path / "t.tsv", tmp_path / "u.tsv", "server1", CET, 6, log=log
    )
    meta = read_meta(tmp_path / "t.tsv")
    assert meta == read_meta(tmp_path / "u.tsv")
    # The CSV bytes of each hour's rows (with their newline), as the hourly merge writes them.
    row_bytes: dict[str, int] = {}
    for line in body(tmp_path / "t.tsv"):
        label = line[T_LABEL].decode()
        row_bytes[label] = row_bytes.get(label, 0) + len(line[T_ROW:]) + 1
    assert meta.pop("row_bytes") == row_bytes
    assert meta.pop("size") == minute_file.stat().st_size
    assert meta == {
        "server": "server1",
        "file": str(minute_file),
        "minute": "2026-01-14T10:06:00+00:00",
        "lines": 11,
        "tweets": 5,
        "keepalives": 2,
        "skipped": {"error_message": 1, "invalid_json": 1, "invalid_utf8": 1, "truncated": 1},
    }
    assert (s.tweets, s.keepalives, s.lines) == (5, 2, 11)
    assert log.getvalue().splitlines() == [
        f"{minute_file}:4: error_message",
        f"{minute_file}:5: invalid_utf8",
        f"{minute_file}:6: invalid_json",
        f"{minute_file}:11: truncated",
    ]


def test_tweet_lines_are_sorted_fixed_width_and_labelled(minute_file, tmp_path):
    parse_minute_file(minute_file, tmp_path / "t.tsv", tmp_path / "u.tsv", "server1", CET, 6)
    lines = body(tmp_path / "t.tsv")
    assert lines == sorted(lines)
    ids = [ln[:20] for ln in lines]
    # numeric order through zero padding: 5 < 99 < 100 < 300 (twice: two copies)
    assert ids == [b"%020d" % i for i in (5, 99, 100, 300, 300)]
    for ln in lines:
        assert ln[20:21] == b"\t" and ln[T_KEY_END : T_KEY_END + 1] == b"\t"
        assert ln[T_ROW - 1 : T_ROW] == b"\t"
    labels = {int(ln[:20]): ln[T_LABEL].decode() for ln in lines}
    assert labels[300] == "2026-01-14_11"
    assert labels[100] == "2026-01-14_11"
    # created 10:59:59 CET; hour 10's late window ends at 11:06 CET (exclusive), this file's
    # minute: it counts for the hour it arrived in
    assert labels[99] == "2026-01-14_11"
    assert labels[5] == "2026-01-14_11"  # created 08:00 CET, backfilled hours later
    # the two copies of 300 sort by retrieved_at (fixed width with microseconds)
    assert lines[3][21:T_KEY_END] == b"2026-01-14T10:06:00.250000+00:00"
    assert lines[4][21:T_KEY_END] == b"2026-01-14T10:06:01.000000+00:00"
    row = lines[3][T_ROW:].decode().split(",")
    assert row[:5] == ["300", "300", "42", "2026-01-14 10:05:59+00:00", "2026-01-14 10:06:00+00:00"]


def test_user_lines(minute_file, tmp_path):
    parse_minute_file(minute_file, tmp_path / "t.tsv", tmp_path / "u.tsv", "server1", CET, 6)
    lines = body(tmp_path / "u.tsv")
    assert lines == sorted(lines)
    # 99 has no author in its includes: no user line
    assert [(int(ln[:20]), int(ln[54:74])) for ln in lines] == [
        (7, 100),
        (42, 5),
        (42, 300),
        (42, 300),
    ]
    ln = lines[0]
    assert ln[21:53] == b"2026-01-14T10:06:00.500000+00:00"  # created_at key
    assert ln[U_TWEET_END + 1 : U_KEY_END] == b"2026-01-14T10:06:02.000000+00:00"
    assert ln[U_LABEL] == b"2026-01-14_11"
    assert ln[U_ROW:].decode().split(",") == [
        "7", "en", "2010-01-02 03:04:05+00:00", "", "Ada", "u7",
        "false", "false", "1", "2", "3", "4",
    ]  # fmt: skip


def test_missing_retrieved_at_sorts_by_the_file_minute_and_stays_empty(tmp_path):
    raw = write_raw(
        tmp_path,
        "2026-01-14T1106+0100.jsonl",
        [line(tweet(1, "2026-01-14T10:05:30.000Z"), [user()], None)],
    )
    parse_minute_file(raw, tmp_path / "t.tsv", tmp_path / "u.tsv", "s", CET, 6)
    (ln,) = body(tmp_path / "t.tsv")
    assert ln[21:T_KEY_END] == b"2026-01-14T10:06:00.000000+00:00"  # the copy's order
    assert b",2026-01-14 10:05:30+00:00,," in ln  # created_at, then no retrieved_at


def test_empty_file_is_connected_with_nothing(tmp_path):
    raw = write_raw(tmp_path, "2026-01-14T1106+0100.jsonl", [])
    s = parse_minute_file(raw, tmp_path / "t.tsv", tmp_path / "u.tsv", "s", CET, 6)
    assert s.tweets == 0 and s.lines == 0
    assert (tmp_path / "t.tsv").read_bytes().count(b"\n") == 1  # only the metadata line
    assert read_meta(tmp_path / "u.tsv")["tweets"] == 0


def test_seed_collector_file_names_are_read(tmp_path):
    raw = write_raw(
        tmp_path,
        "sampled_stream_2026-01-14_11:06:00_to_2026-01-14_11:07:00.jsonl",
        [line(tweet(1, "2026-01-14T10:06:30.000Z"), [user()], None)],
    )
    parse_minute_file(raw, tmp_path / "t.tsv", tmp_path / "u.tsv", "s", CET, 6)
    assert read_meta(tmp_path / "t.tsv")["minute"] == "2026-01-14T10:06:00+00:00"


def test_not_a_minute_file_name_is_an_error(tmp_path):
    raw = write_raw(tmp_path, "whatever.jsonl", [])
    with pytest.raises(ValueError):
        parse_minute_file(raw, tmp_path / "t.tsv", tmp_path / "u.tsv", "s", CET, 6)
    assert not (tmp_path / "t.tsv").exists()


def test_skipped_line_messages_are_capped_per_file(tmp_path):
    raw = write_raw(tmp_path, "2026-01-14T1106+0100.jsonl", [b"{bad"] * 50 + [b"[1]"])
    log = io.StringIO()
    s = parse_minute_file(raw, tmp_path / "t.tsv", tmp_path / "u.tsv", "s", CET, 6, log=log)
    assert s.skipped == {"invalid_json": 50, "not_object": 1}
    out = log.getvalue().splitlines()
    assert len(out) == 21
    assert out[0] == f"{raw}:1: invalid_json"
    assert out[-1] == f"{raw}: 31 more skipped lines not listed"


def test_log_can_be_a_logger(tmp_path, caplog):
    raw = write_raw(tmp_path, "2026-01-14T1106+0100.jsonl", [b"{bad"])
    with caplog.at_level(logging.WARNING):
        parse_minute_file(
            raw, tmp_path / "t.tsv", tmp_path / "u.tsv", "s", CET, 6, log=logging.getLogger("t")
        )
    assert f"{raw}:1: invalid_json" in caplog.text


def test_a_broken_line_never_costs_the_rest_of_the_file(tmp_path):
    good = [
        line(tweet(i, "2026-01-14T10:06:00.000Z"), [user()], "2026-01-14T10:06:01+00:00")
        for i in range(1, 6)
    ]
    lines = [
        good[0],
        b"\x00\x01garbage",
        good[1],
        b'{"data": {"id": "x"}}',
        good[2],
        b"",
        good[3],
        b"[]",
        good[4],
    ]
    raw = write_raw(tmp_path, "2026-01-14T1106+0100.jsonl", lines)
    s = parse_minute_file(raw, tmp_path / "t.tsv", tmp_path / "u.tsv", "s", CET, 6)
    assert s.tweets == 5
    assert s.skipped == {"invalid_json": 1, "bad_id": 1, "not_object": 1}


def malformed(value: str) -> list[str]:
    """``value`` with each character in turn replaced by a comma, newline, quote or letter."""
    return [value[:i] + c + value[i + 1 :] for i in range(len(value)) for c in ',\n"x']


def test_every_row_has_20_fields_whatever_the_timestamps(tmp_path):
    # "...T09:05\n02.000Z" once gave a 4-field row, "...T09:05,02.000Z" a 21-field row, and
    # neither was counted as skipped. Now a copy either gives well-formed rows or is counted.
    created, retrieved = "2026-01-14T10:05:02.000Z", "2026-01-14T10:06:01+00:00"
    lines, tid = [], 0
    for bad in malformed(created):
        tid += 1
        lines.append(line(tweet(tid, bad), [user()], retrieved))
    for bad in malformed(retrieved) + malformed("2026-01-14T10:06:01.123456+00:00"):
        tid += 1
        lines.append(line(tweet(tid, created), [user()], bad))
    for bad in malformed(user()["created_at"]):
        tid += 1
        lines.append(line(tweet(tid, created), [{**user(), "created_at": bad}], retrieved))
    raw = write_raw(tmp_path, "2026-01-14T1106+0100.jsonl", lines)
    s = parse_minute_file(raw, tmp_path / "t.tsv", tmp_path / "u.tsv", "s", CET, 6)

    assert s.lines == tid and set(s.skipped) <= {"bad_created_at"}
    rows = body(tmp_path / "t.tsv")
    assert len(rows) == s.tweets == tid - s.skipped.get("bad_created_at", 0)
    assert s.skipped["bad_created_at"] >= len(malformed(created)) // 2  # not all let through
    for ln in rows:
        assert len(ln[:T_ROW].split(b"\t")) == 4, ln
        (row,) = list(csv.reader(io.StringIO(ln[T_ROW:].decode())))
        assert len(row) == 20, ln
        assert datetime.fromisoformat(ln[21:T_KEY_END].decode())  # retrieved key
    for ln in body(tmp_path / "u.tsv"):
        assert len(ln[:U_ROW].split(b"\t")) == 6, ln
        (row,) = list(csv.reader(io.StringIO(ln[U_ROW:].decode())))
        assert len(row) == 12, ln


def test_lone_surrogate_line_is_kept_and_written_as_valid_utf8(tmp_path):
    raw_line = (
        b'{"data": {"id": "5", "created_at": "2026-01-14T10:06:00.000Z", "text": "a\\ud800b"},'
        b' "__twarc": {"retrieved_at": "2026-01-14T10:06:01+00:00"}}'
    )
    raw = write_raw(tmp_path, "2026-01-14T1106+0100.jsonl", [raw_line])
    s = parse_minute_file(raw, tmp_path / "t.tsv", tmp_path / "u.tsv", "s", CET, 6)
    assert s.tweets == 1
    (tmp_path / "t.tsv").read_bytes().decode("utf-8")  # valid UTF-8


def test_real_capture_with_cut_last_line(tmp_path):
    src = FIXTURES / "streaming_output_with_error.jsonl"
    if not src.exists():
        pytest.skip(f"real payload fixture {src} not present (needs ../shared beside the repo)")
    raw = tmp_path / "2021-04-01T1752+0200.jsonl"
    raw.write_bytes(src.read_bytes())
    log = io.StringIO()
    s = parse_minute_file(
        raw, tmp_path / "t.tsv", tmp_path / "u.tsv", "s", ZoneInfo("Europe/Berlin"), 6, log=log
    )
    assert s.tweets == 7
    assert s.skipped == {"truncated": 1}
    assert log.getvalue() == f"{raw}:8: truncated\n"
    labels = {ln[T_LABEL] for ln in body(tmp_path / "t.tsv")}
    assert labels <= {b"2021-04-01_17", b"2021-04-01_18"}


def deny_open(monkeypatch, path: Path, err: int = errno.EACCES) -> None:
    """Opening ``path`` fails with ``err``: a mode 000 file as a user sees it, also as root."""
    real_open = os.open

    def fake_open(p, flags, *args, **kwargs):
        if str(p) == str(path):
            raise OSError(err, os.strerror(err), str(p))
        return real_open(p, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


@pytest.mark.timeout(30)  # the FIFO once hung the parse for good
@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_raw_file_costs_only_itself(tmp_path, monkeypatch, workers):
    d = tmp_path / "raw" / "2026-01-14" / "11"
    ok = line(tweet(1, "2026-01-14T10:00:30.000Z"), [user()], "2026-01-14T10:00:31+00:00")
    year_9999 = line(tweet(2, "9999-12-31T23:59:59.000Z"), [user()], "2026-01-14T10:00:32+00:00")
    first = write_raw(d, "2026-01-14T1100+0100.jsonl", [ok, year_9999])
    bad = {
        d / "2026-01-14T1101+0100.jsonl": Path.mkdir,
        d / "2026-01-14T1102+0100.jsonl": os.mkfifo,
        d / "2026-01-14T1103+0100.jsonl": lambda p: p.symlink_to("/dev/zero"),
        d / "2026-01-14T1104+0100.jsonl": lambda p: p.symlink_to(first),
    }
    for path, make in bad.items():
        make(path)
    locked = write_raw(d, "2026-01-14T1105+0100.jsonl", [ok])
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads a mode 000 file: inject the error a user gets
        deny_open(monkeypatch, locked)
    last = write_raw(d, "2026-01-14T1106+0100.jsonl", [ok])
    out = tmp_path / "out"
    jobs = [
        (str(p), str(out / f"{p.stem}.t.tsv"), str(out / f"{p.stem}.u.tsv"), "s1")
        for p in [first, *bad, locked, last]
    ]
    log = tmp_path / "parse.log"

    result = parse_many(jobs, "CET", 6, workers, str(log))

    assert [m["file"] for m in result.metas] == [str(first), str(last)]
    assert result.metas[0]["tweets"] == 1
    assert result.metas[0]["skipped"] == {"bad_created_at": 1}  # year 9999: an OverflowError
    reasons = {r.path: r.reason for r in result.skipped_files}
    assert reasons == {
        **{str(p): NOT_REGULAR for p in bad},
        str(locked): "cannot open: Permission denied",
    }
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{p.stem}.{k}.tsv" for p in (first, last) for k in "tu"
    )
    text = log.read_text()
    assert all(f"{p}: {reasons[str(p)]}: file skipped" in text for p in [*bad, locked])


def collected(t: dict, users: list[dict], retrieved: str | None) -> bytes:
    """A line as the collector writes it: orjson, twarc's ``__twarc`` the last key."""
    obj: dict = {"data": t, "includes": {"users": users}}
    obj["__twarc"] = {"url": "u", "version": "2.14.0"}
    if retrieved:
        obj["__twarc"]["retrieved_at"] = retrieved
    return orjson.dumps(obj)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_minutes_copies_from_two_servers_are_parsed_once_and_restamped(
    tmp_path, monkeypatch, workers
):
    """Both servers' files of a minute are one task: a line with the same bytes before its
    ``__twarc`` as one parsed before is restamped with its own retrieved_at, not parsed again.
    The intermediates are those of each file parsed alone."""
    from ingest.hours import parse as parse_module

    created = "2026-01-14T10:06:00.000Z"
    at1, at2 = "2026-01-14T10:06:01+00:00", "2026-01-14T10:06:02+00:00"
    s1 = [collected(tweet(i, created, text=f"t{i}"), [user()], at1) for i in range(1, 4)]
    # No retrieved_at: the file's minute orders it, the CSV's field stays empty.
    s1.append(collected(tweet(4, created, text="t4"), [user()], None))
    s1.append(collected(tweet(5, created), [user(followers=10)], at1))
    s2 = [collected(tweet(i, created, text=f"t{i}"), [user()], at2) for i in range(1, 5)]
    s2.append(collected(tweet(5, created), [user(followers=11)], at2))  # not the same bytes
    s2.append(s2[0][:-1] + b',"later":1}')  # __twarc not the last key: parsed whole
    name = "2026-01-14T1106+0100.jsonl"
    raws = {s: write_raw(tmp_path / s, name, lines) for s, lines in (("s1", s1), ("s2", s2))}

    def job(server: str, out: str) -> tuple[str, str, str, str]:
        d = tmp_path / out
        d.mkdir(exist_ok=True)
        return (str(raws[server]), str(d / f"{server}.t"), str(d / f"{server}.u"), server)

    alone = [parse_many([job(s, "alone")], "CET", 6) for s in raws]
    records = []
    real_record = parse_module.tweet_record
    monkeypatch.setattr(
        parse_module, "tweet_record", lambda *a: records.append(a[0]["id"]) or real_record(*a)
    )
    together = parse_many([job("s1", "together"), job("s2", "together")], "CET", 6, workers)

    assert together.metas == [m for r in alone for m in r.metas]
    for s in raws:
        for k in "tu":
            assert (tmp_path / "together" / f"{s}.{k}").read_bytes() == (
                tmp_path / "alone" / f"{s}.{k}"
            ).read_bytes()
    if workers == 1:  # in this process: s1's five, then s2's own 5 and its line of 1 whole
        assert records == ["1", "2", "3", "4", "5", "5", "1"]
    rows = body(tmp_path / "together" / "s2.t")
    assert [r.split(b",")[4] for r in rows] == [b"2026-01-14 10:06:02+00:00"] * 6
    assert body(tmp_path / "together" / "s1.t")[3].split(b",")[4] == b""


def test_a_read_error_skips_only_that_file(tmp_path, monkeypatch):
    raw = write_raw(tmp_path, "2026-01-14T1106+0100.jsonl", [b"{}"])
    deny_open(monkeypatch, raw, errno.EIO)
    job = (str(raw), str(tmp_path / "t.tsv"), str(tmp_path / "u.tsv"), "s1")
    result = parse_many([job], "CET", 6)
    assert result.metas == []
    assert [r.reason for r in result.skipped_files] == ["cannot open: Input/output error"]


def test_parse_job_reports_a_skipped_file_in_receipt_and_log_and_mails_it_once(
    tmp_path, monkeypatch, smtp
):
    sink, port = smtp
    email = smtp_email(port)
    config = loaded_config(tmp_path, email=email)
    raw_dir = Path(config["servers"][0]["raw_dir"])
    paths = []
    for m in range(3):
        p = layout.minute_path(raw_dir, datetime(2026, 1, 14, 10, m, tzinfo=UTC), CET)
        created = f"2026-01-14T10:0{m}:30.000Z"
        paths.append(write_raw(p.parent, p.name, [line(tweet(m + 1, created), [user()], None)]))
    deny_open(monkeypatch, paths[1], errno.EIO)  # a bad disk block, say
    now = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)
    log = tmp_path / "work" / "logs" / "parse.log"
    expected = [{"file": str(paths[1]), "reason": "cannot open: Input/output error"}]

    for run in (1, 2):  # the next run tries it again, but mails no more
        receipt = tmp_path / "work" / "parsed" / f"{run}.json"
        skipped = parse_job(config, now, 1, str(log), receipt)
        assert [r.path for r in skipped] == [str(paths[1])]
        assert json.loads(receipt.read_text())["skipped_files"] == expected
        assert json.loads(receipt.read_text())["files"] == (2 if run == 1 else 0)  # others done
    assert f"{paths[1]}: cannot open: Input/output error: file skipped" in log.read_text()
    (mail,) = sink.wait_for(1)
    assert mail["Subject"].endswith("1 raw file(s) skipped")
    assert str(paths[1]) in mail.get_content()

    monkeypatch.undo()  # the disk is replaced: parsed, and forgotten
    assert parse_job(config, now, 1, str(log), tmp_path / "work" / "parsed" / "3.json") == []
    assert read_meta(intermediate(config["work_dir"], paths[1], "s1", CET))["tweets"] == 1
    assert len(sink.messages) == 1
    notified = json.loads((tmp_path / "work" / "state" / "notified.json").read_text())
    assert notified["bad-input"] == []


def intermediate(work_dir: str, raw: Path, server: str, tz: ZoneInfo) -> Path:
    minute = layout.parse_minute_name(raw.name, tz)
    return plan.intermediate(work_dir, layout.MinuteFile(server, minute, raw), "tweets")


def test_outputs_are_atomic_no_temp_left(minute_file, tmp_path):
    out = tmp_path / "mid" / "a" / "b"
    parse_minute_file(minute_file, out / "t.tsv", out / "u.tsv", "s", CET, 6)
    assert sorted(p.name for p in out.iterdir()) == ["t.tsv", "u.tsv"]


# --- command line ----------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ingest.hours.minutes", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
    )


@pytest.mark.integration
def test_cli_single_file(minute_file, tmp_path):
    r = run_cli(
        "--server", "server1", "--timezone", "CET", "--late-minutes", "6",
        str(minute_file), str(tmp_path / "t.tsv"), str(tmp_path / "u.tsv"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert read_meta(tmp_path / "t.tsv")["tweets"] == 5
    assert f"{minute_file}:11: truncated" in r.stderr


@pytest.mark.integration
def test_cli_triples_and_batch(tmp_path):
    raws = [
        write_raw(
            tmp_path / "raw",
            f"2026-01-14T110{m}+0100.jsonl",
            [line(tweet(m + 1, "2026-01-14T10:06:00.000Z"), [user()], None)],
        )
        for m in range(4)
    ]
    r = run_cli(
        "--server", "a", "--timezone", "CET", "--late-minutes", "6",
        "--log", str(tmp_path / "skip.log"),
        str(raws[0]), str(tmp_path / "0.t"), str(tmp_path / "0.u"),
        str(raws[1]), str(tmp_path / "1.t"), str(tmp_path / "1.u"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert read_meta(tmp_path / "1.t")["server"] == "a"
    batch = tmp_path / "jobs.txt"
    batch.write_text(
        f"# raw tweets users [server]\n{raws[2]}\t{tmp_path / '2.t'}\t{tmp_path / '2.u'}\tb\n"
        f"{raws[3]} {tmp_path / '3.t'} {tmp_path / '3.u'}\n"
    )
    r = run_cli(
        "--server", "c", "--timezone", "CET", "--late-minutes", "6", "--no-fsync",
        "--batch", str(batch),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert read_meta(tmp_path / "2.t")["server"] == "b"
    assert read_meta(tmp_path / "3.t")["server"] == "c"


@pytest.mark.integration
def test_cli_errors(tmp_path):
    r = run_cli("--server", "a", "--timezone", "CET", "--late-minutes", "6", "x", "y")
    assert r.returncode != 0 and "multiple of 3" in r.stderr
    r = run_cli("--timezone", "CET", "--late-minutes", "6")
    assert r.returncode != 0 and "nothing to do" in r.stderr
    r = run_cli(
        "--server",
        "a",
        "--timezone",
        "CET",
        "--late-minutes",
        "6",
        str(tmp_path / "2026-01-14T1106+0100.jsonl"),
        "t",
        "u",
    )
    assert r.returncode != 0 and "No such file" in r.stderr


@pytest.mark.integration
def test_cli_imports_no_pandas_or_snakemake():
    code = (
        "import sys, ingest.hours.minutes, ingest.hours.hourly, ingest.hours.report;"
        "print(sorted(m for m in ('pandas', 'snakemake', 'numpy') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_main_in_process(minute_file, tmp_path, capsys):
    assert (
        main(
            [
                "--server",
                "s",
                "--timezone",
                "CET",
                "--late-minutes",
                "6",
                str(minute_file),
                str(tmp_path / "t"),
                str(tmp_path / "u"),
            ]
        )
        == 0
    )
    assert "truncated" in capsys.readouterr().err


# --- a backfill's parse for one hour: the files around it (OtherHours) -----------------------

HOUR_11 = layout.Hour("2026-01-14", 11)  # CET: 10:00-11:00 UTC


def hour_lines(path: Path, label: bytes, at: slice) -> list[bytes]:
    return [ln for ln in body(path) if ln[at] == label]


def parse_both_ways(raw: Path, tmp_path: Path, hour: layout.Hour, tz=CET) -> tuple:
    """(meta parsed for ``hour``, meta parsed for every hour); asserts the hour's tweets and
    users lines are the same bytes either way."""
    outs = {}
    for way, for_hour in (("one", hour), ("all", None)):
        t, u = tmp_path / f"{way}.t", tmp_path / f"{way}.u"
        outs[way] = parse_minute_file(raw, t, u, "s", tz, 6, None, for_hour=for_hour).meta()
    label = hour.label.encode()
    for kind, at in (("t", T_LABEL), ("u", U_LABEL)):
        mine = hour_lines(tmp_path / f"one.{kind}", label, at)
        assert mine == hour_lines(tmp_path / f"all.{kind}", label, at)
    return outs["one"], outs["all"]


def test_a_file_outside_the_hour_passes_over_only_lines_that_cannot_hold_its_copies(tmp_path):
    """A backfill job of 11 h reads the 12:03 file for the late copies of its own tweets: a
    line is passed over only when every created_at in it is one the parser reads as is and
    none is in the hour; any other line is parsed as before."""
    at = "2026-01-14T11:03:05+00:00"  # within 11 h's read window (late_minutes 6)
    mine = "2026-01-14T10:59:58.000Z"  # created in 11 h CET
    other = "2026-01-14T11:02:30.000Z"  # 12 h

    def page(*tweets: dict) -> bytes:
        obj = {"data": list(tweets), "includes": {"users": [user()]}}
        return orjson.dumps({**obj, "__twarc": {"retrieved_at": at}})

    escaped = collected(tweet(6, mine), [user()], at).replace(
        b'"created_at":"2026-01-14T10', b'"created\\u005fat":"2026-01-14T10'
    )
    lines = [
        collected(tweet(1, other), [user()], at),  # passed over
        collected(tweet(2, mine), [user()], at),  # a late copy of 11 h
        collected(tweet(3, "2026-01-14T10:59:00+00:00"), [user()], at),  # twarc's form
        collected(tweet(4, "2026-01-14T11:59:00+01:00"), [user()], at),  # = 10:59 UTC
        line(tweet(5, mine), [user()], at),  # '"created_at": "...' with a space
        escaped,  # the key spelt with an escape: the user's created_at alone is readable
        page(tweet(7, other), tweet(8, mine)),
        page(tweet(9, other), tweet(10, other)),  # passed over
        collected(tweet(11, other), [user()], at)[:-20],  # cut, but not this hour's: passed
        b'{"errors": [{"title": "operational-disconnect"}]}',  # no created_at: parsed
        b"{not json",
    ]
    raw = write_raw(tmp_path / "raw", "2026-01-14T1203+0100.jsonl", lines)

    one, every = parse_both_ways(raw, tmp_path, HOUR_11)
    assert one["passed_over"] == 3
    assert "passed_over" not in every
    assert every["skipped"] == {"error_message": 1, "invalid_json": 2}
    assert one["skipped"] == {"error_message": 1, "invalid_json": 1}  # the cut line passed
    ids = {int(ln[:20]) for ln in hour_lines(tmp_path / "one.t", b"2026-01-14_11", T_LABEL)}
    assert ids == {2, 3, 4, 5, 6, 8}


def test_a_file_of_the_hour_itself_is_parsed_whole(minute_file, tmp_path):
    one, every = parse_both_ways(minute_file, tmp_path, HOUR_11)
    assert one == every  # nothing passed over, no passed_over in the meta
    assert (tmp_path / "one.t").read_bytes() == (tmp_path / "all.t").read_bytes()


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.jsonl")))
def test_real_payloads_around_their_hour_keep_every_copy_of_it(tmp_path, name):
    """Real lines, written as the collector writes them (orjson, __twarc last), arriving just
    after each hour their tweets were created in: parsed for that hour, the hour's lines are
    those of the whole parse, and the other hours' lines are passed over."""
    raw_lines = (FIXTURES / name).read_bytes().splitlines()
    created: Counter[str] = Counter()  # tweets by the UTC hour they were created in
    for raw in raw_lines:
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        data = obj.get("data", obj) if isinstance(obj, dict) else None
        for t in data if isinstance(data, list) else [data]:
            if isinstance(t, dict) and isinstance(t.get("created_at"), str):
                created[t["created_at"][:13]] += 1
    assert created
    for prefix, n in sorted(created.items())[:3]:
        start = datetime.fromisoformat(prefix + ":00:00+00:00")
        hour = layout.hour_of(start, UTC)
        arrival = start + timedelta(hours=1, minutes=2)  # the next hour's 2nd minute
        lines = []
        for raw in raw_lines:
            try:
                obj = json.loads(raw)
            except ValueError:
                lines.append(raw)  # as it is: the parse skips it either way
                continue
            if isinstance(obj, dict):
                obj.pop("__twarc", None)
                obj["__twarc"] = {
                    "url": "u",
                    "version": "2.14.0",
                    "retrieved_at": arrival.isoformat(),
                }
            lines.append(orjson.dumps(obj))
        folder = tmp_path / prefix
        name = f"{arrival:%Y-%m-%dT%H%M}+0000.jsonl"
        one, every = parse_both_ways(write_raw(folder / "raw", name, lines), folder, hour, UTC)
        assert len(hour_lines(folder / "one.t", hour.label.encode(), T_LABEL)) == n
        if len(created) > 1:  # other hours' tweets: their lines passed over
            assert one["passed_over"] > 0
            assert one["tweets"] < every["tweets"]
