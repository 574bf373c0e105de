"""The Prometheus text file: parsed back with prometheus_client's own parser."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ingest.config import validate_config
from ingest.observe import health
from ingest.observe.dashboard import recent_stats
from ingest.observe.metrics import metrics_path, metrics_text, write_metrics
from tests import dashdata


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("sampled_stream_"), family.name
        assert family.type == "gauge" and family.documentation
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def test_metrics_file_parses_and_holds_the_health(tmp_path: Path) -> None:
    config = validate_config(dashdata.write_archive(tmp_path, days=1))
    now = dashdata.NOW
    health.record_run(config, "r", now - timedelta(minutes=2), now - timedelta(minutes=1), "ok")
    h = health.system_health(config, now)
    text = metrics_text(h, recent_stats(config, now))
    got = samples(text)
    assert got[("sampled_stream_health_level", (("check", "overall"),))] == 2  # no minute files
    assert got[("sampled_stream_last_run_success", ())] == 1
    assert (
        got[("sampled_stream_last_run_end_timestamp_seconds", ())]
        == (now - timedelta(minutes=1)).timestamp()
    )
    stats = dashdata.hour_stats(dashdata.OUTAGE[0])
    hour = (("hour", stats["hour"]), ("server", "server2"))
    assert got[("sampled_stream_hour_tweets", hour)] == stats["counts"]["server2"]
    assert got[("sampled_stream_hour_outage_minutes", hour)] == 15
    # Only the last 24 built hours: the series stay few.
    hours = {dict(k[1])["hour"] for k in got if k[0] == "sampled_stream_hour_total_tweets"}
    assert len(hours) == 24 and max(hours) == "2026-01-14_11"
    assert math.isinf(got[("sampled_stream_disk_days_left", (("path", "vault"),))])
    path = metrics_path(config)
    assert path == Path(config["work_dir"]) / "metrics" / "sampled_stream.prom"
    write_metrics(path, text)
    assert path.read_text() == text and not list(path.parent.glob(".*tmp*"))


def test_label_values_are_escaped() -> None:
    check = health.Check('disk "a\\b"\nc', health.WARNING, "x")
    h = health.Health(dashdata.NOW, [check], {})
    h.facts = {
        "collectors": [],
        "workflow": {
            "last_run": None,
            "built_hours": 0,
            "oldest_unbuilt_overdue_minutes": None,
            "hours_waiting_for_secondary": [],
            "osf_enabled": False,
            "email_enabled": False,
        },
        "disks": [],
        "alerts_24h": [],
    }
    got = samples(metrics_text(h))
    assert got[("sampled_stream_health_level", (("check", 'disk "a\\b"\nc'),))] == 1
    assert ("sampled_stream_last_run_success", ()) not in got  # unknown: no sample
