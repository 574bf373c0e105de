"""The collector's time, judged by the stream (``ingest.collect.clockjudge``).

A wrong clock step must not file tweets in the wrong hour: the soak saw server2's clock step
back 29 min and stay wrong, and tweets created at 07:20 UTC filed in ``…T0751+0100.jsonl``
with a retrieved_at of 06:51, so the hourly assignment counted server2's copies in another hour
than server1's. The judge is tested with made-up readings; one collector-level test runs the
stand-in on the true time and the collector on a stepped clock.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from ingest.clock import ScaledClock
from ingest.collect.clockjudge import ClockJudge, Step, Verdict
from ingest.collect.collector import running
from ingest.collect.status import format_report
from ingest.devtools.emulator import Emulator
from tests.test_collector import (
    SPEED,
    TOKEN,
    alerts_for,
    lines_of,
    make,
    minute_files,
    parts,
    wait_for,
)
from tests.test_collector_faults import SteppedClock

TRUE = datetime(2026, 1, 14, 7, 20, 0, tzinfo=UTC)


class FakeClock:
    """Wall and monotonic readings the test moves: ``run`` moves both, ``step`` the wall only."""

    def __init__(self, wall: datetime) -> None:
        self.wall = wall
        self.mono = 1000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def run(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds

    def step(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)


def api(t: datetime) -> str:
    """An API created_at (whole seconds)."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def feed(judge: ClockJudge, clock: FakeClock, true: datetime, n: int, age: float = 2.0):
    """``n`` live tweets, one every 0.1 s, each received ``age`` s after it was created; the
    judge's readings at each."""
    readings = []
    for _ in range(n):
        clock.run(0.1)
        true += timedelta(seconds=0.1)
        readings.append(judge.now(api(true - timedelta(seconds=age))))
    return readings, true


def verdicts(judge: ClockJudge) -> list[Verdict]:
    return [e for e in judge.take_events() if isinstance(e, Verdict)]


def close(a: datetime, b: datetime, seconds: float = 2.0) -> bool:
    return abs((a - b).total_seconds()) <= seconds


def test_a_right_clock_is_trusted_through_live_tweets_and_a_backfill() -> None:
    clock = FakeClock(TRUE)
    judge = ClockJudge(clock)
    readings, true = feed(judge, clock, TRUE, 30)
    assert readings[-1] == clock.wall and judge.correction == 0.0
    feed(judge, clock, true, 30, age=300)  # a backfill: older tweets, never newer
    assert judge.correction == 0.0 and judge.take_events() == []


def test_a_step_back_that_makes_the_clock_wrong_is_corrected_until_ntp_fixes_it() -> None:
    """The soak's case: the clock steps back 29 min and stays wrong."""
    clock = FakeClock(TRUE)
    judge = ClockJudge(clock)
    _, true = feed(judge, clock, TRUE, 10)
    clock.step(-29 * 60)
    clock.run(0.1)
    true += timedelta(seconds=0.1)
    # Noticed at the next reading; until a tweet tells, the time from before the step goes on.
    assert close(judge.now(), true) and judge.judging is not None
    (step,) = judge.take_events()
    assert isinstance(step, Step) and step.seconds == pytest.approx(-1740)
    readings, true = feed(judge, clock, true, 20)
    assert all(close(r, true, 3) for r in readings)  # the true time, not 06:51
    assert judge.correction == pytest.approx(1740) and judge.judging is None
    (v,) = verdicts(judge)
    assert v.step == pytest.approx(-1740) and v.correction == pytest.approx(1740)
    assert "continue the time from before the step" in v.reason
    assert judge.state()["correction_seconds"] == pytest.approx(1740)
    # NTP sets the clock right: a step of +29 min that brings the correction back to 0,
    # decided at once (the clock now agrees with the time kept).
    clock.step(29 * 60)
    clock.run(0.1)
    assert close(judge.now(), true, 3) and judge.correction == 0.0
    (v,) = verdicts(judge)
    assert v.correction == 0.0 and v.step == pytest.approx(1740)
    readings, _ = feed(judge, clock, true, 20)
    assert judge.correction == 0.0 and readings[-1] == clock.wall


def test_a_step_forward_that_makes_the_clock_wrong_is_corrected() -> None:
    clock = FakeClock(TRUE)
    judge = ClockJudge(clock)
    _, true = feed(judge, clock, TRUE, 10)
    clock.step(29 * 60)
    readings, true = feed(judge, clock, true, 20)
    assert all(close(r, true, 3) for r in readings)
    assert judge.correction == pytest.approx(-1740)


def test_a_step_that_corrects_the_clock_is_accepted() -> None:
    """A VM resumed after 2 h (its monotonic clock stood still): the stream agrees with the
    new reading, from the first tweet after the reconnect, a backfilled one."""
    clock = FakeClock(TRUE)
    judge = ClockJudge(clock)
    _, true = feed(judge, clock, TRUE, 10)
    clock.step(7200)
    true += timedelta(seconds=7200)
    assert judge.now() == clock.wall - timedelta(seconds=7200)  # undecided: time goes on
    r = judge.now(api(true - timedelta(seconds=290)))  # backfill: 5 min old at most
    assert r == clock.wall and judge.correction == 0.0
    (v,) = verdicts(judge)
    assert v.step == pytest.approx(7200) and "agree with the clock" in v.reason
    # NTP steps back a clock that was ahead: the tweets agree with the new reading.
    clock.step(-600)
    true = clock.wall
    readings, _ = feed(judge, clock, true, 10)
    assert readings[0] == clock.wall - timedelta(seconds=0.9) and judge.correction == 0.0


def test_a_backfill_after_an_accepted_step_does_not_bring_the_other_time_back() -> None:
    """A VM resumed after 5 min: accepted. The reconnect's backfill then brings tweets about
    5 min old, which fit the time from before the step; a stream behind the time is no
    evidence (a backfill, a delay), so the time stands."""
    clock = FakeClock(TRUE)
    judge = ClockJudge(clock)
    _, true = feed(judge, clock, TRUE, 10)
    clock.step(300)
    _, true = feed(judge, clock, true + timedelta(seconds=300), 10)
    assert judge.correction == 0.0 and len(verdicts(judge)) == 1
    readings, _ = feed(judge, clock, true, 50, age=295)
    assert judge.correction == 0.0 and readings[-1] == clock.wall and judge.take_events() == []


def test_a_small_step_waits_for_live_tweets_when_a_backfill_fits_neither_time() -> None:
    clock = FakeClock(TRUE)
    judge = ClockJudge(clock)
    _, true = feed(judge, clock, TRUE, 10)
    clock.step(-180)  # wrong by 3 min
    feed(judge, clock, true, 5, age=400)  # a backfill: too old for either candidate
    assert judge.judging is not None and judge.correction == pytest.approx(180)
    _, true = feed(judge, clock, true + timedelta(seconds=0.5), 5)
    assert judge.judging is None and judge.correction == pytest.approx(180)


def test_a_clock_behind_the_tweets_at_start_is_corrected_with_a_quorum() -> None:
    """No step seen: tweets cannot arrive before they were created, so tweets 29 min ahead of
    the clock mean the clock is behind. One odd created_at is not enough."""
    clock = FakeClock(TRUE - timedelta(minutes=29))
    judge = ClockJudge(clock)
    assert judge.now("9999-12-31T23:59:59.000Z") == clock.wall  # one odd tweet: nothing
    assert judge.now("not a time") == clock.wall and judge.now(17) == clock.wall
    readings, true = feed(judge, clock, TRUE, 3)
    assert readings[-1] == clock.wall and judge.correction == 0.0
    readings, true = feed(judge, clock, true, 3)  # the 5th tweet of the window decides
    assert close(readings[-1], true, 3)
    assert judge.correction == pytest.approx(1740, abs=3)
    (v,) = verdicts(judge)
    assert v.step is None and "ahead of the clock" in v.reason
    # A clock only a minute behind is left alone (within the tolerance of a stream's delay).
    clock2 = FakeClock(TRUE - timedelta(seconds=60))
    judge2 = ClockJudge(clock2)
    feed(judge2, clock2, TRUE, 30)
    assert judge2.correction == 0.0


def test_a_clock_ahead_of_the_tweets_at_start_is_corrected_with_a_quorum() -> None:
    """The soak's case: a collector started on a clock set 57 min ahead while it was down. No
    backfill is older than 5 min, so tweets 57 min behind the clock mean the clock is ahead."""
    clock = FakeClock(TRUE + timedelta(minutes=57))
    judge = ClockJudge(clock)
    readings, true = feed(judge, clock, TRUE, 4)
    assert readings[-1] == clock.wall and judge.correction == 0.0 and not judge.started
    readings, true = feed(judge, clock, true, 1)  # the 5th tweet decides
    assert judge.started and close(readings[-1], true, 3)
    assert judge.correction == pytest.approx(-3420, abs=3)
    (v,) = verdicts(judge)
    assert v.step is None and "it is ahead" in v.reason and v.stream is not None
    readings, true = feed(judge, clock, true, 50, age=290)  # a reconnect's backfill: stands
    assert close(readings[-1], true, 3) and judge.take_events() == []
    # NTP sets the clock right: a step of -57 min that brings the correction back to 0.
    clock.step(-57 * 60)
    readings, _ = feed(judge, clock, true, 10)
    assert judge.correction == 0.0 and readings[-1] == clock.wall


def test_a_clock_ahead_found_during_a_backfill_follows_the_live_tweets() -> None:
    clock = FakeClock(TRUE + timedelta(minutes=57))
    judge = ClockJudge(clock)
    for i in range(300):  # the backfill: created 300 s .. 1 s before, received at once
        judge.now(api(TRUE - timedelta(seconds=300 - i)))
    readings, true = feed(judge, clock, TRUE, 20)
    assert judge.correction == pytest.approx(-3420, abs=3) and close(readings[-1], true, 3)
    assert len(verdicts(judge)) == 1


def test_a_clock_ahead_by_less_than_the_limit_is_trusted() -> None:
    """A clock 9 min ahead cannot be told from a 5-min backfill running a bit late."""
    clock = FakeClock(TRUE + timedelta(minutes=9))
    judge = ClockJudge(clock)
    readings, _ = feed(judge, clock, TRUE, 30)
    assert judge.correction == 0.0 and readings[-1] == clock.wall and judge.take_events() == []


def test_a_stream_late_by_more_than_the_limit_is_undone_when_it_catches_up() -> None:
    """An incident at X delays the stream 15 min: taken for a clock ahead (alerted); when the
    live tweets come again the correction goes back to 0, with a verdict saying so."""
    clock = FakeClock(TRUE)
    judge = ClockJudge(clock)
    _, true = feed(judge, clock, TRUE, 10)
    _, true = feed(judge, clock, true, 20, age=900)  # the window fills with late tweets
    assert judge.correction == pytest.approx(-900, abs=3)
    readings, _ = feed(judge, clock, true, 10)
    assert judge.correction == 0.0 and readings[-1] == clock.wall
    assert [v.correction for v in verdicts(judge)] == [pytest.approx(-900, abs=3), 0.0]


def test_the_first_verdict_comes_with_a_quorum_or_after_a_wait_without_tweets() -> None:
    clock = FakeClock(TRUE)
    judge = ClockJudge(clock, start_wait=5.0)
    judge.now()
    clock.run(60)
    judge.now("not a time")
    assert not judge.started  # no tweet yet: nothing to judge by
    judge.now(api(clock.wall))
    clock.run(4.9)
    judge.now()
    assert not judge.started
    clock.run(0.2)
    judge.now()
    assert judge.started
    judge2 = ClockJudge(clock, start_wait=5.0)
    judge2.connected()  # connected, and no tweets come: go by the clock
    clock.run(5.1)
    judge2.now()
    assert judge2.started and judge2.correction == 0.0


def test_a_correction_found_during_a_backfill_follows_the_live_tweets() -> None:
    """The soak's case: a collector restarted on a clock 22 min behind; the reconnect replays
    5 min of backfill (oldest first), then live tweets come. The correction ends at the live
    tweets' time, with one verdict (one mail), not one per two minutes of backfill."""
    clock = FakeClock(TRUE - timedelta(minutes=22))
    judge = ClockJudge(clock)
    for i in range(300):  # the backfill: created 300 s .. 1 s before, received at once
        judge.now(api(TRUE - timedelta(seconds=300 - i)))
    readings, true = feed(judge, clock, TRUE, 20)
    assert judge.correction == pytest.approx(22 * 60, abs=3) and close(readings[-1], true, 3)
    (v,) = verdicts(judge)
    assert v.step is None and "at least" in v.reason
    feed(judge, clock, true, 50, age=250)  # a later reconnect's backfill: the time stands
    assert judge.correction == pytest.approx(22 * 60, abs=3)
    # NTP sets the clock right: the correction goes back to 0 at once.
    clock.step(22 * 60)
    feed(judge, clock, true, 10)
    assert judge.correction == 0.0


def test_a_wrong_early_verdict_is_revised_by_the_tweets_that_follow() -> None:
    clock = FakeClock(TRUE)
    judge = ClockJudge(clock)
    _, true = feed(judge, clock, TRUE, 10)
    clock.step(-29 * 60)
    # The first tweet after the step has an odd created_at that happens to fit the new reading.
    judge.now(api(clock.wall))
    assert judge.correction == 0.0
    readings, true = feed(judge, clock, true, 10)
    assert judge.correction == pytest.approx(1740) and close(readings[-1], true, 3)


def test_the_status_report_shows_a_correction_and_a_pending_step() -> None:
    report = {"server": "s2", "status_file": "s2.json", "raw_dir": "/raw", "newest_minute": None}
    clock = {"correction_seconds": 1740.0, "since": "2026-01-14T07:20:00+00:00"}
    clock["reason"] = "the tweets continue the time from before the step of -1740 s"
    text = format_report({**report, "status": {"state": "running", "clock": clock}})
    assert "CLOCK CORRECTED: filing by the wall clock +1740 s since 2026-01-14T07:20:00" in text
    pending = {"correction_seconds": 1740.0, "judging_step_seconds": -1740.0}
    text = format_report({**report, "status": {"state": "running", "clock": pending}})
    assert "CLOCK STEPPED -1740 s: waiting for tweets" in text and "CORRECTED" not in text


@pytest.mark.integration
def test_a_wrong_clock_step_files_every_line_under_its_true_minute(tmp_path, smtp, caplog) -> None:
    """The stand-in runs on the true time; the collector's clock steps back 29 min and stays
    wrong, then NTP sets it right. Every line's retrieved_at and file minute are the true time
    it arrived: never before its created_at, never 29 min off."""
    caplog.set_level(logging.WARNING)
    sink, port = smtp
    raw = tmp_path / "raw"
    base = ScaledClock(SPEED)
    clock = SteppedClock(base)
    with Emulator(rate=50, keepalive=0.3, token=TOKEN, clock=base, seed=11) as em:
        c = make(tmp_path, em.url, clock, alerts=alerts_for(port, tmp_path, clock))
        with running(c):
            wait_for(lambda: len(minute_files(raw)) >= 2, what="two minute files")
            clock.offset = timedelta(minutes=-29)
            wait_for(lambda: c.counters.clock_steps == 1, 3, "the step noticed")
            before = c.counters.tweets_total
            wait_for(lambda: c.counters.tweets_total > before + 150, what="3 s after the step")
            st = c.status(clock.now())
            assert st["clock"]["correction_seconds"] == pytest.approx(1740, abs=2)
            text = format_report(
                {"server": "s1", "status_file": "", "raw_dir": "", "newest_minute": None}
                | {"status": st}
            )
            assert "CLOCK CORRECTED: filing by the wall clock +1740 s" in text
            clock.offset = timedelta(0)  # NTP sets it right
            wait_for(lambda: c.counters.clock_steps == 2, 3, "the fix noticed")
            wait_for(
                lambda: c.status(clock.now())["clock"]["correction_seconds"] == 0.0,
                3,
                "the correction back to 0",
            )
            before = c.counters.tweets_total
            wait_for(lambda: c.counters.tweets_total > before + 100, what="2 s after the fix")
    assert parts(raw) == []
    files = minute_files(raw)
    total = 0
    for minute, path in files:
        for line in lines_of(path):
            total += 1
            at = datetime.fromisoformat(line["__twarc"]["retrieved_at"])
            created = datetime.fromisoformat(line["data"]["created_at"])
            assert at.replace(second=0) == minute, (path.name, line["__twarc"])
            assert timedelta(0) <= at - created < timedelta(minutes=5), (path.name, at, created)
    assert total == c.counters.tweets_total
    minutes = [m for m, _ in files]
    assert max(minutes) - min(minutes) < timedelta(minutes=20)  # nothing filed 29 min back
    wait_for(
        lambda: any("stepped -1740 s and is wrong now" in s for s in sink.subjects()), 5, "mail"
    )
    assert "the wall clock stepped -1740 s" in caplog.text


def filed_by_the_true_time(raw, base: ScaledClock, max_late: timedelta) -> int:
    """Assert each line of the minute files under ``raw`` is filed and stamped by the true
    time (``base``'s): no file named ahead of it, each line in the minute of its retrieved_at,
    which is at most ``max_late`` after its created_at. The judge's time is a lower bound from
    whole-second created_at values: a second early at most (the hour's read window starts a
    minute early), never minutes late. Returns the number of lines."""
    assert parts(raw) == []
    total = 0
    for minute, path in minute_files(raw):
        assert minute - base.now() < timedelta(minutes=5), (path.name, path.stat().st_size)
        for line in lines_of(path):
            total += 1
            at = datetime.fromisoformat(line["__twarc"]["retrieved_at"])
            created = datetime.fromisoformat(line["data"]["created_at"])
            assert at.replace(second=0) == minute, (path.name, line["__twarc"])
            assert timedelta(seconds=-2) <= at - created < max_late, (path.name, at, created)
    return total


@pytest.mark.integration
def test_a_clock_ahead_at_start_files_every_line_under_its_true_minute(
    tmp_path, smtp, caplog
) -> None:
    """The soak's case: the collector starts on a clock set 57 min ahead while it was down; the
    stand-in runs on the true time. The first lines wait for the judge's first verdict, so
    every line, the first ones too, is filed and stamped by the true time, and no minute file
    (not even an empty one) is named 57 min ahead."""
    caplog.set_level(logging.WARNING)
    sink, port = smtp
    raw = tmp_path / "raw"
    base = ScaledClock(SPEED)
    clock = SteppedClock(base)
    clock.offset = timedelta(minutes=57)
    with Emulator(rate=500, keepalive=0.3, token=TOKEN, clock=base, seed=12) as em:
        c = make(tmp_path, em.url, clock, alerts=alerts_for(port, tmp_path, clock))
        with running(c):
            wait_for(lambda: c.counters.tweets_total > 150, what="3 s of tweets")
            st = c.status(clock.now())
            assert st["clock"]["correction_seconds"] == pytest.approx(-3420, abs=10)
    # Live tweets only: at most a minute old when they came.
    assert filed_by_the_true_time(raw, base, timedelta(minutes=1)) == c.counters.tweets_total > 150
    wait_for(lambda: any("s ahead of the tweets" in s for s in sink.subjects()), 5, "mail")
    assert "(it is ahead)" in caplog.text
    # The alert log (the health view's "alerts of 24 h", the hourly limit) keeps the true time
    # too, not the wall clock's reading (it put a soak's clock alert before its step).
    recent = json.loads((tmp_path / "alerts.json").read_text())["recent"]
    stamped = [datetime.fromisoformat(a["at"]) for a in recent if a["kind"].startswith("clock")]
    assert stamped and all(abs(at - base.now()) < timedelta(minutes=5) for at in stamped), recent


def test_lines_after_a_step_wait_for_its_verdict() -> None:
    """The full soak's case (seed 1): a collector restarted on a clock 37 min ahead; NTP steps
    it back while the stream is down. The reconnect's backfill fits neither time, so a quorum
    of it is no verdict: nothing may be filed until the live tweets decide."""
    clock = FakeClock(TRUE + timedelta(minutes=37))
    judge = ClockJudge(clock)
    judge.now()
    clock.run(5)
    clock.step(-37 * 60)
    judge.now()
    assert judge.judging is not None and not judge.started and judge.round == 1
    true = TRUE + timedelta(seconds=5)
    backfill = [api(true - timedelta(seconds=300 - 3 * i)) for i in range(100)]  # oldest first
    for created in backfill[:50]:  # 300 .. 153 s old: fits neither time
        judge.now(created)
    assert not judge.started  # a quorum came, but no verdict yet
    for created in backfill[50:]:
        judge.now(created)
    readings, true = feed(judge, clock, true, 5)
    assert judge.started and judge.correction == 0.0 and close(readings[-1], true, 3)


@pytest.mark.integration
def test_a_step_back_to_the_true_time_after_a_start_on_a_wrong_clock_files_by_the_true_time(
    tmp_path, smtp
) -> None:
    """The full soak's duplicates (seed 1): server1 restarted on a clock 37 min ahead during a
    429 storm; NTP set it right before the stream came back. The lines after the reconnect were
    filed 37 min ahead (the time from before the step went on once a quorum of the backfill had
    come), so those copies counted in the next hour too. Now they wait for the verdict."""
    _, port = smtp
    raw = tmp_path / "raw"
    base = ScaledClock(SPEED)
    clock = SteppedClock(base)
    clock.offset = timedelta(minutes=37)
    with Emulator(rate=50, keepalive=0.3, token=TOKEN, clock=base, seed=13) as em:
        em.fault("429", count=1000, client="s1")  # the stream stays away meanwhile
        c = make(
            tmp_path, em.url, clock, alerts=alerts_for(port, tmp_path, clock), backfill_minutes=5
        )
        with running(c):
            wait_for(lambda: em.stats()["attempts"].get("s1 429", 0) >= 2, 5, "refused starts")
            clock.offset = timedelta(0)  # NTP sets it right
            wait_for(lambda: c.counters.clock_steps == 1, 3, "the step noticed")
            em.clear_faults()
            wait_for(lambda: c.counters.tweets_total > 300, 10, "the backfill and live tweets")
    # The backfill: up to 5 minutes old.
    assert filed_by_the_true_time(raw, base, timedelta(minutes=6)) == c.counters.tweets_total
