"""The seed's day report, rebuilt from per-hour stats."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from types import SimpleNamespace

from ingest.hours.report import report_table, write_day_report


def stats(label: str, counts: dict, total: int, diff: int) -> dict:
    return {
        "hour": label,
        "servers": list(counts),
        "counts": counts,
        "total": total,
        "diff": diff,
        "diff_pct": round(100 * diff / total, 2) if total else 0.0,
    }


def write_stats(d, *items) -> list:
    paths = []
    d.mkdir(parents=True, exist_ok=True)
    for s in items:
        p = d / f"{s['hour']}_stats.json"
        p.write_text(json.dumps(s))
        paths.append(p)
    return paths


def test_two_servers_in_hour_order(tmp_path):
    paths = write_stats(
        tmp_path,
        stats("2026-01-14_10", {"s1": 158234, "s2": 158190}, 158301, 178),
        stats("2026-01-14_02", {"s1": 3, "s2": 1}, 3, 2),
        stats("2026-01-14_00", {"s1": 0, "s2": 0}, 0, 0),
    )
    out = tmp_path / "2026-01-14_report.txt"
    text = write_day_report("2026-01-14", paths, out, ["s1", "s2"])
    assert out.read_text() == text
    assert text == (
        "hour\tserv 1\tserv 2\ttotal\tdiff\tdiff %\n"
        "0\t0\t0\t0\t0\t0.00%\n"
        "2\t3\t1\t3\t2\t66.67%\n"
        "10\t158234\t158190\t158301\t178\t0.11%\n"
    )


def test_rebuilt_not_appended(tmp_path):
    paths = write_stats(tmp_path, stats("2026-01-14_05", {"a": 5, "b": 5}, 5, 0))
    out = tmp_path / "r.txt"
    write_day_report("2026-01-14", paths, out, ["a", "b"])
    write_day_report("2026-01-14", paths, out, ["a", "b"])
    assert out.read_text().count("\n") == 2
    paths += write_stats(tmp_path, stats("2026-01-14_06", {"a": 7, "b": 6}, 7, 1))
    write_day_report("2026-01-14", paths, out, ["a", "b"])
    assert out.read_text().splitlines()[1:] == ["5\t5\t5\t5\t0\t0.00%", "6\t7\t6\t7\t1\t14.29%"]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".json")) == ["r.txt"]


def test_one_server(tmp_path):
    paths = write_stats(tmp_path, stats("2026-01-14_23", {"only": 42}, 42, 0))
    text = report_table("2026-01-14", paths, ["only"])
    assert text == "hour\ttweets\n23\t42\n"


def test_three_servers(tmp_path):
    s = stats("2026-01-14_07", {"a": 3, "b": 4, "c": 4}, 5, 3)
    text = report_table("2026-01-14", [s], ["a", "b", "c"])
    assert text == "hour\tserv 1\tserv 2\tserv 3\ttotal\tdiff\tdiff %\n7\t3\t4\t4\t5\t3\t60.00%\n"


def test_other_days_and_missing_server_counts(tmp_path):
    items = [
        stats("2026-01-13_23", {"s1": 9, "s2": 9}, 9, 0),
        {**stats("2026-01-14_01", {"s1": 4}, 4, 4), "counts": {"s1": 4}},
    ]
    text = report_table("2026-01-14", items, ["s1", "s2"])
    assert text.splitlines()[1:] == ["1\t4\t0\t4\t4\t100.00%"]


def test_empty_day_has_only_the_header(tmp_path):
    assert (
        report_table("2026-01-14", [], ["s1", "s2"])
        == "hour\tserv 1\tserv 2\ttotal\tdiff\tdiff %\n"
    )


def test_report_from_real_hourly_stats(tmp_path):
    """The stats files build_hour writes are what the report reads."""
    from zoneinfo import ZoneInfo

    from ingest import layout
    from ingest.hours.hourly import build_hour
    from ingest.layout import Hour

    tz = ZoneInfo("CET")
    hour = Hour("2026-01-14", 11)
    outputs = layout.vault_paths(tmp_path / "vault", hour)
    build_hour(hour, tz, {}, outputs, server_names=["s1", "s2"], xz_preset=0, xz_threads=1)
    text = write_day_report(
        "2026-01-14",
        [outputs["stats"]],
        layout.report_path(tmp_path / "vault", "2026-01-14"),
        ["s1", "s2"],
    )
    assert text.splitlines()[1] == "11\t-\t-\t0\t0\t0.00%"  # no minute file at all


def test_a_server_without_any_minute_file_shows_as_missing():
    item = {**stats("2026-01-14_05", {"s1": 7, "s2": 0}, 7, 7), "missing_servers": ["s2"]}
    assert report_table("2026-01-14", [item], ["s1", "s2"]).splitlines()[1] == (
        "5\t7\t-\t7\t7\t100.00%"
    )


def test_rule_script_reports_every_built_hour_of_the_day_and_writes_its_receipt(tmp_path):
    """scripts/day_report.py: its inputs are this run's build receipts (only ordering); the
    report shows every built hour of the day in the vault, and the rule's output is a receipt."""
    vault = tmp_path / "vault"
    write_stats(
        vault / "2026-01-14",
        stats("2026-01-14_10", {"s1": 5, "s2": 4}, 5, 1),
        stats("2026-01-14_11", {"s1": 7, "s2": 7}, 7, 0),
    )
    receipt = tmp_path / "work" / "reported" / "2026-01-14.run2.json"
    older = receipt.with_name("2026-01-14.run1.json")
    older.parent.mkdir(parents=True)
    older.write_text("{}")
    rule = SimpleNamespace(
        input=[],  # hour 10 was built by an earlier run, hour 11 by none of this run's jobs
        output=[str(receipt)],
        log=[str(tmp_path / "report.log")],
        params=SimpleNamespace(servers=["s1", "s2"], vault=str(vault)),
        wildcards=SimpleNamespace(day="2026-01-14"),
    )
    script = Path(__file__).resolve().parents[1] / "scripts" / "day_report.py"
    runpy.run_path(str(script), init_globals={"snakemake": rule})
    report = vault / "2026-01-14" / "2026-01-14_report.txt"
    assert [line.split("\t")[0] for line in report.read_text().splitlines()[1:]] == ["10", "11"]
    assert json.loads(receipt.read_text())["hours"] == 2
    assert not older.exists()  # one receipt per day remains


def test_a_day_with_complied_posts_ends_with_its_removals_by_action():
    a = stats("2026-01-14_10", {"s1": 10, "s2": 9}, 10, 1) | {"complied": {"deleted": 2}}
    b = stats("2026-01-14_11", {"s1": 5, "s2": 5}, 5, 0) | {
        "complied": {"suspended": 1, "deleted": 1}
    }
    other_day = stats("2026-01-15_00", {"s1": 1, "s2": 1}, 1, 0) | {"complied": {"deleted": 7}}
    text = report_table("2026-01-14", [a, b, other_day], ["s1", "s2"])
    lines = text.splitlines()
    assert lines[1].startswith("10\t10\t9") and lines[2].startswith("11\t5\t5")
    assert lines[3:] == ["removed for compliance: deleted 3, suspended 1"]
    plain = stats("2026-01-14_10", {"s1": 10, "s2": 9}, 10, 1)
    assert "removed" not in report_table("2026-01-14", [plain], ["s1", "s2"])
