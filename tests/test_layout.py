from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ingest import clock, layout
from ingest.layout import Hour

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
