"""Filing stream lines into minute files by the collector's judged time, under one lock.

A line is filed under the minute the collector's time says when it is received (the reading
that stamps its ``retrieved_at``), so a stepped clock closes the current minute under its own
name and starts the one the new reading says, never piling minutes into one file. The
collector's time is the wall clock as judged by the stream (``clockjudge.ClockJudge``): a step
of more than a minute, noticed against the clock's ``monotonic()``, is accepted when the tweets
that come next agree with the new reading, and corrected (the time from before the step goes
on) when they agree with the old one; a clock found behind the tweets, or more than
``clockjudge.AHEAD_LIMIT`` ahead of them, is corrected too. The lines received before the
judge's first verdict (its first ``QUORUM`` tweets, or a few seconds) are held in memory and
filed by the judged time, and no minute is begun by the unjudged time meanwhile.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from ingest.clock import Clock
from ingest.collect.clockjudge import ClockJudge
from ingest.collect.minute_writer import ClosedMinute, MinuteWriter, Unfinished
from ingest.collect.timekeeping import stamp

log = logging.getLogger(__name__)

HOLD_MAX = 1000  # lines held at most before the judge's verdict (it comes after QUORUM)


@dataclass
class Rotation:
    """What one look at the minute files did (``MinuteFiler._rotate_locked``); copies, read
    outside the lock."""

    closed: ClosedMinute | None
    written: list[Unfinished]
    failed: list[Unfinished]  # attempts that failed in this look
    unfinished: int
    disk_waiting: bool  # an unfinished minute failed for another reason than a taken name


@dataclass
class Filed:
    """A line filed (or a rotation only: ``written`` False, no error), for the after-lock work."""

    at: datetime
    rotation: Rotation
    written: bool
    error: OSError | None = None


@dataclass
class Look:
    """What one pass of the rotation thread did (``MinuteFiler.look``), for the after-lock work."""

    now: datetime
    filed: list[Filed]
    rotation: Rotation
    protect: set[Path | None]  # minute files the pruner must leave alone
    wait: float  # clock seconds until the next pass is needed (may be negative)


class MinuteFiler:
    """The minute writer, the lines held until the judge's verdict and whether the stream is
    connected, under one lock. Each public method takes the lock once and returns what the
    caller reports after it (``Filed``, ``Rotation``)."""

    def __init__(self, writer: MinuteWriter, judge: ClockJudge, clock: Clock) -> None:
        self.writer = writer
        self.judge = judge  # the time minutes are filed and stamped by
        self.clock = clock
        self.lock = threading.Lock()  # the writer, connected and the held lines
        self.connected = False
        # Lines received before the judge's verdict (after the start, after a step), with their
        # monotonic reading: filed by the judged time once it is in, so no line goes under an
        # unjudged clock. None: filing as they come.
        self._held: list[tuple[dict[str, Any], float]] | None = []
        self._round = 0  # the judge's round the holding was last begun for

    def begin(self, now: datetime) -> None:
        """At the start: begin the minute ``now`` is in, without opening its file."""
        with self.lock:
            self.writer.begin(now, open_file=False)

    def connect(self) -> tuple[datetime, Rotation]:
        """The stream connected: rotate if due, open the minute file unless lines are held."""
        with self.lock:
            now = self.judge.now()
            rotation = self._rotate_locked(now)
            self.connected = True
            self.judge.connected()
            if self._held is None:  # else the release opens the minute the judged time says
                self._open_locked()
        return now, rotation

    def disconnect(self) -> bool:
        """The stream is down; returns whether it was connected."""
        with self.lock:
            was_connected, self.connected = self.connected, False
        return was_connected

    def take(self, item: dict[str, Any], created: object) -> list[Filed]:
        """Hold the line ``item`` until the judge's verdict, or file it (after the lines held)."""
        filed: list[Filed] = []
        with self.lock:
            # One reading, under the lock, stamps the line and picks its minute file; the
            # tweet's created_at is evidence for the judge first.
            now = self.judge.now(created)
            if not self.judge.started and self._held is None and self._round < self.judge.round:
                self._held = []  # a step awaits its verdict: hold the lines again
            self._round = self.judge.round
            if self._held is not None and not self.judge.started and len(self._held) < HOLD_MAX:
                self._held.append((item, self.clock.monotonic()))
            else:
                filed = self._release_locked(now)
                filed.append(self._file_locked(item, now))
        return filed

    def look(self, mono: float) -> Look | None:
        """The rotation thread's pass under the lock (``Collector.tick``); None once closed."""
        with self.lock:
            if self.writer.closed:
                return None
            now = self.judge.now()
            filed = self._release_locked(now) if self.judge.started else []
            rotation = self._rotate_locked(now)
            protect = {self.writer.final, *(u.final for u in self.writer.unfinished)}
            wait = (self.writer.minute_end - now).total_seconds()
            if self.writer.retry_at is not None:
                wait = min(wait, self.writer.retry_at - mono)
            if self._held is not None:  # look again soon: the first verdict may come by time
                wait = min(wait, self.judge.start_wait)
        return Look(now, filed, rotation, protect, wait)

    def close(self) -> tuple[datetime, list[Filed], Rotation]:
        """At shutdown: file the lines held, close the minute and write every closed one."""
        with self.lock:
            now = self.judge.now()
            filed = self._release_locked(now)  # by whatever the judge has
            closed = self.writer.close()
            self.connected = False
            rotation = self._rotate_locked(now, closed, force=True)
        return now, filed, rotation

    def report(self, tz: ZoneInfo) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """The writer's part of the status (``MinuteWriter.report``)."""
        with self.lock:
            return self.writer.report(tz)

    def _file_locked(self, item: dict[str, Any], now: datetime) -> Filed:
        """Under the lock: stamp the line with ``now`` and write it to ``now``'s minute."""
        meta = item.get("__twarc")
        if isinstance(meta, dict):
            # The collector's clock, not twarc's: the file and the arrival share one timeline.
            meta["retrieved_at"] = stamp(now)
        rotation = self._rotate_locked(now)
        try:
            return Filed(now, rotation, self.writer.write(orjson.dumps(item) + b"\n"))
        except OSError as e:
            return Filed(now, rotation, False, e)

    def _release_locked(self, now: datetime) -> list[Filed]:
        """Under the lock, once the judge's first verdict is in: file the lines held until
        then, each at the judged time ``now`` less the monotonic time since it came."""
        if self._held is None:
            return []
        held, self._held = self._held, None
        mono = self.clock.monotonic()
        filed = [self._file_locked(item, now - timedelta(seconds=mono - m)) for item, m in held]
        filed.append(Filed(now, self._rotate_locked(now), False))  # the minute now is in
        if self.connected:
            self._open_locked()
        return filed

    def _open_locked(self) -> None:
        try:
            self.writer.open_file()
        except OSError as e:  # a disk error is never a reason to reconnect
            log.error("cannot open the minute file: %s", e)

    def _rotate_locked(
        self, now: datetime, closed: ClosedMinute | None = None, force: bool = False
    ) -> Rotation:
        """Under the lock: close the minute if the clock left it, write unwritten ones."""
        writer = self.writer
        # Before the judge's first verdict the time may be wrong: no minute is begun by it.
        if closed is None and writer.due(now) and self._held is None:
            closed = writer.roll(now, open_next=self.connected)
        mono = self.clock.monotonic()
        written = writer.commit(mono, force)
        if closed is not None:
            closed.written = not writer.is_unfinished(closed.path)
        failed = [replace(u, retry_at=(u.retry_at or mono) - mono) for u in writer.failed]
        return Rotation(closed, written, failed, len(writer.unfinished), writer.disk_failing)
