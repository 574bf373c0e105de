"""Where files live and which instants an hour covers.

Days and hours are local (the config's ``timezone``); instants are aware UTC datetimes.
An hour *label* is ``YYYY-mm-dd_HH`` in local time. When DST ends the label ``02`` covers
two clock hours; when DST starts the label ``02`` does not exist.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)

# Names are matched whole (fullmatch: "$" would let a trailing newline through) and in ASCII.
# New collector names: local minute and its UTC offset, unique in the repeated DST hour.
_MINUTE_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2})(\d{2})([+-]\d{4})\.jsonl", re.ASCII)
# The seed collector's names: local start and end of the dump.
_SEED_NAME = re.compile(
    r"sampled_stream_(\d{4}-\d{2}-\d{2})_(\d{2}):(\d{2}):(\d{2})_to_"
    r"\d{4}-\d{2}-\d{2}_\d{2}:\d{2}:\d{2}\.jsonl",
    re.ASCII,
)
_LABEL = re.compile(r"^(\d{4}-\d{2}-\d{2})_(\d{2})$")
_DAY_NAME = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_HOUR_NAME = re.compile(r"[01]\d|2[0-3]", re.ASCII)


@dataclass(frozen=True, order=True)
class Hour:
    """A local hour label: a day and an hour of that day."""

    day: str  # YYYY-mm-dd
    hh: int

    @property
    def label(self) -> str:
        return f"{self.day}_{self.hh:02d}"

    def __str__(self) -> str:
        return self.label

    @classmethod
    def parse(cls, label: str) -> Hour:
        m = _LABEL.match(label)
        if not m:
            raise ValueError(f"not an hour label (YYYY-mm-dd_HH): {label!r}")
        date.fromisoformat(m[1])
        return cls(m[1], int(m[2]))


def hour_of(instant: datetime, tz: ZoneInfo) -> Hour:
    local = instant.astimezone(tz)
    return Hour(local.strftime("%Y-%m-%d"), local.hour)


def hour_bounds(hour: Hour, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    """UTC [start, end) of a local hour label, or None if the label does not exist (DST start)."""
    naive = datetime.fromisoformat(hour.day).replace(hour=hour.hh)
    start = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if hour_of(start, tz) != hour:
        return None  # skipped by the DST jump
    end = start + HOUR
    while hour_of(end, tz) == hour:  # DST end: the label repeats
        end += HOUR
    return start, end


def read_window(hour: Hour, tz: ZoneInfo, late_minutes: int) -> tuple[datetime, datetime]:
    """Arrival instants whose copies may count for ``hour``: [start - 1 min, end + late)."""
    bounds = hour_bounds(hour, tz)
    if bounds is None:
        raise ValueError(f"hour {hour} does not exist in {tz.key}")
    start, end = bounds
    return start - MINUTE, end + timedelta(minutes=late_minutes)


def is_complete(hour: Hour, tz: ZoneInfo, now: datetime, late: int, grace: int) -> bool:
    bounds = hour_bounds(hour, tz)
    return bounds is not None and now >= bounds[1] + timedelta(minutes=late + grace)


def hours_between(start: datetime, end: datetime, tz: ZoneInfo) -> list[Hour]:
    """Every hour label touched by UTC instants in [start, end), in order."""
    out: list[Hour] = []
    t = start.replace(minute=0, second=0, microsecond=0)
    while t < end:
        h = hour_of(t, tz)
        if not out or out[-1] != h:
            out.append(h)
        t += HOUR
    return out


# --- minute files -------------------------------------------------------------------------


def minute_file_name(minute: datetime, tz: ZoneInfo) -> str:
    """``YYYY-mm-ddTHHMM±hhmm.jsonl`` for the minute starting at UTC instant ``minute``."""
    local = minute.astimezone(tz)
    return local.strftime("%Y-%m-%dT%H%M%z") + ".jsonl"


def minute_dir(raw_dir: Path, minute: datetime, tz: ZoneInfo) -> Path:
    local = minute.astimezone(tz)
    return Path(raw_dir) / local.strftime("%Y-%m-%d") / f"{local.hour:02d}"


def minute_path(raw_dir: Path, minute: datetime, tz: ZoneInfo) -> Path:
    return minute_dir(raw_dir, minute, tz) / minute_file_name(minute, tz)


def parse_minute_name(name: str, tz: ZoneInfo) -> datetime | None:
    """UTC start of the minute a raw file holds, or None if the name is not a minute file
    (``...T1061+0100.jsonl`` is not: the plan must never stop at a name)."""
    try:
        m = _MINUTE_NAME.fullmatch(name)
        if m:
            stamp = f"{m[1]}T{m[2]}:{m[3]}:00{m[4][:3]}:{m[4][3:]}"
            return datetime.fromisoformat(stamp).astimezone(UTC)
        m = _SEED_NAME.fullmatch(name)
        if m:
            # Seed names carry local time without offset; the repeated DST hour reads as its first.
            naive = datetime.fromisoformat(f"{m[1]}T{m[2]}:{m[3]}:00")
            return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    except (ValueError, OverflowError):
        pass
    return None


@dataclass(frozen=True, order=True)
class Rejected:
    """An entry under a raw folder that is skipped, and why (reported, never read or deleted).

    The listing functions add these to the ``rejected`` set they are given, so one bad name or
    file costs only itself: everything else is still listed and built.
    """

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _ignored(name: str) -> bool:
    """Entries that are expected and not data: hidden temps (atomic writes, rsync), and the
    collector's minute in progress (``*.part``)."""
    return name.startswith(".") or name.endswith(".part")


def _reject(rejected: set[Rejected] | None, path: str, reason: str) -> None:
    if rejected is not None:
        rejected.add(Rejected(path, reason))


@dataclass(frozen=True)
class MinuteFile:
    server: str
    minute: datetime  # UTC start of the minute
    path: Path

    @property
    def stem(self) -> str:
        return self.path.name.removesuffix(".jsonl")


def _hour_dirs(raw_dir: Path, hours: Iterable[Hour]) -> Iterator[Path]:
    for h in hours:
        d = Path(raw_dir) / h.day / f"{h.hh:02d}"
        if d.is_dir():
            yield d


def minute_files(
    server: str,
    raw_dir: Path,
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    rejected: set[Rejected] | None = None,
) -> list[MinuteFile]:
    """A server's complete minute files whose minute starts in [start, end), in time order.

    Only readable regular files are listed: a folder, FIFO, device or symbolic link with a
    minute file's name would hang or flood the parse, an unreadable file would fail it. They,
    and names that are not minute files, go to ``rejected``.
    """
    # A minute file sits in the hour directory of its own local minute; look one hour either
    # side so a clock that rotated a few seconds off still finds its files.
    found = []
    for d in _hour_dirs(raw_dir, hours_between(start - HOUR, end + HOUR, tz)):
        with os.scandir(d) as entries:
            for entry in entries:
                minute = parse_minute_name(entry.name, tz)
                if minute is None:
                    if not _ignored(entry.name):
                        _reject(rejected, entry.path, "not a minute file name")
                    continue
                if not start <= minute < end:
                    continue
                # is_file(follow_symlinks=False) comes from the listing: no system call.
                if not entry.is_file(follow_symlinks=False):
                    _reject(rejected, entry.path, "not a regular file (link, folder or special)")
                elif not os.access(entry.path, os.R_OK):
                    _reject(rejected, entry.path, "not readable")
                else:
                    found.append(MinuteFile(server, minute, Path(entry.path)))
    return sorted(found, key=lambda f: (f.minute, f.path.name))


def raw_hours(raw_dir: Path, rejected: set[Rejected] | None = None) -> set[Hour]:
    """Hour labels that have a directory under ``raw_dir`` (cheap: two directory listings).

    Entries that are not ``YYYY-mm-dd/HH`` folders (``2026-13-40``, ``24``, ``ab``, a stray
    file) go to ``rejected``.
    """
    out: set[Hour] = set()
    root = Path(raw_dir)
    if not root.is_dir():
        return out
    with os.scandir(root) as days:
        for day in days:
            if _ignored(day.name):
                continue
            if not (day.is_dir() and _is_day(day.name)):
                _reject(rejected, day.path, "not a day folder (YYYY-mm-dd)")
                continue
            with os.scandir(day.path) as hours:
                for h in hours:
                    if _ignored(h.name):
                        continue
                    if h.is_dir() and _HOUR_NAME.fullmatch(h.name):
                        out.add(Hour(day.name, int(h.name)))
                    else:
                        _reject(rejected, h.path, "not an hour folder (00 to 23)")
    return out


def _is_day(name: str) -> bool:
    if not _DAY_NAME.fullmatch(name):
        return False
    try:
        date.fromisoformat(name)
    except ValueError:
        return False
    return True


# --- outputs ------------------------------------------------------------------------------


VAULT_SUFFIXES = {
    "ids": "IDs.txt.xz",
    "tweets": "tweets.csv.xz",
    "users": "users.csv.xz",
    "stats": "stats.json",
}


def vault_paths(vault_dir: Path, hour: Hour) -> dict[str, Path]:
    """The seed's file names for an hour (ids, tweets, users), plus the hour's stats."""
    d = Path(vault_dir) / hour.day
    return {kind: d / f"{hour.label}_{suffix}" for kind, suffix in VAULT_SUFFIXES.items()}


def report_path(vault_dir: Path, day: str) -> Path:
    return Path(vault_dir) / day / f"{day}_report.txt"


def day_hours(day: str, tz: ZoneInfo) -> list[Hour]:
    """The hour labels that exist on a local day (23, 24 or 24 with one covering two hours)."""
    return [h for hh in range(24) if hour_bounds(h := Hour(day, hh), tz) is not None]


def day_end(day: str, tz: ZoneInfo) -> datetime:
    nxt = date.fromisoformat(day) + timedelta(days=1)
    return datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).astimezone(UTC)


def hours_reading(minute: datetime, tz: ZoneInfo, late_minutes: int) -> set[Hour]:
    """The hours whose read window contains the minute file starting at ``minute``."""
    candidates = {
        hour_of(minute + MINUTE, tz),
        hour_of(minute, tz),
        hour_of(minute - timedelta(minutes=late_minutes), tz),
    }
    readers = set()
    for h in candidates:
        start, end = read_window(h, tz, late_minutes)
        if start <= minute < end:
            readers.add(h)
    return readers


def work_paths(work_dir: str | Path) -> dict[str, Path]:
    w = Path(work_dir)
    return {
        "minutes": w / "minutes",
        "parsed": w / "parsed",
        "logs": w / "logs",
        "osf": w / "osf",
        "mail": w / "mail",
        "pulls": w / "pulls",
        "state": w / "state",
        "built": w / "built",  # build_hour's receipts (ingest.receipts)
        "reported": w / "reported",  # day_report's receipts
        "run_lock": w / "run.lock",  # held by the running workflow (ingest.workflow_run)
        "imports": w / "import",  # per imported server: receipts, staging, summary.json
    }
