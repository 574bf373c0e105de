"""What the parse, build and report rules' scripts call, wired to the run's config."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ingest import layout
from ingest.hours import plan
from ingest.layout import Hour
from ingest.notify import notify_once
from ingest.receipts import write_receipt


def parse_job(
    config: dict[str, Any], now: datetime, workers: int, log_path: str, receipt: Path
) -> list[layout.Rejected]:
    """Parse the minute files due now (pulled ones included) into their intermediates.

    Skipped lines go to the log with file and line number; totals go to the receipt. A raw
    file that cannot be read at all costs only itself: it is named in the log and in the
    receipt's ``skipped_files``, mailed once, and returned; the next run tries it again.
    """
    from ingest.hours.minutes import parse_many

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
    notify_once(
        config,
        "bad-input",
        [str(r) for r in result.skipped_files],
        f"{len(result.skipped_files)} raw file(s) skipped",
        "These raw files could not be read: their tweets are not archived until they are "
        "fixed (or moved away); everything else is built as usual, and the next run tries "
        "them again. Each is mailed once.",
        now,
    )
    return result.skipped_files


def build_job(
    config: dict[str, Any],
    hour: Hour,
    raw: dict[str, list[str]],
    intermediates: dict[str, list[tuple[str, str]]],
    threads: int,
    receipt: str,
    log_path: str,
    now: datetime,
) -> dict[str, Any]:
    """Build one hour into the vault, then write this run's receipt of it; the stats.

    In a backfill (``raw``: the raw minute files of the hour's read window, per server) the
    job parses them first into a folder of its own; in the cron mode ``intermediates`` are
    the run's parsed minutes. ``threads``: the job's cores, for the backfill's parse
    processes and the tweets' xz. A raw file the backfill's parse cannot read costs only
    itself: the hour is built without it, and it is named in the log and mailed once.
    """
    from contextlib import nullcontext

    from ingest.hours.backfill import ParsedWindow, parsed_window
    from ingest.hours.hourly import build_hour
    from ingest.logs import job_logger
    from ingest.receipts import replace_receipt

    log = job_logger("build_hour", log_path)
    tz, late = config["timezone"], config["late_minutes"]
    window = (
        parsed_window(raw, tz, late, threads, log_path, for_hour=hour.label)
        if raw
        else nullcontext(ParsedWindow(intermediates, []))
    )
    with window as parsed:
        if not parsed.inputs:
            raise SystemExit(
                f"hour {hour} is not due in this run (incomplete, or no raw data);"
                " to rebuild it run with --config hours=DAY_or_HOUR"
            )
        if raw:
            log.info("%s: parsed %d minute files in %.1f s", hour, parsed.files, parsed.seconds)
        for skipped in parsed.skipped_files:
            log.warning("%s: not built into %s (the file could not be read)", skipped, hour)
        notify_once(
            config,
            f"bad-input-{hour.label}",  # one kind per hour: jobs run side by side
            [str(r) for r in parsed.skipped_files],
            f"{len(parsed.skipped_files)} raw file(s) not built into {hour}",
            f"These raw files could not be read: hour {hour} was built without them. Fix (or "
            "move away) each and build the hour again (--config hours=...). Each is mailed "
            "once.",
            now,
        )
        stats = build_hour(
            hour,
            tz,
            parsed.inputs,
            layout.vault_paths(Path(config["vault_dir"]), hour),
            xz_preset=config["xz_preset"],
            xz_threads=threads,
            xz_blocks=config["xz_threads"],  # the same blocks whatever the threads: same bytes
            server_names=[s["name"] for s in config["servers"]],
            from_scratch=config["from_scratch"],
            log=log,
        )
    for older in replace_receipt(receipt, stats):
        log.info("removed %s, an earlier run's receipt", older)
    return stats


def report_job(day: str, vault: Path, servers: list[str], receipt: str, log_path: str) -> None:
    """Rebuild ``day``'s report from the stats of every built hour of the day in the vault
    (temp and rename), then write this run's receipt of it."""
    from ingest.hours.report import write_day_report
    from ingest.hours.stats import day_stats_paths
    from ingest.logs import job_logger
    from ingest.receipts import replace_receipt

    stats = day_stats_paths(vault / day, day)
    report = layout.report_path(vault, day)
    write_day_report(day, stats, report, servers)
    replace_receipt(receipt, {"day": day, "report": str(report), "hours": len(stats)})
    job_logger("day_report", log_path).info("report of %s from %d hours", day, len(stats))
