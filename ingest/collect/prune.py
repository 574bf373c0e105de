"""The collector machine's own retention of its finished minute files (``stream.keep_raw_days``).

On a secondary whose files the primary pulls with ``remove_source_files: true`` nothing old is
left to prune; with ``remove_source_files: false`` the secondary's raw_dir would grow without
bound. The collector cannot know what the primary has pulled, so the rule is by age: a file is
removed only when both the minute its name says and its modification time are older than
``keep_raw_days`` (a clock that was wrong when the file was written cannot make a young file
look old). Only names that are minute files are considered: ``.part`` files, temporaries, the
lock and anything an operator put there are never touched; neither are the minutes the
collector is still writing (``protect``). Emptied hour and day folders are removed.

A wall clock set far ahead would make young files look old: a noticed clock step postpones
pruning by an hour (a clock wrong at boot is usually stepped right by NTP within minutes), and
the systemd unit starts the collector after ``time-sync.target``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ingest.layout import HOUR, hour_bounds, parse_minute_name, raw_hours

INTERVAL = HOUR  # at most one pass an hour (by the collector's monotonic clock)
BATCH = 5000  # files per pass: a year of backlog must not hold up the rotation thread

log = logging.getLogger(__name__)


@dataclass
class Pruned:
    files: int = 0
    bytes: int = 0
    more: bool = False  # stopped at BATCH: the next pass comes soon, not in an hour


def prune_minutes(
    raw_dir: Path,
    tz: ZoneInfo,
    cutoff: datetime,
    protect: Collection[Path] = (),
    batch: int = BATCH,
) -> Pruned:
    """Remove minute files under ``raw_dir`` whose minute and mtime are before ``cutoff``."""
    out = Pruned()
    limit = cutoff.timestamp()
    for hour in sorted(raw_hours(Path(raw_dir))):
        bounds = hour_bounds(hour, tz)
        if bounds is None or bounds[0] >= cutoff:
            continue  # a label no clock makes, or an hour not old enough to hold old minutes
        d = Path(raw_dir) / hour.day / f"{hour.hh:02d}"
        with os.scandir(d) as entries:
            for entry in entries:
                if out.files >= batch:
                    out.more = True
                    return out
                minute = parse_minute_name(entry.name, tz)
                if minute is None or minute >= cutoff or Path(entry.path) in protect:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # pulled away meanwhile
                if not entry.is_file(follow_symlinks=False) or st.st_mtime >= limit:
                    continue
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                out.files += 1
                out.bytes += st.st_size
        for folder in (d, d.parent):  # only succeeds when empty
            try:
                folder.rmdir()
            except OSError:
                break
    return out


class Pruner:
    """Runs ``prune_minutes`` at most once per ``INTERVAL`` of the collector's monotonic clock.

    ``keep_days`` 0 turns pruning off.
    """

    def __init__(self, raw_dir: Path, tz: ZoneInfo, keep_days: float) -> None:
        self.raw_dir = Path(raw_dir)
        self.tz = tz
        self.keep = timedelta(days=keep_days)
        self.next_at: float | None = None  # monotonic; None: at the first chance
        self.total = Pruned()
        self.last_at: datetime | None = None

    def postpone(self, mono: float) -> None:
        """No pass for an ``INTERVAL`` from ``mono`` (the wall clock just stepped)."""
        until = mono + INTERVAL.total_seconds()
        self.next_at = until if self.next_at is None else max(self.next_at, until)

    def due(self, mono: float) -> bool:
        return self.keep > timedelta(0) and (self.next_at is None or mono >= self.next_at)

    def run(self, now: datetime, mono: float, protect: Collection[Path]) -> Pruned | None:
        """Prune if due; the pass's result, or None when not due."""
        if not self.due(mono):
            return None
        cutoff = now - self.keep
        try:
            done = prune_minutes(self.raw_dir, self.tz, cutoff, protect)
        except OSError as e:
            log.error("pruning minute files in %s failed: %s", self.raw_dir, e)
            done = Pruned()
        self.next_at = mono + (60.0 if done.more else INTERVAL.total_seconds())
        self.last_at = now
        self.total.files += done.files
        self.total.bytes += done.bytes
        if done.files:
            log.info(
                "pruned %d minute file(s) (%.1f MB) older than %s from %s%s",
                done.files,
                done.bytes / 1e6,
                cutoff.isoformat(timespec="seconds"),
                self.raw_dir,
                "; more next pass" if done.more else "",
            )
        return done
