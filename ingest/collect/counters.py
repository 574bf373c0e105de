"""What the collector counts since it started, and the status document built from it (written
to ``{status_dir}/{server}.json`` by ``status.write_status``)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ingest.collect.minute_writer import ClosedMinute
from ingest.collect.partfiles import Recovery
from ingest.collect.prune import Pruner
from ingest.collect.settings import CollectorSettings
from ingest.collect.timekeeping import stamp
from ingest.layout import hour_of


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

    def minute_closed(self, closed: ClosedMinute, tz: ZoneInfo) -> None:
        """Count a closed minute: this hour's tweets and ``last_minute``."""
        local = closed.minute.astimezone(tz)
        label = hour_of(closed.minute, tz).label
        if label != self.hour_label:
            self.hour_label, self.hour_tweets = label, 0
        self.hour_tweets += closed.tweets
        self.last_minute = {
            "minute": local.isoformat(),
            "tweets": closed.tweets,
            "file": str(closed.path) if closed.path else None,
            "written": closed.written,
        }


def status_document(
    settings: CollectorSettings,
    counters: CollectorCounters,
    now: datetime,
    *,
    stopped: bool,
    stop_reason: str | None,
    backfill_minutes: int,
    minutes: tuple[dict[str, Any] | None, dict[str, Any]],
    clock: dict[str, Any],
    pruner: Pruner,
) -> dict[str, Any]:
    """The status: ``minutes`` is the writer's report (``MinuteWriter.report``), ``clock`` the
    judge's state."""

    def iso(t: datetime | None) -> str | None:
        return stamp(t) if t else None

    current, unwritten = minutes
    st = {
        "server": settings.server,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "state": "stopped" if stopped else "running",
        "stream_url": settings.stream_url,
        "raw_dir": str(settings.raw_dir),
        "started_at": iso(counters.started_at),
        "updated_at": iso(now),
        "connected_since": iso(counters.connected_since) if not stopped else None,
        "last_tweet_at": iso(counters.last_tweet_at),
        "last_keepalive_at": iso(counters.last_keepalive_at),
        "connections": counters.connections,
        "reconnects": counters.reconnects,
        "tweets_total": counters.tweets_total,
        "current_minute": current,
        "last_minute": counters.last_minute,
        "this_hour": {"hour": counters.hour_label, "tweets": counters.hour_tweets},
        "last_error": counters.last_error,
        "backfill_minutes": backfill_minutes,
        "malformed_lines": counters.malformed_lines,
        "messages_without_data": counters.messages,
        "write_errors": counters.write_errors,
        "recovered": counters.recovery.as_dict(),
        "unwritten_minutes": unwritten,
        "clock": clock,
        "clock_steps": counters.clock_steps,
        "last_clock_step": counters.last_clock_step,
        "pruned": {
            "files": pruner.total.files,
            "last_at": iso(pruner.last_at),
            "keep_raw_days": settings.keep_raw_days,
        },
    }
    if stopped:
        st["stopped_at"] = iso(now)
        st["stopped_reason"] = stop_reason or "stopped"
    return st
