"""A workflow run ends by recording itself, writing the metrics file and the dashboard: also a
run with nothing to do (collectors that stopped writing leave no jobs, and then the health
matters most)."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.devtools.generate import generate_raw_tree
from tests.test_workflow import END, START, TZ, snakemake, write_config

pytestmark = pytest.mark.integration  # Snakemake runs


def test_runs_write_dashboard_metrics_and_run_record(tmp_path) -> None:
    write_config(tmp_path, dashboard={"base_url": "https://archive.example.org/dash"})
    generate_raw_tree(
        [(s, tmp_path / "raw" / s) for s in ("server1", "server2")],
        START,
        END,
        TZ,
        rate_per_minute=20,
        seed=3,
    )
    first = snakemake(tmp_path)
    assert "dashboard: 1 day(s), 1 month(s) rewritten" in first.stderr
    front = tmp_path / "vault" / "dashboard" / "index.html"
    assert (tmp_path / "vault" / "dashboard" / "day" / "2026-01-14.html").exists()
    record = json.loads((tmp_path / "work" / "state" / "last_run.json").read_text())
    assert record["result"] == "ok" and record["started"] == "2026-01-14T11:12:00+00:00"
    metrics = (tmp_path / "work" / "metrics" / "sampled_stream.prom").read_text()
    names = {f.name for f in text_string_to_metric_families(metrics)}
    assert {"sampled_stream_hour_tweets", "sampled_stream_last_run_success"} <= names
    before = front.stat().st_mtime_ns

    second = snakemake(tmp_path)
    assert "Nothing to be done" in second.stdout + second.stderr
    assert "dashboard: 0 day(s), 0 month(s) rewritten" in second.stderr
    record = json.loads((tmp_path / "work" / "state" / "last_run.json").read_text())
    assert record["result"] == "nothing to do"
    assert front.stat().st_mtime_ns != before  # the health on it is the latest
