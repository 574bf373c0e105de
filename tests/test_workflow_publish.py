"""The workflow's side rules end to end: rsync pull of a secondary, OSF upload, day mail.

Snakemake runs as cron would run it (a subprocess, ``--nolock``, ``--config now=...`` as the
clock) against real parts on 127.0.0.1: an sshd with a throwaway key, the OSF API stand-in
(tests/osf_standin.py) and an aiosmtpd sink (tests/smtp.py). Data spans are a few minutes
and ``late_minutes``/``grace_minutes`` are 1, so each run parses a dozen minute files.

Times: Europe/Berlin is UTC+1 in January. Local hour 11 is 10:00-11:00 UTC and complete at
11:02 UTC; local hour 23 of 2026-01-14 ends the day at 23:00 UTC.
"""

from __future__ import annotations

import json
import logging
import lzma
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest import layout
from ingest.complied import Complied
from ingest.comply.rewrite import rewrite_hour
from ingest.config import validate_config
from ingest.devtools.generate import generate_raw_tree
from ingest.hours import plan
from ingest.layout import Hour
from ingest.publish.osf import RetryPolicy
from ingest.pull import jobs
from ingest.vault.day import derive_manifest
from tests.osf_standin import OSFStandIn
from tests.smtp import Sink, free_port, start
from tests.workflow_runs import ok, smtp_email, snakemake, write_fast_config

pytestmark = pytest.mark.integration  # Snakemake runs, sshd, rsync, SMTP and OSF servers

TZ = ZoneInfo("Europe/Berlin")
H11 = Hour("2026-01-14", 11)
PREFIX = "[sampled-stream] "


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def two_servers(root: Path):
    """server1's minutes in its raw_dir, server2's in the secondary's raw dir ("remote"), for
    local hour 11 (10:50-11:01 UTC), with an in-progress file the pull must leave alone."""
    remote = root / "remote" / "server2"
    summary = generate_raw_tree(
        [("server1", root / "raw" / "server1"), ("server2", remote)],
        utc(2026, 1, 14, 10, 50),
        utc(2026, 1, 14, 11, 1),
        TZ,
        rate_per_minute=30,
        late_fraction=0,  # every copy within the 1-minute late window: exact expected counts
        seed=11,
    )
    part = layout.minute_path(remote, utc(2026, 1, 14, 11, 1), TZ)
    part = part.with_name(part.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b'{"data": {"id": "1"}}\n')
    return summary, remote, part


def expected_counts(summary) -> dict[str, int]:
    return {s: len(summary.ids_by_hour(TZ, s)[H11]) for s in ("server1", "server2")}


def stats_of(root: Path, hour: Hour = H11) -> dict:
    return json.loads(layout.vault_paths(root / "vault", hour)["stats"].read_text())


def ids_of(path: Path) -> set[int]:
    return {int(x) for x in lzma.decompress(path.read_bytes()).split()}


def body(msg) -> str:
    return msg.get_body(("plain",)).get_content().replace("\r\n", "\n")


# --- rsync ----------------------------------------------------------------------------------


def test_pull_through_sshd_builds_the_hour_with_the_secondary(tmp_path, sshd):
    summary, remote, part = two_servers(tmp_path)
    remote_files = sorted(p.relative_to(remote) for p in remote.rglob("*.jsonl"))
    write_fast_config(
        tmp_path,
        [
            {"name": "server1", "raw_dir": str(tmp_path / "raw" / "server1")},
            {
                "name": "server2",
                "raw_dir": str(tmp_path / "raw" / "server2"),
                "rsync_from": f"{sshd.user}@{sshd.host}:{remote}/",
                "ssh_key_file": str(sshd.key_file),
                "ssh_port": sshd.port,
                "known_hosts_file": str(sshd.known_hosts),
            },
        ],
    )
    ok(snakemake(tmp_path, now="2026-01-14T11:05:00+00:00"))

    stats = stats_of(tmp_path)
    assert stats["counts"] == expected_counts(summary) and stats["counts"]["server2"] > 0
    assert stats["missing_servers"] == []
    assert (
        ids_of(layout.vault_paths(tmp_path / "vault", H11)["ids"]) == (summary.ids_by_hour(TZ)[H11])
    )
    # Every complete minute came over and left the secondary; the in-progress file stayed.
    pulled = tmp_path / "raw" / "server2"
    assert sorted(p.relative_to(pulled) for p in pulled.rglob("*.jsonl")) == remote_files
    assert list(remote.rglob("*.jsonl")) == []
    assert part.read_bytes() == b'{"data": {"id": "1"}}\n'
    assert not list(pulled.rglob("*.part"))
    (receipt,) = (tmp_path / "work" / "pulls" / "server2").glob("*.json")
    assert json.loads(receipt.read_text())["ok"] is True


def test_unreachable_secondary_waits_then_is_left_out_then_rebuilds_the_hour(tmp_path, smtp):
    sink, smtp_port = smtp
    summary, remote, _ = two_servers(tmp_path)
    server1 = {"name": "server1", "raw_dir": str(tmp_path / "raw" / "server1")}
    server2 = {"name": "server2", "raw_dir": str(tmp_path / "raw" / "server2")}
    closed_port = free_port()  # nothing listens there: ssh gets "connection refused"
    unreachable = {**server2, "rsync_from": f"root@127.0.0.1:{remote}/", "ssh_port": closed_port}
    settings = {
        "secondary_wait_minutes": 30,
        "email": smtp_email(smtp_port, alert_after_minutes=20),
        # The mails counted here are the pull's; with no collector running, the health's
        # "collector failing" mail would come too after 30 min (test_health tests it).
        "health": {"mail_after_minutes": 1440},
    }
    write_fast_config(tmp_path, [server1, unreachable], **settings)
    stats_path = layout.vault_paths(tmp_path / "vault", H11)["stats"]

    # 3 min after the hour is complete: the pull fails, the hour waits for the secondary.
    said = ok(snakemake(tmp_path, now="2026-01-14T11:05:00+00:00"))
    assert "hours waiting for a secondary (1): 2026-01-14_11" in said
    assert not stats_path.exists()
    assert sink.messages == []  # unreachable for 0 min < alert_after_minutes

    # 33 min after: past secondary_wait_minutes, built with server1 only; the alert goes out.
    said = ok(snakemake(tmp_path, now="2026-01-14T11:35:00+00:00"))
    stats = stats_of(tmp_path)
    assert stats["counts"] == {"server1": expected_counts(summary)["server1"], "server2": 0}
    assert stats["missing_servers"] == ["server2"]
    assert all(n is None for n in stats["minutes"]["server2"].values())
    (alert,) = sink.wait_for(1)
    assert alert["Subject"] == PREFIX + "server2: cannot pull minute files for 30 min"
    assert "Connection refused" in body(alert)

    # The secondary is back (here as a local path) with its minutes: the same run pulls them
    # and rebuilds the hour with both servers.
    write_fast_config(tmp_path, [server1, {**server2, "rsync_from": f"{remote}/"}], **settings)
    ok(snakemake(tmp_path, now="2026-01-14T11:40:00+00:00"))
    stats = stats_of(tmp_path)
    assert stats["counts"] == expected_counts(summary) and stats["missing_servers"] == []
    report = (tmp_path / "vault" / "2026-01-14" / "2026-01-14_report.txt").read_text()
    c = stats["counts"]
    assert f"11\t{c['server1']}\t{c['server2']}\t{stats['total']}\t" in report
    assert list(remote.rglob("*.jsonl")) == []
    assert sink.wait_for(2)[1]["Subject"] == PREFIX + "server2: minute files pulled again"
    assert len(sink.messages) == 2  # no failure mails: every run succeeded


def secondary_config(tmp_path: Path, server2: dict, **extra) -> dict:
    """A validated config: server1 local, server2 as given (a secondary to pull from)."""
    return validate_config(
        {
            "timezone": "Europe/Berlin",
            "vault_dir": str(tmp_path / "vault"),
            "work_dir": str(tmp_path / "work"),
            "servers": [
                {"name": "server1", "raw_dir": str(tmp_path / "raw1")},
                {"name": "server2", **server2},
            ],
            **extra,
        }
    )


def test_pull_keeping_the_secondarys_copies_fetches_only_hours_retention_keeps(tmp_path):
    """remove_source_files: false leaves every file on the secondary: a pull of all of them
    would bring back, every run, each file retention removed here."""
    remote, raw = tmp_path / "remote", tmp_path / "raw2"
    old, recent = utc(2026, 1, 11, 10, 30), utc(2026, 1, 14, 10, 30)  # 3 days and 35 min ago
    for minute in (old, recent):
        path = layout.minute_path(remote, minute, TZ)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    config = secondary_config(
        tmp_path, {"raw_dir": str(raw), "rsync_from": f"{remote}/", "remove_source_files": False}
    )
    receipt = tmp_path / "work" / "pulls" / "server2" / "run.json"
    log = logging.getLogger("test-pull")
    jobs.pull_job(config, "server2", utc(2026, 1, 14, 11, 5), receipt, log)
    assert [p.name for p in raw.rglob("*.jsonl")] == ["2026-01-14T1130+0100.jsonl"]
    assert len(list(remote.rglob("*.jsonl"))) == 2  # the secondary keeps its copies


def test_day_with_an_hour_held_back_for_a_secondary_is_not_mailed_yet(tmp_path):
    """The day's report is mailed once: not while its last hour waits for a secondary."""
    config = secondary_config(
        tmp_path,
        {"raw_dir": str(tmp_path / "raw2"), "rsync_from": "h:/r/"},
        email=smtp_email(25),
    )
    for minute in (utc(2026, 1, 14, 21, 30), utc(2026, 1, 14, 22, 30)):  # local 22 and 23
        path = layout.minute_path(tmp_path / "raw1", minute, TZ)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    stats = layout.vault_paths(tmp_path / "vault", Hour("2026-01-14", 22))["stats"]
    stats.parent.mkdir(parents=True)
    stats.write_text(json.dumps({"inputs": {"server1": ["2026-01-14T2230+0100.jsonl"]}}))
    down = {"server2": {"ok": False}}
    # Day complete (23:11 UTC) but hour 23 waits for server2 until 00:11.
    p = plan.make_plan(config, utc(2026, 1, 14, 23, 20), down)
    assert p.waiting == [Hour("2026-01-14", 23)] and p.mails == []
    p = plan.make_plan(config, utc(2026, 1, 15, 0, 12), down)
    assert p.build == [Hour("2026-01-14", 23)] and p.mails == ["2026-01-14"]


# --- OSF and mail ---------------------------------------------------------------------------
# One world, six runs: local hour 23 of 2026-01-14 (22:50-23:00 UTC) and hour 00 of
# 2026-01-15 (23:00-23:10 UTC) of one server. The fixture makes all six runs; the tests only
# read what they left (no test runs or changes anything), so they pass in any order.
D1_23, D2_00 = Hour("2026-01-14", 23), Hour("2026-01-15", 0)


@pytest.fixture(scope="module")
def publish(tmp_path_factory):
    root = tmp_path_factory.mktemp("publish")
    generate_raw_tree(
        [("server1", root / "raw" / "server1")],
        utc(2026, 1, 14, 22, 50),
        utc(2026, 1, 14, 23, 10),
        TZ,
        rate_per_minute=30,
        seed=5,
    )
    standin = OSFStandIn().start()
    sink = Sink()
    controller = start(sink)
    token_file = root / "osf_token"
    token_file.write_text(standin.token + "\n")
    token_file.chmod(0o600)
    write_fast_config(
        root,
        [{"name": "server1", "raw_dir": str(root / "raw" / "server1")}],
        osf={
            "enabled": True,
            "project": standin.project,
            "api_url": standin.api_url,
            "token_file": str(token_file),
            "request_interval_seconds": 0,
            "retry_base_seconds": 0,
        },
        email=smtp_email(controller.port, max_per_hour=1),
    )
    w = {"root": root, "standin": standin, "sink": sink, "runs": {}, "snap": {}}

    def run(name: str, now: str) -> None:
        w["runs"][name] = snakemake(root, now=now)
        w["snap"][name] = {
            "requests": standin.total_requests,
            "files": standin.file_count(),
            "mails": len(sink.messages),
        }

    try:
        # The day 2026-01-14 is complete (23:02 UTC): its hour 23 is built, uploaded, mailed.
        run("first", "2026-01-14T23:05:00+00:00")
        run("again", "2026-01-14T23:06:00+00:00")
        # Hour 00 of the next day is due; OSF answers 503 to every try of its upload, twice.
        attempts = RetryPolicy().attempts
        standin.inject(503, times=attempts, method="GET", path=r"^/v2/nodes/")
        run("osf_down", "2026-01-15T00:05:00+00:00")
        w["receipt_after_failure"] = receipt_path(root, D2_00).exists()
        w["upload_log_after_failure"] = (root / "work/logs/osf/2026-01-15_00.log").read_text()
        w["intermediates_after_failure"] = sorted((root / "work" / "minutes").rglob("*.tsv"))
        # Within the upload's back-off (10 min after a first failure) no run asks OSF again.
        run("osf_backing_off", "2026-01-15T00:10:00+00:00")
        standin.inject(503, times=attempts, method="GET", path=r"^/v2/nodes/")
        run("osf_down_again", "2026-01-15T00:15:00+00:00")
        backoff = receipt_path(root, D2_00).with_suffix(".backoff")
        w["backoff_after_second_failure"] = json.loads(backoff.read_text())
        run("osf_back", "2026-01-15T00:35:00+00:00")  # the doubled back-off (20 min) is over
        # A compliance pass makes 2026-01-14_23's next generation and derives its day's
        # manifest again (as ``ingest.comply.run`` does); the next run uploads the day again.
        complied_pass(root / "vault", D1_23)
        run("complied", "2026-01-15T00:36:00+00:00")
        yield w
    finally:
        controller.stop()
        standin.stop()


def complied_pass(vault: Path, hour: Hour) -> None:
    first = ids_of(layout.vault_paths(vault, hour)["ids"]).pop()
    log = logging.getLogger("test_workflow_publish")
    assert rewrite_hour(vault, hour, Complied(posts={first: "deleted"}), xz_preset=0, log=log)
    derive_manifest(vault / hour.day, vault / "manifest.lock", log)


def receipt_path(root: Path, hour: Hour) -> Path:
    return root / "work" / "osf" / hour.day / f"{hour.label}.json"


def remote_of(hour: Hour, name: str) -> str:
    y, m, d = hour.day.split("-")
    return f"{y}/{m}/{d}/{name}"


def test_first_run_uploads_the_hours_ids_the_day_report_and_manifest(publish):
    root, standin = publish["root"], publish["standin"]
    ok(publish["runs"]["first"])
    vault = layout.vault_paths(root / "vault", D1_23)
    report = layout.report_path(root / "vault", "2026-01-14")
    assert publish["snap"]["first"]["files"] == 3
    ids_remote = remote_of(D1_23, vault["ids"].name)
    assert ids_remote == "2026/01/14/2026-01-14_23_IDs.txt.xz"
    assert standin.read(ids_remote) == vault["ids"].read_bytes()
    # Later runs built 2026-01-15 only: this day's report on OSF is the one uploaded first.
    assert standin.read(remote_of(D1_23, report.name)) == report.read_bytes()
    receipts = json.loads(receipt_path(root, D1_23).read_text())
    assert [r["remote_path"] for r in receipts] == [
        ids_remote,
        "2026/01/14/2026-01-14_report.txt",
        "2026/01/14/2026-01-14_SHA256SUMS",
    ]
    assert all(r["requests"] <= 10 for r in receipts)  # the path is walked, not listed


def test_second_run_uploads_nothing(publish):
    said = ok(publish["runs"]["again"])
    assert "Nothing to be done" in said
    assert publish["snap"]["again"] == publish["snap"]["first"]


def test_failed_upload_fails_only_its_job_and_the_next_run_retries(publish):
    root, standin = publish["root"], publish["standin"]
    failed = publish["runs"]["osf_down"]
    assert failed.returncode != 0
    assert "upload_osf" in failed.stdout + failed.stderr
    assert not publish["receipt_after_failure"]
    # The hour itself was built and its report written: only the upload failed.
    for p in layout.vault_paths(root / "vault", D2_00).values():
        assert p.exists()
    assert "HTTP 503; retry 5/5" in publish["upload_log_after_failure"]
    # A failed job does not stop freeing space: every hour is built, so no intermediate stays.
    assert publish["intermediates_after_failure"] == []
    ok(publish["runs"]["osf_backing_off"])  # the upload waits out its back-off: no request
    assert publish["snap"]["osf_backing_off"]["requests"] == publish["snap"]["osf_down"]["requests"]
    assert publish["runs"]["osf_down_again"].returncode != 0
    state = publish["backoff_after_second_failure"]
    assert state["attempts"] == 2 and state["next_attempt"] == "2026-01-15T00:35:00+00:00"

    ok(publish["runs"]["osf_back"])
    vault = layout.vault_paths(root / "vault", D2_00)
    assert receipt_path(root, D2_00).exists()
    assert standin.read("2026/01/15/2026-01-15_00_IDs.txt.xz") == vault["ids"].read_bytes()
    report = layout.report_path(root / "vault", "2026-01-15")
    assert standin.read("2026/01/15/2026-01-15_report.txt") == report.read_bytes()


def test_an_hours_new_generation_goes_to_osf_with_its_days_new_manifest(publish):
    """A compliance pass's rewrite is a new record, newer than the hour's upload receipt: the
    plan lists the upload as due, and the run must do it (the day's manifest changed)."""
    ok(publish["runs"]["complied"])
    manifest = publish["root"] / "vault" / D1_23.day / f"{D1_23.day}_SHA256SUMS"
    assert publish["standin"].read(remote_of(D1_23, manifest.name)) == manifest.read_bytes()


def test_only_ids_reports_and_manifests_ever_reach_osf(publish):
    standin = publish["standin"]
    names = sorted(e.name for e in standin.by_id.values() if e.kind == "file")
    assert names == [
        "2026-01-14_23_IDs.txt.xz",
        "2026-01-14_SHA256SUMS",
        "2026-01-14_report.txt",
        "2026-01-15_00_IDs.txt.xz",
        "2026-01-15_SHA256SUMS",
        "2026-01-15_report.txt",
    ]
    # The manifest lets anyone holding the files verify them: the published one is the vault's.
    manifest = publish["root"] / "vault" / "2026-01-15" / "2026-01-15_SHA256SUMS"
    assert standin.read("2026/01/15/2026-01-15_SHA256SUMS") == manifest.read_bytes()
    for _method, _path, query, _outcome in standin.requests:
        assert "tweets" not in query and "users" not in query


def test_complete_day_report_is_mailed_once_with_its_plot(publish):
    root, sink = publish["root"], publish["sink"]
    assert publish["snap"]["first"]["mails"] == 1
    reports = [m for m in sink.messages if m["Subject"] == PREFIX + "report 2026-01-14"]
    assert len(reports) == 1  # across all six runs
    msg = reports[0]
    report = layout.report_path(root / "vault", "2026-01-14").read_text()
    assert body(msg).startswith(report)
    parts = {p.get_filename(): p for p in msg.iter_attachments()}
    assert set(parts) == {"2026-01-14_report.txt", "2026-01-14_tweets_per_minute.png"}
    png = parts["2026-01-14_tweets_per_minute.png"]
    assert png.get_content_type() == "image/png"
    assert png.get_content().startswith(b"\x89PNG\r\n\x1a\n")
    marker = json.loads((root / "work" / "mail" / "2026-01-14.sent").read_text())
    assert marker["message_id"] == msg["Message-ID"]
    assert not (root / "work" / "mail" / "2026-01-15.sent").exists()  # not complete yet


def test_failing_runs_mail_their_error_rate_limited(publish):
    sink, snap = publish["sink"], publish["snap"]
    # The upload failed, not a build: the subject says so (issue 23).
    errors = [m for m in sink.messages if m["Subject"] == PREFIX + "OSF upload failed"]
    # Two failing runs within the hour, email.max_per_hour 1: one mail.
    assert snap["osf_down"]["mails"] == snap["first"]["mails"] + 1
    assert len(errors) == 1 and snap["osf_back"]["mails"] == 2
    text = body(errors[0])
    assert "2026-01-15T00:05:00+00:00" in text and "upload_osf" in text


def test_the_osf_token_stays_out_of_logs_and_mails(publish):
    root, token = publish["root"], publish["standin"].token
    for log in [*(root / "work" / "logs").rglob("*.log"), *(root / ".snakemake").rglob("*.log")]:
        assert token not in log.read_text(errors="replace"), log
    for raw in publish["sink"].raw:
        assert token not in raw
    for proc in publish["runs"].values():
        assert token not in proc.stdout + proc.stderr


def test_an_unreachable_mail_server_fails_only_the_mail_job_whose_log_says_why(tmp_path):
    root = tmp_path
    generate_raw_tree(
        [("server1", root / "raw" / "server1")],
        utc(2026, 1, 14, 22, 50),
        utc(2026, 1, 14, 23, 10),
        TZ,
        rate_per_minute=30,
        seed=5,
    )
    port = free_port()  # nothing listens there
    write_fast_config(root, email=smtp_email(port))
    run = snakemake(root, now="2026-01-14T23:05:00+00:00")
    said = run.stdout + run.stderr
    assert run.returncode != 0
    # Only the mail failed: the hour is built and the day's report written.
    assert layout.vault_paths(root / "vault", D1_23)["stats"].exists()
    assert layout.report_path(root / "vault", "2026-01-14").exists()
    assert "mail_report" in said
    # The job's own log holds the traceback and the cause.
    log = (root / "work" / "logs" / "mail" / "2026-01-14.log").read_text()
    assert "mail_report failed:" in log and "Traceback (most recent call last)" in log, log
    assert "Connection refused" in log and f"127.0.0.1:{port}" in log, log
    # One clear line says what failed and when the next try is.
    said_line = [ln for ln in log.splitlines() if "mail of 2026-01-14 not sent (attempt 1)" in ln]
    assert (
        len(said_line) == 1 and "next attempt not before 2026-01-14T23:15:00+00:00" in said_line[0]
    )

    # Within the back-off (10 min after a first failure) no run tries the mail again: the runs
    # succeed; after it, the mail is tried once more and fails again, its wait doubled.
    ok(snakemake(root, now="2026-01-14T23:10:00+00:00"))
    assert "mail_report" not in ok(snakemake(root, "-n", now="2026-01-14T23:14:00+00:00"))
    again = snakemake(root, now="2026-01-14T23:16:00+00:00")
    assert again.returncode != 0
    state = json.loads((root / "work" / "mail" / "2026-01-14.backoff").read_text())
    assert state["attempts"] == 2 and state["next_attempt"] == "2026-01-14T23:36:00+00:00"
