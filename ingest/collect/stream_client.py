"""The HTTP side of the collector: twarc's ``Twarc2`` pointed at a configurable stream URL.

twarc builds the request (``sample()``: expansions and fields, ``backfill_minutes``), owns the
HTTP session with the bearer token, splits the chunked body into lines, parses them and adds
its ``__twarc`` metadata. Three things it does not do the way an always-on collector needs, so
this subclass changes them:

- It never looks at the HTTP status of a stream response: a 429 or 503 body would be yielded
  as a tweet and the stream reopened at once, in a tight loop. ``get`` raises ``HTTPStatusError``
  for anything but 200.
- It catches network errors while streaming and sleeps ``errors ** 2`` seconds with
  ``time.sleep`` (not X's guidance, not interruptible, not scalable in tests). The response
  handed to twarc turns those errors into ``NetworkError``, which twarc does not catch, so the
  collector decides how long to wait. A read timeout of ``stall_seconds`` (no data and no
  keep-alive) is such an error, marked ``stalled``.
- ``sample()`` always calls api.twitter.com; ``stream_url`` replaces that URL.

The token: twarc logs the Authorization header at DEBUG. ``protect_logs`` keeps twarc's logger
at INFO or above, whatever the root level, and a filter redacts registered secrets from any
record that reaches it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import requests
from twarc.client2 import Twarc2
from urllib3.exceptions import ReadTimeoutError

SAMPLE_URL = "https://api.twitter.com/2/tweets/sample/stream"

log = logging.getLogger(__name__)

# Loggers that may see credentials at DEBUG: twarc logs "authorization: Bearer ...", the
# OAuth libraries log client secrets. They are held at INFO.
SECRET_LOGGERS = ("twarc", "requests_oauthlib", "oauthlib")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(secret: str) -> None:
    """Remember ``secret`` so that ``RedactSecrets`` removes it from log records."""
    # Very short strings are not real tokens (tests); redacting them would garble every line.
    if secret and len(secret) >= 8:
        with _secrets_lock:
            _secrets.add(secret)


def redact(text: str) -> str:
    with _secrets_lock:
        secrets = list(_secrets)
    for s in secrets:
        text = text.replace(s, "***")
    return text


class RedactSecrets(logging.Filter):
    """Replace registered secrets in a record's message by ``***`` (never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Format once here so the handler uses the redacted text.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


_filter = RedactSecrets()


def protect_logs(secret: str | None = None) -> None:
    """Keep credential-logging loggers above DEBUG and redact ``secret`` wherever we can."""
    if secret:
        register_secret(secret)
    for name in SECRET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO or logger.level < logging.INFO:
            logger.setLevel(logging.INFO)
        if _filter not in logger.filters:
            logger.addFilter(_filter)


def install_redaction(handler: logging.Handler) -> None:
    """Add the redaction filter to a handler (catches records of every logger it serves)."""
    if _filter not in handler.filters:
        handler.addFilter(_filter)


class StreamError(Exception):
    """Base of the errors the stream raises to the collector. Deliberately not a
    ``requests.RequestException``: twarc's ``_stream`` would catch that and sleep on its own."""


class HTTPStatusError(StreamError):
    def __init__(self, status: int, body: str, url: str) -> None:
        self.status = status
        self.body = body
        self.url = url
        super().__init__(f"HTTP {status}: {body[:300].strip()}")

    @property
    def backfill_refused(self) -> bool:
        """The API refused ``backfill_minutes`` (not every access level has it)."""
        return self.status in (400, 403) and "backfill" in self.body.lower()

    @property
    def auth_failed(self) -> bool:
        return self.status in (401, 403) and not self.backfill_refused


class NetworkError(StreamError):
    def __init__(self, message: str, stalled: bool = False) -> None:
        self.stalled = stalled
        super().__init__(message)


def _network_error(e: requests.RequestException, stall_seconds: float) -> NetworkError:
    cause = e.args[0] if e.args else None
    if isinstance(e, requests.exceptions.ReadTimeout) or isinstance(cause, ReadTimeoutError):
        return NetworkError(f"stalled: nothing received for {stall_seconds:g} s", stalled=True)
    return NetworkError(f"{type(e).__name__}: {e}")


class _GuardedResponse:
    """What twarc's ``_stream`` iterates: the response, with errors twarc must not swallow.

    Also drops lines that are not JSON (logged, counted through ``on_malformed``) so that one
    bad line costs one line, not a reconnect.
    """

    def __init__(
        self,
        resp: requests.Response,
        stall_seconds: float,
        on_malformed: Callable[[bytes], None] | None,
    ) -> None:
        self._resp = resp
        self._stall = stall_seconds
        self._on_malformed = on_malformed
        self.url = resp.url

    def iter_lines(self) -> Iterator[bytes]:
        try:
            for line in self._resp.iter_lines():
                if line.strip():
                    try:
                        orjson.loads(line)
                    except orjson.JSONDecodeError:
                        if self._on_malformed:
                            self._on_malformed(line)
                        continue
                yield line
        except requests.RequestException as e:
            raise _network_error(e, self._stall) from None
        # The real stream never ends on its own; an end of body is a disconnect.
        raise NetworkError("the server ended the stream")

    def close(self) -> None:
        self._resp.close()


class StreamClient(Twarc2):
    """``Twarc2`` for one long-lived stream (app auth with a bearer token)."""

    def __init__(
        self,
        bearer_token: str,
        stream_url: str = SAMPLE_URL,
        *,
        stall_seconds: float = 30.0,
        connect_timeout: float = 10.0,
        user_agent_suffix: str | None = None,
        on_connected: Callable[[requests.Response], None] | None = None,
        on_malformed: Callable[[bytes], None] | None = None,
    ) -> None:
        protect_logs(bearer_token)  # before Twarc2.__init__, which logs the header
        self.stream_url = stream_url
        self.stall_seconds = stall_seconds
        self.connect_timeout = connect_timeout
        self.user_agent_suffix = user_agent_suffix
        self.on_connected = on_connected
        self.on_malformed = on_malformed
        super().__init__(bearer_token=bearer_token, metadata=True)

    def connect(self) -> None:
        super().connect()
        if self.user_agent_suffix and self.client is not None:
            ua = self.client.headers.get("User-Agent", "")
            self.client.headers["User-Agent"] = f"{ua} {self.user_agent_suffix}".strip()

    def set_token(self, bearer_token: str) -> None:
        """Use a new token from the next request on (a restored token file)."""
        protect_logs(bearer_token)
        self.bearer_token = bearer_token
        self.connect()

    def _stream(self, url: str, params: dict, event, record_keepalive, tries: int = 30):
        if url == SAMPLE_URL:
            url = self.stream_url
        return super()._stream(url, params, event, record_keepalive, tries)

    def get(self, url: str, **kwargs: Any) -> _GuardedResponse:  # type: ignore[override]
        """Open the stream; anything but HTTP 200 raises ``HTTPStatusError``."""
        if not self.client:
            self.connect()
        kwargs.pop("timeout", None)
        try:
            resp = self.client.get(
                url, timeout=(self.connect_timeout, self.stall_seconds), **kwargs
            )
        except requests.RequestException as e:
            raise _network_error(e, self.stall_seconds) from None
        self.last_response = resp
        if resp.status_code != 200:
            try:
                body = b"".join(_limited(resp, 4096)).decode("utf-8", "replace")
            except requests.RequestException:
                body = ""
            resp.close()
            raise HTTPStatusError(resp.status_code, body, url)
        if self.on_connected:
            self.on_connected(resp)
        return _GuardedResponse(resp, self.stall_seconds, self.on_malformed)

    def close_stream(self) -> None:
        """Close the current response (after the collector abandoned twarc's generator)."""
        resp = self.last_response
        if resp is not None:
            try:
                resp.close()
            except Exception:  # noqa: BLE001 - closing a broken socket may fail; it is gone
                pass


def _limited(resp: requests.Response, limit: int) -> Iterator[bytes]:
    got = 0
    for chunk in resp.iter_content(1024):
        yield chunk
        got += len(chunk)
        if got >= limit:
            return
