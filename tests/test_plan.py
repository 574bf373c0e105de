import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest import layout
from ingest.config import ConfigError, validate_config
from ingest.hours import plan
from ingest.hours.stats import StatsError, read_stats
from ingest.layout import Hour
from ingest.vault import records

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
    receipt = layout.work_paths(c["work_dir"])["osf"] / "2026-01-14" / "2026-01-14_05.json"
    receipt.parent.mkdir(parents=True)
    receipt.write_text("{}")
    p = plan.make_plan(c, utc(2026, 1, 14, 23, 5))
    assert len(p.uploads) == 23 and Hour("2026-01-14", 5) not in p.uploads
    assert p.mails == []  # the day is not complete yet
    p = plan.make_plan(c, utc(2026, 1, 14, 23, 11))
    assert p.mails == ["2026-01-14"]


def test_a_newer_generation_is_uploaded_again_and_its_day_derived(tmp_path):
    """Publication follows the records: an hour rebuilt after its upload (a newer record) is
    uploaded again, and its day's manifest is derived again, whatever run rebuilt it."""
    c = make_config(tmp_path, osf={"enabled": True, "project": "dqx39"})
    h = Hour("2026-01-14", 5)
    mark_built(c, h, {})
    record = records.record_path(c["vault_dir"], h)
    records.write_record(record, records.HourRecord(h.label, 1, {}))
    manifest = tmp_path / "vault" / h.day / f"{h.day}_SHA256SUMS"
    manifest.write_text("")
    receipt = layout.work_paths(c["work_dir"])["osf"] / h.day / f"{h.label}.json"
    receipt.parent.mkdir(parents=True)
    receipt.write_text("[]")
    later = record.stat().st_mtime + 60
    os.utime(receipt, (later, later))
    os.utime(manifest, (later, later))
    p = plan.make_plan(c, utc(2026, 1, 14, 23, 5))
    assert (p.uploads, p.reports) == ([], [])
    records.write_record(record, records.HourRecord(h.label, 2, {}))  # a rebuild, elsewhere
    os.utime(record, (later + 60, later + 60))
    p = plan.make_plan(c, utc(2026, 1, 14, 23, 5))
    assert (p.uploads, p.reports) == ([h], [h.day])


def test_a_day_mailed_before_its_report_changed_is_mailed_again_as_revised(tmp_path):
    """A newer generation of an hour of a mailed day rewrites its report: the day is mailed
    again, marked revised. A report rewritten identically, or a marker from before the hash
    was kept, sends nothing."""
    c = make_config(tmp_path)
    c["email"] = validate_config(
        {**c, "email": {"enabled": True, "smtp_host": "h", "from": "a@b", "to": ["c@d"]}}
    )["email"]
    h, now = Hour("2026-01-14", 5), utc(2026, 1, 15, 12, 0)
    mark_built(c, h, {})
    report = layout.report_path(c["vault_dir"], h.day)
    report.write_text("hour 05: 10 tweets\n")
    marker = layout.work_paths(c["work_dir"])["mail"] / f"{h.day}.sent"
    marker.parent.mkdir(parents=True)
    mailed = hashlib.sha256(report.read_bytes()).hexdigest()
    marker.write_text(json.dumps({"day": h.day, "report_sha256": mailed}))
    later = report.stat().st_mtime + 60
    os.utime(marker, (later, later))
    assert plan.make_plan(c, now).mails == []

    report.write_text("hour 05: 10 tweets\n")  # rewritten, the same
    os.utime(report, (later + 60, later + 60))
    assert plan.make_plan(c, now).mails == []

    report.write_text("hour 05: 12 tweets\n")  # generation 2 merged late tweets in
    os.utime(report, (later + 60, later + 60))
    p = plan.make_plan(c, now)
    assert (p.mails, p.revised) == ([h.day], [h.day])

    marker.write_text(json.dumps({"day": h.day}))  # an older version's marker: no hash
    os.utime(marker, (later, later))
    assert plan.make_plan(c, now).mails == []


def test_minutes_of_hours_in_progress_are_parsed_ahead(tmp_path):
    c = make_config(tmp_path)
    touch_minutes(c["servers"][0]["raw_dir"], utc(2026, 1, 14, 9, 0), 80)  # until 10:20 UTC
    p = plan.make_plan(c, utc(2026, 1, 14, 10, 21))
    assert p.build == [Hour("2026-01-14", 9), Hour("2026-01-14", 10)]
    # Local hour 11 (10:00-11:00 UTC) is in progress: its minutes so far are parsed too.
    every = {utc(2026, 1, 14, 9, 0) + timedelta(minutes=i) for i in range(80)}
    assert {f.minute for f in p.to_parse} == every


def write_intermediates(c, f, size=None):
    """The minute's intermediates as ingest.hours.minutes writes them: a metadata line first."""
    meta = {"server": f.server, "file": f.path.name, "minute": f.minute.isoformat()}
    meta["size"] = f.path.stat().st_size if size is None else size
    for kind in ("tweets", "users"):
        out = plan.intermediate(c["work_dir"], f, kind)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("#" + json.dumps(meta) + "\n")


def test_parsed_minutes_are_not_parsed_again_until_the_raw_file_changes(tmp_path):
    c = make_config(tmp_path)
    touch_minutes(c["servers"][0]["raw_dir"], utc(2026, 1, 14, 10, 0), 3)
    p = plan.make_plan(c, utc(2026, 1, 14, 10, 5))
    assert len(p.to_parse) == 3
    for f in p.to_parse[:2]:
        write_intermediates(c, f)
    assert [f.minute for f in plan.make_plan(c, utc(2026, 1, 14, 10, 5)).to_parse] == [
        utc(2026, 1, 14, 10, 2)
    ]
    newer = p.to_parse[0].path.stat().st_mtime + 10
    os.utime(p.to_parse[0].path, (newer, newer))  # the collector appended after a restart
    assert len(plan.make_plan(c, utc(2026, 1, 14, 10, 5)).to_parse) == 2


def test_a_damaged_stats_file_rebuilds_its_hour_and_says_so(tmp_path):
    """Issue 10, item 6: a truncated stats file stopped the plan, so no hour of any server was
    built. Now its hour is rebuilt, and the plan carries a warning naming the file."""
    c = make_config(tmp_path)
    touch_minutes(c["servers"][0]["raw_dir"], utc(2026, 1, 14, 8, 59), 68)
    hour = Hour("2026-01-14", 10)
    for other in (Hour("2026-01-14", 9), Hour("2026-01-14", 11)):
        files = plan.window_files(c, other)
        mark_built(c, other, {s: [f.path.name for f in fs] for s, fs in files.items()})
    p = layout.vault_paths(c["vault_dir"], hour)["stats"]
    p.write_text('{"inputs": ')
    with pytest.raises(StatsError):  # as the build and the report read it
        read_stats(p)
    Path(c["servers"][1]["raw_dir"]).mkdir()  # else its absence is a warning too
    got = plan.make_plan(c, utc(2026, 1, 14, 12))
    assert got.build == [hour] and got.reports == ["2026-01-14"]
    assert len(got.warnings) == 1 and "2026-01-14_10_stats.json" in got.warnings[0]
    assert "rebuilding hour 2026-01-14_10" in got.warnings[0]


def test_a_minute_file_that_changed_size_rebuilds_its_hour(tmp_path):
    """Issue 10, item 5: a minute file the build read at one size has another now (completed
    after a restart, or pulled again whole): the hour is due although no name is new."""
    c = make_config(tmp_path)
    touch_minutes(c["servers"][0]["raw_dir"], utc(2026, 1, 14, 8, 59), 68)
    hour = Hour("2026-01-14", 10)
    files = plan.window_files(c, hour)
    sizes = {s: {f.path.name: f.path.stat().st_size for f in fs} for s, fs in files.items()}
    mark_built(c, hour, sizes)
    now = utc(2026, 1, 14, 12)
    assert hour not in plan.make_plan(c, now).build
    grown = files["s1"][30]
    grown.path.write_text('{"data": {"id": "1"}}\n')
    got = plan.make_plan(c, now)
    assert hour in got.build and grown in got.to_parse
    # Builds from before sizes were recorded compare names: no rebuild of history on upgrade.
    mark_built(c, hour, {s: list(names) for s, names in sizes.items()})
    assert hour not in plan.make_plan(c, now).build


def test_a_raw_file_rewritten_in_the_second_it_was_parsed_is_parsed_again(tmp_path):
    """The intermediates are as new as the raw file (mtime resolution, or a pull keeping the
    source's mtime), but were made from fewer bytes: parsed again."""
    c = make_config(tmp_path)
    touch_minutes(c["servers"][0]["raw_dir"], utc(2026, 1, 14, 10, 0), 1)
    (f,) = plan.make_plan(c, utc(2026, 1, 14, 10, 5)).to_parse
    write_intermediates(c, f)
    t = f.path.stat().st_mtime
    for kind in ("tweets", "users"):
        os.utime(plan.intermediate(c["work_dir"], f, kind), (t, t))
    assert plan.make_plan(c, utc(2026, 1, 14, 10, 5)).to_parse == []
    f.path.write_text('{"data": {"id": "1"}}\n')
    os.utime(f.path, (t, t))
    assert plan.make_plan(c, utc(2026, 1, 14, 10, 5)).to_parse == [f]


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        ("2026-01-14", [f"2026-01-14_{h:02d}" for h in range(24)]),
        ("2026-01-14_10", ["2026-01-14_10"]),
        ("2026-01-13..2026-01-14", [f"2026-01-{d}_{h:02d}" for d in (13, 14) for h in range(24)]),
        (
            "2026-01-13_22..2026-01-14_01",
            ["2026-01-13_22", "2026-01-13_23", "2026-01-14_00", "2026-01-14_01"],
        ),
        (
            "2026-01-13_23..2026-01-14",
            ["2026-01-13_23"] + [f"2026-01-14_{h:02d}" for h in range(24)],
        ),
        ("2026-01-14..2026-01-14_00", ["2026-01-14_00"]),
    ],
)
def test_hours_selects_a_day_an_hour_or_a_range(tmp_path, hours, expected):
    every = [Hour(f"2026-01-{d}", h) for d in (12, 13, 14, 15) for h in range(24)]
    assert [h.label for h in every if plan.selected(h, hours)] == expected
    c = make_config(tmp_path, hours=hours)  # the schema takes each form
    assert plan.hours_range_error(c["hours"]) is None


def test_a_range_of_hours_is_planned_whether_built_or_not(tmp_path):
    c = make_config(tmp_path, hours="2026-01-14_09..2026-01-14_11")
    touch_minutes(c["servers"][0]["raw_dir"], utc(2026, 1, 14, 7, 0), 300)  # 08:00 to 13:00
    mark_built(c, Hour("2026-01-14", 10), {})
    p = plan.make_plan(c, utc(2026, 1, 15))
    assert p.build == [Hour("2026-01-14", h) for h in (9, 10, 11)]


@pytest.mark.parametrize("hours", ["2026-01-14..2026-01-13", "2026-01-14_05..2026-01-14_04"])
def test_a_range_that_ends_before_it_starts_is_refused(hours):
    assert "ends before it starts" in plan.hours_range_error(hours)


@pytest.mark.parametrize("hours", ["2026-01-14..", "2026-01-14...2026-01-15", "2026-1-14"])
def test_a_malformed_range_is_refused_by_the_schema(tmp_path, hours):
    with pytest.raises(ConfigError, match="hours"):
        make_config(tmp_path, hours=hours)


def test_the_dry_run_summary_names_every_kind_of_pending_work() -> None:
    """ "nothing pending" only when no job of any kind would run: copies to a replica, a day's
    manifest or a pull are pending work too (issue 23)."""
    now = utc(2026, 1, 15, 12, 0)
    idle = plan.Plan()
    assert plan.describe(idle, now).endswith("  nothing pending")
    assert plan.describe(idle, now, copies={"usb": []}).endswith("  nothing pending")
    copies = plan.describe(idle, now, copies={"usb": [Hour("2026-01-14", 5)]})
    assert "hours to copy to replica usb (1): 2026-01-14_05" in copies
    assert "nothing pending" not in copies
    day = plan.describe(plan.Plan(reports=["2026-01-14"]), now)
    assert "day reports and manifests to write (1): 2026-01-14" in day
    assert "servers to pull (1): server2" in plan.describe(idle, now, pulls=["server2"])
