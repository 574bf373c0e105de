import os
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ingest import clock, layout
from ingest.hours import plan
from ingest.layout import Hour
from tests.configs import loaded_config

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_hour_bounds_plain_winter_hour():
    assert layout.hour_bounds(Hour("2026-01-14", 11), BERLIN) == (
        utc(2026, 1, 14, 10),
        utc(2026, 1, 14, 11),
    )


def test_dst_end_label_covers_two_clock_hours():
    # 2026-10-25: clocks go from 03:00 CEST back to 02:00 CET; local 02 happens twice.
    assert layout.hour_bounds(Hour("2026-10-25", 2), BERLIN) == (
        utc(2026, 10, 25, 0),
        utc(2026, 10, 25, 2),
    )
    assert layout.hour_bounds(Hour("2026-10-25", 3), BERLIN) == (
        utc(2026, 10, 25, 2),
        utc(2026, 10, 25, 3),
    )
    assert len(layout.day_hours("2026-10-25", BERLIN)) == 24


def test_dst_start_hour_does_not_exist():
    assert layout.hour_bounds(Hour("2026-03-29", 2), BERLIN) is None
    assert layout.hour_bounds(Hour("2026-03-29", 3), BERLIN) == (
        utc(2026, 3, 29, 1),
        utc(2026, 3, 29, 2),
    )
    assert len(layout.day_hours("2026-03-29", BERLIN)) == 23
    with pytest.raises(ValueError, match="does not exist"):
        layout.read_window(Hour("2026-03-29", 2), BERLIN, 6)


def test_read_window_is_one_minute_before_to_late_after():
    start, end = layout.read_window(Hour("2026-01-14", 11), BERLIN, 6)
    assert (start, end) == (utc(2026, 1, 14, 9, 59), utc(2026, 1, 14, 11, 6))


def test_minute_names_round_trip_and_are_unique_in_repeated_hour():
    first = utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    second = utc(2026, 10, 25, 1, 30)  # 02:30 CET
    a, b = layout.minute_file_name(first, BERLIN), layout.minute_file_name(second, BERLIN)
    assert (a, b) == ("2026-10-25T0230+0200.jsonl", "2026-10-25T0230+0100.jsonl")
    assert layout.parse_minute_name(a, BERLIN) == first
    assert layout.parse_minute_name(b, BERLIN) == second
    assert layout.minute_path("/r", first, BERLIN).as_posix() == "/r/2026-10-25/02/" + a


def test_seed_names_are_read_and_in_progress_names_ignored():
    name = "sampled_stream_2026-01-14_11:06:00_to_2026-01-14_11:07:00.jsonl"
    assert layout.parse_minute_name(name, BERLIN) == utc(2026, 1, 14, 10, 6)
    assert layout.parse_minute_name("2026-01-14T1106+0100.jsonl.part", BERLIN) is None
    assert layout.parse_minute_name("2026-01-14T1106+0100.tmp", BERLIN) is None


def test_minute_files_in_window_across_hour_folders(tmp_path):
    start = utc(2026, 1, 14, 9, 55)
    for i in range(20):
        p = layout.minute_path(tmp_path, start + timedelta(minutes=i), BERLIN)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("")
    (p.parent / "2026-01-14T1115+0100.jsonl.inprogress").write_text("")
    window = layout.read_window(Hour("2026-01-14", 11), BERLIN, 6)
    files = layout.minute_files("s1", tmp_path, *window, BERLIN)
    assert [f.minute for f in files] == [start + timedelta(minutes=i) for i in range(4, 20)]
    assert layout.raw_hours(tmp_path) == {Hour("2026-01-14", 10), Hour("2026-01-14", 11)}


def test_hours_reading_a_minute():
    tz = BERLIN
    # 10:59 local is read by hour 10 and (one minute early) by hour 11.
    assert layout.hours_reading(utc(2026, 1, 14, 9, 59), tz, 6) == {
        Hour("2026-01-14", 10),
        Hour("2026-01-14", 11),
    }
    # 11:03 local is read by hour 11 and, through the late window, by hour 10.
    assert layout.hours_reading(utc(2026, 1, 14, 10, 3), tz, 6) == {
        Hour("2026-01-14", 10),
        Hour("2026-01-14", 11),
    }
    assert layout.hours_reading(utc(2026, 1, 14, 10, 30), tz, 6) == {Hour("2026-01-14", 11)}


def test_completeness_needs_late_and_grace():
    h = Hour("2026-01-14", 11)
    assert not layout.is_complete(h, BERLIN, utc(2026, 1, 14, 11, 10, 59), 6, 5)
    assert layout.is_complete(h, BERLIN, utc(2026, 1, 14, 11, 11), 6, 5)


def test_clock_from_requires_offset():
    assert clock.clock_from("2026-01-14T12:00:00+01:00").now() == utc(2026, 1, 14, 11)
    with pytest.raises(ValueError, match="UTC offset"):
        clock.clock_from("2026-01-14T12:00:00")


def write_minutes(raw_dir, start, n):
    paths = []
    for i in range(n):
        p = layout.minute_path(raw_dir, start + timedelta(minutes=i), BERLIN)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("")
        paths.append(p)
    return paths


def test_unexpected_names_are_skipped_and_recorded_not_raised(tmp_path):
    # Each of these once raised while the plan was made (so nothing was built, retained or
    # mailed) or was passed over silently.
    raw = tmp_path / "raw"
    write_minutes(raw, utc(2026, 1, 14, 9, 0), 120)  # local 10:00 to 11:59
    hour_dir = raw / "2026-01-14" / "10"
    bad = [
        hour_dir / "2026-01-14T1061+0100.jsonl",  # minute 61
        hour_dir / "2026-01-14T1005+9999.jsonl",  # no such offset
        hour_dir / "sampled_stream_2026-01-14_25:06:00_to_2026-01-14_25:07:00.jsonl",
        hour_dir / "notes.txt",
        raw / "2026-01-14" / "24" / "2026-01-14T2400+0100.jsonl",
        raw / "2026-01-14" / "ab" / "x.jsonl",
        raw / "2026-13-40" / "10" / "2026-13-40T1000+0100.jsonl",
        raw / "20260114" / "10" / "x.jsonl",  # date.fromisoformat takes this one
    ]
    for p in bad:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("{}\n")
    (hour_dir / "2026-01-14T1030+0100.jsonl.part").write_text("")  # the collector's: expected
    (hour_dir / ".2026-01-14T1031+0100.jsonl.tmp-1").write_text("")  # a temp: expected

    planned = plan.make_plan(loaded_config(tmp_path), utc(2026, 1, 15))
    assert planned.build == [Hour("2026-01-14", 9), Hour("2026-01-14", 10), Hour("2026-01-14", 11)]

    rejected: set[layout.Rejected] = set()
    assert layout.raw_hours(raw, rejected) == {Hour("2026-01-14", 10), Hour("2026-01-14", 11)}
    window = layout.read_window(Hour("2026-01-14", 10), BERLIN, 6)
    files = layout.minute_files("s1", raw, *window, BERLIN, rejected)
    assert len(files) == 66  # local 10:00 to 11:05, the bad names aside
    assert sorted(r.path for r in rejected) == sorted(
        str(p) for p in bad[:4] + [p.parent for p in bad[4:6]] + [p.parents[1] for p in bad[6:]]
    )
    assert all(r.reason for r in rejected)
    # The plan says what it passed over (the run mails its warnings once).
    assert {f"{r}: skipped" for r in rejected} <= set(planned.warnings)


def test_minute_listing_offers_only_readable_regular_files(tmp_path):
    good = write_minutes(tmp_path, utc(2026, 1, 14, 10, 0), 10)  # local 11:00 to 11:09
    d = good[0].parent
    special = {
        "2026-01-14T1110+0100.jsonl": lambda p: p.mkdir(),
        "2026-01-14T1111+0100.jsonl": os.mkfifo,
        "2026-01-14T1112+0100.jsonl": lambda p: p.symlink_to("/dev/zero"),
        "2026-01-14T1113+0100.jsonl": lambda p: p.symlink_to(good[0]),  # even to a good file
    }
    for name, make in special.items():
        make(d / name)
    unreadable = d / "2026-01-14T1114+0100.jsonl"
    unreadable.write_text("{}\n")
    unreadable.chmod(0)
    window = layout.read_window(Hour("2026-01-14", 11), BERLIN, 6)
    listed = [f.path for f in layout.minute_files("s1", tmp_path, *window, BERLIN)]
    assert listed == ([*good, unreadable] if os.geteuid() == 0 else good)
    rejected: set[layout.Rejected] = set()
    files = layout.minute_files("s1", tmp_path, *window, BERLIN, rejected)
    if os.geteuid() == 0:  # root reads a mode 000 file: it is listed (and parses) as any other
        assert [f.path for f in files] == [*good, unreadable]
    else:
        assert [f.path for f in files] == good
        assert layout.Rejected(str(unreadable), "not readable") in rejected
    assert {r.path for r in rejected if r.reason != "not readable"} == {
        str(d / name) for name in special
    }
