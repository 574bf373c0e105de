import json
import os
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ingest import layout
from ingest.build import plan
from ingest.build.stats import StatsError
from ingest.config import validate_config
from ingest.layout import Hour

TZ = ZoneInfo("Europe/Berlin")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def make_config(tmp_path, **extra):
    c = {
        "timezone": "Europe/Berlin",
        "vault_dir": str(tmp_path / "vault"),
        "work_dir": str(tmp_path / "work"),
        "servers": [
            {"name": "s1", "raw_dir": str(tmp_path / "raw1")},
            {"name": "s2", "raw_dir": str(tmp_path / "raw2")},
        ],
    }
    c.update(extra)
    return validate_config(c)


def touch_minutes(raw_dir, start, n):
    for i in range(n):
        p = layout.minute_path(raw_dir, start + timedelta(minutes=i), TZ)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("")


def mark_built(config, hour, inputs):
    p = layout.vault_paths(config["vault_dir"], hour)["stats"]
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"inputs": inputs}))


def test_complete_hours_with_data_are_planned(tmp_path):
    c = make_config(tmp_path)
    touch_minutes(c["servers"][0]["raw_dir"], utc(2026, 1, 14, 9, 0), 180)  # local 10..12
    p = plan.make_plan(c, utc(2026, 1, 14, 11, 11))
    # Hour 09 reads the first minutes of 10 in its late window: a backfill can hold its tweets.
    assert p.build == [Hour("2026-01-14", 9), Hour("2026-01-14", 10), Hour("2026-01-14", 11)]
    assert p.reports == ["2026-01-14"]


def test_built_hours_are_left_alone_until_new_minutes_arrive(tmp_path):
    c = make_config(tmp_path)
    touch_minutes(c["servers"][0]["raw_dir"], utc(2026, 1, 14, 8, 59), 68)
    hour = Hour("2026-01-14", 10)
    files = plan.window_files(c, hour)
    mark_built(c, hour, {s: [f.path.name for f in fs] for s, fs in files.items()})
    now = utc(2026, 1, 14, 12)
    assert hour not in plan.make_plan(c, now).build
    touch_minutes(c["servers"][1]["raw_dir"], utc(2026, 1, 14, 9, 30), 1)  # late secondary
    assert hour in plan.make_plan(c, now).build


def test_selected_day_rebuilds_built_hours(tmp_path):
    c = make_config(tmp_path, hours="2026-01-14_10")
    touch_minutes(c["servers"][0]["raw_dir"], utc(2026, 1, 14, 8, 0), 180)
    mark_built(c, Hour("2026-01-14", 10), {})
    assert plan.make_plan(c, utc(2026, 1, 15)).build == [Hour("2026-01-14", 10)]


def test_unreachable_secondary_holds_hour_back_for_a_while(tmp_path):
    c = make_config(tmp_path)
    c["servers"][1]["rsync_from"] = "u@h:/raw/"
    touch_minutes(c["servers"][0]["raw_dir"], utc(2026, 1, 14, 8, 59), 67)
    state = {"s2": {"ok": False}}
    p = plan.make_plan(c, utc(2026, 1, 14, 10, 20), state)
    assert p.waiting == [Hour("2026-01-14", 10)] and Hour("2026-01-14", 10) not in p.build
    p = plan.make_plan(c, utc(2026, 1, 14, 11, 11), state)
    assert Hour("2026-01-14", 10) in p.build


def test_uploads_and_mails_follow_receipts(tmp_path):
    c = make_config(tmp_path, osf={"enabled": True, "project": "dqx39"})
    c["email"] = validate_config(
        {**c, "email": {"enabled": True, "smtp_host": "h", "from": "a@b", "to": ["c@d"]}}
    )["email"]
    for hh in range(24):
        mark_built(c, Hour("2026-01-14", hh), {})
    receipt = plan.work_paths(c["work_dir"])["osf"] / "2026-01-14" / "2026-01-14_05.json"
    receipt.parent.mkdir(parents=True)
    receipt.write_text("{}")
    p = plan.make_plan(c, utc(2026, 1, 14, 23, 5))
    assert len(p.uploads) == 23 and Hour("2026-01-14", 5) not in p.uploads
    assert p.mails == []  # the day is not complete yet
    p = plan.make_plan(c, utc(2026, 1, 14, 23, 11))
    assert p.mails == ["2026-01-14"]


def test_minutes_of_hours_in_progress_are_parsed_ahead(tmp_path):
    c = make_config(tmp_path)
    touch_minutes(c["servers"][0]["raw_dir"], utc(2026, 1, 14, 9, 0), 80)  # until 10:20 UTC
    p = plan.make_plan(c, utc(2026, 1, 14, 10, 21))
    assert p.build == [Hour("2026-01-14", 9), Hour("2026-01-14", 10)]
    # Local hour 11 (10:00-11:00 UTC) is in progress: its minutes so far are parsed too.
    every = {utc(2026, 1, 14, 9, 0) + timedelta(minutes=i) for i in range(80)}
    assert {f.minute for f in p.to_parse} == every


def test_parsed_minutes_are_not_parsed_again_until_the_raw_file_changes(tmp_path):
    c = make_config(tmp_path)
    touch_minutes(c["servers"][0]["raw_dir"], utc(2026, 1, 14, 10, 0), 3)
    p = plan.make_plan(c, utc(2026, 1, 14, 10, 5))
    assert len(p.to_parse) == 3
    for f in p.to_parse[:2]:
        for kind in ("tweets", "users"):
            out = plan.intermediate(c["work_dir"], f, kind)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("")
    assert [f.minute for f in plan.make_plan(c, utc(2026, 1, 14, 10, 5)).to_parse] == [
        utc(2026, 1, 14, 10, 2)
    ]
    newer = p.to_parse[0].path.stat().st_mtime + 10
    os.utime(p.to_parse[0].path, (newer, newer))  # the collector appended after a restart
    assert len(plan.make_plan(c, utc(2026, 1, 14, 10, 5)).to_parse) == 2


def test_a_corrupt_stats_file_is_an_error_naming_it(tmp_path):
    """Was a bare JSONDecodeError that did not say which of the vault's files is broken."""
    c = make_config(tmp_path)
    touch_minutes(c["servers"][0]["raw_dir"], utc(2026, 1, 14, 8, 59), 68)
    p = layout.vault_paths(c["vault_dir"], Hour("2026-01-14", 10))["stats"]
    p.parent.mkdir(parents=True)
    p.write_text('{"inputs": ')
    with pytest.raises(StatsError, match="2026-01-14_10_stats.json"):
        plan.make_plan(c, utc(2026, 1, 14, 12))
