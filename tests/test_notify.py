"""ingest.notify against a real SMTP server on 127.0.0.1 (aiosmtpd): plain, STARTTLS and SSL,
attachments, rate limits shared through the state file, failures that never raise."""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.clock import FixedClock
from ingest.notify import (
    Alerts,
    DisconnectTracker,
    Mailer,
    MailError,
    mail_day_report,
)
from ingest.pull.rsync import PullResult, alert_unreachable
from ingest.pull.state import load_state, save_state
from ingest.secrets import SecretError
from tests.configs import email_config
from tests.smtp import Sink, free_port, start

pytestmark = pytest.mark.integration  # SMTP servers, openssl, processes

T0 = datetime(2026, 1, 14, 9, 0, tzinfo=UTC)
PASSWORD = "s3cret-Pa55word"


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with openssl (once: tests only read it)."""
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    try:
        subprocess.run(
            [
                "openssl", "req", "-x509", "-nodes", "-days", "2",
                "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-keyout", str(key), "-out", str(crt),
                "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.fail(f"openssl could not make a test certificate: {e}")
    return crt, key


def client_context(crt: Path) -> ssl.SSLContext:
    """Trust exactly the test certificate; hostname checking stays on."""
    return ssl.create_default_context(cafile=str(crt))


def server_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    return ctx


@pytest.fixture
def plain():
    sink = Sink()
    c = start(sink)
    yield sink, c.port
    c.stop()


@pytest.fixture
def starttls(cert):
    sink = Sink(login=("collector", PASSWORD))
    c = start(
        sink,
        tls_context=server_context(cert),
        require_starttls=True,
        authenticator=sink.authenticate,
        auth_require_tls=True,
    )
    yield sink, c.port
    c.stop()


def mailer(port: int, **kw) -> Mailer:
    return Mailer(
        host="127.0.0.1",
        port=port,
        sender="collector@example.org",
        to=["ops@example.org", "archive@example.org"],
        security=kw.pop("security", "none"),
        timeout=5,
        **kw,
    )


def attachments_of(msg) -> dict[str, tuple[str, bytes]]:
    return {
        part.get_filename(): (part.get_content_type(), part.get_payload(decode=True))
        for part in msg.iter_attachments()
    }


# --- Mailer ---------------------------------------------------------------------------------


def test_plain_send_with_attachments(plain) -> None:
    sink, port = plain
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10
    report = "hour\tserv 1\tserv 2\ttotal\tdiff\tdiff %\n9\t3\t3\t3\t0\t0.00%\n"
    mid = mailer(port).send(
        "report 2026-01-14",
        "the report",
        [("2026-01-14_report.txt", report.encode(), "text/plain"), ("plot.png", png, "image/png")],
    )
    assert len(sink.messages) == 1
    msg = sink.messages[0]
    assert msg["Subject"] == "[sampled-stream] report 2026-01-14"
    assert msg["Message-ID"] == mid
    assert sink.envelopes == [("collector@example.org", ["ops@example.org", "archive@example.org"])]
    assert "the report" in msg.get_body(("plain",)).get_content()
    att = attachments_of(msg)
    assert att["plot.png"] == ("image/png", png)
    assert att["2026-01-14_report.txt"] == ("text/plain", report.encode())


def test_starttls_with_login(starttls, cert, tmp_path: Path, caplog) -> None:
    sink, port = starttls
    pw = tmp_path / "smtp_password"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    cfg = email_config(
        enabled=True,
        smtp_host="127.0.0.1",
        smtp_port=port,
        security="starttls",
        user="collector",
        password_file=str(pw),
        to=["ops@example.org"],
        **{"from": "collector@example.org"},
    )
    caplog.set_level(logging.DEBUG)
    m = Mailer.from_config(cfg, timeout=5, ssl_context=client_context(cert[0]))
    assert PASSWORD not in repr(m)
    m.send("hello over TLS", "body")
    assert sink.logins == [("collector", PASSWORD)]
    assert [x["Subject"] for x in sink.messages] == ["[sampled-stream] hello over TLS"]
    assert PASSWORD not in caplog.text

    # A wrong password fails at login, and the message says so without the password.
    pw.write_text("wrong-password")
    bad = Mailer.from_config(cfg, timeout=5, ssl_context=client_context(cert[0]))
    with pytest.raises(MailError, match="at login") as e:
        bad.send("x", "y")
    assert "wrong-password" not in str(e.value)


def test_starttls_verifies_the_certificate(starttls) -> None:
    """With the system's CAs (the default), a self-signed server certificate is refused."""
    sink, port = starttls
    with pytest.raises(MailError, match="STARTTLS.*(CERTIFICATE_VERIFY_FAILED|certificate)"):
        mailer(port, security="starttls").send("x", "y")
    assert sink.messages == []


def test_starttls_required_by_server_but_not_used(starttls) -> None:
    sink, port = starttls
    with pytest.raises(MailError):
        mailer(port, security="none").send("x", "y")
    assert sink.messages == []


def test_implicit_ssl(cert) -> None:
    sink = Sink()
    c = start(sink, ssl_context=server_context(cert))
    try:
        mailer(c.port, security="ssl", ssl_context=client_context(cert[0])).send("ssl", "body")
    finally:
        c.stop()
    assert [x["Subject"] for x in sink.messages] == ["[sampled-stream] ssl"]


def test_password_from_environment_and_config_errors(monkeypatch, tmp_path: Path) -> None:
    cfg = email_config(smtp_host="h", security="ssl", user="u", to=["c@d"], **{"from": "a@b"})
    monkeypatch.delenv("SMTP_PASSWORD", raising=False)
    with pytest.raises(SecretError, match="SMTP_PASSWORD"):
        Mailer.from_config(cfg)
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    m = Mailer.from_config(cfg)
    assert m.password == PASSWORD and m.port == 465  # the SSL default port
    loose = tmp_path / "pw"
    loose.write_text(PASSWORD)
    loose.chmod(0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        Mailer.from_config({**cfg, "password_file": str(loose)})


# --- Alerts ---------------------------------------------------------------------------------


def test_rate_limit_shared_by_two_processes_state(plain, tmp_path: Path) -> None:
    """Two Alerts on one state file (two cron runs, or collector and workflow) share the limit;
    the suppressed count goes out with the next mail of that kind."""
    sink, port = plain
    state = tmp_path / "alerts.json"
    clock = FixedClock(T0)
    a1 = Alerts(mailer(port), state, clock, max_per_hour=3)
    a2 = Alerts(mailer(port), state, clock, max_per_hour=3)
    results = []
    for i in range(10):
        clock.instant = T0 + timedelta(minutes=i)
        results.append((a1 if i % 2 else a2).alert("workflow-error", f"error {i}", "body"))
    assert results == [True] * 3 + [False] * 7
    assert len(sink.messages) == 3
    # Another kind has its own limit.
    assert a1.alert("stream-down-server1", "down", "body")
    # The hour rolls on from the first mail: one slot frees at T0 + 60 min.
    clock.instant = T0 + timedelta(minutes=59, seconds=59)
    assert not a2.alert("workflow-error", "still limited", "body")
    clock.instant = T0 + timedelta(minutes=60)
    assert a2.alert("workflow-error", "error 11", "body")
    last = sink.messages[-1]
    assert last["Subject"] == "[sampled-stream] error 11"
    text = last.get_body(("plain",)).get_content()
    assert "8 suppressed by the limit of 3 per hour" in text
    assert "since 2026-01-14T09:03:00+00:00" in text
    # The count was reset by that mail.
    clock.instant = T0 + timedelta(minutes=61)
    assert a1.alert("workflow-error", "error 12", "body")
    assert "suppressed" not in sink.messages[-1].get_body(("plain",)).get_content()


def test_rate_limit_across_concurrent_processes(plain, tmp_path: Path) -> None:
    """Two processes alerting at the same time: the file lock keeps the count exact."""
    sink, port = plain
    code = (
        "import sys; from datetime import datetime;"
        "from ingest.clock import FixedClock; from ingest.notify import Alerts, Mailer;"
        f"m = Mailer('127.0.0.1', {port}, 'a@example.org', ['b@example.org'], 'none');"
        f"a = Alerts(m, {str(tmp_path / 'alerts.json')!r},"
        f" FixedClock(datetime.fromisoformat({T0.isoformat()!r})), max_per_hour=4);"
        "print(sum(a.alert('workflow-error', 'e', 'b') for _ in range(5)))"
    )
    root = Path(__file__).resolve().parents[1]
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    sent = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert sum(sent) == 4 and len(sink.messages) == 4


def test_send_failure_returns_false_logs_and_is_reported_later(
    plain, tmp_path: Path, caplog
) -> None:
    sink, port = plain
    state = tmp_path / "alerts.json"
    clock = FixedClock(T0)
    down = Alerts(mailer(free_port()), state, clock, max_per_hour=5)  # nothing listens there
    caplog.set_level(logging.INFO)
    t = time.monotonic()
    assert down.alert("collector-started", "started", "body") is False
    assert time.monotonic() - t < 5
    assert "alert collector-started not sent" in caplog.text
    assert "ConnectionRefusedError" in caplog.text
    # Once mail works again, the lost alert is mentioned.
    clock.instant = T0 + timedelta(minutes=5)
    up = Alerts(mailer(port), state, clock, max_per_hour=5)
    assert up.alert("collector-started", "started again", "body")
    assert "1 that could not be sent" in sink.messages[-1].get_body(("plain",)).get_content()


def test_unwritable_state_or_disabled_email_never_raises(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    off = Alerts.from_config(email_config(), tmp_path / "a.json", FixedClock(T0))
    assert off.mailer is None
    assert off.alert("k", "subject here", "b") is False
    assert "email disabled" in caplog.text and "subject here" in caplog.text
    blocker = tmp_path / "file"
    blocker.write_text("")
    broken = Alerts(None, blocker / "sub" / "a.json", FixedClock(T0), max_per_hour=6)
    assert broken.alert("k", "s", "b") is False
    assert "cannot use state file" in caplog.text


def test_alert_nowait(plain, tmp_path: Path) -> None:
    sink, port = plain
    a = Alerts(mailer(port), tmp_path / "a.json", FixedClock(T0), max_per_hour=6)
    a.alert_nowait("collector-stopped", "stopped: SIGTERM", "body").join(10)
    assert [m["Subject"] for m in sink.messages] == ["[sampled-stream] stopped: SIGTERM"]


# --- DisconnectTracker ----------------------------------------------------------------------


def subjects(sink: Sink) -> list[str]:
    return [m["Subject"].removeprefix("[sampled-stream] ") for m in sink.messages]


def tracker(port: int, tmp_path: Path, clock: FixedClock, **kw) -> DisconnectTracker:
    alerts = Alerts(mailer(port), tmp_path / "alerts.json", clock, max_per_hour=6)
    return DisconnectTracker(alerts, "server1", alert_after_minutes=10, **kw)


def test_long_outage_one_down_one_recovered(plain, tmp_path: Path) -> None:
    sink, port = plain
    clock = FixedClock(T0)
    tr = tracker(port, tmp_path, clock)
    tr.on_disconnect(T0, "stalled: no data for 30 s")
    for s in range(0, 30 * 60, 15):  # ticks every 15 s for half an hour
        tr.tick(T0 + timedelta(seconds=s))
    assert subjects(sink) == ["server1: stream disconnected for 10 min"]
    body = sink.messages[0].get_body(("plain",)).get_content()
    assert "stalled: no data for 30 s" in body
    back = T0 + timedelta(minutes=30)
    tr.on_recovered(back)
    tr.tick(back + timedelta(seconds=119))
    assert len(sink.messages) == 1  # not stable yet
    assert tr.tick(back + timedelta(seconds=120)) == "recovered"
    assert subjects(sink)[-1] == "server1: stream recovered after 30 min"
    for s in range(0, 3600, 15):
        tr.tick(back + timedelta(seconds=120 + s))
    assert len(sink.messages) == 2


def test_short_outages_send_nothing(plain, tmp_path: Path) -> None:
    sink, port = plain
    clock = FixedClock(T0)
    tr = tracker(port, tmp_path, clock)
    t = T0
    for _ in range(50):  # 50 cut connections, each back after 8 s and stable for 5 min
        tr.on_disconnect(t, "connection reset")
        tr.on_recovered(t + timedelta(seconds=8))
        for s in range(8, 300, 15):
            tr.tick(t + timedelta(seconds=s))
        t += timedelta(minutes=5)
    assert sink.messages == []


def test_flapping_connection_sends_a_handful(plain, tmp_path: Path) -> None:
    """Reconnects every 40 s for three hours: one "unstable" mail, one "recovered" mail."""
    sink, port = plain
    clock = FixedClock(T0)
    tr = tracker(port, tmp_path, clock)
    t = T0
    end = T0 + timedelta(hours=3)
    while t < end:
        tr.on_disconnect(t, "HTTP 503")
        tr.on_recovered(t + timedelta(seconds=5))
        tr.tick(t + timedelta(seconds=20))
        t += timedelta(seconds=40)
    for s in range(0, 600, 15):
        tr.tick(t + timedelta(seconds=s))
    assert subjects(sink) == [
        "server1: stream unstable for 10 min",
        "server1: stream recovered after 179 min",  # the last cut was at 179:20
    ]
    assert "270 disconnect(s)" in sink.messages[1].get_body(("plain",)).get_content()


def test_flapping_long_outages_capped_by_rate_limit(plain, tmp_path: Path) -> None:
    """Outages of 12 min with 3 min of calm in between, for two hours: the hourly limit caps it."""
    sink, port = plain
    clock = FixedClock(T0)
    tr = tracker(port, tmp_path, clock, stable_seconds=120)
    t = T0
    while t < T0 + timedelta(hours=2):
        tr.on_disconnect(t, "cut")
        for s in range(0, 12 * 60, 30):
            clock.instant = t + timedelta(seconds=s)
            tr.tick(clock.instant)
        t += timedelta(minutes=12)
        tr.on_recovered(t)
        for s in range(0, 3 * 60, 30):
            clock.instant = t + timedelta(seconds=s)
            tr.tick(clock.instant)
        t += timedelta(minutes=3)
    downs = [s for s in subjects(sink) if "disconnected" in s]
    ups = [s for s in subjects(sink) if "recovered" in s]
    assert len(downs) == 8 and len(ups) == 8  # 8 outages, each alerted and recovered
    sink.messages.clear()
    # The same pattern again at the limit: no more than 6 per kind within the rolling hour.
    for _ in range(8):
        tr.on_disconnect(t, "cut")
        clock.instant = t + timedelta(minutes=11)
        tr.tick(clock.instant)
        tr.on_recovered(clock.instant)
        clock.instant += timedelta(minutes=3)
        tr.tick(clock.instant)
        t += timedelta(minutes=5)
    # Alerts due at 131, 136, ... 166 min; the rolling hour already holds the mails of 85, 100
    # and 115 min, so those at 151, 156 and 166 min hit the limit of 6.
    assert len([s for s in subjects(sink) if "disconnected" in s]) == 5


# --- rsync reachability alerts --------------------------------------------------------------


def test_unreachable_secondary_alert_once_and_recovery(plain, tmp_path: Path) -> None:
    sink, port = plain
    state_dir = tmp_path / "state"
    clock = FixedClock(T0)
    alerts = Alerts(mailer(port), tmp_path / "alerts.json", clock, max_per_hour=6)
    st = load_state(state_dir, "server2")
    st.first_failure = T0.isoformat()
    save_state(state_dir, "server2", st)

    def failing(at: datetime) -> PullResult:
        return PullResult("server2", False, error="ssh: connect to host: Connection refused",
                          unreachable_since=T0)  # fmt: skip

    assert alert_unreachable(failing(T0), state_dir, alerts, T0 + timedelta(minutes=5), 10) is None
    now = T0 + timedelta(minutes=10)
    assert alert_unreachable(failing(now), state_dir, alerts, now, 10) == "unreachable"
    for h in range(1, 5):  # hourly cron runs while it stays down: no more mails
        now = T0 + timedelta(hours=h)
        assert alert_unreachable(failing(now), state_dir, alerts, now, 10) is None
    ok = PullResult("server2", True, files_pulled=42)
    assert alert_unreachable(ok, state_dir, alerts, now, 10) == "reachable"
    assert alert_unreachable(ok, state_dir, alerts, now, 10) is None
    assert subjects(sink) == [
        "server2: cannot pull minute files for 10 min",
        "server2: minute files pulled again",
    ]
    assert "Connection refused" in sink.messages[0].get_body(("plain",)).get_content()


# --- daily report ---------------------------------------------------------------------------


def test_day_report_mailed_once_with_plot(plain, tmp_path: Path) -> None:
    from ingest.observe.plot import minutes_plot_png

    sink, port = plain
    report = "hour\tserv 1\tserv 2\ttotal\tdiff\tdiff %\n0\t10\t9\t10\t1\t10.00%\n"
    stats = [
        {
            "minutes": {
                "server1": {(T0 + timedelta(minutes=i)).isoformat(): 10 for i in range(60)},
                "server2": {
                    (T0 + timedelta(minutes=i)).isoformat(): (None if i < 5 else 9)
                    for i in range(60)
                },
            }
        }
    ]
    png = minutes_plot_png("2026-01-14", stats, ["server1", "server2"], tz="Europe/Berlin")
    marker = tmp_path / "mail" / "2026-01-14.sent"
    m = mailer(port)
    assert mail_day_report(m, "2026-01-14", report, png, marker) is True
    assert mail_day_report(m, "2026-01-14", report, png, marker) is False
    assert len(sink.messages) == 1
    msg = sink.messages[0]
    assert msg["Subject"] == "[sampled-stream] report 2026-01-14"
    att = attachments_of(msg)
    assert att["2026-01-14_report.txt"] == ("text/plain", report.encode())
    assert att["2026-01-14_tweets_per_minute.png"] == ("image/png", png)
    assert png.startswith(b"\x89PNG")
    assert "10.00%" in msg.get_body(("plain",)).get_content()
    assert (
        json.loads(marker.read_text())["report_sha256"]
        == hashlib.sha256(report.encode()).hexdigest()
    )

    # A newer report of the day (an hour's newer generation): mailed again, marked revised.
    marker.unlink()  # as Snakemake removes a job's output before it runs again
    assert mail_day_report(
        m, "2026-01-14", report + "1\t3\t3\t3\t0\t0%\n", None, marker, revised=True
    )
    assert sink.messages[1]["Subject"] == "[sampled-stream] report 2026-01-14 (revised)"
    assert "replaces the one mailed before" in sink.messages[1].get_body(("plain",)).get_content()


def test_day_report_failure_leaves_no_marker(tmp_path: Path) -> None:
    marker = tmp_path / "2026-01-14.sent"
    with pytest.raises(MailError, match="at connect"):
        mail_day_report(mailer(free_port()), "2026-01-14", "r", None, marker)
    assert not marker.exists()
