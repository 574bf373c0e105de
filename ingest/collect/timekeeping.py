"""The collector's time as it shows outside: stamps in twarc's format, clock seconds as real
seconds, and the mail that tells a verdict of the clock judge (``clockjudge.ClockJudge``).

Every instant comes from ``clock``; waits are converted to real seconds by the clock's
``speed`` (``ScaledClock``), so tests and the demo run minutes of a few seconds through the
same code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ingest.clock import Clock
from ingest.collect.clockjudge import Verdict


def real_seconds(clock: Clock, seconds: float) -> float:
    """Real seconds until ``seconds`` of ``clock`` time have passed."""
    return seconds / getattr(clock, "speed", 1.0)


def stamp(instant: datetime) -> str:
    """twarc's ``retrieved_at`` format: UTC, whole seconds, ``+00:00``."""
    return instant.astimezone(UTC).isoformat(timespec="seconds")


def verdict_mail(server: str, v: Verdict) -> tuple[str, str]:
    """The subject and body of the ``clock-step`` alert about the verdict ``v``."""
    corr = v.correction
    if v.step is not None:
        subject = f"{server}: the clock stepped {v.step:+.0f} s" + (
            f" and is wrong now; filing by it {corr:+.0f} s corrected"
            if corr
            else "; the tweets agree with the new time"
        )
        head = (
            f"The collector of {server} noticed at {stamp(v.wall)} (by its wall clock) that "
            f"the wall clock moved {v.step:+.0f} s more than its monotonic clock.\n"
        )
    else:
        subject = f"{server}: " + (
            f"the clock is {'at least ' if corr > 0 else ''}{abs(corr):.0f} s "
            f"{'behind' if corr > 0 else 'ahead of'} the tweets; filing by it corrected"
            if corr
            else "the tweets agree with the clock again; filing by it uncorrected"
        )
        head = ""
    verdict = f"Verdict: {v.reason}" + (
        f" (the newest created_at of the tweets received is {stamp(v.stream)}, the wall "
        f"clock reads {stamp(v.wall)})"
        if v.stream
        else ""
    )
    body = (
        head
        + verdict
        + ".\n"
        + _filing(v)
        + _effect(v)
        + "Check the time synchronisation (timedatectl, chrony/ntpd).\n"
    )
    return subject, body


def _filing(v: Verdict) -> str:
    """How lines are filed and stamped after the verdict."""
    corr = v.correction
    if corr:
        return (
            "Until the clock is right, the collector files each line under the minute of "
            f"the corrected time (the wall clock {corr:+.0f} s, now {stamp(v.at)}) and "
            "stamps its __twarc.retrieved_at with the same reading, so names and lines "
            "carry the true time; `sampled-stream status` shows the correction. When the "
            "clock is set right (NTP), the collector notices that step and follows the "
            "clock again.\n"
        )
    return "Minute files and __twarc.retrieved_at follow the wall clock.\n"


def _effect(v: Verdict) -> str:
    """What the verdict did to the minutes, if the collector's time moved by more than one."""
    jump = v.correction - v.previous  # how far the collector's own time moved at the verdict
    before, after = v.at - timedelta(seconds=jump), v.at
    if jump < -60:
        return (
            f"The collector's time went back {-jump:.0f} s: minutes from {stamp(after)} to "
            f"{stamp(before)} may get a second part appended to files written before (each "
            "line stays in the minute of its own retrieved_at).\n"
        )
    if jump > 60:
        return (
            f"The collector's time went forward {jump:.0f} s: nothing was received between "
            f"{stamp(before)} and {stamp(after)} as it counts.\n"
        )
    return ""
