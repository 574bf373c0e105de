"""The sampled-stream stand-in, read at the wire level (raw sockets, chunked decoding by hand)."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlencode

import pytest
import requests

from ingest.clock import ScaledClock
from ingest.devtools.emulator import STREAM_PATH, Emulator

pytestmark = pytest.mark.integration  # the stand-in over HTTP

TOKEN = "emu-test-token"
FIELDS = {
    "expansions": "author_id",
    "tweet.fields": "id,conversation_id,author_id,created_at,source,lang,text,referenced_tweets",
    "user.fields": "created_at,location,name,username,verified,protected,public_metrics",
}


class Wire:
    """A raw HTTP/1.1 client for one stream: status, headers, then chunk payloads."""

    def __init__(self, em: Emulator, params=None, token=TOKEN, client="t", timeout=3.0):
        self.sock = socket.create_connection(("127.0.0.1", em.port), timeout=timeout)
        q = urlencode(params if params is not None else FIELDS)
        headers = [f"GET {STREAM_PATH}?{q} HTTP/1.1", f"Host: 127.0.0.1:{em.port}"]
        if token is not None:
            headers.append(f"Authorization: Bearer {token}")
        headers.append(f"User-Agent: twarc/2.14.0 sampled-stream ({client})")
        self.sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        status_line, *lines = head.decode().split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in lines if h)}
        self.ended = False

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _until(self, sep: bytes) -> bytes:
        while sep not in self.buf:
            self._fill()
        out, self.buf = self.buf.split(sep, 1)
        return out

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def body(self) -> bytes:
        return self._exact(int(self.headers["content-length"]))

    def chunk(self) -> bytes:
        """The next chunk's payload; b"" and ``ended`` at the terminating chunk."""
        size = int(self._until(b"\r\n"), 16)
        data = self._exact(size)
        assert self._exact(2) == b"\r\n"
        if size == 0:
            self.ended = True
        return data

    def lines(self, seconds: float) -> list[bytes]:
        """CRLF-terminated lines (keep-alives as b"") received within ``seconds``."""
        end = time.monotonic() + seconds
        data = b""
        while time.monotonic() < end and not self.ended:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                data += self.chunk()
            except TimeoutError:
                break
        assert data.endswith(b"\r\n") or not data
        return data.split(b"\r\n")[:-1]

    def close(self) -> None:
        self.sock.close()


def tweets(lines: list[bytes]) -> list[dict]:
    return [json.loads(line) for line in lines if line]


@pytest.fixture
def em():
    with Emulator(rate=50, keepalive=0.2, token=TOKEN, seed=3) as e:
        yield e


def test_wire_protocol_lines_and_fields(em: Emulator) -> None:
    w = Wire(em)
    assert w.status == 200
    assert w.headers["transfer-encoding"] == "chunked"
    assert w.headers["content-type"].startswith("application/json")
    got = tweets(w.lines(0.6))
    w.close()
    assert 15 <= len(got) <= 45  # 50/s for 0.6 s
    assert sum("includes" in t for t in got) >= len(got) - 3
    for t in got:
        assert set(t) <= {"data", "includes"}
        assert set(t["data"]) <= set(FIELDS["tweet.fields"].split(",")) | {"edit_history_tweet_ids"}
        assert {"id", "text", "author_id", "created_at", "lang"} <= set(t["data"])
        if "includes" not in t:  # about 1 % of tweets come without their author
            continue
        (user,) = t["includes"]["users"]
        assert user["id"] == t["data"]["author_id"]
        assert "public_metrics" in user and "description" not in user
    assert len({t["data"]["id"] for t in got}) == len(got)


def test_fields_and_expansions_are_honored(em: Emulator) -> None:
    w = Wire(em, params={"tweet.fields": "lang"})
    got = tweets(w.lines(0.4))
    w.close()
    assert got
    for t in got:
        assert "includes" not in t  # no expansions=author_id, no users
        assert set(t["data"]) == {"id", "text", "edit_history_tweet_ids", "lang"}


def test_keepalive_is_a_bare_crlf_when_nothing_else_is_sent() -> None:
    with Emulator(rate=0, keepalive=0.15, token=TOKEN) as e:
        w = Wire(e)
        raw = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.8:
            raw.append(w.chunk())
        w.close()
    assert raw and all(c == b"\r\n" for c in raw)
    assert 3 <= len(raw) <= 7  # one per 0.15 s of silence


def test_bearer_token_is_checked(em: Emulator) -> None:
    for token in (None, "wrong"):
        w = Wire(em, token=token)
        assert w.status == 401
        assert json.loads(w.body())["title"] == "Unauthorized"
        w.close()
    w = Wire(em)
    assert w.status == 200
    w.close()


def test_every_connection_gets_the_same_tweets_and_drops_hit_one(em: Emulator) -> None:
    a, b = Wire(em, client="a"), Wire(em, client="b")
    time.sleep(0.1)
    em.fault("drop", count=5, client="b")
    got_a = [t["data"]["id"] for t in tweets(a.lines(1.0))]
    got_b = [t["data"]["id"] for t in tweets(b.lines(0.3))]
    a.close()
    b.close()
    missing = [i for i in got_a if i not in set(got_b)]
    # b saw the same tweets as a, in the same order, except the 5 dropped for it.
    common = [i for i in got_a if i in set(got_b)]
    assert common == got_b[: len(common)]
    assert len(missing) >= 5
    conns = em.stats()
    assert conns["faults"] == []


def test_status_faults_hit_the_next_attempts_of_the_named_client(em: Emulator) -> None:
    em.fault("503", count=2, client="x")
    em.fault("429")
    w = Wire(em, client="y")  # the 429 is for anyone; the 503s only for x
    assert w.status == 429
    assert w.headers["x-rate-limit-remaining"] == "0"
    assert json.loads(w.body())["status"] == 429
    w.close()
    for expected in (503, 503, 200):
        w = Wire(em, client="x")
        assert w.status == expected
        w.close()
    assert em.stats()["attempts"] == {"y 429": 1, "x 503": 2, "x 200": 1}


def test_cut_resets_the_connection_mid_line(em: Emulator) -> None:
    w = Wire(em)
    w.lines(0.2)
    em.fault("cut")
    with pytest.raises((EOFError, ConnectionResetError, AssertionError)):
        for _ in range(100):
            w.chunk()
    w.close()


def test_operational_disconnect_line_then_end(em: Emulator) -> None:
    w = Wire(em)
    w.lines(0.2)
    em.fault("disconnect-line")
    lines = w.lines(1.0)
    assert w.ended
    last = json.loads(lines[-1])
    assert last["errors"][0]["title"] == "operational-disconnect"
    assert last["errors"][0]["disconnect_type"] == "OperationalDisconnect"


def test_malformed_line_then_the_stream_goes_on(em: Emulator) -> None:
    w = Wire(em)
    w.lines(0.2)
    em.fault("malformed")
    lines = [line for line in w.lines(0.5) if line]
    w.close()
    bad = []
    for i, line in enumerate(lines):
        try:
            json.loads(line)
        except ValueError:
            bad.append(i)
    assert len(bad) == 1
    assert bad[0] < len(lines) - 3  # valid tweets keep coming after it


def test_stall_sends_nothing_not_even_keepalives(em: Emulator) -> None:
    w = Wire(em)
    w.lines(0.2)
    em.fault("stall", seconds=0.8)
    w.lines(0.1)  # whatever was in flight
    w.sock.settimeout(0.5)
    with pytest.raises(TimeoutError):
        w.chunk()
    w.close()


def test_backfill_replays_recent_minutes_and_can_be_refused() -> None:
    clock = ScaledClock(60)  # a minute per second: backfill_minutes=1 is the last second
    with Emulator(rate=100, keepalive=1, token=TOKEN, clock=clock) as e:
        time.sleep(1.6)
        w = Wire(e, params={**FIELDS, "backfill_minutes": "1"})
        first = w.chunk()  # the replay comes in one go, before any live tweet
        w.close()
        replayed = [json.loads(x) for x in first.split(b"\r\n") if x]
        assert 70 <= len(replayed) <= 130  # about one second (one fast minute) of tweets
        w = Wire(e)
        assert len(w.chunk().split(b"\r\n")) < 10  # no backfill asked, none given
        w.close()
    for status in (400, 403):
        with Emulator(rate=10, token=TOKEN, refuse_backfill=status) as e:
            w = Wire(e, params={**FIELDS, "backfill_minutes": "5"})
            assert w.status == status
            assert "backfill_minutes" in w.body().decode()
            w.close()
            w = Wire(e)
            assert w.status == 200
            w.close()


def test_split_chunks_cut_lines_across_chunks() -> None:
    with Emulator(rate=50, keepalive=1, token=TOKEN, split_chunks=True) as e:
        w = Wire(e)
        chunks = [w.chunk() for _ in range(12)]
        w.close()
    assert any(not c.endswith(b"\r\n") for c in chunks)
    lines = b"".join(chunks).split(b"\r\n")[:-1]
    assert all(json.loads(x)["data"]["id"] for x in lines[:-1])


def test_admin_endpoint_over_http(em: Emulator) -> None:
    r = requests.post(f"{em.base_url}/_fault", params={"kind": "503", "count": 2}, timeout=5)
    assert r.status_code == 200 and r.json()["queued"]["kind"] == "503"
    r = requests.post(f"{em.base_url}/_fault", params={"kind": "nope"}, timeout=5)
    assert r.status_code == 400
    stats = requests.get(f"{em.base_url}/_stats", timeout=5).json()
    assert stats["faults"] == [{"kind": "503", "count": 2, "client": None, "seconds": None}]
    r = requests.get(em.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert r.status_code == 503
    assert requests.post(f"{em.base_url}/_clear", timeout=5).json() == {"cleared": True}
    assert requests.get(f"{em.base_url}/_stats", timeout=5).json()["faults"] == []


def test_ledger_records_made_and_written_tweets_but_never_a_cut_line(tmp_path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    with Emulator(rate=50, keepalive=0.2, token=TOKEN, seed=3, ledger=ledger) as em:
        w = Wire(em, client="s1")
        received = [t["data"]["id"] for t in tweets(w.lines(0.5))]
        em.fault("cut")
        with pytest.raises((EOFError, ConnectionResetError, AssertionError)):
            for _ in range(100):
                w.chunk()
        w.close()
    records = [json.loads(line) for line in ledger.read_text().splitlines()]
    made = {r[1]: r[2] for r in records if r[0] == "g"}
    sent = [r for r in records if r[0] == "s"]
    sent_ids = [i for r in sent for i in r[4]]
    assert received and sent_ids[: len(received)] == received
    assert {r[2] for r in sent} == {"s1"} and all(isinstance(r[1], float) for r in sent)
    assert set(sent_ids) <= set(made) and all(made[i].endswith("Z") for i in sent_ids)
    assert len(sent_ids) == len(set(sent_ids))  # the half line of the cut is not among them
