"""The open minute and the closed minutes not yet written: a line goes into the in-progress
``.part`` file of the minute it was received in; when the minute ends the file is committed
(``partfiles.commit_minute``), and a minute whose file cannot be written (disk full, I/O error)
keeps its lines in ``.part`` and is retried with a back-off until the file exists.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ingest.collect.partfiles import NameTaken, commit_minute, part_path
from ingest.layout import MINUTE, minute_path, parse_minute_name

log = logging.getLogger(__name__)


@dataclass
class ClosedMinute:
    minute: datetime  # UTC start
    tweets: int
    path: Path | None  # None: the stream was not connected in this minute, no file
    written: bool = True  # False: the file is not written yet (disk error), it will be retried


@dataclass
class Unfinished:
    """A closed minute whose complete file is not written yet: its lines are in ``.part``."""

    minute: datetime
    tweets: int
    final: Path
    fd: int | None  # open until the first attempt: fsync, then link to the final name
    failures: int = 0  # failed attempts so far
    retry_at: float | None = None  # monotonic instant of the next attempt (None: now)
    error: str | None = None  # of the last failed attempt
    taken: str | None = None  # what holds the final name, if that failed the last attempt


# Retries of unfinished minutes, in seconds of the collector's monotonic clock: 1, 2, 4 ... 60.
RETRY_FIRST, RETRY_CAP = 1.0, 60.0


class MinuteWriter:
    """The current minute's in-progress file and the closed minutes not yet written.

    Not thread-safe: ``filing.MinuteFiler`` holds a lock. Times are passed in: ``now`` (the
    collector's time, names the minute) and ``mono`` (monotonic, paces retries).

    A line belongs to the minute the collector's time says when it is received (the same
    reading stamps its ``retrieved_at``), so a minute is closed whenever that time leaves it,
    forwards or backwards: a stepped clock never piles minutes into one file nor files lines
    under a minute they were not received in. A time stepped back into a minute already
    written adds a second part to that minute (``commit_minute`` appends).

    Closing a minute moves it to ``unfinished``; ``commit`` then fsyncs and links it to its
    final name. If that fails (disk full, I/O error) the minute stays unfinished, its lines in
    its ``.part`` file, and is retried with a back-off of its own (1, 2, 4 ... 60 s) until its
    file exists; a minute whose final name is taken (``NameTaken``) is retried every second,
    so it is written as soon as the name is free. Minutes are written independently: one that
    fails never holds back the others. A retry writes the lines afresh to a new file: after a
    failed fsync the kernel may have dropped the dirty pages and a second fsync of the same
    file would report success for data not on disk.
    """

    def __init__(self, raw_dir: Path, tz: ZoneInfo, fsync: bool = True) -> None:
        self.raw_dir = Path(raw_dir)
        self.tz = tz
        self.fsync = fsync
        self.minute: datetime | None = None
        self.tweets = 0
        self.closed = False
        self.unfinished: list[Unfinished] = []
        self.failed: list[Unfinished] = []  # copies of the attempts the last commit() failed
        self._fd: int | None = None
        self._final: Path | None = None

    @property
    def retry_at(self) -> float | None:
        """Monotonic instant of the next attempt due, None if no minute waits for one."""
        return min((u.retry_at for u in self.unfinished if u.retry_at is not None), default=None)

    @property
    def last_error(self) -> str | None:
        """The error of the oldest minute that failed, None if none did."""
        return next((u.error for u in self.unfinished if u.error), None)

    @property
    def disk_failing(self) -> bool:
        """A minute waits because writing failed (not because its name is taken)."""
        return any(u.failures and not u.taken for u in self.unfinished)

    def adopt(self, final: Path, tweets: int) -> None:
        """Retry a minute left in ``.part`` by an earlier run (``Recovery.waiting``)."""
        minute = parse_minute_name(final.name, self.tz)
        if minute is not None and not self.is_unfinished(final):
            self.unfinished.append(Unfinished(minute, tweets, final, None))
            self.unfinished.sort(key=lambda u: u.minute)

    @property
    def minute_end(self) -> datetime:
        assert self.minute is not None
        return self.minute + MINUTE

    @property
    def final(self) -> Path | None:
        return self._final

    def begin(self, now: datetime, open_file: bool) -> None:
        self.minute = now.astimezone(UTC).replace(second=0, microsecond=0)
        self.tweets = 0
        self._final = minute_path(self.raw_dir, self.minute, self.tz)
        for i, u in enumerate(self.unfinished):
            if u.final == self._final:  # stepped back into a minute still unfinished: resume it
                del self.unfinished[i]
                self.tweets = u.tweets
                self._fd = u.fd
                break
        if open_file:
            try:
                self.open_file()
            except OSError as e:  # the next write tries again and counts the lost line
                log.error("cannot open the minute file %s: %s", part_path(self._final), e)

    def open_file(self) -> None:
        if self._fd is not None or self.closed or self._final is None:
            return
        self._final.parent.mkdir(parents=True, exist_ok=True)
        # Append, never truncate: the part may hold lines of this minute (an unfinished
        # minute resumed after a clock step back).
        self._fd = os.open(part_path(self._final), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)

    def due(self, now: datetime) -> bool:
        """The wall clock has left the current minute (forwards, or backwards after a step)."""
        return (
            not self.closed
            and self.minute is not None
            and not (self.minute <= now < self.minute + MINUTE)
        )

    def write(self, line: bytes) -> bool:
        """Append one whole line. A line that cannot be written whole (disk full) is cut off
        again, so it does not garble the next one; the OSError is raised."""
        if self.closed:
            return False
        self.open_file()
        view = memoryview(line)
        try:
            while view:  # one write per line in practice; loop on a short write
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError:
            if len(view) < len(line):
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, os.fstat(self._fd).st_size - (len(line) - len(view)))
            raise
        self.tweets += 1
        return True

    def _close_current(self) -> ClosedMinute:
        assert self.minute is not None and self._final is not None
        closed = ClosedMinute(self.minute, self.tweets, None)
        if self._fd is not None or part_path(self._final).exists():
            fd, self._fd = self._fd, None
            if fd is not None and self.disk_failing:
                # Writing is failing: its retry writes afresh anyway, and minutes waiting
                # through a long outage must not each hold a descriptor.
                with contextlib.suppress(OSError):
                    os.close(fd)
                fd = None
            self.unfinished.append(Unfinished(self.minute, self.tweets, self._final, fd))
            closed.path = self._final
        return closed

    def roll(self, now: datetime, open_next: bool) -> ClosedMinute:
        """Close the current minute (``commit`` writes it) and begin the one ``now`` is in."""
        closed = self._close_current()
        self.begin(now, open_next)
        return closed

    def close(self) -> ClosedMinute | None:
        """Close the current minute for good (at shutdown; ``commit`` writes it)."""
        if self.closed or self.minute is None:
            return None
        closed = self._close_current()
        self.closed = True
        return closed

    def is_unfinished(self, path: Path | None) -> bool:
        return path is not None and any(u.final == path for u in self.unfinished)

    def report(self, tz: ZoneInfo) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """The status's ``current_minute`` and ``unwritten_minutes``."""
        current = (
            {
                "minute": self.minute.astimezone(tz).isoformat(),
                "tweets": self.tweets,
            }
            if self.minute and not self.closed
            else None
        )
        # Closed minutes whose files could not be written yet (their lines are in .part).
        unwritten = {
            "minutes": [u.minute.astimezone(tz).isoformat() for u in self.unfinished],
            "error": self.last_error,
            # Names held by something that is not a minute file: the operator moves it.
            "taken": [{"file": str(u.final), "is": u.taken} for u in self.unfinished if u.taken],
        }
        return current, unwritten

    def commit(self, mono: float, force: bool = False) -> list[Unfinished]:
        """Write the unfinished minutes whose attempt is due (all with ``force``), each on its
        own. Returns the minutes written; ``failed`` holds copies of the attempts that failed."""
        done: list[Unfinished] = []
        self.failed = []
        for u in list(self.unfinished):
            if not force and u.retry_at is not None and mono < u.retry_at:
                continue
            try:
                self._commit_one(u)
            except OSError as e:
                u.failures += 1
                u.taken = e.what if isinstance(e, NameTaken) else None
                u.error = str(e) if u.taken else f"{u.final.name}: {type(e).__name__}: {e}"
                # A taken name costs one lstat a try: look every second. A failing disk is
                # given more and more time, up to a minute.
                doubled = RETRY_FIRST * 2 ** min(u.failures - 1, 16)  # no float overflow
                u.retry_at = mono + (RETRY_FIRST if u.taken else min(doubled, RETRY_CAP))
                self.failed.append(replace(u))
                continue
            self.unfinished.remove(u)
            done.append(u)
        return done

    def _commit_one(self, u: Unfinished) -> None:
        part = part_path(u.final)
        if u.fd is not None:  # first attempt: fsync the file written, link it
            fd, u.fd = u.fd, None  # never fsynced twice (see the class docstring)
            try:
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            commit_minute(part, u.final)
        else:  # a retry: the lines to a new file (if the part is gone, it was committed)
            try:
                data = part.read_bytes()
            except FileNotFoundError:
                if u.final.exists():
                    return
                raise
            commit_minute(part, u.final, data)
