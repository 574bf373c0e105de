"""Email: an SMTP sender, rate-limited alerts shared across processes, outage tracking.

- ``Mailer`` sends one message (with attachments) over SMTP with STARTTLS, SSL or plain, and
  raises ``MailError`` on failure. The daily report rule uses it directly, so a failed send
  fails that job and the next run retries.
- ``Alerts`` is what the collector and the workflow use for notices: at most ``max_per_hour``
  mails per kind in any rolling hour, the count of suppressed ones mentioned in the next mail,
  and a failure to send logged and answered with False, never raised: collecting must never
  stop because mail failed. Its state is a small JSON file (locked, replaced atomically), so
  successive cron runs of the workflow share the limit.
- ``DisconnectTracker`` turns a collector's connection events into a handful of mails:
  "disconnected/unstable for N minutes" once an outage has lasted ``alert_after_minutes``, and
  "recovered" once the stream has been stable again after an alerted outage.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import smtplib
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from ingest import layout
from ingest.atomic import atomic_write_json
from ingest.clock import Clock, FixedClock
from ingest.locks import exclusive_lock
from ingest.secrets import read_secret

_log = logging.getLogger(__name__)

Attachment = tuple[str, bytes, str]  # (filename, content, mimetype such as "image/png")
WINDOW = timedelta(hours=1)
RECENT = timedelta(hours=24)  # alerts remembered for the health view
RECENT_MAX = 200


class MailError(RuntimeError):
    """Sending failed; the message says where (connect, TLS, login, send), never the password."""


class MailConfigError(ValueError):
    pass


@dataclass
class Mailer:
    host: str
    port: int
    sender: str
    to: list[str]
    security: str  # starttls | ssl | none
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 20.0
    # None: the system's trusted CAs with hostname checking. Tests pass a context that trusts
    # their self-signed certificate; verification is never switched off.
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    subject_prefix: str = "[sampled-stream] "

    @classmethod
    def from_config(
        cls,
        email_cfg: dict[str, Any],
        *,
        timeout: float = 20.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Mailer:
        """A Mailer for the loaded config's ``email:`` section (defaults filled in by
        ``ingest.config``); the password from SMTP_PASSWORD if there is no password_file."""
        missing = [k for k in ("smtp_host", "from", "to") if not email_cfg.get(k)]
        if missing:
            raise MailConfigError(f"email: missing {', '.join(missing)}")
        security = email_cfg["security"]
        if security not in ("starttls", "ssl", "none"):
            raise MailConfigError(f"email.security: {security!r} is not starttls, ssl or none")
        user = email_cfg.get("user") or None
        password = None
        if user:
            password = read_secret(
                email_cfg.get("password_file"), "SMTP_PASSWORD", "email password"
            )
        return cls(
            host=email_cfg["smtp_host"],
            port=email_cfg["smtp_port"],
            sender=email_cfg["from"],
            to=list(email_cfg["to"]),
            security=security,
            user=user,
            password=password,
            timeout=timeout,
            ssl_context=ssl_context,
        )

    def message(
        self, subject: str, body: str, attachments: Sequence[Attachment] = ()
    ) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = self.subject_prefix + subject
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=_domain(self.sender))
        msg.set_content(f"{body.rstrip()}\n\n-- \nsampled-stream on {socket.gethostname()}\n")
        for filename, content, mimetype in attachments:
            maintype, _, subtype = mimetype.partition("/")
            msg.add_attachment(
                content,
                maintype=maintype,
                subtype=subtype or "octet-stream",
                filename=filename,
            )
        return msg

    def send(self, subject: str, body: str, attachments: Sequence[Attachment] = ()) -> str:
        """Send one message to every recipient; return its Message-ID. Raises MailError."""
        msg = self.message(subject, body, attachments)
        context = self.ssl_context or ssl.create_default_context()
        step = "connect"
        try:
            if self.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                if self.security == "starttls":
                    step = "STARTTLS"
                    smtp.ehlo()
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if self.user:
                    step = "login"
                    smtp.login(self.user, self.password or "")
                step = "send"
                refused = smtp.send_message(msg, from_addr=self.sender, to_addrs=self.to)
        except (smtplib.SMTPException, OSError) as e:
            # str(e) holds the server's reply or the socket error, not our password.
            raise MailError(
                f"mail to {self.host}:{self.port} failed at {step}: {type(e).__name__}: {e}"
            ) from None
        if refused:
            _log.warning("mail %r: refused for %s", subject, ", ".join(sorted(refused)))
        return msg["Message-ID"]


def _is_recent(alert: Any, now: datetime) -> bool:
    """An entry of the alert state's "recent" list younger than RECENT (a bad one is not)."""
    try:
        return now - datetime.fromisoformat(alert["at"]) < RECENT
    except (TypeError, KeyError, ValueError):
        return False


def _domain(address: str) -> str | None:
    return address.rpartition("@")[2].strip("> ") or None


# --- rate-limited alerts --------------------------------------------------------------------


class Alerts:
    """Rate-limited alert mails: ``alert(kind, subject, body)`` never raises.

    ``mailer`` None (email disabled) logs the alerts only. The rolling-hour count of sent (or
    attempted) mails per kind lives in ``state_path``, shared by every process using it.
    """

    def __init__(
        self,
        mailer: Mailer | None,
        state_path: str | Path,
        clock: Clock,
        max_per_hour: int,
        log: logging.Logger | None = None,
    ) -> None:
        self.mailer = mailer
        self.state_path = Path(state_path)
        self.clock = clock
        self.max_per_hour = max_per_hour
        self.log = log or _log

    def stamped_by(self, clock: Clock) -> Alerts:
        """These alerts with their times read from ``clock`` (a collector's judged time)."""
        return Alerts(self.mailer, self.state_path, clock, self.max_per_hour, self.log)

    @classmethod
    def from_config(
        cls,
        email_cfg: dict[str, Any],
        state_path: str | Path,
        clock: Clock,
        log: logging.Logger | None = None,
    ) -> Alerts:
        mailer = Mailer.from_config(email_cfg) if email_cfg["enabled"] else None
        return cls(mailer, state_path, clock, email_cfg["max_per_hour"], log)

    @contextlib.contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        """The state, locked against other processes, written back atomically on exit."""
        lock_path = self.state_path.with_name(self.state_path.name + ".lock")
        with exclusive_lock(lock_path):
            try:
                state = json.loads(self.state_path.read_text(encoding="utf-8"))
                if not isinstance(state, dict):
                    raise ValueError("not a JSON object")
            except FileNotFoundError:
                state = {}
            except (OSError, ValueError) as e:
                self.log.warning(
                    "alert state %s unreadable (%s); starting afresh", self.state_path, e
                )
                state = {}
            yield state
            atomic_write_json(self.state_path, state)

    def _reserve(
        self, kind: str, now: datetime, subject: str = ""
    ) -> tuple[bool, int, int, str | None]:
        """Record an attempt if the kind is under its limit.

        Returns (may send, suppressed since last mail, failed since last mail, since when).
        Every alert raised, sent or suppressed, is also kept for a day under "recent" (the
        health view lists them).
        """
        with self._state() as state:
            recent = [a for a in state.get("recent") or [] if _is_recent(a, now)]
            state["recent"] = recent[-(RECENT_MAX - 1) :] + [
                {"at": now.isoformat(), "kind": kind, "subject": subject}
            ]
            kinds = state.setdefault("kinds", {})
            entry = kinds.setdefault(kind, {"sent": [], "suppressed": 0, "failed": 0})
            entry["sent"] = [
                t for t in entry.get("sent", []) if now - datetime.fromisoformat(t) < WINDOW
            ]
            if len(entry["sent"]) >= self.max_per_hour:
                entry["suppressed"] = entry.get("suppressed", 0) + 1
                entry.setdefault("since", now.isoformat())
                return False, 0, 0, None
            # Attempts count, not only successes: with SMTP down, each try costs a timeout.
            entry["sent"].append(now.isoformat())
            suppressed, failed = entry.get("suppressed", 0), entry.get("failed", 0)
            since = entry.get("since")
            entry["suppressed"], entry["failed"] = 0, 0
            entry.pop("since", None)
            # Keep the file small: forget kinds with nothing left to remember.
            for k in [k for k, e in kinds.items() if not e["sent"] and not e.get("suppressed")]:
                if not kinds[k].get("failed"):
                    del kinds[k]
            return True, suppressed, failed, since

    def _record_failure(self, kind: str, now: datetime) -> None:
        with self._state() as state:
            entry = state.setdefault("kinds", {}).setdefault(
                kind, {"sent": [], "suppressed": 0, "failed": 0}
            )
            entry["failed"] = entry.get("failed", 0) + 1
            entry.setdefault("since", now.isoformat())

    def alert(
        self, kind: str, subject: str, body: str, attachments: Sequence[Attachment] = ()
    ) -> bool:
        """Mail an alert unless ``kind`` hit its hourly limit; True only if a mail went out."""
        now = self.clock.now()
        try:
            ok, suppressed, failed, since = self._reserve(kind, now, subject)
        except OSError as e:  # an unwritable state dir must not stop the caller either
            self.log.error("alert %s: cannot use state file %s: %s", kind, self.state_path, e)
            ok, suppressed, failed, since = True, 0, 0, None
        if not ok:
            self.log.warning(
                "alert %s suppressed (rate limit %d/h): %s", kind, self.max_per_hour, subject
            )
            return False
        if suppressed or failed:
            notes = []
            if suppressed:
                limit = self.max_per_hour
                notes.append(f"{suppressed} suppressed by the limit of {limit} per hour")
            if failed:
                notes.append(f"{failed} that could not be sent")
            body = (
                f"{body.rstrip()}\n\nEarlier '{kind}' alerts since {since} were not mailed: "
                f"{' and '.join(notes)}. See the logs for them.\n"
            )
        if self.mailer is None:
            self.log.warning("alert %s (email disabled): %s", kind, subject)
            return False
        try:
            self.mailer.send(subject, body, attachments)
        except Exception as e:  # noqa: BLE001 - whatever went wrong, the caller keeps going
            self.log.error("alert %s not sent: %s", kind, e)
            with contextlib.suppress(OSError):
                self._record_failure(kind, now)
            return False
        self.log.info("alert %s sent: %s", kind, subject)
        return True

    def alert_nowait(
        self, kind: str, subject: str, body: str, attachments: Sequence[Attachment] = ()
    ) -> threading.Thread:
        """``alert`` in a daemon thread, so a slow SMTP server never blocks the caller."""
        t = threading.Thread(
            target=self.alert,
            args=(kind, subject, body, attachments),
            name=f"alert-{kind}",
            daemon=True,
        )
        t.start()
        return t


# --- outages --------------------------------------------------------------------------------


class DisconnectTracker:
    """Outage alerts for one collector, robust to flapping.

    An outage starts at the first disconnect (or stall) and ends only once the stream has been
    connected for ``stable_seconds`` without another disconnect; disconnects in between belong
    to the same outage. "down" goes out once an outage has lasted ``alert_after_minutes`` while
    disconnected, or while flapping (more than one disconnect); "recovered" goes out when an
    alerted outage ends. So a flapping connection gives at most two mails per outage, and the
    Alerts rate limit caps the rest. Call ``tick(now)`` regularly (each rotation); the event
    methods call it too.
    """

    def __init__(
        self,
        alerts: Alerts,
        server: str,
        alert_after_minutes: float,
        stable_seconds: float = 120.0,
        nowait: bool = False,
    ) -> None:
        self.alerts = alerts
        self.server = server
        self.alert_after = timedelta(minutes=alert_after_minutes)
        self.stable = timedelta(seconds=stable_seconds)
        self.nowait = nowait  # send from a thread (collector) rather than inline (tests)
        self.outage_since: datetime | None = None
        self.connected = True
        self.recovered_at: datetime | None = None
        self.disconnects = 0
        self.reasons: list[str] = []
        self.alerted = False

    def _send(self, kind: str, subject: str, body: str) -> None:
        kind = f"{kind}-{self.server}"
        if self.nowait:
            self.alerts.alert_nowait(kind, subject, body)
        else:
            self.alerts.alert(kind, subject, body)

    def on_disconnect(self, now: datetime, reason: str) -> str | None:
        if self.outage_since is None:
            self.outage_since = now
            self.disconnects = 0
            self.reasons = []
            self.alerted = False
        self.connected = False
        self.recovered_at = None
        self.disconnects += 1
        if reason and reason not in self.reasons[-5:]:
            self.reasons.append(reason)
        return self.tick(now)

    def on_recovered(self, now: datetime) -> str | None:
        if self.outage_since is not None and not self.connected:
            self.connected = True
            self.recovered_at = now
        return self.tick(now)

    def tick(self, now: datetime) -> str | None:
        """Send what is due; return "down", "recovered" or None."""
        since = self.outage_since
        if since is None:
            return None
        if self.connected and self.recovered_at and now - self.recovered_at >= self.stable:
            alerted = self.alerted
            back = self.recovered_at
            lasted = back - since
            self.outage_since, self.recovered_at, self.alerted = None, None, False
            if alerted:
                self._send(
                    "stream-recovered",
                    f"{self.server}: stream recovered after {_minutes(lasted)}",
                    f"The stream of {self.server} is connected again since {back.isoformat()}.\n"
                    f"The outage began {since.isoformat()} and lasted {_minutes(lasted)} with "
                    f"{self.disconnects} disconnect(s). Minutes without a file in that time "
                    "were not collected by this server.\n",
                )
                return "recovered"
            return None
        flapping = self.disconnects > 1
        due = now - since >= self.alert_after
        if not self.alerted and due and (not self.connected or flapping):
            self.alerted = True
            state = "unstable" if flapping else "disconnected"
            self._send(
                "stream-down",
                f"{self.server}: stream {state} for {_minutes(now - since)}",
                f"The stream of {self.server} has been {state} since {since.isoformat()} "
                f"({self.disconnects} disconnect(s)).\n"
                f"Reasons: {'; '.join(self.reasons) or 'unknown'}\n"
                "The collector keeps reconnecting; another mail follows when it has recovered.\n",
            )
            return "down"
        return None


def _minutes(delta: timedelta) -> str:
    return f"{int(delta.total_seconds() // 60)} min"


# --- daily report ---------------------------------------------------------------------------


def mail_day_report(
    mailer: Mailer,
    day: str,
    report_text: str,
    png: bytes | None,
    marker: str | Path,
    link: str | None = None,
    revised: bool = False,
) -> bool:
    """Mail a day's report (with the per-minute plot) once; ``marker`` records that it went and
    which report (its SHA-256: a newer one is mailed again, ``revised``, by the plan).
    ``link``: the day's dashboard page, named under the report in the body.

    Returns False without sending when the marker exists. Raises MailError if sending fails (the
    marker is then not written, so the next run tries again).
    """
    marker = Path(marker)
    if marker.exists():
        return False
    report = report_text.encode()
    attachments: list[Attachment] = [(f"{day}_report.txt", report, "text/plain")]
    if png:
        attachments.append((f"{day}_tweets_per_minute.png", png, "image/png"))
    intro = (
        "This report replaces the one mailed before: hours of the day were rebuilt, or posts "
        "were removed for compliance (sampled-stream comply).\n\n"
    )
    body = (intro if revised else "") + report_text
    body += f"\nThe day on the dashboard: {link}\n" if link else ""
    subject = f"report {day}" + (" (revised)" if revised else "")
    message_id = mailer.send(subject, body, attachments)
    marker.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        marker,
        {
            "day": day,
            "message_id": message_id,
            "to": mailer.to,
            "sent_at": formatdate(),
            "report_sha256": hashlib.sha256(report).hexdigest(),
        },
    )
    return True


def alerts_for(config: dict[str, Any], clock: Clock, log: logging.Logger | None = None) -> Alerts:
    """The workflow's alerts, their rate-limit state under work_dir."""
    state = layout.work_paths(config["work_dir"])["state"] / "alerts.json"
    return Alerts.from_config(config["email"], state, clock, log)


def notify_once(
    config: dict[str, Any], kind: str, items: Sequence[str], subject: str, intro: str, now: datetime
) -> bool:
    """Mail the ``items`` not mailed before under ``kind`` (rate-limited like every alert).

    For conditions that last across runs (a damaged file, an unexpected name, a hung run): one
    mail when each appears, not one per run. Items that are gone are forgotten, so one that
    comes back is mailed again. True if a mail went out.
    """
    path = layout.work_paths(config["work_dir"])["state"] / "notified.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        known = set(state.get(kind, [])) if isinstance(state, dict) else set()
    except (OSError, ValueError):
        state, known = {}, set()
    new = [i for i in items if i not in known]
    sent = False
    if new:
        body = intro.rstrip() + "\n\n" + "\n".join(f"  {i}" for i in new) + "\n"
        sent = alerts_for(config, FixedClock(now)).alert(f"notice-{kind}", subject, body)
    keep = sorted(i for i in items if i in known or sent)  # unsent ones: tried again next run
    if keep != sorted(known):
        atomic_write_json(path, {**(state if isinstance(state, dict) else {}), kind: keep})
    return sent
