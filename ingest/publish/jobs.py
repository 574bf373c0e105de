"""The workflow's side jobs: pull a secondary, publish to OSF, mail the day, report a failure.

Each function is what one rule's script calls; it wires the concern modules (rsync, osf,
notify, plot) to the run's config and clock, so the scripts stay one call long.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ingest import layout
from ingest.atomic import atomic_write_json
from ingest.build import plan
from ingest.clock import Clock, FixedClock
from ingest.layout import Hour


def alerts_for(config: dict[str, Any], clock: Clock, log: logging.Logger | None = None):
    from ingest.notify import Alerts

    state = plan.work_paths(config["work_dir"])["state"] / "alerts.json"
    return Alerts.from_config(config["email"], state, clock, log)


def parse_job(
    config: dict[str, Any], now: datetime, workers: int, log_path: str, receipt: Path
) -> list[layout.Rejected]:
    """Parse the minute files due now (pulled ones included) into their intermediates.

    Skipped lines go to the log with file and line number; totals go to the receipt. A raw
    file that cannot be read at all costs only itself: it is named in the log and in the
    receipt's ``skipped_files``, mailed once, and returned; the next run tries it again.
    """
    from ingest.build.minutes import alert_new_rejects, parse_many

    started = time.monotonic()
    # No pull state: every hour that could be built in this run gets its minutes parsed.
    due = plan.make_plan(config, now).to_parse
    jobs = [
        (
            str(f.path),
            *(str(plan.intermediate(config["work_dir"], f, k)) for k in ("tweets", "users")),
            f.server,
        )
        for f in due
    ]
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    result = parse_many(jobs, config["timezone"], config["late_minutes"], workers, log_path)
    metas = result.metas
    skipped: dict[str, int] = {}
    for m in metas:
        for reason, n in m["skipped"].items():
            skipped[reason] = skipped.get(reason, 0) + n
    summary = {
        "files": len(metas),
        "tweets": sum(m["tweets"] for m in metas),
        "skipped": skipped,
        "skipped_files": [{"file": r.path, "reason": r.reason} for r in result.skipped_files],
        "seconds": round(time.monotonic() - started, 2),
    }
    write_receipt(receipt, summary)
    alerted = plan.work_paths(config["work_dir"])["state"] / "bad_inputs.json"
    if result.skipped_files or alerted.exists():  # else no mailer to set up
        alerts = alerts_for(config, FixedClock(now))
        alert_new_rejects(result.skipped_files, alerts, alerted)
    return result.skipped_files


def write_receipt(path: Path, data: Any, keep: int = 48) -> None:
    """A run's receipt, written atomically; only the latest ``keep`` of its kind are kept."""
    atomic_write_json(path, data)
    for old in sorted(path.parent.glob("*.json"))[:-keep]:
        old.unlink(missing_ok=True)


def pull_job(
    config: dict[str, Any], server: str, now: datetime, receipt: Path, log: logging.Logger
) -> None:
    """Pull a secondary's minute files; a failed pull is recorded, not raised (see plan)."""
    from ingest.publish.rsync import alert_unreachable, pull_server

    server_cfg = next(s for s in config["servers"] if s["name"] == server)
    state_dir = plan.work_paths(config["work_dir"])["state"]
    hours = None
    if not server_cfg["remove_source_files"]:
        # The secondary keeps its copies: pull only hours retention still keeps here, or each
        # run would fetch again every minute file retention has removed, forever.
        hours = retained_hours(config, now)
    result = pull_server(server_cfg, now, state_dir, log, hours=hours)
    alerts = alerts_for(config, FixedClock(now), log)
    alert_unreachable(result, state_dir, alerts, now, config["email"]["alert_after_minutes"])
    write_receipt(receipt, result.to_json())


def retained_hours(config: dict[str, Any], now: datetime) -> list[Hour]:
    """Hours whose minute files are all younger than retention.keep_raw_hours, up to the one
    after ``now`` (a collector's clock may run a little ahead)."""
    tz = ZoneInfo(config["timezone"])
    oldest = now - timedelta(hours=config["retention"]["keep_raw_hours"])
    hours = layout.hours_between(oldest, now + layout.HOUR, tz)
    return [h for h in hours if (b := layout.hour_bounds(h, tz)) is not None and b[0] >= oldest]


def upload_job(
    config: dict[str, Any], ids: Path, report: Path, now: datetime, receipt: Path, log
) -> None:
    """Publish an hour's IDs file and its day's report; the receipt records both uploads."""
    from ingest.publish.osf import RetryPolicy, remote_path_for, upload

    osf = config["osf"]
    policy = RetryPolicy(
        min_interval=osf["request_interval_seconds"], base_delay=osf["retry_base_seconds"]
    )
    clock = FixedClock(now)
    receipts = [upload(p, remote_path_for(p), osf, log, clock, policy) for p in (ids, report)]
    atomic_write_json(receipt, receipts)


def mail_job(config: dict[str, Any], day: str, report: Path, marker: Path, log) -> None:
    """Mail a complete day's report with its tweets-per-minute plot, once."""
    from ingest.build.stats import day_stats_paths, read_stats
    from ingest.notify import Mailer, mail_day_report
    from ingest.publish.plot import minutes_plot_png

    servers = [s["name"] for s in config["servers"]]
    stats = [read_stats(p) for p in day_stats_paths(report.parent, day)]
    png = minutes_plot_png(day, stats, servers, tz=config["timezone"])
    mail_day_report(Mailer.from_config(config["email"]), day, report.read_text(), png, marker)
    log.info("report of %s mailed to %s", day, ", ".join(config["email"]["to"]))


def failure_mail(config: dict[str, Any], now: datetime, log: str | Sequence[str] | None) -> None:
    """Tell the operator a workflow run failed, with the end of its log (rate-limited).

    ``log`` is what Snakemake hands ``onerror``: since Snakemake 9 a list of the run's log
    files (one, unless logger plugins add more), a single path before.
    """
    paths = [log] if isinstance(log, str) else list(log or [])
    tail = ""
    for path in map(Path, paths):
        if path.is_file():
            tail += "".join(path.read_text(errors="replace").splitlines(True)[-60:])
    alerts_for(config, FixedClock(now)).alert(
        "workflow-error",
        "hourly build failed",
        f"A run of the hourly workflow failed at {now.isoformat()}.\n"
        f"Log: {', '.join(paths) or 'none'}\n\n{tail}\n"
        "The next run retries what failed; hours already built are kept.",
    )
