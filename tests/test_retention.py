import json
import os
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ingest import layout
from ingest.config import validate_config
from ingest.hours import plan, retention
from ingest.layout import Hour

TZ = ZoneInfo("Europe/Berlin")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def setup_world(tmp_path, minutes=130, servers=("s1",), imported=False, **sections):
    c = validate_config(
        {
            "timezone": "Europe/Berlin",
            "vault_dir": str(tmp_path / "vault"),
            "work_dir": str(tmp_path / "work"),
            "servers": [
                {"name": s, "raw_dir": str(tmp_path / s), "imported": imported} for s in servers
            ],
            **sections,
        }
    )
    files = []
    for i in range(minutes):  # 09:00 .. 11:09 UTC = local 10:00 .. 12:09
        minute = utc(2026, 1, 14, 9) + timedelta(minutes=i)
        files.append(write_minute(c, servers[0], minute))
    return c, files


def write_minute(c, server, minute, data="{}\n"):
    """A raw minute file, closed at the minute's end, and its intermediates."""
    raw = layout.minute_path(tmp_raw(c, server), minute, TZ)
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(data)
    end = (minute + timedelta(minutes=1)).timestamp()
    os.utime(raw, (end, end))
    f = layout.MinuteFile(server, minute, raw)
    for kind in ("tweets", "users"):
        p = plan.intermediate(c["work_dir"], f, kind)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("")
    return f


def tmp_raw(c, server):
    return next(s["raw_dir"] for s in c["servers"] if s["name"] == server)


def build(c, hour, inputs=None):
    """Mark ``hour`` built from the raw files now in its window (name -> size), as
    ingest.hours.hourly records them, or from ``inputs`` as given."""
    if inputs is None:
        inputs = {
            server: {f.path.name: f.path.stat().st_size for f in fs}
            for server, fs in plan.window_files(c, hour).items()
        }
    p = layout.vault_paths(c["vault_dir"], hour)["stats"]
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"hour": hour.label, "inputs": inputs}))


def test_nothing_goes_before_every_hour_reading_it_is_built(tmp_path):
    c, files = setup_world(tmp_path)
    build(c, Hour("2026-01-14", 10))  # hour 11 (10:00-11:00 UTC) not built
    retention.clean(c, utc(2026, 1, 20))
    for f in files:
        readers = layout.hours_reading(f.minute, TZ, 6)
        gone = not plan.intermediate(c["work_dir"], f, "tweets").exists()
        assert gone == (readers == {Hour("2026-01-14", 10)}), f.minute
        assert f.path.exists() or readers == {Hour("2026-01-14", 10)}
    # 09:59 UTC is read by hour 10 and, one minute early, by hour 11: it stays.
    assert layout.minute_path(tmp_path / "s1", utc(2026, 1, 14, 9, 59), TZ).exists()


def test_raw_files_stay_for_keep_raw_hours(tmp_path):
    c, files = setup_world(tmp_path)
    for hh in (9, 10, 11, 12):  # 09 reads 10:00-10:05 local through its late window
        build(c, Hour("2026-01-14", hh))
    now = utc(2026, 1, 16, 9, 30)  # 48.5 h after the first minute
    summary = retention.clean(c, now)
    assert summary.intermediates_removed == 2 * len(files)
    kept = [f for f in files if f.path.exists()]
    # 09:00 .. 09:29: 48 h old by name and by mtime (the minute's end); 09:30 by its name only.
    assert summary.raw_removed == 30 and len(kept) == len(files) - 30
    assert all(now.timestamp() - f.path.stat().st_mtime < 48 * 3600 for f in kept)


def test_an_imported_servers_raw_files_stay_unless_the_config_says_so(tmp_path):
    for delete in (False, True):
        c, files = setup_world(
            tmp_path / str(delete), imported=True, retention={"delete_imported": delete}
        )
        for hh in (9, 10, 11, 12):
            build(c, Hour("2026-01-14", hh))
        summary = retention.clean(c, utc(2026, 1, 20))
        # Intermediates go as for any server; the raw files only when the config says so.
        assert summary.intermediates_removed == 2 * len(files)
        assert summary.raw_removed == (len(files) if delete else 0)
        assert all(f.path.exists() != delete for f in files)


def test_empty_parse_logs_go_and_telling_ones_stay(tmp_path):
    c, _ = setup_world(tmp_path, minutes=1)
    logs = layout.work_paths(c["work_dir"])["logs"] / "parse"
    logs.mkdir(parents=True)
    (logs / "a.log").write_text("")
    (logs / "b.log").write_text("raw/x.jsonl:3: invalid_json\n")
    retention.clean(c, utc(2026, 1, 14, 12))
    assert sorted(p.name for p in logs.iterdir()) == ["b.log"]


def built_through(c, *hours):
    for hh in hours:
        build(c, Hour("2026-01-14", hh))


def test_a_secondarys_late_minute_stays_until_a_build_has_read_it(tmp_path):
    """Issue 10, item 1: the primary built the hour alone; the secondary's minute arriving
    afterwards (retention age long past) is kept, intermediates too, until a rebuild reads it."""
    c, files = setup_world(tmp_path, servers=("s1", "s2"))
    built_through(c, 9, 10, 11, 12)
    late = write_minute(c, "s2", utc(2026, 1, 14, 9, 30))  # local hour 10
    retention.clean(c, utc(2026, 1, 20))
    assert late.path.exists() and plan.intermediate(c["work_dir"], late, "tweets").exists()
    assert not any(f.path.exists() for f in files if f.minute.hour == 9 and f.minute.minute > 6)
    build(c, Hour("2026-01-14", 10))  # the rebuild merged it in
    retention.clean(c, utc(2026, 1, 20))
    assert not late.path.exists() and not plan.intermediate(c["work_dir"], late, "tweets").exists()


def test_a_minute_file_that_grew_after_the_build_stays(tmp_path):
    """Issue 10, item 5: the stats recorded the file's size as read; more data since means it
    is not in the vault yet (a minute completed after a restart, a fuller copy pulled)."""
    c, files = setup_world(tmp_path)
    built_through(c, 9, 10, 11, 12)
    grown = files[30]  # 09:30 UTC
    with grown.path.open("a") as out:
        out.write("{}\n")
    os.utime(grown.path, (grown.minute.timestamp() + 60,) * 2)
    retention.clean(c, utc(2026, 1, 20))
    assert grown.path.exists() and plan.intermediate(c["work_dir"], grown, "users").exists()
    assert not files[29].path.exists() and not files[31].path.exists()


def test_builds_that_recorded_names_only_are_matched_by_name(tmp_path):
    c, files = setup_world(tmp_path)
    for hh in (9, 10, 11, 12):  # an older build's stats: a list of names per server
        hour = Hour("2026-01-14", hh)
        names = {s: [f.path.name for f in fs] for s, fs in plan.window_files(c, hour).items()}
        build(c, hour, names)
    assert retention.clean(c, utc(2026, 1, 20)).raw_removed == len(files)


def test_a_damaged_stats_file_keeps_the_hours_files(tmp_path):
    """The plan rebuilds an hour whose stats cannot be read (issue 10, item 6); retention
    neither stops on it nor takes the hour's files meanwhile."""
    c, files = setup_world(tmp_path)
    built_through(c, 9, 10, 11, 12)
    layout.vault_paths(c["vault_dir"], Hour("2026-01-14", 11))["stats"].write_text('{"inp')
    retention.clean(c, utc(2026, 1, 20))
    hour11 = [f for f in files if Hour("2026-01-14", 11) in layout.hours_reading(f.minute, TZ, 6)]
    assert hour11 and all(f.path.exists() for f in hour11)
    assert not files[0].path.exists()


def test_a_raw_file_young_by_its_mtime_stays(tmp_path):
    """Issue 10, item 11: a file whose name says 48 h old but which was written an hour ago (a
    collector's clock behind, a clock stepped forward on the primary) is kept until it is
    keep_raw_hours old by its modification time too."""
    c, files = setup_world(tmp_path)
    built_through(c, 9, 10, 11, 12)
    now = utc(2026, 1, 20)
    fresh = files[30]
    os.utime(fresh.path, (now.timestamp() - 3600,) * 2)
    summary = retention.clean(c, now)
    assert fresh.path.exists() and summary.raw_removed == len(files) - 1
    retention.clean(c, now + timedelta(hours=48))
    assert not fresh.path.exists()


def test_an_empty_folder_named_like_a_minute_file_stays_for_the_plan_to_report(tmp_path):
    """The full soak (seed 1) planted such a folder; retention removed it as an old empty
    folder before any plan had listed it, so nobody was told."""
    c, _ = setup_world(tmp_path, minutes=10)
    odd = layout.minute_path(tmp_path / "s1", utc(2026, 1, 14, 9, 30), TZ)
    odd.mkdir()
    old = utc(2026, 1, 14, 9, 31).timestamp()
    os.utime(odd, (old, old))
    retention.clean(c, utc(2026, 1, 20))
    assert odd.is_dir()
    warnings = plan.make_plan(c, utc(2026, 1, 20)).warnings
    assert any(odd.name in w for w in warnings), warnings
