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
process leaves complete lines) and at the minute's end fsynced and renamed to ``final``
(``layout.minute_path``). A file is created once the stream is connected in that minute, so an
empty file means "connected, nothing came" and a missing file "not connected". If ``final``
already exists (a restart within the same minute), the new lines are appended to it by an
atomic rewrite. ``recover_partials`` turns ``.part`` files left by a crash into complete files.

Time: every instant comes from ``clock``; waits are converted to real seconds by the clock's
``speed`` (``ScaledClock``), so tests and the demo run minutes of a few seconds through the
same code. Backoff delays are multiplied by ``backoff_scale``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import requests

from ingest.atomic import atomic_write, fsync_dir
from ingest.clock import Clock, SystemClock
from ingest.collect.status import status_path, write_status
from ingest.collect.stream_client import HTTPStatusError, NetworkError, StreamClient, protect_logs
from ingest.config import server as server_config
from ingest.config import timezone
from ingest.layout import MINUTE, hour_of, minute_path
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


def commit_minute(part: Path, final: Path, data: bytes | None = None) -> None:
    """Make ``part``'s lines (or ``data``) the complete file ``final``, then remove ``part``.

    ``final`` may exist already (a restart within the same minute): the lines are appended by
    rewriting it atomically. A crash between that rewrite and removing ``part`` leaves lines
    that ``final`` already ends with; they are not added twice.
    """
    if data is None and not final.exists():
        os.replace(part, final)
        fsync_dir(final.parent)
        return
    if data is None:
        data = part.read_bytes()
    if final.exists():
        old = final.read_bytes()
        if not old.endswith(data):
            atomic_write(final, old + data)
    else:
        atomic_write(final, data)
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

    def as_dict(self) -> dict[str, int]:
        return {"files": self.files, "lines": self.lines, "dropped_lines": self.dropped_lines}


def recover_partials(raw_dir: Path, logger: logging.Logger = log) -> Recovery:
    """Complete the ``.part`` files a killed collector left in ``raw_dir``.

    Complete lines are kept under the final ``.jsonl`` name; a cut last line (or a line that
    is not JSON, as after a power loss) is dropped and counted. Run only while holding the
    raw_dir lock: every ``.part`` file is then a leftover.
    """
    rec = Recovery()
    root = Path(raw_dir)
    for tmp in root.glob("*/*/.*.jsonl.tmp-*"):  # an interrupted commit_minute rewrite
        tmp.unlink(missing_ok=True)
    for part in sorted(root.glob(f"*/*/*.jsonl{PART}")):
        final = part.with_name(part.name[: -len(PART)])
        data, dropped = complete_lines(part.read_bytes())
        commit_minute(part, final, data)
        n = data.count(b"\n")
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


class MinuteWriter:
    """The current minute's in-progress file. Not thread-safe: the collector holds a lock."""

    def __init__(self, raw_dir: Path, tz: ZoneInfo, fsync: bool = True) -> None:
        self.raw_dir = Path(raw_dir)
        self.tz = tz
        self.fsync = fsync
        self.minute: datetime | None = None
        self.tweets = 0
        self.closed = False
        self._fd: int | None = None
        self._final: Path | None = None

    @property
    def minute_end(self) -> datetime:
        assert self.minute is not None
        return self.minute + MINUTE

    def begin(self, now: datetime, open_file: bool) -> None:
        self.minute = now.astimezone(UTC).replace(second=0, microsecond=0)
        self.tweets = 0
        self._final = minute_path(self.raw_dir, self.minute, self.tz)
        if open_file:
            self.open_file()

    def open_file(self) -> None:
        if self._fd is not None or self.closed or self._final is None:
            return
        self._final.parent.mkdir(parents=True, exist_ok=True)
        # Append: a .part of this minute cannot exist (recovered at start), but never truncate.
        self._fd = os.open(part_path(self._final), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def due(self, now: datetime) -> bool:
        return not self.closed and self.minute is not None and now >= self.minute_end

    def write(self, line: bytes) -> bool:
        if self.closed:
            return False
        self.open_file()
        view = memoryview(line)
        while view:  # one write per line in practice; loop on a short write
            n = os.write(self._fd, view)
            view = view[n:]
        self.tweets += 1
        return True

    def _finish(self) -> ClosedMinute:
        assert self.minute is not None and self._final is not None
        closed = ClosedMinute(self.minute, self.tweets, None)
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            commit_minute(part_path(self._final), self._final)
            closed.path = self._final
        return closed

    def roll(self, now: datetime, open_next: bool) -> ClosedMinute:
        closed = self._finish()
        self.begin(now, open_next)
        return closed

    def close(self) -> ClosedMinute | None:
        if self.closed or self.minute is None:
            return None
        closed = self._finish()
        self.closed = True
        return closed


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
        return self.counters.recovery

    def stop(self, reason: str = "stopped") -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    def run(self) -> int:
        """Collect until ``stop()``; close the current minute; return the exit code (0)."""
        if self._raw_lock is None:
            self.prepare()
        now = self.clock.now()
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
        now = self.clock.now()
        with self._lock:
            closed = self._writer.close()
            self.connected = False
        if closed is not None:
            self._after_roll(closed, now)
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
                    self.counters.last_keepalive_at = self.clock.now()
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
        now = self.clock.now()
        self._roll_if_due(now)
        with self._lock:
            self.connected = True
            self._writer.open_file()
        self.counters.connected_since = now
        self.counters.connections += 1
        log.info("connected: HTTP %d from %s", resp.status_code, self.settings.stream_url)
        if self.tracker:
            with self._track_lock:
                self.tracker.on_recovered(now)

    def _on_disconnected(self, reason: str) -> None:
        now = self.clock.now()
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
        now = self.clock.now()
        if not isinstance(item, dict) or "data" not in item:
            message = _disconnect_message(item) if isinstance(item, dict) else None
            if message:
                raise _OperationalDisconnect(message)
            self.counters.messages += 1
            text = orjson.dumps(item)[:300].decode("utf-8", "replace")
            log.warning("stream message without data (not written): %s", text)
            return
        meta = item.get("__twarc")
        if isinstance(meta, dict):
            # The collector's clock, not twarc's: the file and the arrival share one timeline.
            meta["retrieved_at"] = stamp(now)
        line = orjson.dumps(item) + b"\n"
        self._roll_if_due(now)
        try:
            with self._lock:
                written = self._writer.write(line)
        except OSError as e:
            self.counters.write_errors += 1
            lost = self.counters.write_errors
            if lost in (1, 10, 100) or lost % 1000 == 0:
                log.error("cannot write minute file (%d lines lost so far): %s", lost, e)
            return
        if written:
            self.counters.tweets_total += 1
            self.counters.last_tweet_at = now
            if self.backoff.attempts:
                self.backoff.reset()
        message = _disconnect_message(item)
        if message:
            raise _OperationalDisconnect(message)

    # -- rotation ----------------------------------------------------------------------------

    def _rotation_loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self._writer.closed:
                    return
                end = self._writer.minute_end
            wait = real_seconds(self.clock, (end - self.clock.now()).total_seconds())
            if wait > 0:
                # Short waits: a stepped system clock is noticed within a second.
                self._stop.wait(min(wait, 1.0))
                continue
            try:
                self._roll_if_due(self.clock.now())
            except OSError as e:
                log.error("rotating the minute file failed: %s", e)
                self._stop.wait(min(1.0, real_seconds(self.clock, 1.0)))

    def _roll_if_due(self, now: datetime) -> None:
        with self._lock:
            if not self._writer.due(now):
                return
            closed = self._writer.roll(now, open_next=self.connected)
        self._after_roll(closed, now)

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
        }
        if closed.path:
            log.info("minute %s: %d tweets -> %s", local.isoformat(), closed.tweets, closed.path)
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
