"""The collector's mails (through ``ingest.notify``): its start and stop, disconnects and
recoveries (``DisconnectTracker``), a refused token, and minute files that cannot be written,
with the log lines about those files."""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime
from pathlib import Path

from ingest.collect.counters import CollectorCounters
from ingest.collect.filing import Rotation
from ingest.collect.partfiles import Recovery, part_path
from ingest.collect.settings import CollectorSettings
from ingest.collect.stream_client import HTTPStatusError
from ingest.collect.timekeeping import stamp
from ingest.notify import Alerts, DisconnectTracker

log = logging.getLogger(__name__)


class Alerting:
    """One collector's alerts; without ``alerts`` (mail not configured) nothing is sent."""

    def __init__(self, settings: CollectorSettings, alerts: Alerts | None) -> None:
        self.settings = settings
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
        self._track_lock = threading.Lock()
        self._disk_alerted = False  # an alert about unwritten minute files went out
        self._taken_alerted: set[Path] = set()  # minute files whose taken name was alerted

    def notice(self, kind: str, subject: str, body: str) -> None:
        if self.alerts:
            self.alerts.alert_nowait(f"{kind}-{self.settings.server}", subject, body)

    # -- start, stop, the connection ---------------------------------------------------------

    def started(self, now: datetime, recovery: Recovery) -> None:
        server = self.settings.server
        self.notice(
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

    def stopped(self, now: datetime, reason: str, counters: CollectorCounters) -> None:
        if self.alerts:
            server = self.settings.server
            self.alerts.alert(
                f"collector-stopped-{server}",
                f"{server}: collector stopped ({reason})",
                f"The collector of {server} stopped at {stamp(now)}: {reason}.\n"
                f"It collected {counters.tweets_total} tweets since "
                f"{stamp(counters.started_at or now)} with {counters.reconnects} reconnect(s).\n",
            )

    def auth_refused(self, e: HTTPStatusError, delay: float) -> None:
        self.notice(
            "stream-auth",
            f"{self.settings.server}: stream refused the bearer token (HTTP {e.status})",
            f"{self.settings.stream_url} answered HTTP {e.status}: {e.body[:500]}\n"
            "Check the token in stream.bearer_token_file (or TWITTER_BEARER_TOKEN). The "
            f"collector rereads it and retries, next in {delay:.0f} s, then less often.\n",
        )

    def connected(self, now: datetime) -> None:
        if self.tracker:
            with self._track_lock:
                self.tracker.on_recovered(now)

    def disconnected(self, now: datetime, reason: str, was_connected: bool) -> None:
        if self.tracker:
            with self._track_lock:
                # A drop is a disconnect (two in one outage: "unstable"); failed attempts while
                # down belong to the outage already under way.
                if was_connected or self.tracker.outage_since is None:
                    self.tracker.on_disconnect(now, reason)
                else:
                    self.tracker.tick(now)

    def tick(self, now: datetime) -> None:
        if self.tracker:
            with self._track_lock:
                self.tracker.tick(now)

    # -- minute files ------------------------------------------------------------------------

    def minute_files(self, rotation: Rotation, now: datetime) -> None:
        """Log and alert the minute files a rotation failed to write, or wrote again."""
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
                self._name_taken(u.final, u.taken, u.tweets, now)
        disk = [u for u in rotation.failed if not u.taken]
        if disk and not self._disk_alerted:
            self._disk_alerted = True
            self._disk_failing(disk[0].error, now)
        elif rotation.written and not rotation.disk_waiting and self._disk_alerted:
            self._disk_alerted = False
            names = ", ".join(u.final.name for u in rotation.written)
            log.warning("minute files written again: %s", names)
            server = self.settings.server
            self.notice(
                "minute-files-written",
                f"{server}: minute files written again",
                f"At {stamp(now)} the collector of {server} wrote the minute "
                f"file(s) it could not write before: {names}.\n",
            )
        for u in rotation.written:
            if u.final in self._taken_alerted:
                self._taken_alerted.discard(u.final)
                log.warning("minute file %s written: its name is free again", u.final)

    def _name_taken(self, final: Path, taken: str, tweets: int, now: datetime) -> None:
        server = self.settings.server
        self.notice(
            "minute-name-taken",
            f"{server}: minute file {final.name} cannot be written: its name is taken",
            f"At {stamp(now)} the collector of {server} could not write the minute file "
            f"{final}: that name is held by {taken}, which the collector never "
            f"replaces or removes. The minute's {tweets} line(s) wait in "
            f"{part_path(final)}.\nMove the entry away (look at it first, then e.g. "
            f"mv '{final}' '{final}.moved'); the collector tries every second and "
            "writes the minute as soon as the name is free. Every other minute is "
            "written as usual.\n",
        )

    def _disk_failing(self, error: str | None, now: datetime) -> None:
        server = self.settings.server
        self.notice(
            "minute-files",
            f"{server}: cannot write minute files",
            f"At {stamp(now)} the collector of {server} could not write a closed minute's "
            f"file in {self.settings.raw_dir}: {error}.\n"
            "It keeps collecting; the minutes' lines stay in their .part files and it "
            "retries (every minute at most) until each final file exists. Until then "
            "the primary cannot pull or build them. Check the disk (space, errors); "
            "`sampled-stream status` lists the minutes waiting.\n",
        )
