"""A loopback stand-in for X's sampled stream (``GET /2/tweets/sample/stream``).

It speaks the wire protocol the collector meets in production: HTTP/1.1 with chunked transfer
encoding, one compact JSON object per CRLF-terminated line (``data`` and, with
``expansions=author_id``, ``includes.users``), a bare CRLF keep-alive whenever nothing else was
sent for ``keepalive`` seconds, a bearer-token check (401), and ``backfill_minutes`` (replays
the last N minutes first, or is refused with 400/403 like an access level without it).
Tweets come from ``ingest.devtools.generate.TweetFactory`` at ``rate`` per second, and every
connection
gets the same tweets, as every client of the real sample does.

Faults on request, through ``Emulator.fault()`` in-process or ``POST /_fault?kind=K&count=N
[&client=NAME][&seconds=S]`` on the same port:

- ``429``, ``503``, ``500``, ``401``, ``403``: the next N matching connection attempts get
  that status;
- ``cut``: the connection is cut mid-line (half a chunk, then a TCP reset);
- ``stall``: nothing more is sent, not even keep-alives (for ``seconds``, default until the
  client goes away); the client must notice and reconnect;
- ``disconnect-line``: X's operational-disconnect message, then the stream ends;
- ``malformed``: one line that is not JSON, then the stream goes on;
- ``drop``: the next N tweets are not sent to the matching client(s) (the servers' data differ).

Stream faults (cut, stall, disconnect-line, malformed) hit a live matching connection at once
or else the next one. A client is named by the ``(name)`` after ``sampled-stream`` in its
User-Agent (the collector sends its server name), else by a ``client`` query parameter, else
``ip:port``. ``GET /_stats`` returns connections, attempts by status and pending faults.

``ledger``: a file where the stand-in records, independently of any collector, every tweet it
made (``["g", id, created_at, author_id]``), every batch of complete tweet lines it wrote to a
connection (``["s", unix_seconds_after_the_write, client, connection_id, [ids]]``) and every
stream fault that hit a connection (``["f", unix_seconds, client, connection_id, kind]``); the
soak checks the archive against it. A line cut in half by a fault is never recorded as sent.

``Emulator(...).start()`` runs it in-process (tests); ``sampled-stream emulate`` runs it as a
command (demo).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import re
import select
import socket
import struct
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from ingest.clock import Clock, SystemClock
from ingest.devtools.compliance import (
    DOWNLOAD_PREFIX,
    JOBS_PATH,
    UPLOAD_PREFIX,
    ComplianceJobs,
)
from ingest.devtools.generate import OPERATIONAL_DISCONNECT, TweetFactory

STREAM_PATH = "/2/tweets/sample/stream"
STATUS_FAULTS = ("429", "503", "500", "401", "403")
STREAM_FAULTS = ("cut", "stall", "disconnect-line", "malformed")
FAULT_KINDS = (*STATUS_FAULTS, *STREAM_FAULTS, "drop")
# Fields X always returns, requested or not.
TWEET_DEFAULT_FIELDS = ("id", "text", "edit_history_tweet_ids")
USER_DEFAULT_FIELDS = ("id", "name", "username")
_UA_CLIENT = re.compile(r"sampled-stream \(([^)]+)\)")
_WAKE = object()

log = logging.getLogger(__name__)

_STATUS_BODIES = {
    401: {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"},
    403: {
        "title": "Forbidden",
        "type": "about:blank",
        "status": 403,
        "detail": "Forbidden",
    },
    429: {
        "title": "Too Many Requests",
        "type": "about:blank",
        "status": 429,
        "detail": "Too Many Requests",
    },
    500: {
        "title": "Internal Server Error",
        "type": "about:blank",
        "status": 500,
        "detail": "Internal Server Error",
    },
    503: {
        "title": "Service Unavailable",
        "type": "about:blank",
        "status": 503,
        "detail": "Service Unavailable",
    },
}


def _backfill_refusal(status: int) -> dict[str, Any]:
    if status == 400:
        return {
            "errors": [
                {
                    "parameters": {"backfill_minutes": ["5"]},
                    "message": "The query parameter [backfill_minutes] is not one of "
                    "[expansions,tweet.fields,user.fields,media.fields,poll.fields,"
                    "place.fields]",
                }
            ],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        }
    return {
        "title": "Client Forbidden",
        "detail": "backfill_minutes is not available at your access level.",
        "reason": "client-not-enrolled",
        "type": "https://api.twitter.com/2/problems/client-forbidden",
        "status": 403,
    }


@dataclass
class Fault:
    kind: str
    count: int = 1
    client: str | None = None
    seconds: float | None = None

    def matches(self, client: str) -> bool:
        return self.client is None or self.client == client


@dataclass
class _Conn:
    id: int
    client: str
    params: dict[str, str]
    connected_at: float
    queue: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    sent: int = 0
    dropped: int = 0
    backfilled: int = 0

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client": self.client,
            "connected_at": self.connected_at,
            "sent": self.sent,
            "dropped": self.dropped,
            "backfilled": self.backfilled,
            "params": self.params,
        }


class Ledger:
    """The stand-in's own record of what it made and wrote (JSON lines, flushed per record)."""

    def __init__(self, path: str | Path) -> None:
        self._file = open(path, "ab")  # noqa: SIM115 - open for the stand-in's lifetime
        self._lock = threading.Lock()

    def _write(self, record: list[Any]) -> None:
        with self._lock:
            self._file.write(orjson.dumps(record) + b"\n")
            self._file.flush()

    def made(self, line: dict[str, Any]) -> None:
        data = line["data"]
        self._write(["g", data["id"], data["created_at"], data.get("author_id")])

    def sent(self, client: str, conn_id: int, ids: list[str]) -> None:
        self._write(["s", time.time(), client, conn_id, ids])

    def fault(self, client: str, conn_id: int, kind: str) -> None:
        """A stream fault hit connection ``conn_id`` (written before the fault's bytes)."""
        self._write(["f", time.time(), client, conn_id, kind])

    def close(self) -> None:
        with self._lock:
            self._file.close()


class _Projection:
    """Serialize a generated line as a connection asked for it (expansions and fields)."""

    def __init__(self, params: dict[str, str]) -> None:
        def fields(key: str, defaults: tuple[str, ...]) -> set[str] | None:
            if key not in params:
                return set(defaults)
            return set(defaults) | {f for f in params[key].split(",") if f}

        self.tweet = fields("tweet.fields", TWEET_DEFAULT_FIELDS)
        self.user = fields("user.fields", USER_DEFAULT_FIELDS)
        self.authors = "author_id" in params.get("expansions", "").split(",")

    def __call__(self, line: dict[str, Any]) -> bytes:
        out: dict[str, Any] = {"data": {k: v for k, v in line["data"].items() if k in self.tweet}}
        users = (line.get("includes") or {}).get("users")
        if self.authors and users:
            out["includes"] = {
                "users": [{k: v for k, v in u.items() if k in self.user} for u in users]
            }
        return orjson.dumps(out) + b"\r\n"


class Emulator:
    """The stand-in server. ``start()``, then ``url``/``port``; ``stop()`` when done."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        rate: float = 55.0,
        keepalive: float = 20.0,
        token: str | None = None,
        seed: int = 0,
        clock: Clock | None = None,
        refuse_backfill: int | None = None,
        history_minutes: float = 5.0,
        split_chunks: bool = False,
        ledger: str | Path | None = None,
        compliance: ComplianceJobs | None = None,
    ) -> None:
        if refuse_backfill not in (None, 400, 403):
            raise ValueError("refuse_backfill must be 400, 403 or None")
        self.host = host
        self.rate = float(rate)
        self.keepalive = float(keepalive)
        self.token = token
        self.clock = clock or SystemClock()
        self.refuse_backfill = refuse_backfill
        self.history = timedelta(minutes=history_minutes)
        self.split_chunks = split_chunks
        self.ledger = Ledger(ledger) if ledger else None
        self.compliance = compliance or ComplianceJobs(seed)
        self._factory = TweetFactory(seed)
        self._rnd = random.Random(seed)
        self._lock = threading.Lock()
        self._conns: dict[int, _Conn] = {}
        self._faults: list[Fault] = []
        self._history: deque[tuple[datetime, dict[str, Any]]] = deque()
        self._next_id = 0
        self._stopped = threading.Event()
        self.generated = 0
        self.attempts: Counter[str] = Counter()  # "client status" -> count
        self._server = _Server((host, port), _Handler)
        self._server.emulator = self
        self._threads: list[threading.Thread] = []

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The stream URL (what ``stream.url`` points at)."""
        return self.base_url + STREAM_PATH

    def start(self) -> Emulator:
        for name, target in (
            ("emulator-http", self._serve_http),
            ("emulator-gen", self._generate),
        ):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        log.info(
            "stream emulator on %s (%.1f tweets/s, keep-alive %.1f s)",
            self.url,
            self.rate,
            self.keepalive,
        )
        return self

    def _serve_http(self) -> None:
        self._server.serve_forever(poll_interval=0.05)  # a quick stop() for tests

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            for c in self._conns.values():
                c.queue.put(_WAKE)
        self._server.shutdown()
        self._server.server_close()
        for t in self._threads:
            t.join(timeout=5)
        if self.ledger is not None:
            self.ledger.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control -----------------------------------------------------------------------------

    def fault(
        self, kind: str, count: int = 1, client: str | None = None, seconds: float | None = None
    ) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r} (one of {', '.join(FAULT_KINDS)})")
        if count < 1:
            raise ValueError("count must be at least 1")
        f = Fault(kind, count, client or None, seconds)
        with self._lock:
            self._faults.append(f)
            for c in self._conns.values():
                if f.matches(c.client):
                    c.queue.put(_WAKE)  # act now, not at the next tweet or keep-alive
        log.info("fault queued: %s", f)
        return f

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "generated": self.generated,
                "connections": [c.info() for c in self._conns.values()],
                "attempts": dict(self.attempts),
                "faults": [f.__dict__.copy() for f in self._faults],
                "url": self.url,
            }

    def accepted(self, client: str | None = None) -> int:
        """How many connections (HTTP 200) were accepted, for ``client`` or in all."""
        with self._lock:
            return sum(
                n
                for key, n in self.attempts.items()
                if key.endswith(" 200") and (client is None or key.rsplit(" ", 1)[0] == client)
            )

    def _take_fault(self, client: str, kinds: tuple[str, ...]) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.kind in kinds and f.matches(client):
                    f.count -= 1
                    if f.count <= 0:
                        self._faults.remove(f)
                    return f
        return None

    # -- the broadcast -----------------------------------------------------------------------

    def _generate(self) -> None:
        t0 = time.monotonic()
        made = 0
        tick = 0.02 if self.rate <= 0 else min(0.02, 1.0 / self.rate)
        while not self._stopped.wait(tick):
            if self.rate <= 0:
                continue
            due = int((time.monotonic() - t0) * self.rate) - made
            for _ in range(due):
                self._publish(self._factory.make(self.clock.now()))
                made += 1

    def _publish(self, line: dict[str, Any]) -> None:
        now = self.clock.now()
        if self.ledger is not None:
            self.ledger.made(line)
        with self._lock:
            self.generated += 1
            self._history.append((now, line))
            while self._history and now - self._history[0][0] > self.history:
                self._history.popleft()
            for c in self._conns.values():
                drop = next(
                    (f for f in self._faults if f.kind == "drop" and f.matches(c.client)), None
                )
                if drop is not None:
                    drop.count -= 1
                    if drop.count <= 0:
                        self._faults.remove(drop)
                    c.dropped += 1
                    continue
                c.queue.put(line)

    def _register(self, client: str, params: dict[str, str], backfill: int) -> tuple[_Conn, list]:
        now = self.clock.now()
        with self._lock:
            self._next_id += 1
            conn = _Conn(self._next_id, client, params, time.time())
            self._conns[conn.id] = conn
            since = now - timedelta(minutes=backfill)
            replay = [line for t, line in self._history if backfill and t >= since]
            conn.backfilled = len(replay)
            return conn, replay

    def _unregister(self, conn: _Conn) -> None:
        with self._lock:
            self._conns.pop(conn.id, None)

    def _count(self, client: str, status: int) -> None:
        with self._lock:
            self.attempts[f"{client} {status}"] += 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: Emulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    # -- plumbing ----------------------------------------------------------------------------

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _client(self, query: dict[str, str]) -> str:
        m = _UA_CLIENT.search(self.headers.get("User-Agent", ""))
        if m:
            return m[1]
        if query.get("client"):
            return query["client"]
        host, port = self.client_address[:2]
        return f"{host}:{port}"

    def _reset(self) -> None:
        """Close the TCP connection with a reset, as a cut line or a crashed proxy would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _client_gone(self, timeout: float) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], timeout)
            if readable:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True
        return False

    # -- routes ------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == STREAM_PATH:
            self._stream(query)
        elif url.path == JOBS_PATH or url.path.startswith(JOBS_PATH + "/"):
            self._compliance_get(url.path, query)
        elif url.path.startswith(DOWNLOAD_PREFIX):
            data = self.server.emulator.compliance.results(
                url.path.removeprefix(DOWNLOAD_PREFIX), self.server.emulator.clock.now()
            )
            if data is None:
                self._json(404, {"title": "Not Found", "status": 404})
            else:
                self._bytes(200, data, "application/json")
        elif url.path == "/_stats":
            self._json(200, self.server.emulator.stats())
        else:
            self._json(404, {"title": "Not Found", "type": "about:blank", "status": 404})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            with contextlib.suppress(ValueError):
                body = json.loads(self.rfile.read(length) or b"{}")
                if isinstance(body, dict):
                    query.update({k: str(v) for k, v in body.items()})
        em = self.server.emulator
        if url.path == JOBS_PATH:
            if self._api_refused(query):
                return
            status, body = em.compliance.create(query, em.clock.now())
            if status == 200:
                body = {"data": body["data"].describe(em.base_url)}
            self._json(status, body)
        elif url.path == "/_fault":
            try:
                f = em.fault(
                    query.get("kind", ""),
                    int(query.get("count", 1)),
                    query.get("client") or None,
                    float(query["seconds"]) if query.get("seconds") else None,
                )
            except ValueError as e:
                self._json(400, {"error": str(e)})
                return
            self._json(200, {"queued": f.__dict__})
        elif url.path == "/_clear":
            em.clear_faults()
            self._json(200, {"cleared": True})
        else:
            self._json(404, {"title": "Not Found", "type": "about:blank", "status": 404})

    def do_PUT(self) -> None:  # noqa: N802 - stdlib name
        url = urlsplit(self.path)
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if url.path.startswith(UPLOAD_PREFIX) and self.server.emulator.compliance.upload(
            url.path.removeprefix(UPLOAD_PREFIX), data
        ):
            self._bytes(200, b"", "text/plain")
        else:
            self._json(404, {"title": "Not Found", "status": 404})

    # -- batch compliance (ingest.devtools.compliance) -----------------------------------------

    def _bytes(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _api_refused(self, query: dict[str, str]) -> bool:
        """Answered already: a wrong token (401) or a queued 429/503 fault."""
        em = self.server.emulator
        client = self._client(query)
        if em.token is not None and self.headers.get("Authorization") != f"Bearer {em.token}":
            em._count(client, 401)
            self._json(401, _STATUS_BODIES[401])
            return True
        fault = em._take_fault(client, ("429", "503"))
        if fault is None:
            return False
        status = int(fault.kind)
        em._count(client, status)
        headers = {"x-rate-limit-reset": str(int(time.time()) + 60)} if status == 429 else {}
        self._json(status, _STATUS_BODIES[status], headers)
        return True

    def _compliance_get(self, path: str, query: dict[str, str]) -> None:
        em = self.server.emulator
        if self._api_refused(query):
            return
        if path == JOBS_PATH:
            jobs = em.compliance.listing(query.get("type"), query.get("status"))
            self._json(200, {"data": [j.describe(em.base_url) for j in jobs]} if jobs else {})
            return
        job = em.compliance.status(path.removeprefix(JOBS_PATH + "/"))
        if job is None:
            self._json(404, {"errors": [{"message": "job not found"}]})
        else:
            self._json(200, {"data": job.describe(em.base_url)})

    # -- the stream --------------------------------------------------------------------------

    def _stream(self, query: dict[str, str]) -> None:
        em = self.server.emulator
        client = self._client(query)
        self.close_connection = True  # one stream per connection
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or (
            em.token is not None and auth != f"Bearer {em.token}"
        ):
            em._count(client, 401)
            self._json(401, _STATUS_BODIES[401])
            return
        backfill = int(query.get("backfill_minutes") or 0)
        if backfill and em.refuse_backfill:
            em._count(client, em.refuse_backfill)
            self._json(em.refuse_backfill, _backfill_refusal(em.refuse_backfill))
            return
        fault = em._take_fault(client, STATUS_FAULTS)
        if fault is not None:
            status = int(fault.kind)
            em._count(client, status)
            headers = {}
            if status == 429:
                reset = int(time.time()) + 60
                headers = {
                    "x-rate-limit-limit": "50",
                    "x-rate-limit-remaining": "0",
                    "x-rate-limit-reset": str(reset),
                }
            self._json(status, _STATUS_BODIES[status], headers)
            return
        em._count(client, 200)
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        project = _Projection(query)
        conn, replay = em._register(client, query, min(backfill, 5))
        log.info("stream %d opened for %s (%d backfilled)", conn.id, client, len(replay))
        try:
            if replay:
                self._send_lines(conn, replay, project)
            self._serve(conn, project)
        except OSError as e:  # the client went away
            log.info("stream %d for %s ended: %s", conn.id, client, e)
        finally:
            em._unregister(conn)

    def _send_lines(self, conn: _Conn, items: list[dict[str, Any]], project: _Projection) -> None:
        em = self.server.emulator
        data = b"".join(project(item) for item in items)
        if em.split_chunks and len(data) > 1:
            # X's chunks need not end at a line end: the client must join lines across them.
            cuts = sorted(em._rnd.sample(range(1, len(data)), min(3, len(data) - 1)))
            for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
                self._chunk(data[a:b])
        else:
            self._chunk(data)
        conn.sent += len(items)
        if em.ledger is not None:
            em.ledger.sent(conn.client, conn.id, [item["data"]["id"] for item in items])

    def _serve(self, conn: _Conn, project: _Projection) -> None:
        em = self.server.emulator
        last_write = time.monotonic()
        while not em._stopped.is_set():
            fault = em._take_fault(conn.client, STREAM_FAULTS)
            if fault is not None:
                log.info("stream %d for %s: fault %s", conn.id, conn.client, fault.kind)
                if em.ledger is not None:
                    em.ledger.fault(conn.client, conn.id, fault.kind)
                if fault.kind == "malformed":
                    self._chunk(b'{"data": {"id": "1", "text": "not json\r\n')
                    last_write = time.monotonic()
                    continue
                if fault.kind == "cut":
                    line = project(em._factory.make(em.clock.now()))
                    self.wfile.write(b"%x\r\n%s" % (len(line), line[: len(line) // 2]))
                    self._reset()
                    return
                if fault.kind == "disconnect-line":
                    self._chunk(orjson.dumps(OPERATIONAL_DISCONNECT) + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if fault.kind == "stall":
                    until = time.monotonic() + (fault.seconds if fault.seconds else 1e9)
                    while time.monotonic() < until and not em._stopped.is_set():
                        if self._client_gone(0.2):
                            return
                    self._reset()
                    return
            wait = max(0.0, last_write + em.keepalive - time.monotonic())
            items: list[dict[str, Any]] = []
            try:
                item = conn.queue.get(timeout=min(wait, 0.5))
                while True:
                    if item is not _WAKE:
                        items.append(item)
                    item = conn.queue.get_nowait()
            except queue.Empty:
                pass
            if items:
                self._send_lines(conn, items, project)
                last_write = time.monotonic()
            elif time.monotonic() - last_write >= em.keepalive:
                self._chunk(b"\r\n")
                last_write = time.monotonic()
