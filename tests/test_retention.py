from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ingest import layout
from ingest.build import plan, retention
from ingest.config import validate_config
from ingest.layout import Hour

TZ = ZoneInfo("Europe/Berlin")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def setup_world(tmp_path, minutes=130):
    c = validate_config(
        {
            "timezone": "Europe/Berlin",
            "vault_dir": str(tmp_path / "vault"),
            "work_dir": str(tmp_path / "work"),
            "servers": [{"name": "s1", "raw_dir": str(tmp_path / "raw")}],
        }
    )
    files = []
    for i in range(minutes):  # 09:00 .. 11:09 UTC = local 10:00 .. 12:09
        minute = utc(2026, 1, 14, 9) + timedelta(minutes=i)
        raw = layout.minute_path(tmp_path / "raw", minute, TZ)
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text("{}\n")
        f = layout.MinuteFile("s1", minute, raw)
        for kind in ("tweets", "users"):
            p = plan.intermediate(c["work_dir"], f, kind)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("")
        files.append(f)
    return c, files


def build(c, hour):
    p = layout.vault_paths(c["vault_dir"], hour)["stats"]
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("{}")


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
    assert layout.minute_path(tmp_path / "raw", utc(2026, 1, 14, 9, 59), TZ).exists()


def test_raw_files_stay_for_keep_raw_hours(tmp_path):
    c, files = setup_world(tmp_path)
    for hh in (9, 10, 11, 12):  # 09 reads 10:00-10:05 local through its late window
        build(c, Hour("2026-01-14", hh))
    summary = retention.clean(c, utc(2026, 1, 16, 9, 30))  # 48.5 h after the first minute
    assert summary.intermediates_removed == 2 * len(files)
    kept = [f for f in files if f.path.exists()]
    assert summary.raw_removed == 31 and len(kept) == len(files) - 31
    assert all(utc(2026, 1, 16, 9, 30) - f.minute < timedelta(hours=48) for f in kept)


def test_empty_parse_logs_go_and_telling_ones_stay(tmp_path):
    c, _ = setup_world(tmp_path, minutes=1)
    logs = plan.work_paths(c["work_dir"])["logs"] / "parse"
    logs.mkdir(parents=True)
    (logs / "a.log").write_text("")
    (logs / "b.log").write_text("raw/x.jsonl:3: invalid_json\n")
    retention.clean(c, utc(2026, 1, 14, 12))
    assert sorted(p.name for p in logs.iterdir()) == ["b.log"]
