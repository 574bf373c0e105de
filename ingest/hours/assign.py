"""Which hour a copy of a tweet counts for.

A copy (one line on one server) counts for C, the local hour of its ``created_at``, when both
its arrival (``__twarc.retrieved_at``) and the minute of the file it sits in lie in C's read
window [start(C) - 1 min, end(C) + late) (``layout.read_window``). Otherwise it counts for the
hour of the file's minute, the hour it arrived in.

Why the file minute as well: arrival and file minute differ only under clock skew, and the
hourly job for C reads only the files whose minute is in C's window. Requiring both keeps
"every copy counts in exactly one hour, and that hour's job reads it": the label L of a copy
always has the file's minute inside read_window(L).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from ingest.hours.parse import datetime_key
from ingest.layout import Hour, hour_of, read_window


def assign_hour(
    created_at: datetime,
    arrival: datetime,
    file_minute: datetime,
    tz: ZoneInfo,
    late_minutes: int,
) -> Hour:
    """The hour a copy counts for (all instants aware)."""
    created_hour = hour_of(created_at, tz)
    lo, hi = read_window(created_hour, tz, late_minutes)
    if lo <= arrival < hi and lo <= file_minute < hi:
        return created_hour
    return hour_of(file_minute, tz)


@lru_cache(maxsize=4096)
def _created_window(tz: ZoneInfo, late_minutes: int, minute_prefix: str) -> tuple[str, str, str]:
    """(label, window start key, window end key) for a created-at minute ``YYYY-mm-ddTHH:MM``.

    The local hour depends only on the UTC minute (zone offsets are whole minutes), so a
    minute of created_at values shares one entry: a few entries per minute file.
    """
    minute = datetime.fromisoformat(minute_prefix + ":00+00:00")
    hour = hour_of(minute, tz)
    lo, hi = read_window(hour, tz, late_minutes)
    return hour.label, datetime_key(lo), datetime_key(hi)


class HourAssigner:
    """``assign_hour`` for the copies of one minute file, on fixed-width UTC key strings.

    Keys (``ingest.hours.parse.time_key``) compare as text in time order, so the per-tweet work is a
    dict lookup and two string comparisons.
    """

    def __init__(self, tz: ZoneInfo, late_minutes: int, file_minute: datetime) -> None:
        self.tz = tz
        self.late_minutes = late_minutes
        self.file_minute = file_minute.astimezone(UTC)
        self.file_key = datetime_key(self.file_minute)
        self.file_label = hour_of(self.file_minute, tz).label
        self._cache: dict[str, tuple[str, str, str, bool]] = {}

    def label(self, created_key: str, arrival_key: str | None) -> str:
        """Hour label for a copy; an unknown arrival is taken as the file's minute.

        Raises ValueError if ``created_key`` is not a valid timestamp key.
        """
        prefix = created_key[:16]
        entry = self._cache.get(prefix)
        if entry is None:
            label, lo, hi = _created_window(self.tz, self.late_minutes, prefix)
            entry = (label, lo, hi, lo <= self.file_key < hi)
            self._cache[prefix] = entry
        label, lo, hi, file_in = entry
        if arrival_key is None:
            arrival_key = self.file_key
        if file_in and lo <= arrival_key < hi:
            return label
        return self.file_label
