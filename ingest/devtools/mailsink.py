"""A loopback SMTP server (aiosmtpd on 127.0.0.1) that keeps what it receives.

``make demo`` shows the collectors' mails with it, and the tests check theirs (tests/smtp.py
wraps it in the ``smtp`` fixture). aiosmtpd comes with the demo and test extras::

    sink = Sink()
    controller = start(sink)  # controller.port; controller.stop() when done
"""

from __future__ import annotations

import email
import email.policy
import socket
import time
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Sink:
    """An aiosmtpd handler that keeps what it receives.

    ``login``: the one (user, password) that AUTH accepts (use with ``authenticator=
    sink.authenticate``); every attempt is recorded in ``logins``.
    """

    login: tuple[str, str] | None = None
    messages: list[EmailMessage] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)  # each message as received, headers included
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        content = envelope.original_content
        self.messages.append(email.message_from_bytes(content, policy=email.policy.default))
        self.raw.append(content.decode("utf-8", "replace"))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            self.logins.append((user, password))
            # handled=False: aiosmtpd answers 535 itself (True would mean "already answered").
            return AuthResult(success=(user, password) == self.login, handled=False)
        return AuthResult(success=False, handled=False)

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """The messages once at least ``count`` arrived (a client may return before the sink
        has stored the message)."""
        end = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < end:
            time.sleep(0.02)
        if len(self.messages) < count:
            raise TimeoutError(f"{len(self.messages)} mails, expected {count}")
        return self.messages


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(sink: Sink, **kw) -> Controller:
    """Serve ``sink`` on 127.0.0.1 (a free port: ``controller.port``); stop it when done."""
    c = Controller(sink, hostname="127.0.0.1", port=free_port(), **kw)
    c.start()
    return c
