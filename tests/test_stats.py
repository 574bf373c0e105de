"""The per-hour stats file's one reader, and how each reader handles a corrupt file."""

from __future__ import annotations

import json

import pytest

from ingest.hours.report import report_table
from ingest.hours.stats import StatsError, day_stats_paths, read_stats, read_stats_if_built
from ingest.layout import Hour

H = Hour("2026-01-14", 11)
STATS = {"hour": H.label, "servers": ["s1"], "counts": {"s1": 2}, "total": 2, "diff": 0}


def test_reads_what_was_written(tmp_path):
    p = tmp_path / "2026-01-14_11_stats.json"
    p.write_text(json.dumps(STATS))
    assert read_stats(p) == STATS
    assert read_stats_if_built(p) == STATS


def test_missing_file(tmp_path):
    assert read_stats_if_built(tmp_path / "x_stats.json") is None
    with pytest.raises(FileNotFoundError):
        read_stats(tmp_path / "x_stats.json")


@pytest.mark.parametrize("content", [b'{"hour": "2026-01-14_11", "tot', b"", b"[1, 2]", b"null"])
def test_corrupt_file_is_an_error_naming_it(tmp_path, content):
    p = tmp_path / "2026-01-14_11_stats.json"
    p.write_bytes(content)
    with pytest.raises(StatsError, match=r"2026-01-14_11_stats\.json.*next run rebuilds the hour"):
        read_stats(p)
    with pytest.raises(StatsError):
        read_stats_if_built(p)  # exists but unreadable: not "not built"


def test_day_stats_paths_in_hour_order_of_that_day_only(tmp_path):
    for name in ("2026-01-14_10", "2026-01-14_02", "2026-01-15_00", "2026-01-14_23"):
        (tmp_path / f"{name}_stats.json").write_text("{}")
    (tmp_path / "2026-01-14_report.txt").write_text("")
    (tmp_path / "2026-01-14_02_IDs.txt.xz").write_bytes(b"")
    names = [p.name for p in day_stats_paths(tmp_path, "2026-01-14")]
    assert names == [f"2026-01-14_{hh}_stats.json" for hh in ("02", "10", "23")]


def test_report_names_a_corrupt_stats_file(tmp_path):
    p = tmp_path / "2026-01-14_11_stats.json"
    p.write_text("{not json")
    with pytest.raises(StatsError, match="2026-01-14_11_stats.json"):
        report_table("2026-01-14", [p], ["s1", "s2"])
