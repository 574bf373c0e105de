"""Clocks: time is a dependency, passed in rather than read deep inside.

``SystemClock`` in production; ``FixedClock`` for dry runs at a chosen instant and tests;
``ScaledClock`` runs fast so the demo and tests live through stream minutes in seconds.

``monotonic()`` is the clock's elapsed time in its own seconds, unaffected by steps of the wall
clock (NTP, a VM resumed, an RTC read at boot): the collector compares the two to notice a step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class FixedClock:
    """A clock that stands still (tests, dry runs at a chosen instant)."""

    instant: datetime

    def now(self) -> datetime:
        return self.instant

    def monotonic(self) -> float:
        # Moved by hand, it moves as time passing: never a step.
        return self.instant.timestamp()


class ScaledClock:
    """Wall-clock time running ``speed`` times as fast, reading ``start`` at ``epoch``.

    ``ScaledClock()`` is the system clock. With ``speed=60`` a minute lasts one real second.
    Processes given the same ``start`` and ``epoch`` (Unix seconds) agree on the time, so a
    demo's stand-in and collectors share one fast timeline.
    """

    def __init__(
        self, speed: float = 1.0, start: datetime | None = None, epoch: float | None = None
    ) -> None:
        if speed <= 0:
            raise ValueError(f"clock speed must be positive, not {speed}")
        self.speed = float(speed)
        self.epoch = time.time() if epoch is None else float(epoch)
        if start is not None and start.tzinfo is None:
            raise ValueError("clock start needs a UTC offset")
        self.start = start.astimezone(UTC) if start else datetime.fromtimestamp(self.epoch, UTC)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.epoch) * self.speed)

    def monotonic(self) -> float:
        return time.monotonic() * self.speed


def clock_from(now: str | None) -> Clock:
    """The system clock, or a fixed one when ``now`` (ISO 8601) is given."""
    if not now:
        return SystemClock()
    instant = datetime.fromisoformat(now)
    if instant.tzinfo is None:
        raise ValueError(f"now={now!r} needs a UTC offset, e.g. 2026-01-14T12:00:00+00:00")
    return FixedClock(instant.astimezone(UTC))
