"""Which time the collector files and stamps by: its wall clock, or the wall clock corrected,
judged by the stream itself.

The sampled stream is a clock: its tweets arrive seconds after their ``created_at`` (a backfill
after a reconnect brings older ones, never newer ones). So the newest ``created_at`` received is
a lower bound of the true time and, while tweets flow live, within seconds of it. The "stream's
time" below is the newest ``created_at`` that ``QUORUM`` of the last ``WINDOW`` tweets reach
(all of them while fewer came), so a single odd ``created_at`` cannot move it for long, each
advanced by the monotonic time since it was received (a lower bound of the time now).

- **A step** (the wall clock moved more than ``STEP_LIMIT`` s more than the monotonic clock)
  leaves two candidates: the new reading is right (the step corrected the clock: NTP after a
  resumed VM, whose monotonic clock did not run during the suspend) or wrong (the time from
  before the step goes on: correction - step). Until tweets received after the step tell, the
  time from before the step goes on, so nothing is filed under a reading that may be wrong. A
  candidate is out when the stream's time is more than ``TOLERANCE`` ahead of it (a tweet cannot
  arrive before it was created); the candidate the stream's time lies within ``TOLERANCE`` of
  (the nearer) wins, or the only one left.
- **Without a step** (at start, say, after an RTC read wrong at boot): a stream's time more than
  ``BEHIND_LIMIT`` ahead of the corrected time, vouched by ``QUORUM`` tweets, means the clock is
  behind; the correction makes the corrected time the stream's time, and from then on follows
  the stream's time up (never down) while it is ahead: the first tweets after a (re)connect
  are a backfill, minutes older than the live ones that follow.
- **A clock ahead** with no step seen (set ahead while the collector was down): the stream's
  time more than ``AHEAD_LIMIT`` behind the corrected time, vouched by ``QUORUM`` tweets, means
  the clock is ahead; the correction makes the corrected time the stream's time, then follows
  it up as above (back to 0 once the stream is within ``TOLERANCE`` of the wall clock). Live
  tweets arrive seconds after their ``created_at`` and a backfill after a (re)connect brings
  tweets at most 5 minutes old (X's ``backfill_minutes`` limit), so a stream this far behind
  is the clock, not the stream. The limit: a clock ahead by less than ``AHEAD_LIMIT`` cannot be
  told from a backfill and is trusted. The hourly assignment's late window absorbs a clock
  ahead by up to ``late_minutes`` (6 by default); ahead by more (up to ``AHEAD_LIMIT``), the
  copies of the tweets of an hour's last minutes count in the next hour on that server
  (``late_minutes: 10`` closes that gap). A stream really late by more than ``AHEAD_LIMIT`` (an
  incident at X) is taken for a clock ahead, alerted, and undone as the stream catches up.
- Once decided, the time stands while the stream is neither ahead of it nor more than
  ``AHEAD_LIMIT`` behind (a stream behind may be a backfill or a delay); tweets ahead of it by
  more than ``TOLERANCE`` (a quorum of them) make the judge choose again: the other candidate
  of the last step if the stream fits it, else a correction to the stream's time as above.
  Every reading looks for a step: NTP fixing a wrong clock is a step that brings the
  correction back to 0.

**The first verdict** (``started``): the first tweets after a start, and those after a step,
are judged together; the judge has started once ``QUORUM`` tweets came with no step awaiting
its verdict, or ``START_WAIT`` s (monotonic) passed since the stream connected (``connected``)
or the first tweet came, so a caller can hold those lines until then and file them all by the
judged time. A step that needs a verdict starts this over (``round`` counts them): the time
from before the step may be the wrong one (a collector started on a wrong clock that NTP then
fixes), and a backfill after a reconnect fits neither time until the live tweets come.

Times are floats (Unix seconds) inside, aware datetimes outside.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ingest.clock import Clock

STEP_LIMIT = 60.0  # s: a larger jump of the wall clock against the monotonic one is a step
TOLERANCE = 60.0  # s: the stream's time within this of a candidate time agrees with it
BEHIND_LIMIT = 120.0  # s: without a step, the stream this far ahead means the clock is behind
AHEAD_LIMIT = 600.0  # s: the stream this far behind means the clock is ahead (backfill: <= 300)
START_WAIT = 5.0  # s: the first verdict comes with QUORUM tweets, or this long without them
WINDOW, QUORUM = 20, 5  # the stream's time: the QUORUM-th newest of the last WINDOW tweets


class StepWatch:
    """Notices steps of the wall clock (a VM resumed, an RTC read, NTP stepping) by comparing
    how far it moved with how far the monotonic clock moved since the last look."""

    def __init__(self, limit: float = STEP_LIMIT) -> None:
        self.limit = limit
        self._last: tuple[datetime, float] | None = None

    def check(self, now: datetime, mono: float) -> float | None:
        """The step in seconds (negative: backwards) if there was one since the last call."""
        last, self._last = self._last, (now, mono)
        if last is None:
            return None
        step = (now - last[0]).total_seconds() - (mono - last[1])
        return step if abs(step) > self.limit else None


@dataclass(frozen=True)
class Step:
    """The wall clock stepped; the verdict on it comes with the next tweets."""

    wall: datetime  # the reading after the step
    seconds: float  # negative: backwards
    correction: float  # in use until the verdict: the time from before the step goes on


@dataclass(frozen=True)
class Verdict:
    """The correction changed, or a step was judged."""

    wall: datetime  # the wall clock's reading
    correction: float  # seconds added to the wall clock from now on (0: the clock is trusted)
    previous: float
    step: float | None  # the step judged; None: a correction found without a step
    stream: datetime | None  # the stream's time it rests on (None: decided without tweets)
    reason: str

    @property
    def at(self) -> datetime:
        return self.wall + timedelta(seconds=self.correction)


def created_epoch(created_at: object) -> float | None:
    """Unix seconds of an API ``created_at`` (``2026-01-14T10:00:00.000Z``); None if it is not
    one."""
    if not isinstance(created_at, str):
        return None
    try:
        t = datetime.fromisoformat(created_at)
    except ValueError:
        return None
    return t.timestamp() if t.tzinfo is not None else None


def _iso(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class ClockJudge:
    """The collector's time: ``now()`` is the wall clock plus ``correction``. Thread-safe.

    ``now(created_at)`` is called with each tweet's ``created_at`` as it arrives, ``now()`` for
    any other reading. What happened (``Step``, ``Verdict``) queues in ``events`` for the
    caller to log and alert outside its locks (``take_events``).
    """

    def __init__(
        self,
        clock: Clock,
        *,
        step_limit: float = STEP_LIMIT,
        tolerance: float = TOLERANCE,
        behind_limit: float = BEHIND_LIMIT,
        ahead_limit: float = AHEAD_LIMIT,
        start_wait: float = START_WAIT,
        window: int = WINDOW,
        quorum: int = QUORUM,
    ) -> None:
        self.clock = clock
        self.tolerance = tolerance
        self.behind_limit = behind_limit
        self.ahead_limit = ahead_limit
        self.start_wait = start_wait
        self.quorum = quorum
        self.started = False  # the first verdict is in: QUORUM tweets came, or start_wait passed
        self.round = 0  # steps that started the first verdict over
        self.correction = 0.0
        self.since: datetime | None = None  # when the correction in use was decided
        self.reason = "no correction"
        self.judging: Step | None = None  # a step awaiting the stream's verdict
        self.events: list[Step | Verdict] = []
        self._candidates: tuple[float, ...] = (0.0,)
        # created_at - monotonic reading at receipt, of the tweets since the last step
        self._created: deque[float] = deque(maxlen=window)
        self._steps = StepWatch(step_limit)
        self._parsed: tuple[object, float | None] = (None, None)  # the last created_at parsed
        self._following = False  # the correction came from the stream's time: it follows it up
        self._first: float | None = None  # monotonic reading at the connection or first tweet
        self._seen = 0  # tweets judged since the start
        self._lock = threading.Lock()

    def now(self, created_at: object = None) -> datetime:
        """The corrected time; ``created_at`` (of the tweet just received) is evidence first."""
        wall, mono = self.clock.now(), self.clock.monotonic()
        with self._lock:
            step = self._steps.check(wall, mono)
            if step is not None:
                self._on_step(wall, step)
            if created_at is None:
                created = None
            elif created_at == self._parsed[0]:  # tweets of one second share their created_at
                created = self._parsed[1]
            else:
                created = created_epoch(created_at)
                self._parsed = (created_at, created)
            if created is not None:
                self._created.append(created - mono)
                self._seen += 1
                self._judge(wall, mono)
            if self._first is None and created is not None:
                self._first = mono
            if not self.started and self._first is not None:
                self.started = (
                    self._seen >= self.quorum and self.judging is None
                ) or mono - self._first >= self.start_wait
            return wall + timedelta(seconds=self.correction)

    def monotonic(self) -> float:
        """The clock's monotonic reading (so the judge is a ``Clock`` itself)."""
        return self.clock.monotonic()

    def connected(self) -> None:
        """The stream is connected: without tweets within ``start_wait`` s, the first verdict
        is to go by the clock (nothing to judge it by)."""
        mono = self.clock.monotonic()
        with self._lock:
            if self._first is None:
                self._first = mono

    def take_events(self) -> list[Step | Verdict]:
        with self._lock:
            events, self.events = self.events, []
        return events

    def state(self) -> dict[str, object]:
        """For the status file."""
        with self._lock:
            return {
                "correction_seconds": round(self.correction, 1),
                "since": self.since.isoformat(timespec="seconds") if self.since else None,
                "reason": self.reason,
                "judging_step_seconds": round(self.judging.seconds, 1) if self.judging else None,
            }

    # -- under the lock ----------------------------------------------------------------------

    def _on_step(self, wall: datetime, step: float) -> None:
        keep = self.correction - step  # the time from before the step, going on
        self._following = False
        self._created.clear()  # the verdict rests on tweets received after the step
        self.events.append(Step(wall, step, keep))
        if abs(keep) <= self.tolerance:  # the step brought the clock to the time kept (NTP)
            self._candidates, self.correction = (0.0,), keep
            self._decide(wall, 0.0, step, None, f"the step of {step:+.0f} s undid the correction")
            return
        self._candidates = (0.0, keep)
        self.judging = Step(wall, step, keep)
        self.correction = keep
        # Lines from now on wait for the verdict, like the first ones after a start.
        self.started, self._first, self._seen = False, None, 0
        self.round += 1

    def _judge(self, wall: datetime, mono: float) -> None:
        w = wall.timestamp()
        n = len(self._created)
        stream = sorted(self._created)[-min(n, self.quorum)] + mono
        if self.judging is None:
            # Settled: a stream behind the time may be a backfill or a delay, so only tweets
            # ahead of it (a quorum of them) move it.
            if n < self.quorum:
                return
            if self._following and stream > w + self.correction:
                # A correction found from the tweets follows them up, quietly: the first
                # tweets after a (re)connect are a backfill, older than the live ones.
                if self.correction < 0 <= stream - w + self.tolerance:
                    # A clock taken for ahead: the stream caught up with it (it was late).
                    self._decide(wall, 0.0, None, _iso(stream), "the tweets agree with the clock")
                else:
                    self.correction = stream - w
                return
            if stream < w + self.correction - self.ahead_limit:
                # No backfill is this old (5 min at most) and live tweets arrive in seconds.
                chosen = stream - w
                self._candidates = (0.0, chosen)
                why = f"tweets {-chosen:.0f} s behind the clock, more than a backfill (it is ahead)"
                self._decide(wall, chosen, None, _iso(stream), why)
                self._following = True
                return
            if stream <= w + self.correction + self.tolerance:
                return
        alive = [c for c in self._candidates if stream <= w + c + self.tolerance]
        if not alive:  # the stream is ahead of every candidate: the clock is behind
            if n < self.quorum or stream <= w + max(self._candidates) + self.behind_limit:
                return
            chosen = stream - w
            self._candidates = (0.0, chosen)
            why = f"tweets at least {chosen:.0f} s ahead of the clock (it is behind)"
        else:
            near = [c for c in alive if stream >= w + c - self.tolerance]
            if near:
                chosen = min(near, key=lambda c: abs(w + c - stream))
            elif len(alive) == 1:
                chosen = alive[0]
            else:
                return  # the stream runs late for every candidate (a backfill): wait
            why = (
                "the tweets agree with the clock"
                if chosen == 0.0
                else f"the tweets agree with the clock corrected by {chosen:+.0f} s"
            )
        if self.judging is None and chosen == self.correction:
            return
        step = self.judging.seconds if self.judging else None
        if step is not None and chosen != 0.0:
            why = f"the tweets continue the time from before the step of {step:+.0f} s"
        self._decide(wall, chosen, step, _iso(stream), why)
        self._following = not alive  # a correction to the stream's time: it follows the stream

    def _decide(
        self, wall: datetime, chosen: float, step: float | None, stream: datetime | None, why: str
    ) -> None:
        previous = self.correction
        self.correction, self.judging, self.reason = chosen, None, why
        self._following = False
        self.since = wall + timedelta(seconds=chosen)
        self.events.append(Verdict(wall, chosen, previous, step, stream, why))
