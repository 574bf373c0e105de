"""Collector status files and ``sampled-stream status``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from ingest import cli
from ingest.clock import ScaledClock
from ingest.collect.collector import Collector, running
from ingest.collect.settings import CollectorSettings
from ingest.collect.status import newest_minute, read_status, status_path, write_status
from ingest.config import load_config
from ingest.devtools.emulator import Emulator
from ingest.layout import hour_of, minute_path, parse_minute_name
from tests.configs import loaded_config

BERLIN = ZoneInfo("Europe/Berlin")
TOKEN = "status-test-token-91c2"
T0 = datetime.fromisoformat("2026-01-14T10:05:00+00:00")  # 11:05 in Berlin


def wait_for(predicate, timeout: float = 10.0):
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.mark.integration
def test_status_file_follows_the_collector(tmp_path: Path) -> None:
    clock = ScaledClock(60)
    status_file = tmp_path / "status" / "s1.json"
    with Emulator(rate=50, keepalive=0.3, token=TOKEN, clock=clock) as em:
        settings = CollectorSettings.from_config(
            loaded_config(tmp_path),
            "s1",
            stream_url=em.url,
            stall_seconds=0.5,
            status_file=status_file,
            backoff_scale=0.01,
            backfill_minutes=0,
        )
        c = Collector(settings, lambda: TOKEN, clock=clock)
        with running(c):
            st = wait_for(lambda: (read_status(status_file) or {}).get("last_minute"))
            st = read_status(status_file)
            assert st["state"] == "running" and st["server"] == "s1"
            assert st["connected_since"] and st["last_error"] is None
            em.fault("cut")
            wait_for(lambda: read_status(status_file)["reconnects"] == 1)
            # Two rotations later, the last minute is a full one.
            first = read_status(status_file)["last_minute"]["minute"]
            wait_for(lambda: read_status(status_file)["last_minute"]["minute"] > first)
            second = read_status(status_file)["last_minute"]["minute"]
            wait_for(lambda: read_status(status_file)["last_minute"]["minute"] > second)
            st = read_status(status_file)
    assert "Connection broken" in st["last_error"]["message"]
    assert st["connections"] == 2 and st["connected_since"] is not None
    last = st["last_minute"]
    assert last["tweets"] == len(Path(last["file"]).read_bytes().splitlines()) > 20
    # This hour's count is the sum of the hour's closed minute files up to the last one.
    last_minute = datetime.fromisoformat(last["minute"])
    in_hour = [
        p
        for p in (tmp_path / "raw").glob("*/*/*.jsonl")
        if hour_of(m := parse_minute_name(p.name, BERLIN), BERLIN).label == st["this_hour"]["hour"]
        and m <= last_minute
    ]
    assert st["this_hour"]["tweets"] == sum(len(p.read_bytes().splitlines()) for p in in_hour)
    assert datetime.fromisoformat(st["last_tweet_at"]) >= last_minute
    final = read_status(status_file)
    assert final["state"] == "stopped" and final["stopped_reason"] == "end of block"
    assert final["tweets_total"] == c.counters.tweets_total


def touch_minute(raw: Path, minute: datetime, lines: int = 1) -> Path:
    p = minute_path(raw, minute, BERLIN)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text('{"data": {"id": "1"}}\n' * lines)
    return p


def test_newest_minute_looks_past_empty_hours_and_part_files(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    assert newest_minute(raw, BERLIN) is None
    touch_minute(raw, T0)
    newest = touch_minute(raw, T0 + timedelta(minutes=1))
    later = minute_path(raw, T0 + timedelta(hours=1), BERLIN)
    later.parent.mkdir(parents=True)  # the next hour exists, nothing complete in it yet
    Path(str(later) + ".part").write_text("{}\n")
    assert newest_minute(raw, BERLIN) == (T0 + timedelta(minutes=1), newest)


def write_config(tmp_path: Path) -> Path:
    config = {
        "timezone": "Europe/Berlin",
        "vault_dir": str(tmp_path / "vault"),
        "work_dir": str(tmp_path / "work"),
        "servers": [
            {"name": "server1", "raw_dir": str(tmp_path / "raw1")},
            {"name": "server2", "raw_dir": str(tmp_path / "raw2")},
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_status_command_prints_every_server(tmp_path: Path, capsys, restore_logging) -> None:
    cfg = write_config(tmp_path)
    config = load_config(cfg)
    touch_minute(tmp_path / "raw1", T0)
    write_status(
        status_path(config, "server1"),
        {
            "server": "server1",
            "state": "running",
            "pid": 4242,
            "updated_at": "2026-01-14T10:06:00+00:00",
            "connected_since": "2026-01-14T09:00:00+00:00",
            "last_tweet_at": "2026-01-14T10:05:59+00:00",
            "reconnects": 3,
            "tweets_total": 9000,
            "last_minute": {"minute": "2026-01-14T11:05:00+01:00", "tweets": 3300},
            "this_hour": {"hour": "2026-01-14_11", "tweets": 16500},
            "last_error": {"at": "2026-01-14T09:00:00+00:00", "message": "stalled"},
        },
    )
    now = ["--clock-start", "2026-01-14T10:07:30+00:00"]  # 90 s after the minute ended
    # The exit status is a monitoring plugin's: server2 has no minute file at all (failing).
    assert cli.main(["status", "--config", str(cfg), *now]) == 2
    out = capsys.readouterr().out
    assert "server1:\n  state: connected (pid 4242" in out
    assert "tweets: 3300 in minute 2026-01-14T11:05:00+01:00, 16500 in hour 2026-01-14_11" in out
    assert "reconnects: 3" in out and "last error: 2026-01-14T09:00:00+00:00 stalled" in out
    assert "newest minute file: 2026-01-14T11:05:00+01:00 (90 s ago)" in out
    assert "server2:\n  status: no status file" in out
    assert f"newest minute file: none in {tmp_path / 'raw2'}" in out

    assert cli.main(["status", "--config", str(cfg), "--json", "--server", "server2", *now]) == 2
    (report,) = json.loads(capsys.readouterr().out)
    assert report["server"] == "server2" and report["status"] is None

    assert cli.main(["status", "--config", str(cfg), "--json", *now]) == 2
    reports = json.loads(capsys.readouterr().out)
    assert reports[0]["newest_minute_age_seconds"] == pytest.approx(90, abs=1)

    assert cli.main(["status", "--config", str(cfg), "--server", "server1", *now]) == 0  # ok
    status = json.loads(status_path(config, "server1").read_text())
    del status["connected_since"]  # reconnecting: a warning
    write_status(status_path(config, "server1"), status)
    assert cli.main(["status", "--config", str(cfg), "--server", "server1", *now]) == 1
    capsys.readouterr()

    assert cli.main(["status", "--config", str(cfg), "--server", "nope"]) == 3  # unknown
    assert "no server named nope" in capsys.readouterr().err


def test_unreadable_status_file_is_reported(tmp_path: Path, capsys, restore_logging) -> None:
    cfg = write_config(tmp_path)
    config = load_config(cfg)
    path = status_path(config, "server1")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert cli.main(["status", "--config", str(cfg), "--server", "server1"]) == 2  # no minutes
    assert "status: unreadable" in capsys.readouterr().out


def test_a_minute_file_ahead_of_the_clock_is_new_not_a_negative_age() -> None:
    from ingest.collect.status import format_report

    report = {
        "server": "server1",
        "status_file": "server1.json",
        "status": {"state": "running", "connected_since": "2026-01-14T10:00:00+00:00"},
        "raw_dir": "/raw",
        "newest_minute": "2026-01-14T12:07:00+01:00",
        "newest_minute_file": "/raw/2026-01-14/12/2026-01-14T1207+0100.jsonl",
        "newest_minute_age_seconds": -11.0,
    }
    text = format_report(report)
    assert "(0 s ago)" in text and "-11" not in text
