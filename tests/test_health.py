"""The system's health: thresholds, what is gathered from disk, lasting failures mailed once."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from ingest.clock import FixedClock
from ingest.collect.status import status_path, write_status
from ingest.config import validate_config
from ingest.layout import MINUTE, minute_path
from ingest.notify import Alerts
from ingest.observe import health
from ingest.observe.health import FAILING, OK, WARNING
from tests import dashdata
from tests.configs import loaded_config, minimal_config
from tests.workflow_runs import smtp_email

LIMITS = loaded_config()["health"]
NOW = dashdata.NOW


@pytest.mark.parametrize(
    ("value", "worse", "level"),
    [
        (4.9, True, OK),
        (5, True, WARNING),
        (14.9, True, WARNING),
        (15, True, FAILING),
        (None, True, OK),
        (16, False, OK),
        (15, False, WARNING),
        (5, False, FAILING),
    ],
)
def test_graded_against_warning_and_failing(value, worse, level) -> None:
    limits = {"warning": 5 if worse else 15, "failing": 15 if worse else 5}
    assert health.graded(value, limits, higher_is_worse=worse) == level


def collector(age_min: float | None, **status) -> dict:
    return {
        "server": "s1",
        "pulled": False,
        "newest_minute_age_seconds": None if age_min is None else age_min * 60,
        "status": {"state": "running", "connected_since": "x", **status},
    }


def test_collector_levels() -> None:
    assert health.assess_collector(collector(1), LIMITS).level == OK
    assert health.assess_collector(collector(6), LIMITS).level == WARNING
    assert health.assess_collector(collector(20), LIMITS).level == FAILING
    assert health.assess_collector(collector(None), LIMITS).level == FAILING
    stopped = health.assess_collector(
        collector(1, state="stopped", stopped_reason="SIGTERM"), LIMITS
    )
    assert stopped.level == FAILING and "SIGTERM" in stopped.summary
    down = health.assess_collector(collector(1, connected_since=None), LIMITS)
    assert down.level == WARNING and "disconnected" in down.summary
    # A pulled secondary's minutes come with the pulls: 20 min is still fine for it.
    pulled = {**collector(20), "pulled": True, "pull": {"unreachable_since": None}}
    assert health.assess_collector(pulled, LIMITS).level == OK
    pulled["pull"] = {"unreachable_since": "2026-01-14T10:00:00+00:00", "last_error": "timeout"}
    assert health.assess_collector(pulled, LIMITS).level == WARNING
    # What the collector's status says it cannot fix alone: a taken name, a wrong wall clock.
    taken = {"file": "/raw/2026-01-14/10/2026-01-14T1024+0100.jsonl", "is": "directory"}
    blocked = collector(1, unwritten_minutes={"minutes": ["x"], "taken": [taken]})
    check = health.assess_collector(blocked, LIMITS)
    assert check.level == FAILING and taken["file"] in check.summary
    assert "disk" not in check.summary
    skewed = collector(1, clock={"correction_seconds": 1740.0})
    check = health.assess_collector(skewed, LIMITS)
    assert check.level == WARNING and "+1740 s" in check.summary


def workflow_facts(**kw) -> dict:
    ended = (NOW - timedelta(minutes=10)).isoformat()
    return {
        "last_run": {"result": "ok", "ended": ended, "last_ok": ended},
        "oldest_unbuilt_hour": None,
        "oldest_unbuilt_overdue_minutes": None,
        "hours_waiting_for_secondary": [],
        "uploads_failed": [],
        **kw,
    }


def test_workflow_levels() -> None:
    assert health.assess_workflow(workflow_facts(), LIMITS, NOW).level == OK
    assert health.assess_workflow(workflow_facts(last_run=None), LIMITS, NOW).level == WARNING
    old = (NOW - timedelta(minutes=200)).isoformat()
    failed = {"result": "failed", "ended": NOW.isoformat(), "last_ok": old}
    check = health.assess_workflow(workflow_facts(last_run=failed), LIMITS, NOW)
    assert check.level == FAILING and "no good run for 200 min" in check.summary
    late = workflow_facts(oldest_unbuilt_hour="2026-01-14_09", oldest_unbuilt_overdue_minutes=45)
    assert health.assess_workflow(late, LIMITS, NOW).level == WARNING
    uploads = workflow_facts(uploads_failed=[{}] * 12)
    assert health.assess_workflow(uploads, LIMITS, NOW).level == FAILING


def test_disk_levels_and_days_left() -> None:
    d = {"path": "vault", "dir": "/v", "free_bytes": 10**9, "total_bytes": 10**10}
    assert (
        health.assess_disk({**d, "free_percent": 10.0, "days_left": None}, LIMITS).level == WARNING
    )
    assert (
        health.assess_disk({**d, "free_percent": 50.0, "days_left": 5.0}, LIMITS).level == FAILING
    )
    assert health.assess_disk({**d, "free_percent": 50.0, "days_left": 90.0}, LIMITS).level == OK
    # 10 GB fell to 8 GB in a day: 4 days left; a sample under an hour old is not used.
    samples = [
        {"at": (NOW - timedelta(days=1)).isoformat(), "free": {"vault": 10 * 10**9}},
        {"at": (NOW - timedelta(minutes=10)).isoformat(), "free": {"vault": 1}},
    ]
    assert health._days_left("vault", 8 * 10**9, samples, NOW) == 4.0
    assert health._days_left("vault", 11 * 10**9, samples, NOW) is None  # not falling


def config_for(tmp_path: Path, **extra) -> dict:
    return validate_config({**dashdata.write_archive(tmp_path, days=0), **extra})


def test_gathered_from_disk(tmp_path: Path) -> None:
    """Status file, newest minute file, run record, alert state: all in one view."""
    config = config_for(tmp_path)
    write_status(status_path(config, "server1"), {"state": "stopped", "stopped_reason": "SIGTERM"})
    tz = dashdata.TZ
    for s in ("server1", "server2"):
        p = minute_path(
            Path(config["servers"][0 if s == "server1" else 1]["raw_dir"]), NOW - 3 * MINUTE, tz
        )
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("")
    health.record_run(config, "r1", NOW - timedelta(minutes=3), NOW - timedelta(minutes=2), "ok")
    alerts = Alerts(None, health.state_file(config, "alerts.json"), FixedClock(NOW), 6)
    alerts.alert("workflow-error", "hourly build failed", "body")
    h = health.system_health(config, NOW)
    by_name = {c.name: c for c in h.checks}
    assert by_name["collector server1"].level == FAILING  # stopped
    assert by_name["collector server2"].level == WARNING  # no status file, minutes fine
    assert by_name["workflow"].level == OK
    assert h.level == FAILING
    assert [a["subject"] for a in h.facts["alerts_24h"]] == ["hourly build failed"]
    assert h.facts["workflow"]["newest_built_hour"] == "2026-01-14_11"
    assert json.loads(json.dumps(h.to_json()))["level"] == FAILING
    assert "FAILING  collector server1: stopped: SIGTERM" in h.format()
    # 25 hours on, the alert is no longer recent.
    later = health.system_health(config, NOW + timedelta(hours=25))
    assert later.facts["alerts_24h"] == []


def test_a_failing_replica_and_the_raw_files_kept_for_it_show(tmp_path: Path) -> None:
    """Replica health (was only in work_dir/state/replica_*.json) and retention's hold-back
    are in the health, hence in status, the dashboard and the metrics."""
    replica = {"name": "usb", "target": str(tmp_path / "usb"), "alert_after_minutes": 60}
    config = config_for(tmp_path, vault_replicas=[replica])
    state = health.state_file(config, "replica_usb.json")
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(
        json.dumps(
            {
                "first_failure": (NOW - timedelta(hours=2)).isoformat(),
                "failures": 3,
                "last_error": "not mounted",
            }
        )
    )
    health.state_file(config, "retention.json").write_text(json.dumps({"raw_held": 120}))
    check = {c.name: c for c in health.system_health(config, NOW).checks}["replica usb"]
    assert check.level == FAILING
    assert "not mounted" in check.summary and "120 raw minute files kept" in check.summary
    assert "built hours not copied yet" in check.summary
    optional = config_for(tmp_path, vault_replicas=[{**replica, "optional": True}])
    check = {c.name: c for c in health.system_health(optional, NOW).checks}["replica usb"]
    assert check.level == WARNING and "raw minute files" not in check.summary


def test_oldest_unbuilt_hour_is_overdue(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    raw = Path(config["servers"][0]["raw_dir"])
    # A minute file of 12:05 local: hour 12 is due at 13:11 local (12:11 UTC).
    p = minute_path(raw, NOW - 15 * MINUTE, dashdata.TZ)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("")
    wf = health.workflow(config, NOW + timedelta(minutes=100))
    assert wf["oldest_unbuilt_hour"] == "2026-01-14_12"
    assert wf["oldest_unbuilt_overdue_minutes"] == 49.0


@pytest.mark.integration  # the SMTP sink
def test_lasting_failure_is_mailed_once(tmp_path: Path, smtp) -> None:
    sink, port = smtp
    email = smtp_email(port)
    config = config_for(tmp_path, email=email)
    failing = health.Health(NOW, [health.Check("collector s1", FAILING, "stopped")], {})
    failing.facts = {"alerts_24h": []}
    assert health.mail_lasting_failures(config, failing, NOW) == []  # just began
    later = NOW + timedelta(minutes=31)
    assert health.mail_lasting_failures(config, failing, later) == ["collector s1"]
    assert health.mail_lasting_failures(config, failing, later + timedelta(minutes=10))
    assert len(sink.subjects()) == 1 and "collector s1" in sink.subjects()[0]
    ok = health.Health(later, [health.Check("collector s1", OK, "fine")], {"alerts_24h": []})
    assert health.mail_lasting_failures(config, ok, later + timedelta(minutes=20)) == []
    state = json.loads(health.state_file(config, "health.json").read_text())
    assert state == {"failing_since": {}}


def test_primary_is_where_the_workflow_recorded_a_run(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    assert not health.is_primary(config)
    health.record_run(config, "r1", NOW, NOW, "failed")
    assert health.is_primary(config)
    record = json.loads(health.state_file(config, "last_run.json").read_text())
    assert record["result"] == "failed" and record["last_ok"] is None
    assert os.stat(health.state_file(config, "last_run.json")).st_mode & 0o777 == 0o640


def test_alert_state_keeps_a_day_of_alerts_and_survives_bad_entries(tmp_path: Path) -> None:
    state = tmp_path / "alerts.json"
    state.write_text(json.dumps({"recent": [{"at": "garbage"}, 5, {"no": "at"}]}))
    alerts = Alerts(None, state, FixedClock(NOW), 1)
    alerts.alert("k", "first", "b")
    alerts.alert("k", "second, suppressed by the limit", "b")
    Alerts(None, state, FixedClock(NOW + timedelta(hours=23)), 1).alert("j", "third", "b")
    Alerts(None, state, FixedClock(NOW + timedelta(hours=25)), 1).alert("j", "fourth", "b")
    recent = json.loads(state.read_text())["recent"]
    assert [a["subject"] for a in recent] == ["third", "fourth"]


def test_status_on_the_primary_adds_the_health(tmp_path: Path, capsys) -> None:
    from ingest import cli
    from tests.configs import config_file

    cfg = config_file(tmp_path)
    clock = ["--clock-start", NOW.isoformat(), "--speed", "1.0001"]
    # Exit status 2: failing (s1 has no minute file), as a monitoring plugin says it.
    assert cli.main(["status", "--config", str(cfg), "--json", *clock]) == 2
    assert isinstance(json.loads(capsys.readouterr().out), list)  # not the primary
    config = validate_config(minimal_config(tmp_path))
    health.record_run(config, "r", NOW, NOW, "ok")
    assert cli.main(["status", "--config", str(cfg), "--json", *clock]) == 2
    out = json.loads(capsys.readouterr().out)
    assert [r["server"] for r in out["servers"]] == ["s1"]
    assert out["health"]["workflow"]["last_run"]["result"] == "ok"
    assert cli.main(["status", "--config", str(cfg), *clock]) == 2
    assert "health: FAILING" in capsys.readouterr().out  # s1 has no minute file


def test_the_health_text_shows_local_times_with_the_zone_and_no_fractions(tmp_path) -> None:
    config = loaded_config(tmp_path)
    at = NOW + timedelta(microseconds=123456)
    Alerts(None, health.state_file(config, "alerts.json"), FixedClock(at), 6).alert(
        "workflow-error", "run failed", "body"
    )
    text = health.system_health(config, at).format()
    assert "at 2026-01-14 12:20 CET" in text.splitlines()[0], text
    assert "    2026-01-14 12:20 CET run failed" in text, text
    assert ".123" not in text and "T11:20" not in text, text
