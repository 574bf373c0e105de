"""The always-on collector: the sampled stream into one file per minute, reconnecting forever.

Threads:
- the stream thread runs twarc's generator (``StreamClient.sample``) and appends each tweet
  line to the current minute's in-progress file, reconnecting after every error with X's
  backoff (``Backoff``);
- the rotation thread closes each minute when the minute ends by the clock, whether tweets
  arrive or not (the stream thread also rotates when a tweet arrives after the boundary, so a
  line always lands in the file of the minute it was stamped with);
- the main thread (``run``) waits for ``stop()`` (SIGTERM/SIGINT in the CLI), then closes the
  current minute as a complete file.

Files: a minute is written to ``{final}.part`` (unbuffered writes of whole lines, so a killed
process leaves complete lines) and at the minute's end fsynced and linked to ``final``
(``layout.minute_path``). A file is created once the stream is connected in that minute, so an
empty file means "connected, nothing came" and a missing file "not connected". If ``final``
already exists (a restart within the same minute), the new lines are appended to it by an
atomic rewrite; a minute file is never replaced by one with less in it (``commit_minute``).
``recover_partials`` turns ``.part`` files left by a crash into complete files. A minute whose
file cannot be written (disk full, I/O error) keeps its lines in ``.part`` and is retried with
a back-off until the file exists (``MinuteWriter``); the status lists it and an alert goes out.
A local disk error never costs a reconnect. Old minute files are pruned (``prune.Pruner``,
``stream.keep_raw_days``).

Time: every instant comes from ``clock``; waits are converted to real seconds by the clock's
``speed`` (``ScaledClock``), so tests and the demo run minutes of a few seconds through the
same code. Backoff delays are multiplied by ``backoff_scale``. A line is filed under the minute
the collector's time says when it is received (the reading that stamps its ``retrieved_at``),
so a stepped clock closes the current minute under its own name and starts the one the new
reading says, never piling minutes into one file. The collector's time is the wall clock as
judged by the stream (``clockjudge.ClockJudge``): a step of more than a minute, noticed against
the clock's ``monotonic()``, is accepted when the tweets that come next agree with the new
reading, and corrected (the time from before the step goes on) when they agree with the old
one; a clock found behind the tweets, or more than ``clockjudge.AHEAD_LIMIT`` ahead of them, is
corrected too. The lines received before the judge's first verdict (its first ``QUORUM`` tweets,
or a few seconds) are held in memory and filed by the judged time, and no minute is begun by
the unjudged time meanwhile. Steps and verdicts are logged, alerted and shown in the status.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import requests

from ingest.atomic import atomic_write, fsync_dir
from ingest.clock import Clock, SystemClock
from ingest.collect.clockjudge import ClockJudge, Step, Verdict
from ingest.collect.prune import Pruner
from ingest.collect.status import status_path, write_status
from ingest.collect.stream_client import HTTPStatusError, NetworkError, StreamClient, protect_logs
from ingest.config import server as server_config
from ingest.config import timezone
from ingest.layout import MINUTE, hour_of, minute_path, parse_minute_name
from ingest.locks import LockBusy, exclusive_lock
from ingest.notify import Alerts, DisconnectTracker
from ingest.secrets import read_secret

PART = ".part"
TOKEN_ENV = "TWITTER_BEARER_TOKEN"
TOKEN_WHAT = "stream.bearer_token_file"

log = logging.getLogger(__name__)


class SetupError(ValueError):
    """The collector cannot run with this setup (raw_dir unusable, another collector on it)."""


# --- time -----------------------------------------------------------------------------------


def real_seconds(clock: Clock, seconds: float) -> float:
    """Real seconds until ``seconds`` of ``clock`` time have passed."""
    return seconds / getattr(clock, "speed", 1.0)


def stamp(instant: datetime) -> str:
    """twarc's ``retrieved_at`` format: UTC, whole seconds, ``+00:00``."""
    return instant.astimezone(UTC).isoformat(timespec="seconds")


# --- reconnect policy -----------------------------------------------------------------------

# X's reconnect guidance (filtered/sampled stream docs): back off linearly for network errors
# (250 ms steps up to 16 s), exponentially for HTTP errors (from 5 s up to 320 s) and for 429
# (from one minute). Auth failures are retried slowly: the token file may be restored.
POLICIES: dict[str, tuple[str, float, float]] = {
    "network": ("linear", 0.25, 16.0),
    "http": ("exponential", 5.0, 320.0),
    "rate_limit": ("exponential", 60.0, 960.0),
    "auth": ("exponential", 60.0, 900.0),
}


class Backoff:
    """Delays before reconnecting, per kind of failure; ``reset()`` once tweets flow again."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.attempts: dict[str, int] = {}

    def next(self, kind: str) -> float:
        shape, first, cap = POLICIES[kind]
        n = self.attempts[kind] = self.attempts.get(kind, 0) + 1
        base = first * n if shape == "linear" else first * 2 ** (n - 1)
        return min(base, cap) * self.scale

    def reset(self) -> None:
        self.attempts.clear()


# --- minute files ---------------------------------------------------------------------------


def part_path(final: Path) -> Path:
    return final.with_name(final.name + PART)


class NameTaken(OSError):
    """A minute's final name is held by something that is not a regular file (a directory, a
    link, a FIFO ...): the minute cannot be written until that is moved away."""

    def __init__(self, final: Path, what: str) -> None:
        super().__init__(errno.EEXIST, f"{final} is {what}, not a minute file")
        self.final, self.what = final, what


def _kind(mode: int) -> str:
    for test, what in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return what
    return "not a regular file"


def _read_final(final: Path) -> tuple[bytes, os.stat_result] | None:
    """``final``'s bytes and stat; None if it does not exist. Raises NameTaken for anything but
    a regular file, which is never opened (no link followed, no FIFO or device read)."""
    try:
        st = os.lstat(final)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise NameTaken(final, _kind(st.st_mode))
    try:
        fd = os.open(final, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None  # removed meanwhile (a pull)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise NameTaken(final, "a symbolic link") from None
        raise
    with open(fd, "rb") as f:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):  # replaced between the lstat and the open
            raise NameTaken(final, _kind(fst.st_mode))
        return f.read(), fst


def commit_minute(part: Path, final: Path, data: bytes | None = None) -> None:
    """Make ``part``'s lines (or ``data``) the complete file ``final``, then remove ``part``.

    ``final`` is never replaced by less than it holds. If it exists (a restart within the same
    minute, a clock stepped back into a minute already written) the lines are appended: the
    concatenation goes to a temporary file, is fsynced and renamed over ``final``. Otherwise
    ``part`` is hard-linked to ``final``: unlike a rename, a link fails if ``final`` appeared
    meanwhile, and then the lines are appended. Only the collector (one per raw_dir) creates
    minute files; a pull may remove ``final`` at any moment, which at worst brings back the old
    lines with the new ones, never fewer. A kill at any point leaves the old whole file or the
    new whole file, and ``part``, which the next start commits again: lines that ``final``
    already ends with are not added twice. A ``final`` that is not a regular file is never
    touched: NameTaken is raised and ``part`` stays.
    """
    if data is None:
        try:
            os.link(part, final)
        except OSError:  # final exists, or a file system without hard links: append
            data = part.read_bytes()
        else:
            os.unlink(part)
            fsync_dir(final.parent)
            return
    part_stat = os.stat(part)  # no part: an error, never an empty commit
    found = _read_final(final)
    if found is not None and os.path.samestat(found[1], part_stat):
        os.unlink(part)  # linked by a commit killed before its unlink
        return
    old = found[0] if found is not None else None
    if old is None:
        atomic_write(final, data)
    elif not old.endswith(data):
        atomic_write(final, old + data)
    os.unlink(part)
    fsync_dir(final.parent)


def complete_lines(data: bytes) -> tuple[bytes, int]:
    """The complete JSON lines of ``data`` and how many lines were dropped (cut or garbled)."""
    *lines, tail = data.split(b"\n")
    dropped = 1 if tail.strip() else 0
    kept = []
    for line in lines:
        if not line.strip():
            continue
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            dropped += 1
            continue
        kept.append(line + b"\n")
    return b"".join(kept), dropped


@dataclass
class Recovery:
    files: int = 0
    lines: int = 0
    dropped_lines: int = 0
    # (final, lines) of minutes whose final name is taken (NameTaken): left in .part, retried
    waiting: list[tuple[Path, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"files": self.files, "lines": self.lines, "dropped_lines": self.dropped_lines}


def recover_partials(raw_dir: Path, logger: logging.Logger = log) -> Recovery:
    """Complete the ``.part`` files a killed collector left in ``raw_dir``.

    Complete lines are kept under the final ``.jsonl`` name; a cut last line (or a line that
    is not JSON, as after a power loss) is dropped and counted. A minute whose final name is
    taken by something that is not a regular file stays in ``.part`` (cleaned) and is listed in
    ``waiting``, for the collector to retry. Run only while holding the raw_dir lock: every
    ``.part`` file is then a leftover.
    """
    rec = Recovery()
    root = Path(raw_dir)
    # Interrupted rewrites: of a minute file (commit_minute), of a part (cleaned below).
    for pattern in ("*/*/.*.jsonl.tmp-*", f"*/*/.*.jsonl{PART}.tmp-*"):
        for tmp in root.glob(pattern):
            tmp.unlink(missing_ok=True)
    for part in sorted(root.glob(f"*/*/*.jsonl{PART}")):
        final = part.with_name(part.name[: -len(PART)])
        data, dropped = complete_lines(part.read_bytes())
        n = data.count(b"\n")
        try:
            commit_minute(part, final, data)
        except NameTaken as e:
            if dropped:
                atomic_write(part, data)
            rec.waiting.append((final, n))
            rec.dropped_lines += dropped
            logger.error("cannot recover %s: %s; its %d line(s) wait in %s", final, e, n, part)
            continue
        rec.files += 1
        rec.lines += n
        rec.dropped_lines += dropped
        logger.warning(
            "recovered %s: %d complete line(s) kept, %d cut or garbled line(s) dropped",
            final,
            n,
            dropped,
        )
    return rec


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


@dataclass
class Rotation:
    """What one look at the minute files did (``Collector._rotate_locked``); copies, read
    outside the lock."""

    closed: ClosedMinute | None
    written: list[Unfinished]
    failed: list[Unfinished]  # attempts that failed in this look
    unfinished: int
    disk_waiting: bool  # an unfinished minute failed for another reason than a taken name


# Retries of unfinished minutes, in seconds of the collector's monotonic clock: 1, 2, 4 ... 60.
RETRY_FIRST, RETRY_CAP = 1.0, 60.0


@dataclass
class Filed:
    """A line filed (or a rotation only: ``written`` False, no error), for the after-lock work."""

    at: datetime
    rotation: Rotation
    written: bool
    error: OSError | None = None


HOLD_MAX = 1000  # lines held at most before the judge's verdict (it comes after QUORUM)


class MinuteWriter:
    """The current minute's in-progress file and the closed minutes not yet written.

    Not thread-safe: the collector holds a lock. Times are passed in: ``now`` (the collector's
    time, names the minute) and ``mono`` (monotonic, paces retries).

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


# --- the collector --------------------------------------------------------------------------


class _OperationalDisconnect(Exception):
    pass


def _disconnect_message(item: dict[str, Any]) -> str | None:
    for error in item.get("errors") or []:
        if not isinstance(error, dict):
            continue
        if error.get("disconnect_type") == "OperationalDisconnect" or (
            error.get("title") == "operational-disconnect"
        ):
            return error.get("detail") or error.get("title") or "operational disconnect"
    return None


@dataclass(frozen=True)
class CollectorSettings:
    """What one collector is told. ``from_config`` reads the loaded config (its defaults are the
    schema's); the last four are not in the config: tests and the demo shorten them."""

    server: str
    raw_dir: Path
    tz: ZoneInfo
    stream_url: str
    backfill_minutes: int
    expansions: str
    tweet_fields: str
    user_fields: str
    stall_seconds: float
    alert_after_minutes: float
    status_file: Path | None
    keep_raw_days: float
    connect_timeout: float = 10.0
    backoff_scale: float = 1.0
    recovered_after_seconds: float = 120.0
    fsync: bool = True

    @classmethod
    def from_config(
        cls, config: dict[str, Any], server_name: str, **overrides: Any
    ) -> CollectorSettings:
        """``server_name``'s settings, ``overrides`` replacing any of them. Raises ConfigError."""
        srv = server_config(config, server_name)
        stream = config["stream"]
        chosen: dict[str, Any] = {
            "server": server_name,
            "raw_dir": Path(srv["raw_dir"]),
            "tz": timezone(config),
            "stream_url": stream["url"],
            "backfill_minutes": stream["backfill_minutes"],
            "expansions": stream["expansions"],
            "tweet_fields": stream["tweet_fields"],
            "user_fields": stream["user_fields"],
            "stall_seconds": float(stream["stall_seconds"]),
            "alert_after_minutes": config["email"]["alert_after_minutes"],
            "status_file": status_path(config, server_name),
            # Only a pulled server prunes itself: on the primary the workflow's retention deletes
            # a raw file once its tweets are in the vault, and age alone must not.
            "keep_raw_days": float(stream["keep_raw_days"]) if srv.get("rsync_from") else 0.0,
        }
        return cls(**{**chosen, **overrides})


@dataclass
class CollectorCounters:
    """What happened since the collector started: the status file and the logs report these."""

    started_at: datetime | None = None
    connected_since: datetime | None = None
    last_tweet_at: datetime | None = None
    last_keepalive_at: datetime | None = None
    last_error: dict[str, str] | None = None
    connections: int = 0
    reconnects: int = 0
    tweets_total: int = 0
    malformed_lines: int = 0
    messages: int = 0  # stream messages without data (not written)
    write_errors: int = 0
    last_minute: dict[str, Any] | None = None
    hour_label: str | None = None
    hour_tweets: int = 0
    recovery: Recovery = field(default_factory=Recovery)
    clock_steps: int = 0
    last_clock_step: dict[str, Any] | None = None


class Collector:
    """One server's collector. ``prepare()`` then ``run()`` (blocks until ``stop()``)."""

    def __init__(
        self,
        settings: CollectorSettings,
        token_source: Callable[[], str],
        *,
        clock: Clock | None = None,
        alerts: Alerts | None = None,
    ) -> None:
        self.settings = settings
        self.token_source = token_source
        self.clock = clock or SystemClock()
        self.backoff = Backoff(settings.backoff_scale)
        self.alerts = alerts
        self.tracker = (
            DisconnectTracker(
                alerts,
                settings.server,
                settings.alert_after_minutes,
                settings.recovered_after_seconds,
                nowait=True,
            )
            if alerts
            else None
        )
        # Set to 0 if the API refuses backfill (not every access level has it).
        self.backfill_minutes = settings.backfill_minutes

        self._token = token_source()  # raises SecretError: bad config, before anything starts
        protect_logs(self._token)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the writer, connected and the counters' minute fields
        self._track_lock = threading.Lock()
        self._writer = MinuteWriter(settings.raw_dir, settings.tz, settings.fsync)
        self._pruner = Pruner(settings.raw_dir, settings.tz, settings.keep_raw_days)
        self._judge = ClockJudge(self.clock)  # the time minutes are filed and stamped by
        # Lines received before the judge's verdict (after the start, after a step), with their
        # monotonic reading: filed by the judged time once it is in, so no line goes under an
        # unjudged clock. None: filing as they come.
        self._held: list[tuple[dict[str, Any], float]] | None = []
        self._round = 0  # the judge's round the holding was last begun for
        self._disk_alerted = False  # an alert about unwritten minute files went out
        self._taken_alerted: set[Path] = set()  # minute files whose taken name was alerted
        self._raw_lock: contextlib.ExitStack | None = None
        self._threads: list[threading.Thread] = []
        self._client: StreamClient | None = None
        self.stop_reason: str | None = None
        self.connected = False
        self.counters = CollectorCounters()
        self._backfill_logged = False
        self._reload_token_first = False

    # -- construction from the config ------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        server_name: str,
        *,
        clock: Clock | None = None,
        **overrides: Any,
    ) -> Collector:
        """The collector of ``server_name`` in the loaded config; ``overrides`` replace settings.

        Raises ConfigError, SecretError or MailConfigError for a config it cannot run.
        """
        settings = CollectorSettings.from_config(config, server_name, **overrides)
        clock = clock or SystemClock()
        token_file = config["stream"].get("bearer_token_file")

        def token_source() -> str:
            return read_secret(token_file, TOKEN_ENV, TOKEN_WHAT)

        state = status_path(config, server_name).with_name(f"{server_name}.alerts.json")
        alerts = Alerts.from_config(config["email"], state, clock)
        return cls(settings, token_source, clock=clock, alerts=alerts)

    # -- lifecycle ---------------------------------------------------------------------------

    def prepare(self) -> Recovery:
        """Take raw_dir (one collector per directory) and recover leftovers of a crash."""
        lock = contextlib.ExitStack()
        try:
            self.settings.raw_dir.mkdir(parents=True, exist_ok=True)
            lock.enter_context(
                exclusive_lock(self.settings.raw_dir / ".collector.lock", blocking=False)
            )
        except LockBusy:
            raise SetupError(
                f"raw_dir {self.settings.raw_dir}: another collector is running on it (locked)"
            ) from None
        except OSError as e:
            raise SetupError(f"raw_dir {self.settings.raw_dir}: cannot use it: {e}") from None
        self._raw_lock = lock  # held until _shutdown
        if self.settings.status_file:
            try:
                self.settings.status_file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise SetupError(f"status dir {self.settings.status_file.parent}: {e}") from None
        try:
            self.counters.recovery = recover_partials(self.settings.raw_dir, log)
        except OSError as e:
            raise SetupError(
                f"raw_dir {self.settings.raw_dir}: recovering leftover files: {e}"
            ) from None
        for final, lines in self.counters.recovery.waiting:  # the running collector retries
            self._writer.adopt(final, lines)
        return self.counters.recovery

    def stop(self, reason: str = "stopped") -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    def run(self) -> int:
        """Collect until ``stop()``; close the current minute; return the exit code (0)."""
        if self._raw_lock is None:
            self.prepare()
        now = self._judge.now()
        self.counters.started_at = now
        with self._lock:
            self._writer.begin(now, open_file=False)
        log.info(
            "collector %s started: %s -> %s (pid %d)",
            self.settings.server,
            self.settings.stream_url,
            self.settings.raw_dir,
            os.getpid(),
        )
        server, recovery = self.settings.server, self.counters.recovery
        self._notice(
            "collector-started",
            f"{server}: collector started",
            f"The collector of {server} started at {stamp(now)} on {socket.gethostname()} "
            f"(pid {os.getpid()}), writing to {self.settings.raw_dir}.\n"
            + (
                f"It recovered {recovery.files} unfinished minute file(s) of an earlier "
                f"run ({recovery.dropped_lines} cut line(s) dropped).\n"
                if recovery.files
                else ""
            ),
        )
        self._write_status(now)
        for name, target in (("stream", self._stream_loop), ("rotation", self._rotation_loop)):
            t = threading.Thread(target=target, name=f"{name}-{self.settings.server}", daemon=True)
            t.start()
            self._threads.append(t)
        while not self._stop.wait(1.0):
            pass
        return self._shutdown()

    def _shutdown(self) -> int:
        with self._lock:
            now = self._judge.now()
            filed = self._release_locked(now)  # by whatever the judge has
            closed = self._writer.close()
            self.connected = False
            rotation = self._rotate_locked(now, closed, force=True)
        self._after_filed(filed)
        self._after_rotate(rotation, now)
        if rotation.unfinished:
            log.error(
                "%d minute(s) could not be written; their lines stay in .part files in %s, "
                "which the next start completes",
                rotation.unfinished,
                self.settings.raw_dir,
            )
        # twarc checks the stop event at each line; a stalled socket may not wake the stream
        # thread, which is a daemon and dies with the process.
        for t in self._threads:
            t.join(timeout=2.0)
        if self._client is not None:
            self._client.close_stream()
        reason = self.stop_reason or "stopped"
        log.info("collector %s stopped (%s)", self.settings.server, reason)
        self._write_status(now, stopped=True)
        if self.alerts:
            server, counters = self.settings.server, self.counters
            self.alerts.alert(
                f"collector-stopped-{server}",
                f"{server}: collector stopped ({reason})",
                f"The collector of {server} stopped at {stamp(now)}: {reason}.\n"
                f"It collected {counters.tweets_total} tweets since "
                f"{stamp(counters.started_at or now)} with {counters.reconnects} reconnect(s).\n",
            )
        if self._raw_lock is not None:
            self._raw_lock.close()
            self._raw_lock = None
        return 0

    # -- the stream thread -------------------------------------------------------------------

    def _make_client(self) -> StreamClient:
        return StreamClient(
            self._token,
            self.settings.stream_url,
            stall_seconds=self.settings.stall_seconds,
            connect_timeout=self.settings.connect_timeout,
            user_agent_suffix=f"sampled-stream ({self.settings.server})",
            on_connected=self._on_connected,
            on_malformed=self._on_malformed,
        )

    def _stream_loop(self) -> None:
        first = True
        while not self._stop.is_set():
            if not first:
                self.counters.reconnects += 1
            first = False
            try:
                reason, delay = self._stream_once()
            except Exception as e:  # noqa: BLE001 - a bug must not end collecting
                log.exception("unexpected error in the stream loop")
                reason, delay = f"unexpected {type(e).__name__}: {e}", self.backoff.next("http")
            if self._stop.is_set():
                break
            self._on_disconnected(reason)
            if delay > 0:
                log.info("reconnecting in %.2f s (%s)", delay, reason)
                self._stop.wait(delay)
            else:
                log.info("reconnecting now (%s)", reason)

    def _stream_once(self) -> tuple[str, float]:
        """One connection, from opening to its end; returns (why it ended, delay to wait)."""
        if self._client is None:
            self._client = self._make_client()
        if self._reload_token_first:
            self._reload_token_first = False
            self._reload_token()
        client = self._client
        gen = client.sample(
            event=self._stop,
            record_keepalive=True,
            expansions=self.settings.expansions or None,
            tweet_fields=self.settings.tweet_fields or None,
            user_fields=self.settings.user_fields or None,
            backfill_minutes=self.backfill_minutes or None,
        )
        try:
            for item in gen:
                if item == "keep-alive":
                    self.counters.last_keepalive_at = self._judge.now()
                    continue
                self._on_item(item)
            if self._stop.is_set():
                return "stopping", 0.0
            # twarc gives up after 30 consecutive errors; start its generator again.
            return "twarc's stream generator ended", self.backoff.next("network")
        except _OperationalDisconnect as e:
            return f"operational disconnect: {e}", self.backoff.next("network")
        except NetworkError as e:
            return str(e), self.backoff.next("network")
        except requests.RequestException as e:
            return f"{type(e).__name__}: {e}", self.backoff.next("network")
        except HTTPStatusError as e:
            return self._http_error(e)
        finally:
            gen.close()
            client.close_stream()

    def _http_error(self, e: HTTPStatusError) -> tuple[str, float]:
        reason = f"HTTP {e.status}: {' '.join(e.body.split())[:200]}"
        if e.backfill_refused and self.backfill_minutes:
            self.backfill_minutes = 0
            if not self._backfill_logged:
                self._backfill_logged = True
                log.warning(
                    "the API refused backfill_minutes (HTTP %d); reconnecting without it: %s",
                    e.status,
                    " ".join(e.body.split())[:200],
                )
            return reason, 0.0
        if e.status == 429:
            return reason, self.backoff.next("rate_limit")
        if e.auth_failed:
            delay = self.backoff.next("auth")
            self._notice(
                "stream-auth",
                f"{self.settings.server}: stream refused the bearer token (HTTP {e.status})",
                f"{self.settings.stream_url} answered HTTP {e.status}: {e.body[:500]}\n"
                "Check the token in stream.bearer_token_file (or TWITTER_BEARER_TOKEN). The "
                f"collector rereads it and retries, next in {delay:.0f} s, then less often.\n",
            )
            self._reload_token_first = True  # after the wait: the file may be fixed by then
            return reason, delay
        return reason, self.backoff.next("http")

    def _reload_token(self) -> None:
        try:
            token = self.token_source()
        except Exception as e:  # noqa: BLE001 - keep the old token, say why
            log.error("cannot reread the bearer token: %s", e)
            return
        if token != self._token and self._client is not None:
            log.info("the bearer token changed; using the new one")
            self._token = token
            self._client.set_token(token)

    # -- events ------------------------------------------------------------------------------

    def _on_connected(self, resp: requests.Response) -> None:
        with self._lock:
            now = self._judge.now()
            rotation = self._rotate_locked(now)
            self.connected = True
            self._judge.connected()
            if self._held is None:  # else the release opens the minute the judged time says
                self._open_locked()
        self._after_rotate(rotation, now)
        self.counters.connected_since = now
        self.counters.connections += 1
        log.info("connected: HTTP %d from %s", resp.status_code, self.settings.stream_url)
        if self.tracker:
            with self._track_lock:
                self.tracker.on_recovered(now)

    def _on_disconnected(self, reason: str) -> None:
        now = self._judge.now()
        with self._lock:
            was_connected, self.connected = self.connected, False
        self.counters.connected_since = None
        self.counters.last_error = {"at": stamp(now), "message": reason}
        log.warning("stream %s: %s", "disconnected" if was_connected else "not connected", reason)
        if self.tracker:
            with self._track_lock:
                # A drop is a disconnect (two in one outage: "unstable"); failed attempts while
                # down belong to the outage already under way.
                if was_connected or self.tracker.outage_since is None:
                    self.tracker.on_disconnect(now, reason)
                else:
                    self.tracker.tick(now)

    def _on_malformed(self, line: bytes) -> None:
        self.counters.malformed_lines += 1
        log.warning("skipped a line that is not JSON (%d bytes): %r", len(line), line[:120])

    def _on_item(self, item: Any) -> None:
        if not isinstance(item, dict) or "data" not in item:
            message = _disconnect_message(item) if isinstance(item, dict) else None
            if message:
                raise _OperationalDisconnect(message)
            self.counters.messages += 1
            text = orjson.dumps(item)[:300].decode("utf-8", "replace")
            log.warning("stream message without data (not written): %s", text)
            return
        data = item["data"]
        created = data.get("created_at") if isinstance(data, dict) else None
        filed: list[Filed] = []
        with self._lock:
            # One reading, under the lock, stamps the line and picks its minute file; the
            # tweet's created_at is evidence for the judge first.
            now = self._judge.now(created)
            if not self._judge.started and self._held is None and self._round < self._judge.round:
                self._held = []  # a step awaits its verdict: hold the lines again
            self._round = self._judge.round
            if self._held is not None and not self._judge.started and len(self._held) < HOLD_MAX:
                self._held.append((item, self.clock.monotonic()))
            else:
                filed = self._release_locked(now)
                filed.append(self._file_locked(item, now))
        self._after_filed(filed)
        message = _disconnect_message(item)
        if message:
            raise _OperationalDisconnect(message)

    def _file_locked(self, item: dict[str, Any], now: datetime) -> Filed:
        """Under the lock: stamp the line with ``now`` and write it to ``now``'s minute."""
        meta = item.get("__twarc")
        if isinstance(meta, dict):
            # The collector's clock, not twarc's: the file and the arrival share one timeline.
            meta["retrieved_at"] = stamp(now)
        rotation = self._rotate_locked(now)
        try:
            return Filed(now, rotation, self._writer.write(orjson.dumps(item) + b"\n"))
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
            self._writer.open_file()
        except OSError as e:  # a disk error is never a reason to reconnect
            log.error("cannot open the minute file: %s", e)

    def _after_filed(self, filed: list[Filed]) -> None:
        """Outside the lock: rotations, counters and errors of lines filed."""
        for f in filed:
            self._after_rotate(f.rotation, f.at)
            if f.error is not None:
                self.counters.write_errors += 1
                lost = self.counters.write_errors
                if lost in (1, 10, 100) or lost % 1000 == 0:
                    log.error("cannot write minute file (%d lines lost so far): %s", lost, f.error)
            elif f.written:
                self.counters.tweets_total += 1
                self.counters.last_tweet_at = f.at
                if self.backoff.attempts:
                    self.backoff.reset()

    # -- rotation ----------------------------------------------------------------------------

    def _rotation_loop(self) -> None:
        while (wait := self.tick()) is not None and not self._stop.is_set():
            # Short waits: a stepped clock is noticed within a second.
            self._stop.wait(min(real_seconds(self.clock, wait), 1.0))

    def tick(self) -> float | None:
        """One pass of the rotation thread: notice a clock step, close the minute once the
        clock has left it (whether tweets arrive or not), retry unwritten minutes, prune old
        files. Returns the clock seconds until the next pass is needed, None once closed."""
        mono = self.clock.monotonic()
        with self._lock:
            if self._writer.closed:
                return None
            now = self._judge.now()
            filed = self._release_locked(now) if self._judge.started else []
            rotation = self._rotate_locked(now)
            protect = {self._writer.final, *(u.final for u in self._writer.unfinished)}
            wait = (self._writer.minute_end - now).total_seconds()
            if self._writer.retry_at is not None:
                wait = min(wait, self._writer.retry_at - mono)
            if self._held is not None:  # look again soon: the first verdict may come by time
                wait = min(wait, self._judge.start_wait)
        self._after_filed(filed)
        self._after_rotate(rotation, now)
        self._pruner.run(now, mono, protect)
        return max(wait, 0.0)

    def _rotate_locked(
        self, now: datetime, closed: ClosedMinute | None = None, force: bool = False
    ) -> Rotation:
        """Under ``self._lock``: close the minute if the clock left it, write unwritten ones."""
        writer = self._writer
        # Before the judge's first verdict the time may be wrong: no minute is begun by it.
        if closed is None and writer.due(now) and self._held is None:
            closed = writer.roll(now, open_next=self.connected)
        mono = self.clock.monotonic()
        written = writer.commit(mono, force)
        if closed is not None:
            closed.written = not writer.is_unfinished(closed.path)
        failed = [replace(u, retry_at=(u.retry_at or mono) - mono) for u in writer.failed]
        return Rotation(closed, written, failed, len(writer.unfinished), writer.disk_failing)

    def _after_rotate(self, rotation: Rotation, now: datetime) -> None:
        """Outside the lock: log, alert and update the status after ``_rotate_locked``."""
        self._clock_events()
        server = self.settings.server
        for u in rotation.failed:  # u.retry_at: seconds until the next try
            if u.failures & (u.failures - 1) == 0:  # 1, 2, 4 ...: fewer lines as it lasts
                log.error(
                    "cannot write minute file %s (attempt %d; its %d line(s) stay in its .part "
                    "file, next try in %.0f s): %s",
                    u.final,
                    u.failures,
                    u.tweets,
                    u.retry_at,
                    u.error,
                )
            if u.taken and u.final not in self._taken_alerted:
                self._taken_alerted.add(u.final)
                self._notice(
                    "minute-name-taken",
                    f"{server}: minute file {u.final.name} cannot be written: its name is taken",
                    f"At {stamp(now)} the collector of {server} could not write the minute file "
                    f"{u.final}: that name is held by {u.taken}, which the collector never "
                    f"replaces or removes. The minute's {u.tweets} line(s) wait in "
                    f"{part_path(u.final)}.\nMove the entry away (look at it first, then e.g. "
                    f"mv '{u.final}' '{u.final}.moved'); the collector tries every second and "
                    "writes the minute as soon as the name is free. Every other minute is "
                    "written as usual.\n",
                )
        disk = [u for u in rotation.failed if not u.taken]
        if disk and not self._disk_alerted:
            self._disk_alerted = True
            self._notice(
                "minute-files",
                f"{server}: cannot write minute files",
                f"At {stamp(now)} the collector of {server} could not write a closed minute's "
                f"file in {self.settings.raw_dir}: {disk[0].error}.\n"
                "It keeps collecting; the minutes' lines stay in their .part files and it "
                "retries (every minute at most) until each final file exists. Until then "
                "the primary cannot pull or build them. Check the disk (space, errors); "
                "`sampled-stream status` lists the minutes waiting.\n",
            )
        elif rotation.written and not rotation.disk_waiting and self._disk_alerted:
            self._disk_alerted = False
            names = ", ".join(u.final.name for u in rotation.written)
            log.warning("minute files written again: %s", names)
            self._notice(
                "minute-files-written",
                f"{server}: minute files written again",
                f"At {stamp(now)} the collector of {server} wrote the minute "
                f"file(s) it could not write before: {names}.\n",
            )
        for u in rotation.written:
            if u.final in self._taken_alerted:
                self._taken_alerted.discard(u.final)
                log.warning("minute file %s written: its name is free again", u.final)
        if rotation.closed is not None:
            self._after_roll(rotation.closed, now)
        elif rotation.written or any(u.failures == 1 for u in rotation.failed):
            self._write_status(now)

    def _clock_events(self) -> None:
        """Outside the locks: log and alert what the clock judge saw."""
        if not self._judge.events:
            return
        for event in self._judge.take_events():
            if isinstance(event, Step):
                self._on_clock_step(event)
            else:
                self._on_clock_verdict(event)
        self._write_status(self._judge.now())

    def _on_clock_step(self, step: Step) -> None:
        self.counters.clock_steps += 1
        self.counters.last_clock_step = {"at": stamp(step.wall), "seconds": round(step.seconds, 1)}
        self._pruner.postpone(self.clock.monotonic())  # a clock set ahead makes files look old
        log.warning(
            "the wall clock stepped %+.0f s (it reads %s); until the tweets that come next tell "
            "whether the new reading is right, the time from before the step goes on (%s)",
            step.seconds,
            stamp(step.wall),
            stamp(step.wall + timedelta(seconds=step.correction)),
        )

    def _on_clock_verdict(self, v: Verdict) -> None:
        server, corr = self.settings.server, v.correction
        log.warning(
            "clock: %s; filing by the wall clock %+.0f s (was %+.0f s)", v.reason, corr, v.previous
        )
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
        if corr:
            filing = (
                "Until the clock is right, the collector files each line under the minute of "
                f"the corrected time (the wall clock {corr:+.0f} s, now {stamp(v.at)}) and "
                "stamps its __twarc.retrieved_at with the same reading, so names and lines "
                "carry the true time; `sampled-stream status` shows the correction. When the "
                "clock is set right (NTP), the collector notices that step and follows the "
                "clock again.\n"
            )
        else:
            filing = "Minute files and __twarc.retrieved_at follow the wall clock.\n"
        jump = corr - v.previous  # how far the collector's own time moved at the verdict
        before, after = v.at - timedelta(seconds=jump), v.at
        if jump < -60:
            effect = (
                f"The collector's time went back {-jump:.0f} s: minutes from {stamp(after)} to "
                f"{stamp(before)} may get a second part appended to files written before (each "
                "line stays in the minute of its own retrieved_at).\n"
            )
        elif jump > 60:
            effect = (
                f"The collector's time went forward {jump:.0f} s: nothing was received between "
                f"{stamp(before)} and {stamp(after)} as it counts.\n"
            )
        else:
            effect = ""
        self._notice(
            "clock-step",
            subject,
            head
            + verdict
            + ".\n"
            + filing
            + effect
            + "Check the time synchronisation (timedatectl, chrony/ntpd).\n",
        )

    def _after_roll(self, closed: ClosedMinute, now: datetime) -> None:
        local = closed.minute.astimezone(self.settings.tz)
        label = hour_of(closed.minute, self.settings.tz).label
        if label != self.counters.hour_label:
            self.counters.hour_label, self.counters.hour_tweets = label, 0
        self.counters.hour_tweets += closed.tweets
        self.counters.last_minute = {
            "minute": local.isoformat(),
            "tweets": closed.tweets,
            "file": str(closed.path) if closed.path else None,
            "written": closed.written,
        }
        if closed.path and closed.written:
            log.info("minute %s: %d tweets -> %s", local.isoformat(), closed.tweets, closed.path)
        elif closed.path:
            log.warning(
                "minute %s: %d tweets, %s not written yet (kept in its .part file, retrying)",
                local.isoformat(),
                closed.tweets,
                closed.path,
            )
        else:
            log.info("minute %s: not connected, no file", local.isoformat())
        if self.tracker:
            with self._track_lock:
                self.tracker.tick(now)
        self._write_status(now)

    # -- status and notices ------------------------------------------------------------------

    def status(self, now: datetime, stopped: bool = False) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return stamp(t) if t else None

        with self._lock:
            current = (
                {
                    "minute": self._writer.minute.astimezone(self.settings.tz).isoformat(),
                    "tweets": self._writer.tweets,
                }
                if self._writer.minute and not self._writer.closed
                else None
            )
            # Closed minutes whose files could not be written yet (their lines are in .part).
            unwritten = {
                "minutes": [
                    u.minute.astimezone(self.settings.tz).isoformat()
                    for u in self._writer.unfinished
                ],
                "error": self._writer.last_error,
                # Names held by something that is not a minute file: the operator moves it.
                "taken": [
                    {"file": str(u.final), "is": u.taken}
                    for u in self._writer.unfinished
                    if u.taken
                ],
            }
        st = {
            "server": self.settings.server,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "state": "stopped" if stopped else "running",
            "stream_url": self.settings.stream_url,
            "raw_dir": str(self.settings.raw_dir),
            "started_at": iso(self.counters.started_at),
            "updated_at": iso(now),
            "connected_since": iso(self.counters.connected_since) if not stopped else None,
            "last_tweet_at": iso(self.counters.last_tweet_at),
            "last_keepalive_at": iso(self.counters.last_keepalive_at),
            "connections": self.counters.connections,
            "reconnects": self.counters.reconnects,
            "tweets_total": self.counters.tweets_total,
            "current_minute": current,
            "last_minute": self.counters.last_minute,
            "this_hour": {"hour": self.counters.hour_label, "tweets": self.counters.hour_tweets},
            "last_error": self.counters.last_error,
            "backfill_minutes": self.backfill_minutes,
            "malformed_lines": self.counters.malformed_lines,
            "messages_without_data": self.counters.messages,
            "write_errors": self.counters.write_errors,
            "recovered": self.counters.recovery.as_dict(),
            "unwritten_minutes": unwritten,
            "clock": self._judge.state(),
            "clock_steps": self.counters.clock_steps,
            "last_clock_step": self.counters.last_clock_step,
            "pruned": {
                "files": self._pruner.total.files,
                "last_at": iso(self._pruner.last_at),
                "keep_raw_days": self.settings.keep_raw_days,
            },
        }
        if stopped:
            st["stopped_at"] = iso(now)
            st["stopped_reason"] = self.stop_reason or "stopped"
        return st

    def _write_status(self, now: datetime, stopped: bool = False) -> None:
        if not self.settings.status_file:
            return
        try:
            write_status(self.settings.status_file, self.status(now, stopped))
        except OSError as e:
            log.error("cannot write status file %s: %s", self.settings.status_file, e)

    def _notice(self, kind: str, subject: str, body: str) -> None:
        if self.alerts:
            self.alerts.alert_nowait(f"{kind}-{self.settings.server}", subject, body)


@contextlib.contextmanager
def running(collector: Collector, timeout: float = 10.0):
    """Run ``collector`` in a thread for the ``with`` block, then stop it (tests, demos)."""
    result: dict[str, int] = {}
    t = threading.Thread(
        target=lambda: result.setdefault("code", collector.run()), name="collector", daemon=True
    )
    t.start()
    try:
        yield collector
    finally:
        collector.stop("end of block")
        t.join(timeout)
