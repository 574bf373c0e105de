"""The collector against the stream stand-in, with the real twarc client in the loop.

A clock 60 times faster than real time makes a minute last one second, through the same code
paths as production; reconnect delays are scaled by 0.01. In-process runs use
``collector.running``; SIGTERM and kill -9 run ``python -m ingest.cli collect`` as a process.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
import yaml

from ingest.clock import ScaledClock
from ingest.collect.collector import Collector, running
from ingest.collect.partfiles import commit_minute, complete_lines, recover_partials
from ingest.collect.reconnect import Backoff
from ingest.collect.settings import CollectorSettings
from ingest.collect.status import read_status
from ingest.collect.stream_client import HTTPStatusError, StreamClient
from ingest.devtools.emulator import Emulator
from ingest.layout import minute_path, parse_minute_name
from ingest.notify import Alerts, Mailer
from tests.configs import loaded_config

ROOT = Path(__file__).resolve().parents[1]
BERLIN = ZoneInfo("Europe/Berlin")
SPEED = 60.0  # one minute per real second
TOKEN = "tok-4f9a1c77e2-never-in-logs"
MINUTE = timedelta(minutes=1)


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def minute_files(raw: Path) -> list[tuple[datetime, Path]]:
    found = []
    for p in raw.glob("*/*/*.jsonl"):
        minute = parse_minute_name(p.name, BERLIN)
        assert minute is not None, p
        found.append((minute, p))
    return sorted(found)


def lines_of(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


def parts(raw: Path) -> list[Path]:
    return sorted(raw.glob("*/*/*.part"))


@pytest.fixture
def clock() -> ScaledClock:
    return ScaledClock(SPEED)


@pytest.fixture
def em(clock):
    with Emulator(rate=50, keepalive=0.3, token=TOKEN, clock=clock, seed=7) as e:
        yield e


def make(
    tmp_path: Path, url: str, clock, *, token_source=lambda: TOKEN, alerts=None, **kw
) -> Collector:
    """Server s1 of a loaded config, against ``url``, quick to notice stalls and to retry."""
    fast = {
        "stream_url": url,
        "stall_seconds": 0.5,
        "status_file": tmp_path / "status" / "s1.json",
        "backoff_scale": 0.01,
        "backfill_minutes": 0,
    }
    settings = CollectorSettings.from_config(loaded_config(tmp_path), "s1", **{**fast, **kw})
    return Collector(settings, token_source, clock=clock, alerts=alerts)


def alerts_for(port: int, tmp_path: Path, clock) -> Alerts:
    mailer = Mailer("127.0.0.1", port, "collector@example.org", ["ops@example.org"], "none")
    return Alerts(mailer, tmp_path / "alerts.json", clock, max_per_hour=6)


# --- pure parts -----------------------------------------------------------------------------


def test_backoff_follows_x_guidance() -> None:
    b = Backoff()
    assert [b.next("network") for _ in range(66)][:4] == [0.25, 0.5, 0.75, 1.0]
    assert b.next("network") == 16.0  # capped
    assert [b.next("http") for _ in range(8)] == [5, 10, 20, 40, 80, 160, 320, 320]
    assert [b.next("rate_limit") for _ in range(3)] == [60, 120, 240]
    b.reset()
    assert b.next("network") == 0.25
    assert Backoff(0.01).next("http") == pytest.approx(0.05)


def test_http_errors_are_classified() -> None:
    assert HTTPStatusError(
        403, '{"detail": "backfill_minutes is not available"}', "u"
    ).backfill_refused
    assert HTTPStatusError(
        400, "The query parameter [backfill_minutes] is not", "u"
    ).backfill_refused
    assert not HTTPStatusError(400, "invalid tweet.fields", "u").backfill_refused
    assert HTTPStatusError(403, '{"title": "Forbidden"}', "u").auth_failed
    assert HTTPStatusError(401, "Unauthorized", "u").auth_failed
    assert not HTTPStatusError(403, "backfill", "u").auth_failed


def test_complete_lines_drop_cut_and_garbled_lines() -> None:
    data = b'{"a": 1}\n\x00\x00\x00\n{"b": 2}\n{"c": 3, "cut'
    kept, dropped = complete_lines(data)
    assert kept == b'{"a": 1}\n{"b": 2}\n'
    assert dropped == 2
    assert complete_lines(b"") == (b"", 0)


def test_recover_partials_after_a_crash(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    m1 = datetime.fromisoformat("2026-01-14T10:00:00+00:00")
    f1, f2, f3 = (minute_path(raw, m1 + i * MINUTE, BERLIN) for i in range(3))
    f1.parent.mkdir(parents=True)
    # A killed collector: two complete lines and a cut one.
    Path(str(f1) + ".part").write_bytes(
        b'{"data": {"id": "1"}}\n{"data": {"id": "2"}}\n{"data": {"i'
    )
    # A restart within a minute that already had a complete file: appended, not replaced.
    f2.write_bytes(b'{"data": {"id": "3"}}\n')
    Path(str(f2) + ".part").write_bytes(b'{"data": {"id": "4"}}\n')
    # Connected, nothing came yet: an empty file.
    Path(str(f3) + ".part").write_bytes(b"")
    # An interrupted append rewrite leaves a temp file, which is removed.
    (f2.parent / f".{f2.name}.tmp-1-ab").write_bytes(b"junk")
    rec = recover_partials(raw)
    assert rec.as_dict() == {"files": 3, "lines": 2 + 1, "dropped_lines": 1}
    assert f1.read_bytes() == b'{"data": {"id": "1"}}\n{"data": {"id": "2"}}\n'
    assert f2.read_bytes() == b'{"data": {"id": "3"}}\n{"data": {"id": "4"}}\n'
    assert f3.read_bytes() == b""
    assert sorted(p.name for p in f1.parent.iterdir()) == sorted([f1.name, f2.name, f3.name])


def test_commit_minute_appends_once(tmp_path: Path) -> None:
    final, part = tmp_path / "m.jsonl", tmp_path / "m.jsonl.part"
    final.write_bytes(b"a\n")
    part.write_bytes(b"b\n")
    commit_minute(part, final)
    assert final.read_bytes() == b"a\nb\n" and not part.exists()
    # A crash after the rewrite but before removing the part: not appended twice.
    part.write_bytes(b"b\n")
    commit_minute(part, final)
    assert final.read_bytes() == b"a\nb\n" and not part.exists()


# --- against the stand-in -------------------------------------------------------------------


@pytest.mark.integration
def test_minutes_rotate_by_the_clock_and_keep_their_meaning(tmp_path, em, clock) -> None:
    c = make(tmp_path, em.url, clock)
    with running(c):
        wait_for(lambda: len(minute_files(tmp_path / "raw")) >= 4, what="4 minute files")
    files = minute_files(tmp_path / "raw")
    assert parts(tmp_path / "raw") == []
    minutes = [m for m, _ in files]
    assert minutes == sorted(set(minutes))
    assert all(b - a == MINUTE for a, b in zip(minutes, minutes[1:], strict=False))
    total = 0
    for i, (minute, path) in enumerate(files):
        assert path == minute_path(tmp_path / "raw", minute, BERLIN)
        lines = lines_of(path)
        total += len(lines)
        for line in lines:
            assert {"data", "__twarc"} <= set(line) <= {"data", "includes", "__twarc"}
            meta = line["__twarc"]
            assert meta["url"].startswith(em.url + "?expansions=author_id")
            assert meta["version"] == "2.14.0"
            arrived = datetime.fromisoformat(meta["retrieved_at"])
            # Whole seconds: the stamp may read the second the minute began.
            assert minute <= arrived < minute + MINUTE, (path, meta)
            if "includes" in line:  # about 1 % of tweets come without their author
                assert line["includes"]["users"][0]["id"] == line["data"]["author_id"]
        if 0 < i < len(files) - 1:  # full minutes: one real second at 50 tweets/s
            assert 35 <= len(lines) <= 65, (path, len(lines))
    assert total == c.counters.tweets_total
    ids = [x["data"]["id"] for _, p in files for x in lines_of(p)]
    assert len(ids) == len(set(ids))  # no backfill asked: every tweet once


@pytest.mark.integration
def test_empty_minute_files_when_connected_and_nothing_comes(tmp_path, clock) -> None:
    with Emulator(rate=0, keepalive=0.1, token=TOKEN, clock=clock) as quiet:
        c = make(tmp_path, quiet.url, clock)
        with running(c):
            wait_for(lambda: len(minute_files(tmp_path / "raw")) >= 3, what="3 files")
    files = minute_files(tmp_path / "raw")
    assert all(p.stat().st_size == 0 for _, p in files)
    assert c.counters.last_keepalive_at is not None
    assert c.counters.reconnects == 0  # keep-alives kept the 0.5 s stall timer from firing


@pytest.mark.integration
def test_no_files_while_not_connected_then_files_once_it_is(tmp_path, clock) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/2/tweets/sample/stream"
    c = make(tmp_path, url, clock)
    with running(c):
        time.sleep(2.2)  # two minutes and more of refused connections
        assert minute_files(tmp_path / "raw") == [] and parts(tmp_path / "raw") == []
        assert c.counters.reconnects >= 3
        assert "ConnectionError" in c.counters.last_error["message"]
        with Emulator(port=port, rate=50, keepalive=0.3, token=TOKEN, clock=clock):
            wait_for(lambda: c.counters.tweets_total > 0, what="tweets after the server came up")
            wait_for(lambda: minute_files(tmp_path / "raw"), what="a minute file")
    assert (
        sum(len(lines_of(p)) for _, p in minute_files(tmp_path / "raw")) == c.counters.tweets_total
    )


@pytest.mark.integration
def test_every_fault_leads_to_reconnect_and_collection_goes_on(tmp_path, em, clock) -> None:
    c = make(tmp_path, em.url, clock)
    with running(c):
        wait_for(lambda: c.counters.tweets_total > 20, what="first tweets")
        accepted = 1
        expected_errors = {
            "cut": "Connection broken",
            "disconnect-line": "operational disconnect",
            "stall": "stalled",
        }
        for kind, message in expected_errors.items():
            before = c.counters.tweets_total
            em.fault(kind)
            accepted += 1
            wait_for(lambda n=accepted: em.accepted("s1") == n, 5, f"reconnect after {kind}")
            assert message in c.counters.last_error["message"], (kind, c.counters.last_error)
            wait_for(lambda b=before: c.counters.tweets_total > b + 20, 5, f"tweets after {kind}")
        for status in ("503", "500", "429"):
            before = c.counters.tweets_total
            em.fault(status)
            em.fault("cut")  # the status answers the reconnect
            accepted += 1
            wait_for(lambda n=accepted: em.accepted("s1") == n, 5, f"reconnect after {status}")
            assert em.stats()["attempts"][f"s1 {status}"] == 1
            wait_for(lambda b=before: c.counters.tweets_total > b + 20, 5, f"tweets after {status}")
        # A line that is not JSON is skipped; the connection stays up.
        before = c.counters.tweets_total
        em.fault("malformed")
        wait_for(lambda: c.counters.malformed_lines == 1, 5, "malformed line seen")
        wait_for(lambda b=before: c.counters.tweets_total > b + 20, 5, "tweets after malformed")
        assert em.accepted("s1") == accepted
        status = read_status(tmp_path / "status" / "s1.json")
    assert c.counters.reconnects == accepted - 1 + 3  # + the three refused attempts
    assert status["reconnects"] >= 6
    lines = [x for _, p in minute_files(tmp_path / "raw") for x in lines_of(p)]
    assert len(lines) == c.counters.tweets_total
    assert all("data" in x and "errors" not in x for x in lines)  # no messages, no junk


@pytest.mark.integration
def test_backfill_is_requested_and_its_replay_kept(tmp_path, em, clock) -> None:
    c = make(tmp_path, em.url, clock, backfill_minutes=2)
    with running(c):
        wait_for(lambda: c.counters.tweets_total > 60, what="tweets")
        em.fault("cut")
        wait_for(lambda: em.accepted("s1") == 2, what="reconnect")
        (conn,) = em.stats()["connections"]
        assert conn["params"]["backfill_minutes"] == "2"
        assert conn["backfilled"] > 50
        wait_for(lambda: c.counters.tweets_total > 200, what="replay and live tweets")
    ids = [x["data"]["id"] for _, p in minute_files(tmp_path / "raw") for x in lines_of(p)]
    assert len(ids) - len(set(ids)) > 50  # the replay repeats what came before the cut


@pytest.mark.integration
@pytest.mark.parametrize("refusal", [400, 403])
def test_refused_backfill_reconnects_without_it_and_logs_once(
    tmp_path, clock, caplog, refusal
) -> None:
    caplog.set_level(logging.INFO)
    with Emulator(rate=50, keepalive=0.3, token=TOKEN, clock=clock, refuse_backfill=refusal) as e:
        c = make(tmp_path, e.url, clock, backfill_minutes=5)
        with running(c):
            wait_for(lambda: c.counters.tweets_total > 10, what="tweets without backfill")
            e.fault("cut")
            wait_for(lambda: e.accepted("s1") == 2, what="reconnect")
            (conn,) = e.stats()["connections"]
            assert "backfill_minutes" not in conn["params"]
        assert e.stats()["attempts"] == {f"s1 {refusal}": 1, "s1 200": 2}
    refused = [r for r in caplog.records if "refused backfill_minutes" in r.getMessage()]
    assert len(refused) == 1
    assert c.status(clock.now())["backfill_minutes"] == 0


@pytest.mark.integration
def test_auth_failure_alerts_retries_slowly_and_picks_up_a_fixed_token(
    tmp_path, em, clock, smtp
) -> None:
    sink, port = smtp
    token_file = tmp_path / "token"
    token_file.write_text("revoked-token")
    c = make(
        tmp_path,
        em.url,
        clock,
        token_source=lambda: token_file.read_text().strip(),
        alerts=alerts_for(port, tmp_path, clock),
    )
    with running(c):
        wait_for(lambda: em.stats()["attempts"].get("s1 401") == 1, what="first 401")
        first = time.monotonic()
        assert minute_files(tmp_path / "raw") == [] and parts(tmp_path / "raw") == []
        wait_for(lambda: em.stats()["attempts"].get("s1 401") == 2, what="second 401")
        assert time.monotonic() - first >= 0.5  # slow: 60 s x 0.01, not 250 ms x 0.01
        token_file.write_text(TOKEN)
        wait_for(lambda: c.counters.tweets_total > 10, 5, "tweets with the restored token")
        assert minute_files(tmp_path / "raw") or parts(tmp_path / "raw")
    wait_for(lambda: any("bearer token" in s for s in sink.subjects()), what="auth mail")
    assert em.stats()["attempts"]["s1 200"] == 1
    for text in sink.raw:
        assert TOKEN not in text and "revoked-token" not in text


@pytest.mark.integration
def test_notices_started_disconnected_recovered_stopped(tmp_path, em, clock, smtp) -> None:
    sink, port = smtp
    c = make(
        tmp_path,
        em.url,
        clock,
        alerts=alerts_for(port, tmp_path, clock),
        alert_after_minutes=1,
        recovered_after_seconds=60,
    )
    with running(c):
        wait_for(lambda: any("collector started" in s for s in sink.subjects()), what="started")
        wait_for(lambda: c.counters.tweets_total > 10, what="tweets")
        em.fault("503", count=1000)
        em.fault("cut")
        wait_for(lambda: any("stream disconnected" in s for s in sink.subjects()), 6, "down mail")
        em.clear_faults()
        wait_for(lambda: any("recovered" in s for s in sink.subjects()), 8, "recovered mail")
    wait_for(lambda: any("collector stopped" in s for s in sink.subjects()), what="stopped mail")
    subjects = sink.subjects()
    assert len(subjects) == 4, subjects
    down = next(t for s, t in zip(subjects, sink.raw, strict=True) if "stream disconnected" in s)
    assert "Connection broken" in down  # what dropped it; the 503s are in the log
    stopped = next(t for s, t in zip(subjects, sink.raw, strict=True) if "collector stopped" in s)
    assert "end of block" in stopped


@pytest.mark.integration
def test_token_never_logged_even_at_debug(tmp_path, em, clock, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    c = make(tmp_path, em.url, clock)
    with running(c):
        wait_for(lambda: c.counters.tweets_total > 5, what="tweets")
        em.fault("disconnect-line")
        wait_for(lambda: em.accepted("s1") == 2, what="reconnect")
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert any(r.name.startswith("urllib3") for r in debug)  # DEBUG really was on
    assert any("connecting to stream" in r.getMessage() for r in caplog.records)
    assert TOKEN not in caplog.text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    # Even a twarc logger forced to DEBUG prints the header redacted.
    twarc_log = logging.getLogger("twarc")
    level = twarc_log.level
    try:
        client = StreamClient(TOKEN, em.url)  # puts twarc's logger back to INFO...
        twarc_log.setLevel(logging.DEBUG)  # ...which a careless caller may undo
        caplog.clear()
        client.connect()  # twarc logs "authorization: Bearer <token>" at DEBUG here
        auth = [r.getMessage() for r in caplog.records if "authorization" in r.getMessage()]
        assert auth == ["authorization: Bearer ***"]
        assert TOKEN not in caplog.text
    finally:
        twarc_log.setLevel(level)


# --- as a process ---------------------------------------------------------------------------


def write_config(tmp_path: Path, url: str, token: str = TOKEN) -> Path:
    token_file = tmp_path / "bearer_token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    config = {
        "timezone": "Europe/Berlin",
        "vault_dir": str(tmp_path / "vault"),
        "work_dir": str(tmp_path / "work"),
        "servers": [{"name": "s1", "raw_dir": str(tmp_path / "raw")}],
        "stream": {
            "url": url,
            "bearer_token_file": str(token_file),
            "stall_seconds": 0.5,
            "backfill_minutes": 0,
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_collector(config: Path, clock: ScaledClock, tmp_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "TWITTER_BEARER_TOKEN"}
    env["PYTHONPATH"] = str(ROOT)
    args = [sys.executable, "-m", "ingest.cli", "collect", "--config", str(config)]
    args += ["--server", "s1", "--log-level", "debug", "--backoff-scale", "0.01"]
    args += ["--speed", str(SPEED), "--clock-start", clock.start.isoformat()]
    args += ["--clock-epoch", repr(clock.epoch)]
    log = open(tmp_path / f"collector-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.integration
def test_sigterm_closes_the_minute_and_exits_0(tmp_path, em, clock) -> None:
    raw = tmp_path / "raw"
    proc = start_collector(write_config(tmp_path, em.url), clock, tmp_path)
    try:
        wait_for(lambda: len(minute_files(raw)) >= 2, 15, "two minute files")
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert b"--server" in cmdline and TOKEN.encode() not in cmdline
        wait_for(lambda: parts(raw) and parts(raw)[0].stat().st_size > 0, 5, "a minute going on")
        in_progress = parts(raw)[0]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
    assert parts(raw) == []
    closed = Path(str(in_progress)[: -len(".part")])
    assert closed.exists() and lines_of(closed)
    status = read_status(tmp_path / "work" / "status" / "s1.json")
    assert status["state"] == "stopped" and status["stopped_reason"] == "SIGTERM"
    assert status["last_minute"]["file"] == str(closed)
    log = b"".join(p.read_bytes() for p in tmp_path.glob("collector-*.log"))
    assert b"collector s1 stopped (SIGTERM)" in log
    assert b"DEBUG urllib3" in log and TOKEN.encode() not in log


@pytest.mark.integration
def test_kill_9_then_restart_recovers_the_minute(tmp_path, em, clock) -> None:
    raw = tmp_path / "raw"
    config = write_config(tmp_path, em.url)
    proc = start_collector(config, clock, tmp_path)
    try:
        wait_for(lambda: minute_files(raw), 15, "a minute file")
        wait_for(lambda: parts(raw) and parts(raw)[0].stat().st_size > 0, 5, "a minute going on")
        proc.kill()
        proc.wait(5)
    finally:
        proc.kill()
    (part,) = parts(raw)
    complete = part.read_bytes().count(b"\n")
    with open(part, "ab") as f:  # as if the power went mid-write
        f.write(b'{"data": {"id": "123", "text": "cut he')
    killed = proc.pid
    proc = start_collector(config, clock, tmp_path)
    try:
        final = Path(str(part)[: -len(".part")])
        wait_for(final.exists, 15, "the recovered file")
        assert len(lines_of(final)) >= complete  # the restart may append if in the same minute
        status_file = tmp_path / "work" / "status" / "s1.json"
        wait_for(lambda: read_status(status_file)["pid"] != killed, 10, "the new status")
        assert read_status(status_file)["recovered"] == {
            "files": 1,
            "lines": complete,
            "dropped_lines": 1,
        }
        wait_for(lambda: len(minute_files(raw)) >= 3, 10, "collecting again")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
    assert parts(raw) == []
