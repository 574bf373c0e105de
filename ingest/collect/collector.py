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

A file is created once the stream is connected in that minute, so an empty file means
"connected, nothing came" and a missing file "not connected" (``minute_writer``, ``partfiles``).
A local disk error never costs a reconnect. Lines are filed and stamped by the time the clock
judge says (``filing``); steps and verdicts are logged, alerted and shown in the status. Old
minute files are pruned (``prune.Pruner``, ``stream.keep_raw_days``). Backoff delays are
multiplied by ``backoff_scale``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson
import requests

from ingest.clock import Clock, SystemClock
from ingest.collect.alerting import Alerting
from ingest.collect.clockjudge import ClockJudge, Step, Verdict
from ingest.collect.counters import CollectorCounters, status_document
from ingest.collect.filing import Filed, MinuteFiler, Rotation
from ingest.collect.minute_writer import ClosedMinute, MinuteWriter
from ingest.collect.partfiles import Recovery, recover_partials
from ingest.collect.prune import Pruner
from ingest.collect.reconnect import Backoff
from ingest.collect.settings import CollectorSettings
from ingest.collect.status import status_path, write_status
from ingest.collect.stream_client import HTTPStatusError, NetworkError, StreamClient, protect_logs
from ingest.collect.timekeeping import real_seconds, stamp, verdict_mail
from ingest.locks import LockBusy, exclusive_lock
from ingest.notify import Alerts
from ingest.secrets import read_secret

TOKEN_ENV = "TWITTER_BEARER_TOKEN"
TOKEN_WHAT = "stream.bearer_token_file"

log = logging.getLogger(__name__)


class SetupError(ValueError):
    """The collector cannot run with this setup (raw_dir unusable, another collector on it)."""


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
        # Set to 0 if the API refuses backfill (not every access level has it).
        self.backfill_minutes = settings.backfill_minutes

        self._token = token_source()  # raises SecretError: bad config, before anything starts
        protect_logs(self._token)
        self._stop = threading.Event()
        self._writer = MinuteWriter(settings.raw_dir, settings.tz, settings.fsync)
        self._pruner = Pruner(settings.raw_dir, settings.tz, settings.keep_raw_days)
        self._judge = ClockJudge(self.clock)  # the time minutes are filed and stamped by
        # Alerts too: a wall clock an hour off must not date the alert log (and its hourly
        # limit) an hour off.
        self.alerting = Alerting(settings, alerts.stamped_by(self._judge) if alerts else None)
        self._filer = MinuteFiler(self._writer, self._judge, self.clock)
        self._raw_lock: contextlib.ExitStack | None = None
        self._threads: list[threading.Thread] = []
        self._client: StreamClient | None = None
        self.stop_reason: str | None = None
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
        self._filer.begin(now)
        log.info(
            "collector %s started: %s -> %s (pid %d)",
            self.settings.server,
            self.settings.stream_url,
            self.settings.raw_dir,
            os.getpid(),
        )
        self.alerting.started(now, self.counters.recovery)
        self._write_status(now)
        for name, target in (("stream", self._stream_loop), ("rotation", self._rotation_loop)):
            t = threading.Thread(target=target, name=f"{name}-{self.settings.server}", daemon=True)
            t.start()
            self._threads.append(t)
        while not self._stop.wait(1.0):
            pass
        return self._shutdown()

    def _shutdown(self) -> int:
        now, filed, rotation = self._filer.close()
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
        self.alerting.stopped(now, reason, self.counters)
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
            self.alerting.auth_refused(e, delay)
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
        now, rotation = self._filer.connect()
        self._after_rotate(rotation, now)
        self.counters.connected_since = now
        self.counters.connections += 1
        log.info("connected: HTTP %d from %s", resp.status_code, self.settings.stream_url)
        self.alerting.connected(now)

    def _on_disconnected(self, reason: str) -> None:
        now = self._judge.now()
        was_connected = self._filer.disconnect()
        self.counters.connected_since = None
        self.counters.last_error = {"at": stamp(now), "message": reason}
        log.warning("stream %s: %s", "disconnected" if was_connected else "not connected", reason)
        self.alerting.disconnected(now, reason, was_connected)

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
        filed = self._filer.take(item, created)
        self._after_filed(filed)
        message = _disconnect_message(item)
        if message:
            raise _OperationalDisconnect(message)

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
        look = self._filer.look(mono)
        if look is None:
            return None
        self._after_filed(look.filed)
        self._after_rotate(look.rotation, look.now)
        self._pruner.run(look.now, mono, look.protect)
        return max(look.wait, 0.0)

    def _after_rotate(self, rotation: Rotation, now: datetime) -> None:
        """Outside the lock: log, alert and update the status after a rotation (``filing``)."""
        self._clock_events()
        self.alerting.minute_files(rotation, now)
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
        log.warning(
            "clock: %s; filing by the wall clock %+.0f s (was %+.0f s)",
            v.reason,
            v.correction,
            v.previous,
        )
        self.alerting.notice("clock-step", *verdict_mail(self.settings.server, v))

    def _after_roll(self, closed: ClosedMinute, now: datetime) -> None:
        self.counters.minute_closed(closed, self.settings.tz)
        local = closed.minute.astimezone(self.settings.tz)
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
        self.alerting.tick(now)
        self._write_status(now)

    # -- status ------------------------------------------------------------------------------

    def status(self, now: datetime, stopped: bool = False) -> dict[str, Any]:
        return status_document(
            self.settings,
            self.counters,
            now,
            stopped=stopped,
            stop_reason=self.stop_reason,
            backfill_minutes=self.backfill_minutes,
            minutes=self._filer.report(self.settings.tz),
            clock=self._judge.state(),
            pruner=self._pruner,
        )

    def _write_status(self, now: datetime, stopped: bool = False) -> None:
        if not self.settings.status_file:
            return
        try:
            write_status(self.settings.status_file, self.status(now, stopped))
        except OSError as e:
            log.error("cannot write status file %s: %s", self.settings.status_file, e)


@contextlib.contextmanager
def running(collector: Collector, timeout: float = 10.0) -> Iterator[Collector]:
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
