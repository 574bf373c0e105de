"""Which hour a copy of a tweet counts for: edges, late copies, skew, DST."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ingest.hours.assign import HourAssigner, assign_hour
from ingest.hours.parse import datetime_key
from ingest.layout import Hour, hour_of, read_window

CET = ZoneInfo("CET")
BERLIN = ZoneInfo("Europe/Berlin")
LATE = 6


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def both(created, arrival, file_minute, tz=CET, late=LATE) -> Hour:
    """assign_hour, checked against the per-file string version used on the hot path."""
    expected = assign_hour(created, arrival, file_minute, tz, late)
    fast = HourAssigner(tz, late, file_minute).label(datetime_key(created), datetime_key(arrival))
    assert fast == expected.label
    return expected


# 2026-01-14 is CET (UTC+1): local 11:00-12:00 is 10:00-11:00 UTC.
H11 = Hour("2026-01-14", 11)
H10 = Hour("2026-01-14", 10)
H12 = Hour("2026-01-14", 12)


def test_on_time_copy_counts_for_its_created_hour():
    created = utc(2026, 1, 14, 10, 30, 5)
    arrival = created + timedelta(seconds=2)
    assert both(created, arrival, floor_minute(arrival)) == H11


def test_window_start_is_one_minute_before_the_hour_inclusive():
    # Created in hour 11 (by X's clock) but arrived at 10:59:00 local by this server's clock.
    created = utc(2026, 1, 14, 10, 0, 0, 500)
    arrival = utc(2026, 1, 14, 9, 59, 0)  # exactly start - 1 min
    assert both(created, arrival, utc(2026, 1, 14, 9, 59)) == H11
    just_before = arrival - timedelta(microseconds=1)  # in the 09:58 file
    assert both(created, just_before, utc(2026, 1, 14, 9, 58)) == H10


def test_window_end_is_hour_end_plus_late_exclusive():
    created = utc(2026, 1, 14, 10, 59, 59)
    last_in = utc(2026, 1, 14, 11, 5, 59, 999999)  # end + 6 min - 1 µs
    assert both(created, last_in, utc(2026, 1, 14, 11, 5)) == H11
    at_end = utc(2026, 1, 14, 11, 6)  # end + late: outside
    assert both(created, at_end, utc(2026, 1, 14, 11, 6)) == H12


def test_late_copy_within_late_minutes_counts_for_created_hour():
    created = utc(2026, 1, 14, 10, 59, 58)
    arrival = utc(2026, 1, 14, 11, 3, 10)  # a backfill after a reconnect
    assert both(created, arrival, utc(2026, 1, 14, 11, 3)) == H11


def test_very_late_backfill_counts_for_the_hour_it_arrived():
    created = utc(2026, 1, 14, 10, 15)
    arrival = utc(2026, 1, 14, 11, 40)
    assert both(created, arrival, utc(2026, 1, 14, 11, 40)) == H12
    arrival = utc(2026, 1, 14, 14, 2)  # hours later
    assert both(created, arrival, utc(2026, 1, 14, 14, 2)) == Hour("2026-01-14", 15)


def test_clock_skew_across_the_hour_boundary():
    created = utc(2026, 1, 14, 10, 59, 59, 900000)
    # The server's clock is 2 s slow: retrieved_at reads 10:59:59.95 but the collector had
    # already rotated into the 11:00 file (a file minute a little after arrival).
    arrival = utc(2026, 1, 14, 10, 59, 59, 950000)
    assert both(created, arrival, utc(2026, 1, 14, 11, 0)) == H11
    # Created at the start of hour 12, retrieved_at a few seconds "before" it, in the
    # last file of hour 11: still in hour 12's window (start - 1 min), so it counts for 12.
    created = utc(2026, 1, 14, 11, 0, 0, 100000)
    arrival = utc(2026, 1, 14, 10, 59, 57)
    assert both(created, arrival, utc(2026, 1, 14, 10, 59)) == H12


def test_file_minute_outside_the_window_wins_over_arrival():
    """retrieved_at in the window but the file's minute not: the hour job for C never reads
    that file, so the copy counts for the file's hour."""
    created = utc(2026, 1, 14, 10, 59, 59)
    arrival = utc(2026, 1, 14, 11, 5, 59)  # inside [.., 11:06)
    file_minute = utc(2026, 1, 14, 11, 6)  # a skewed clock rotated early
    assert both(created, arrival, file_minute) == H12
    # and the hour it counts for reads that file
    lo, hi = read_window(H12, CET, LATE)
    assert lo <= file_minute < hi


def test_label_file_minute_is_always_in_the_labels_read_window():
    rng = random.Random(7)
    base = utc(2026, 10, 24, 22, 0)
    for _ in range(3000):
        created = base + timedelta(seconds=rng.uniform(0, 6 * 3600))
        arrival = created + timedelta(
            seconds=rng.choice([rng.uniform(-90, 90), rng.uniform(0, 9000)])
        )
        file_minute = floor_minute(arrival + timedelta(seconds=rng.uniform(-3, 3)))
        h = both(created, arrival, file_minute, BERLIN, LATE)
        lo, hi = read_window(h, BERLIN, LATE)
        assert lo <= file_minute < hi


def test_dst_end_label_02_covers_two_clock_hours():
    # Europe/Berlin 2026-10-25: 02:00-03:00 happens twice; label 02 = 00:00-02:00 UTC.
    h02 = Hour("2026-10-25", 2)
    for created in (utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 59), utc(2026, 10, 25, 1, 30)):
        assert hour_of(created, BERLIN) == h02
        assert both(created, created + timedelta(seconds=1), floor_minute(created), BERLIN) == h02
    # Created in the first 02:xx, arriving 70 minutes later in the second 02:xx: same label.
    created = utc(2026, 10, 25, 0, 10)
    arrival = utc(2026, 10, 25, 1, 20)
    assert both(created, arrival, floor_minute(arrival), BERLIN) == h02
    # Late window after the long hour.
    created = utc(2026, 10, 25, 1, 59, 59)
    assert both(created, utc(2026, 10, 25, 2, 5), utc(2026, 10, 25, 2, 5), BERLIN) == h02
    assert both(created, utc(2026, 10, 25, 2, 6), utc(2026, 10, 25, 2, 6), BERLIN) == Hour(
        "2026-10-25", 3
    )


def test_dst_start_has_no_label_02():
    # Europe/Berlin 2026-03-29: 02:00 local jumps to 03:00; 01:00 UTC is 03:00 CEST.
    labels = set()
    t = utc(2026, 3, 28, 23, 0)
    while t < utc(2026, 3, 29, 4, 0):
        labels.add(both(t, t + timedelta(seconds=2), floor_minute(t), BERLIN).label)
        t += timedelta(minutes=7)
    assert "2026-03-29_02" not in labels
    assert {"2026-03-29_01", "2026-03-29_03"} <= labels
    # A copy created at 00:59:59 UTC (01:59:59 CET) arriving after the jump counts for 01.
    created = utc(2026, 3, 29, 0, 59, 59)
    assert both(created, utc(2026, 3, 29, 1, 0, 2), utc(2026, 3, 29, 1, 0), BERLIN) == Hour(
        "2026-03-29", 1
    )


def test_unknown_arrival_is_taken_as_the_file_minute():
    a = HourAssigner(CET, LATE, utc(2026, 1, 14, 11, 2))
    assert a.label(datetime_key(utc(2026, 1, 14, 10, 59, 30)), None) == "2026-01-14_11"
    a = HourAssigner(CET, LATE, utc(2026, 1, 14, 11, 30))
    assert a.label(datetime_key(utc(2026, 1, 14, 10, 59, 30)), None) == "2026-01-14_12"


def test_a_bad_created_key_raises_value_error():
    a = HourAssigner(CET, LATE, utc(2026, 1, 14, 11, 2))
    with pytest.raises(ValueError):
        a.label("2026-13-45T99:99:00.000000+00:00", None)


def test_late_minutes_zero():
    created = utc(2026, 1, 14, 10, 59, 59)
    assert both(created, utc(2026, 1, 14, 11, 0, 1), utc(2026, 1, 14, 11, 0), late=0) == H12
    assert both(created, utc(2026, 1, 14, 10, 59, 59, 500), utc(2026, 1, 14, 10, 59), late=0) == H11
