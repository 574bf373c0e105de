"""What the upload and mail rules' scripts call."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from ingest import backoff
from ingest.atomic import atomic_write_json
from ingest.clock import FixedClock
from ingest.hours import plan
from ingest.layout import Hour
from ingest.vault.records import read_record, record_path


def upload_job(
    config: dict[str, Any], ids: Path, report: Path, now: datetime, receipt: Path, log
) -> None:
    """Publish an hour's IDs file, its day's report and the day's SHA256SUMS manifest (when the
    day has one); the receipt records every upload and the hour's generation, and a newer
    generation is uploaded again (the plan)."""
    from ingest.publish.osf import RetryPolicy, remote_path_for, upload
    from ingest.vault.manifest import manifest_path

    osf = config["osf"]
    policy = RetryPolicy(
        min_interval=osf["request_interval_seconds"], base_delay=osf["retry_base_seconds"]
    )
    clock = FixedClock(now)
    retry = plan.upload_backoff(receipt)
    files = [ids, report, *[m for m in [manifest_path(report.parent)] if m.exists()]]
    try:
        receipts = [upload(p, remote_path_for(p), osf, log, clock, policy) for p in files]
    except Exception as e:
        # The plan leaves this hour out until then: an outage costs a few tries, not every run.
        state = backoff.record_failure(retry, now, f"{type(e).__name__}: {e}")
        log.error(
            "upload failed (attempt %d); next attempt not before %s",
            state["attempts"],
            state["next_attempt"],
        )
        raise
    backoff.clear(retry)
    # The generation uploaded; the receipt's time against the record's tells the plan when an
    # hour's newer generation must go up again.
    hour = Hour.parse(ids.name.removesuffix("_IDs.txt.xz"))
    written = read_record(record_path(ids.parent.parent, hour))
    generation = written.generation if written is not None else None
    atomic_write_json(receipt, [{**r, "generation": generation} for r in receipts])


def mail_job(
    config: dict[str, Any],
    day: str,
    report: Path,
    marker: Path,
    log,
    now: datetime,
    revised: bool = False,
) -> None:
    """Mail a complete day's report with its tweets-per-minute plot, once (again, ``revised``,
    when the report changed since). A failed mail waits out a back-off (``backoff``) before the
    plan tries it again: an SMTP server down for a day costs a few attempts, not every run."""
    from ingest.hours.stats import day_stats_paths, read_stats
    from ingest.notify import Mailer, mail_day_report
    from ingest.observe.plot import minutes_plot_png
    from ingest.observe.site import day_url

    servers = [s["name"] for s in config["servers"]]
    stats = [read_stats(p) for p in day_stats_paths(report.parent, day)]
    png = minutes_plot_png(day, stats, servers, tz=config["timezone"])
    mailer = Mailer.from_config(config["email"])
    link = day_url(config, day)
    retry = plan.mail_backoff(marker.parent, day)
    try:
        mail_day_report(mailer, day, report.read_text(), png, marker, link, revised)
    except Exception as e:
        state = backoff.record_failure(retry, now, f"{type(e).__name__}: {e}")
        log.error(
            "mail of %s not sent (attempt %d): %s: %s; next attempt not before %s",
            day,
            state["attempts"],
            type(e).__name__,
            e,
            state["next_attempt"],
        )
        raise
    backoff.clear(retry)
    what = "revised report" if revised else "report"
    log.info("%s of %s mailed to %s", what, day, ", ".join(config["email"]["to"]))
