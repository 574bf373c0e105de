"""The health's figures as a Prometheus text file, for node_exporter's textfile collector.

Every name starts with ``sampled_stream_``; per-server figures carry a ``server`` label, the
recent hours' tweet counts ``server`` and ``hour`` (the last ``HOURS`` built hours only, so the
number of series stays bounded). The file is written atomically (node_exporter never reads half
of it), by default to ``{work_dir}/metrics/sampled_stream.prom``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from ingest.atomic import atomic_write
from ingest.hours.stats import HourStats
from ingest.observe.health import LEVELS, Health

HOURS = 24  # built hours whose counts are exported


def metrics_path(config: dict[str, Any]) -> Path:
    configured = config["health"]["metrics_file"]
    return (
        Path(configured)
        if configured
        else Path(config["work_dir"]) / "metrics" / "sampled_stream.prom"
    )


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _value(v: float | int | bool) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float) and math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v) if isinstance(v, float) else str(v)


def _ts(value: str | None) -> float | None:
    try:
        return datetime.fromisoformat(value).timestamp() if value else None
    except (TypeError, ValueError):
        return None


def _mail_ts(value: str | None) -> float | None:
    """A mail marker's ``sent_at`` (an RFC 2822 date) as a Unix time."""
    try:
        return parsedate_to_datetime(value).timestamp() if value else None
    except (TypeError, ValueError):
        return None


class _Family:
    """One metric: its HELP and TYPE lines, then its samples."""

    def __init__(self, name: str, help_: str) -> None:
        self.name = f"sampled_stream_{name}"
        self.lines = [f"# HELP {self.name} {help_}", f"# TYPE {self.name} gauge"]
        self.empty = True

    def add(self, value: float | int | bool | None, **labels: str) -> None:
        if value is None:
            return  # unknown: no sample rather than a made-up one
        self.empty = False
        text = ",".join(f'{k}="{_label(str(v))}"' for k, v in labels.items())
        self.lines.append(
            f"{self.name}{{{text}}} {_value(value)}" if text else f"{self.name} {_value(value)}"
        )


class _Exposition:
    """The metric families in the order they are written; a family without samples is left
    out."""

    def __init__(self) -> None:
        self.families: list[_Family] = []

    def family(self, name: str, help_: str) -> _Family:
        self.families.append(f := _Family(name, help_))
        return f

    def text(self) -> str:
        return "\n".join(line for f in self.families if not f.empty for line in f.lines) + "\n"


def metrics_text(health: Health, recent_hours: Iterable[HourStats] = ()) -> str:
    """The text-format exposition of ``health`` and the tweets of ``recent_hours``."""
    out = _Exposition()
    f = out.family("health_level", '0 ok, 1 warning, 2 failing; check="overall" is the worst')
    f.add(LEVELS.index(health.level), check="overall")
    for c in health.checks:
        f.add(LEVELS.index(c.level), check=c.name)
    facts = health.facts
    _collectors(out, facts["collectors"])
    _workflow(out, facts["workflow"])
    _disks(out, facts["disks"])
    _replicas(out, facts.get("replicas", []), facts.get("retention") or {})
    out.family("alerts_24h", "Alerts raised in the last 24 hours").add(len(facts["alerts_24h"]))
    _hours(out, recent_hours)
    out.family("metrics_timestamp_seconds", "When this file was written").add(health.at.timestamp())
    return out.text()


def _collectors(out: _Exposition, collectors: list[dict[str, Any]]) -> None:
    """Each collector's connection, last tweet, reconnects, newest minute and pull."""
    connected = out.family("collector_connected", "1 if the collector's status says connected")
    last_tweet = out.family("collector_last_tweet_timestamp_seconds", "Last tweet received")
    reconnects = out.family("collector_reconnects", "Reconnects since the collector started")
    age = out.family(
        "newest_minute_age_seconds", "Seconds since the newest minute file's minute ended"
    )
    pull_ok = out.family("pull_ok", "1 if the last pull of a secondary worked")
    archive = out.family("archive_lines", "Tweet lines an imported server's archive holds")
    for r in collectors:
        server = r["server"]
        if "archive" in r:  # imported: no collector, nothing live to measure
            archive.add(r["archive"].get("lines"), server=server)
            continue
        st = r.get("status") or {}
        if st and "unreadable" not in st:
            running = st.get("state") == "running"
            connected.add(bool(running and st.get("connected_since")), server=server)
            last_tweet.add(_ts(st.get("last_tweet_at")), server=server)
            reconnects.add(st.get("reconnects"), server=server)
        age.add(r.get("newest_minute_age_seconds"), server=server)
        if r.get("pulled"):
            pull_ok.add(not (r.get("pull") or {}).get("unreachable_since"), server=server)


def _workflow(out: _Exposition, wf: dict[str, Any]) -> None:
    """The last run, the built and waiting hours, the uploads and the day mail."""
    family = out.family
    run = wf.get("last_run") or {}
    family("last_run_start_timestamp_seconds", "Start of the last workflow run").add(
        _ts(run.get("started"))
    )
    family("last_run_end_timestamp_seconds", "End of the last workflow run").add(
        _ts(run.get("ended"))
    )
    family("last_run_success", "1 if the last workflow run did not fail").add(
        run.get("result") != "failed" if run else None
    )
    family("last_good_run_timestamp_seconds", "End of the last run that did not fail").add(
        _ts(run.get("last_ok"))
    )
    family("built_hours", "Hours with stats in the vault").add(wf["built_hours"])
    family(
        "unbuilt_hour_overdue_seconds",
        "How long the oldest complete hour not yet built has been due (0: none)",
    ).add((wf["oldest_unbuilt_overdue_minutes"] or 0) * 60)
    family("hours_waiting_for_secondary", "Complete hours held back for a secondary").add(
        len(wf["hours_waiting_for_secondary"])
    )
    if wf["osf_enabled"]:
        family("uploads_pending", "Built hours without an OSF upload receipt").add(
            wf["uploads_pending"]
        )
        family("uploads_failed", "Hours whose OSF upload failed, waiting to retry").add(
            len(wf["uploads_failed"])
        )
    if wf["email_enabled"] and wf["last_day_mailed"]:
        family("last_day_mail_timestamp_seconds", "When the last day report was mailed").add(
            _mail_ts(wf["last_day_mailed"].get("sent_at"))
        )


def _replicas(out: _Exposition, replicas: list[dict[str, Any]], retention: dict) -> None:
    failing = out.family("replica_failing", "1 while copying to the replica fails")
    behind = out.family("replica_hours_behind", "Built hours the replica lacks at their newest")
    for r in replicas:
        failing.add(r["failing_since"] is not None, replica=r["name"])
        behind.add(r["hours_behind"], replica=r["name"])
    out.family("raw_files_held", "Raw minute files kept until every replica has their hours").add(
        retention.get("raw_held")
    )


def _disks(out: _Exposition, disks: list[dict[str, Any]]) -> None:
    """Free bytes, size and days left of each folder's file system."""
    free = out.family("disk_free_bytes", "Free bytes on the file system of a folder")
    total = out.family("disk_size_bytes", "Size of the file system of a folder")
    left = out.family(
        "disk_days_left", "Days until full at the rate of the last day (+Inf: not falling)"
    )
    for d in disks:
        if "error" in d:
            continue
        free.add(d["free_bytes"], path=d["path"])
        total.add(d["total_bytes"], path=d["path"])
        left.add(d["days_left"] if d["days_left"] is not None else math.inf, path=d["path"])


def _hours(out: _Exposition, recent_hours: Iterable[HourStats]) -> None:
    """The tweets and outage minutes of the last ``HOURS`` built hours."""
    tweets = out.family("hour_tweets", "Unique tweet IDs a server saw in a built hour")
    outage = out.family("hour_outage_minutes", "Minutes of a built hour without a minute file")
    hour_total = out.family("hour_total_tweets", "Unique tweet IDs of a built hour, all servers")
    for s in sorted(recent_hours, key=lambda s: s.get("hour", ""))[-HOURS:]:
        hour = s.get("hour", "")
        hour_total.add(s.get("total"), hour=hour)
        for server, n in (s.get("counts") or {}).items():
            tweets.add(n, server=server, hour=hour)
        for server, minutes in (s.get("minutes") or {}).items():
            outage.add(sum(1 for v in minutes.values() if v is None), server=server, hour=hour)


def write_metrics(path: str | Path, text: str) -> None:
    atomic_write(path, text)
