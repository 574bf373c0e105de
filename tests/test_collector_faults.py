"""The collector under local faults: disk errors at rotation, a stepped clock, a kill inside a
commit, and its own retention of old minute files (issue 10, items 4, 5, 11, 14).

Disk errors are injected (``os.fsync``, ``os.link``, ``os.replace`` raising for minute files
only); the stream is the stand-in with the real twarc client, a minute lasting one second.
"""

from __future__ import annotations

import errno
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ingest.clock import ScaledClock
from ingest.collect.collector import running
from ingest.collect.minute_writer import MinuteWriter
from ingest.collect.partfiles import commit_minute, part_path, recover_partials
from ingest.collect.prune import INTERVAL, Pruner, prune_minutes
from ingest.collect.settings import CollectorSettings
from ingest.collect.status import format_report, read_status
from ingest.config import validate_config
from ingest.devtools.emulator import Emulator
from ingest.layout import minute_path
from tests.configs import minimal_config
from tests.test_collector import (
    BERLIN,
    MINUTE,
    SPEED,
    TOKEN,
    alerts_for,
    free_port,
    lines_of,
    make,
    minute_files,
    parts,
    wait_for,
)

T0 = datetime.fromisoformat("2026-01-14T10:05:00+00:00")
REAL_FSYNC, REAL_LINK, REAL_REPLACE = os.fsync, os.link, os.replace


def is_minute_file(name: str) -> bool:
    """A minute file, its .part or a temporary of its rewrite; not status or alert files."""
    return ".jsonl" in os.path.basename(name)


class DiskFault:
    """Makes ``ops`` (fsync, link, replace) of minute files fail while ``broken``, or for the
    next ``times`` calls."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        times: int | None = None,
        ops: tuple[str, ...] = ("fsync", "link", "replace"),
    ) -> None:
        self.broken = times is None
        self.times = times
        self.ops = ops
        self.failed = 0
        monkeypatch.setattr(os, "fsync", self._fsync)
        monkeypatch.setattr(os, "link", self._link)
        monkeypatch.setattr(os, "replace", self._replace)

    def _fail(self, op: str, name: str, code: int) -> None:
        if op not in self.ops or not is_minute_file(name):
            return
        if self.times is not None:
            if self.times <= 0:
                return
            self.times -= 1
        elif not self.broken:
            return
        self.failed += 1
        raise OSError(code, os.strerror(code), name)

    def _fsync(self, fd: int) -> None:
        self._fail("fsync", os.readlink(f"/proc/self/fd/{fd}"), errno.EIO)
        REAL_FSYNC(fd)

    def _link(self, src, dst, **kw) -> None:
        self._fail("link", str(dst), errno.ENOSPC)
        REAL_LINK(src, dst, **kw)

    def _replace(self, src, dst, **kw) -> None:
        self._fail("replace", str(dst), errno.ENOSPC)
        REAL_REPLACE(src, dst, **kw)


# --- item 4: a failed rotation keeps the minute -------------------------------------------


def test_failed_commit_keeps_the_minute_and_retries_with_a_backoff(tmp_path, monkeypatch) -> None:
    raw = tmp_path / "raw"
    w = MinuteWriter(raw, BERLIN)
    w.begin(T0, open_file=True)
    w.write(b'{"data": {"id": "1"}}\n')
    w.write(b'{"data": {"id": "2"}}\n')
    fault = DiskFault(monkeypatch, times=1, ops=("fsync",))
    closed = w.roll(T0 + MINUTE, open_next=True)
    final = minute_path(raw, T0, BERLIN)
    assert closed.path == final and closed.tweets == 2
    assert w.commit(mono=100.0) == [] and fault.failed == 1  # fsync failed
    assert not final.exists() and part_path(final).exists()
    assert w.is_unfinished(final) and w.retry_at == 101.0
    assert "Input/output error" in w.last_error
    w.write(b'{"data": {"id": "3"}}\n')  # the next minute goes on meanwhile
    assert w.commit(mono=100.9) == [] and fault.failed == 1  # not due: no attempt
    fault.times, fault.ops = 2, ("replace",)
    assert w.commit(mono=101.0) == [] and fault.failed == 2  # the rewrite's rename failed
    assert w.retry_at == 103.0  # 1, 2, 4 ... s
    assert w.commit(mono=103.0) == [] and fault.failed == 3
    assert w.retry_at == 107.0 and "No space left" in w.last_error
    (done,) = w.commit(mono=107.0)
    assert done.final == final and w.unfinished == [] and w.retry_at is None
    assert final.read_bytes() == b'{"data": {"id": "1"}}\n{"data": {"id": "2"}}\n'
    assert not part_path(final).exists()
    assert part_path(minute_path(raw, T0 + MINUTE, BERLIN)).read_bytes() == (
        b'{"data": {"id": "3"}}\n'
    )


def test_a_line_cut_by_a_full_disk_is_taken_back(tmp_path, monkeypatch) -> None:
    """The disk fills in the middle of a line: that line is lost, the next ones stay whole."""
    w = MinuteWriter(tmp_path / "raw", BERLIN)
    w.begin(T0, open_file=True)
    real_write, calls = os.write, []

    def write(fd, data):
        calls.append(len(data))
        if len(calls) == 2:
            return real_write(fd, bytes(data[:10]))  # a short write...
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # ...then the disk is full
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    w.write(b'{"data": {"id": "1"}}\n')
    with pytest.raises(OSError):
        w.write(b'{"data": {"id": "2", "text": "cut by a full disk"}}\n')
    w.write(b'{"data": {"id": "3"}}\n')
    monkeypatch.undo()
    data = part_path(minute_path(tmp_path / "raw", T0, BERLIN)).read_bytes()
    assert data == b'{"data": {"id": "1"}}\n{"data": {"id": "3"}}\n'
    assert w.tweets == 2


@pytest.mark.integration
def test_disk_errors_at_rotation_lose_nothing_alert_and_never_reconnect(
    tmp_path, monkeypatch, smtp
) -> None:
    sink, port = smtp
    raw = tmp_path / "raw"
    clock = ScaledClock(SPEED)
    status_file = tmp_path / "status" / "s1.json"
    with Emulator(rate=50, keepalive=0.3, token=TOKEN, clock=clock, seed=3) as em:
        c = make(tmp_path, em.url, clock, alerts=alerts_for(port, tmp_path, clock))
        with running(c):
            wait_for(lambda: minute_files(raw), what="a first minute file")
            fault = DiskFault(monkeypatch)
            # Minutes close while the disk fails; the status lists them, waiting.
            wait_for(
                lambda: len((read_status(status_file) or {})["unwritten_minutes"]["minutes"]) >= 3,
                what="three unwritten minutes in the status",
            )
            st = read_status(status_file)
            assert "Input/output error" in st["unwritten_minutes"]["error"]
            assert st["last_minute"]["written"] is False
            waiting = [datetime.fromisoformat(m) for m in st["unwritten_minutes"]["minutes"]]
            for m in waiting:
                assert part_path(minute_path(raw, m, BERLIN)).exists()
                assert not minute_path(raw, m, BERLIN).exists()
            wait_for(lambda: "cannot write minute files" in " ".join(sink.subjects()), 5, "mail")
            fault.broken = False
            wait_for(
                lambda: read_status(status_file)["unwritten_minutes"]["minutes"] == [],
                what="the waiting minutes written",
            )
            for m in waiting:
                assert minute_path(raw, m, BERLIN).exists()
            wait_for(lambda: "written again" in " ".join(sink.subjects()), 5, "all-clear mail")
        assert fault.failed >= 3
        assert em.accepted("s1") == 1  # one connection: a disk error is not the network's
    assert parts(raw) == []
    assert c.counters.reconnects == 0
    files = minute_files(raw)
    minutes = [m for m, _ in files]
    assert all(b - a == MINUTE for a, b in zip(minutes, minutes[1:], strict=False))  # no gap
    assert sum(len(lines_of(p)) for _, p in files) == c.counters.tweets_total
    assert c.counters.write_errors == 0
    subjects = " | ".join(sink.subjects())
    assert subjects.count("cannot write minute files") == 1, subjects


# --- one unwritable minute never blocks the others (the soak) -------------------------------


def plant(final: Path, kind: str) -> None:
    """Something that is not a minute file at a minute's final name."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if kind == "directory":
        final.mkdir()
    elif kind == "symlink":
        (final.parent / "elsewhere").write_bytes(b"not tweets\n")
        final.symlink_to("elsewhere")
    else:
        os.mkfifo(final)  # opening it would hang the writer


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("kind", "what"),
    [("directory", "a directory"), ("symlink", "a symbolic link"), ("fifo", "a FIFO")],
)
def test_a_minute_whose_name_is_taken_waits_and_the_later_ones_are_written(
    tmp_path, kind, what
) -> None:
    raw = tmp_path / "raw"
    w = MinuteWriter(raw, BERLIN)
    w.begin(T0, open_file=True)
    for i in range(4):  # minutes T0 .. T0+3, one line each
        w.write(b'{"data": {"id": "%d"}}\n' % i)
        w.roll(T0 + (i + 1) * MINUTE, open_next=True)
    taken = minute_path(raw, T0 + MINUTE, BERLIN)
    plant(taken, kind)
    done = w.commit(mono=100.0)
    # Every other minute is written, older and newer.
    for i in (0, 2, 3):
        assert minute_path(raw, T0 + i * MINUTE, BERLIN).read_bytes() == (
            b'{"data": {"id": "%d"}}\n' % i
        )
    assert len(done) == 3 and [u.final for u in w.unfinished] == [taken]
    (u,) = w.unfinished
    assert u.taken == what and str(taken) in u.error and what in u.error
    assert part_path(taken).read_bytes() == b'{"data": {"id": "1"}}\n'
    if kind == "symlink":
        assert taken.is_symlink() and (raw / taken.parent / "elsewhere").read_bytes() == (
            b"not tweets\n"
        )
    assert w.retry_at == 101.0 and not w.disk_failing
    assert w.commit(mono=101.0) == [] and w.retry_at == 102.0  # every second, no back-off
    taken.unlink() if kind != "directory" else taken.rmdir()  # the operator moves it away
    (done,) = w.commit(mono=102.0)
    assert done.final == taken and w.unfinished == []
    assert taken.read_bytes() == b'{"data": {"id": "1"}}\n' and not part_path(taken).exists()


def test_minutes_retry_on_their_own_back_off(tmp_path, monkeypatch) -> None:
    """A minute that failed twice does not delay a minute that failed once, nor one that
    never failed."""
    raw = tmp_path / "raw"
    w = MinuteWriter(raw, BERLIN)
    w.begin(T0, open_file=True)
    w.write(b'{"data": {"id": "0"}}\n')
    w.roll(T0 + MINUTE, open_next=True)
    fault = DiskFault(monkeypatch)
    assert w.commit(mono=100.0) == []  # T0 fails: next at 101
    assert w.commit(mono=101.0) == []  # T0 fails again: next at 103
    w.write(b'{"data": {"id": "1"}}\n')
    w.roll(T0 + 2 * MINUTE, open_next=True)
    assert w.commit(mono=101.5) == []  # T0+1 tried at once, fails: next at 102.5
    first, second = w.unfinished
    assert (first.retry_at, second.retry_at) == (103.0, 102.5) and w.retry_at == 102.5
    fault.broken = False
    (done,) = w.commit(mono=102.5)  # only T0+1 is due
    assert done.final == minute_path(raw, T0 + MINUTE, BERLIN) and w.unfinished == [first]
    first.failures = 5000  # a disk failing for days: the back-off stays at its cap
    fault.broken = True
    assert w.commit(mono=103.0) == [] and first.retry_at == 163.0
    fault.broken = False
    (done,) = w.commit(mono=163.0)
    assert done.final == minute_path(raw, T0, BERLIN) and w.unfinished == []


def test_recovery_leaves_a_minute_whose_name_is_taken_for_the_collector(tmp_path) -> None:
    """A restart must not fail on it (the soak kills collectors), nor lose its lines."""
    raw = tmp_path / "raw"
    taken, other = minute_path(raw, T0, BERLIN), minute_path(raw, T0 + MINUTE, BERLIN)
    plant(taken, "directory")
    part_path(taken).write_bytes(b'{"data": {"id": "1"}}\n{"data": {"id": "2", "te')
    part_path(other).write_bytes(b'{"data": {"id": "3"}}\n')
    rec = recover_partials(raw)
    assert other.read_bytes() == b'{"data": {"id": "3"}}\n'
    assert rec.waiting == [(taken, 1)] and rec.dropped_lines == 1 and rec.files == 1
    assert part_path(taken).read_bytes() == b'{"data": {"id": "1"}}\n'  # the cut line gone
    w = MinuteWriter(raw, BERLIN)
    w.adopt(taken, 1)
    assert w.commit(mono=0.0) == [] and w.unfinished[0].taken == "a directory"
    taken.rmdir()
    (done,) = w.commit(mono=1.0)
    assert done.minute == T0 and taken.read_bytes() == b'{"data": {"id": "1"}}\n'


@pytest.mark.integration
def test_a_taken_minute_name_is_alerted_and_blocks_nothing(tmp_path, smtp) -> None:
    """The soak's case: a directory at a future minute's name. Later minutes are written as
    usual (the pull takes only *.jsonl), the operator is told which path to move, and the
    minute is written once it is moved."""
    sink, port = smtp
    raw = tmp_path / "raw"
    clock = ScaledClock(SPEED)
    status_file = tmp_path / "status" / "s1.json"
    with Emulator(rate=50, keepalive=0.3, token=TOKEN, clock=clock, seed=9) as em:
        c = make(tmp_path, em.url, clock, alerts=alerts_for(port, tmp_path, clock))
        minute = clock.now().replace(second=0, microsecond=0) + 2 * MINUTE
        taken = minute_path(raw, minute, BERLIN)
        plant(taken, "directory")
        with running(c):
            later = [minute_path(raw, minute + i * MINUTE, BERLIN) for i in (1, 2, 3)]
            wait_for(lambda: all(p.is_file() for p in later), what="three later minutes written")
            st = read_status(status_file)
            assert st["unwritten_minutes"]["taken"] == [{"file": str(taken), "is": "a directory"}]
            wait_for(
                lambda: [m for m in sink.messages if "name is taken" in str(m["Subject"])],
                5,
                "the mail",
            )
            (mail,) = [m for m in sink.messages if "name is taken" in str(m["Subject"])]
            body = mail.get_content()
            assert str(taken) in body and "Move the entry away" in body and "directory" in body
            assert part_path(taken).stat().st_size > 0
            taken.rmdir()
            wait_for(taken.is_file, 5, "the minute written once its name is free")
    assert all(retrieved_minute(x) == minute for x in lines_of(taken)) and lines_of(taken)
    assert parts(raw) == []
    subjects = " | ".join(sink.subjects())
    assert subjects.count("name is taken") == 1 and "cannot write minute files" not in subjects


# --- item 11: a stepped wall clock ---------------------------------------------------------


class SteppedClock:
    """``base`` with a wall-clock offset the test steps; its monotonic clock does not move."""

    def __init__(self, base: ScaledClock) -> None:
        self.base = base
        self.speed = base.speed
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return self.base.now() + self.offset

    def monotonic(self) -> float:
        return self.base.monotonic()


def retrieved_minute(line: dict) -> datetime:
    at = datetime.fromisoformat(line["__twarc"]["retrieved_at"])
    return at.replace(second=0, microsecond=0)


@pytest.mark.integration
def test_a_step_the_stream_agrees_with_files_each_line_under_its_own_minute(
    tmp_path, smtp, caplog
) -> None:
    """Steps that set the clock right (NTP, a resumed VM): the stand-in's tweets follow the
    stepped clock, so the collector accepts each new reading. (A step the stream contradicts
    is corrected: tests/test_collector_clock.py.)"""
    caplog.set_level(logging.WARNING)
    sink, port = smtp
    raw = tmp_path / "raw"
    base = ScaledClock(SPEED)
    clock = SteppedClock(base)
    with Emulator(rate=50, keepalive=0.3, token=TOKEN, clock=clock, seed=5) as em:
        c = make(tmp_path, em.url, clock, alerts=alerts_for(port, tmp_path, clock))
        with running(c):
            wait_for(lambda: len(minute_files(raw)) >= 3, what="three minute files")
            clock.offset = timedelta(seconds=-150)  # back into minutes already written
            wait_for(lambda: c.counters.clock_steps == 1, 3, "the step back noticed")
            before = c.counters.tweets_total
            wait_for(lambda: c.counters.tweets_total > before + 150, what="3 s after the step")
            clock.offset += timedelta(hours=2)  # a VM resumed two hours later
            wait_for(lambda: c.counters.clock_steps == 2, 3, "the step forward noticed")
            before = c.counters.tweets_total
            wait_for(lambda: c.counters.tweets_total > before + 150, what="3 s after the step")
    files = minute_files(raw)
    assert parts(raw) == []
    for minute, path in files:
        lines = lines_of(path)
        wrong = [x["__twarc"]["retrieved_at"] for x in lines if retrieved_minute(x) != minute]
        assert not wrong, (path.name, wrong[:3], len(wrong))
    # The step back made second parts: some minutes hold lines received 2.5 minutes apart.
    assert sum(len(lines_of(p)) for _, p in files) == c.counters.tweets_total
    minutes = [m for m, _ in files]
    assert max(minutes) - min(minutes) >= timedelta(hours=2)
    status = c.status(clock.now())
    assert status["clock_steps"] == 2
    assert status["last_clock_step"]["seconds"] == pytest.approx(7200, abs=90)
    assert "the wall clock stepped -1" in caplog.text  # about -150 s, scheduling aside
    wait_for(lambda: len([s for s in sink.subjects() if "clock stepped" in s]) == 2, 5, "mails")


# --- item 5: a minute file is never replaced by less ---------------------------------------


def test_commit_never_replaces_a_minute_file_that_appeared_meanwhile(tmp_path, monkeypatch) -> None:
    """However ``final`` came to exist between the check and the commit, it is appended to."""
    final, part = tmp_path / "m.jsonl", tmp_path / "m.jsonl.part"
    part.write_bytes(b"second\n")

    def appear_first(real):
        def call(src, dst, **kw):
            if Path(dst) == final and not final.exists():
                final.write_bytes(b"first\n")
            return real(src, dst, **kw)

        return call

    monkeypatch.setattr(os, "link", appear_first(REAL_LINK))
    monkeypatch.setattr(os, "replace", appear_first(REAL_REPLACE))
    commit_minute(part, final)
    assert final.read_bytes() == b"first\nsecond\n" and not part.exists()


class Killed(BaseException):
    """What a kill -9 does to the code that runs: it stops there."""


KILL_POINTS = ("link", "unlink", "replace", "rename", "fsync", "write", "open")


def commit_killed_at(k: int, part: Path, final: Path) -> bool:
    """``commit_minute``, killed before its ``k``-th file-system call; True if it completed."""
    count = 0

    def killer(name: str, fn):
        def call(*a, **kw):
            nonlocal count
            count += 1
            if count == k:
                raise Killed(name)
            return fn(*a, **kw)

        return call

    with pytest.MonkeyPatch.context() as mp:
        for name in KILL_POINTS:
            mp.setattr(os, name, killer(name, getattr(os, name)))
        try:
            commit_minute(part, final)
        except Killed:
            return False
    return True


@pytest.mark.parametrize("existing", [b"", b'{"data": {"id": "1"}}\n{"data": {"id": "2"}}\n', None])
def test_a_kill_at_any_point_of_a_commit_leaves_a_whole_file(tmp_path, existing) -> None:
    """Kill the commit before each file-system call in turn; then the restart's recovery."""
    new = b'{"data": {"id": "3"}}\n{"data": {"id": "4"}}\n'
    whole = (existing or b"") + new
    k = 0
    while True:
        k += 1
        raw = tmp_path / f"raw{k}"
        final = minute_path(raw, T0, BERLIN)
        final.parent.mkdir(parents=True)
        if existing is not None:
            final.write_bytes(existing)
        part_path(final).write_bytes(new)
        completed = commit_killed_at(k, part_path(final), final)
        after = final.read_bytes() if final.exists() else None
        assert after in ({whole} if completed else {existing, whole}), (k, after)
        recover_partials(raw)  # the restart
        assert final.read_bytes() == whole, k
        assert sorted(p.name for p in final.parent.iterdir()) == [final.name], k
        if completed:
            break
    assert k > 3  # the kill really landed inside the commit several times


# --- item 14: the collector's own retention --------------------------------------------------


def old_minute(raw: Path, minute: datetime, mtime: datetime) -> Path:
    p = minute_path(raw, minute, BERLIN)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b'{"data": {"id": "1"}}\n')
    os.utime(p, (mtime.timestamp(), mtime.timestamp()))
    return p


def test_pruning_removes_only_old_finished_minute_files(tmp_path) -> None:
    raw = tmp_path / "raw"
    now = T0
    old, young = now - timedelta(days=31), now - timedelta(days=29)
    gone = old_minute(raw, old, old)
    lone = old_minute(raw, old - timedelta(days=1), old)  # alone in its hour and day
    kept = [
        old_minute(raw, old + MINUTE, young),  # an old name, written recently (a wrong clock)
        old_minute(raw, young, old),  # a young name, an old mtime (copied with -a)
        old_minute(raw, now, now),
    ]
    protected = old_minute(raw, old + 2 * MINUTE, old)
    others = [gone.parent / "notes.txt", part_path(gone), gone.parent / f".{gone.name}.tmp-1"]
    for p in others:
        p.write_bytes(b"x")
        os.utime(p, (old.timestamp(), old.timestamp()))
    done = prune_minutes(raw, BERLIN, now - timedelta(days=30), protect={protected})
    assert done.files == 2 and not done.more
    assert not gone.exists() and not lone.exists()
    assert not lone.parent.exists() and not lone.parent.parent.exists()  # emptied folders
    for p in [*kept, protected, *others]:
        assert p.exists(), p
    # A backlog goes in batches.
    for i in range(5):
        old_minute(raw, old + (10 + i) * MINUTE, old)
    assert prune_minutes(raw, BERLIN, now - timedelta(days=30), batch=3).more


def test_pruner_runs_at_most_once_an_hour_by_its_monotonic_clock(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    raw = tmp_path / "raw"
    old = T0 - timedelta(days=8)
    pruner = Pruner(raw, BERLIN, keep_days=7)
    old_minute(raw, old, old)
    assert pruner.run(T0, 1000.0, set()).files == 1
    assert "pruned 1 minute file(s)" in caplog.text
    second = old_minute(raw, old + MINUTE, old)
    later = T0 + timedelta(days=1)  # even a wall clock stepped a day ahead: not before an hour
    assert pruner.run(later, 1000.0 + INTERVAL.total_seconds() - 1, set()) is None
    assert second.exists()
    assert pruner.run(T0, 1000.0 + INTERVAL.total_seconds(), set()).files == 1
    assert not second.exists() and pruner.total.files == 2
    # A clock step postpones the next pass by an hour from the step.
    third = old_minute(raw, old + 2 * MINUTE, old)
    pruner.postpone(1000.0 + 2 * INTERVAL.total_seconds() - 10)
    assert pruner.run(T0, 1000.0 + 2 * INTERVAL.total_seconds(), set()) is None
    assert pruner.run(T0, 1000.0 + 3 * INTERVAL.total_seconds() - 10, set()).files == 1
    assert not third.exists()
    off = Pruner(raw, BERLIN, keep_days=0)
    old_minute(raw, old, old)
    assert off.run(T0, 0.0, set()) is None


@pytest.mark.integration
def test_the_collector_prunes_its_old_minute_files(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    raw = tmp_path / "raw"
    clock = ScaledClock(SPEED)
    now = clock.now()
    old = now - timedelta(days=3)
    stale, fresh = old_minute(raw, old, old), old_minute(raw, now - timedelta(hours=1), now)
    url = f"http://127.0.0.1:{free_port()}/2/tweets/sample/stream"  # nobody there
    c = make(tmp_path, url, clock, keep_raw_days=2)
    with running(c):
        wait_for(lambda: not stale.exists(), 5, "the old file pruned")
    assert fresh.exists()
    assert c.status(clock.now())["pruned"]["files"] == 1
    assert "pruned 1 minute file(s)" in caplog.text


def test_status_report_names_unwritten_minutes_clock_steps_and_pruning() -> None:
    status = {
        "state": "running",
        "connected_since": "2026-01-14T10:00:00+00:00",
        "unwritten_minutes": {
            "minutes": ["2026-01-14T11:05:00+01:00", "2026-01-14T11:06:00+01:00"],
            "error": "2026-01-14T1105+0100.jsonl: OSError: [Errno 28] No space left on device",
        },
        "clock_steps": 1,
        "last_clock_step": {"at": "2026-01-14T10:07:00+00:00", "seconds": -3600.2},
        "pruned": {"files": 1440, "last_at": "2026-01-14T10:00:00+00:00", "keep_raw_days": 30},
    }
    report = {"server": "s2", "status_file": "s2.json", "raw_dir": "/raw", "newest_minute": None}
    text = format_report({**report, "status": status})
    assert (
        "NOT WRITTEN: 2 closed minute(s), 2026-01-14T11:05:00+01:00 to 2026-01-14T11:06:00+01:00"
        ", kept in .part files and retried: 2026-01-14T1105+0100.jsonl: OSError: [Errno 28]"
    ) in text
    assert "clock steps: 1, last -3600 s at 2026-01-14T10:07:00+00:00" in text
    assert "pruned: 1440 minute file(s) older than 30 days since start" in text
    quiet = format_report({**report, "status": {"state": "running"}})
    assert "NOT WRITTEN" not in quiet and "clock steps" not in quiet and "pruned" not in quiet


def test_only_a_pulled_server_prunes_its_own_minute_files(tmp_path):
    # On the primary the workflow's retention deletes a raw file once its tweets are in the
    # vault; pruning by age there could delete minutes a broken build never took in.
    config = validate_config(
        minimal_config(
            tmp_path,
            servers=[
                {"name": "server1", "raw_dir": str(tmp_path / "r1")},
                {"name": "server2", "raw_dir": str(tmp_path / "r2"), "rsync_from": "h:/r2/"},
            ],
        ),
        "test config",
    )
    assert CollectorSettings.from_config(config, "server1").keep_raw_days == 0
    assert CollectorSettings.from_config(config, "server2").keep_raw_days == 30
