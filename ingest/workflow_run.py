"""The workflow's side jobs: pull a secondary, publish to OSF, mail the day, report a failure.

Each function is what one rule's script calls; it wires the concern modules (rsync, osf,
notify, plot) to the run's config and clock, so the scripts stay one call long.
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ingest import backoff, layout
from ingest.atomic import atomic_write_json
from ingest.hours import plan
from ingest.clock import Clock, FixedClock
from ingest.layout import Hour
from ingest.locks import LockBusy, RunLock


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
    xz_threads: int,
    receipt: str,
    log_path: str,
    now: datetime,
) -> dict[str, Any]:
    """Build one hour into the vault, then write this run's receipt of it; the stats.

    In a backfill (``raw``: the raw minute files of the hour's read window, per server) the
    job parses them first into a folder of its own; in the cron mode ``intermediates`` are
    the run's parsed minutes. A raw file the backfill's parse cannot read costs only itself:
    the hour is built without it, and it is named in the log and mailed once.
    """
    from contextlib import nullcontext

    from ingest.hours.backfill import ParsedWindow, parsed_window
    from ingest.hours.hourly import build_hour
    from ingest.receipts import replace_receipt
    from ingest.logs import job_logger

    log = job_logger("build_hour", log_path)
    tz, late = config["timezone"], config["late_minutes"]
    window = (
        parsed_window(raw, tz, late, threads, log_path)
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
            xz_threads=xz_threads,
            xz_blocks=config["xz_threads"],  # the cron build's blocks: a rebuild's same bytes
            server_names=[s["name"] for s in config["servers"]],
            from_scratch=config["from_scratch"],
            log=log,
        )
    for older in replace_receipt(receipt, stats):
        log.info("removed %s, an earlier run's receipt", older)
    return stats


def write_receipt(path: Path, data: Any, keep: int = 48) -> None:
    """A run's receipt, written atomically; only the latest ``keep`` of its kind are kept."""
    atomic_write_json(path, data)
    for old in sorted(path.parent.glob("*.json"))[:-keep]:
        old.unlink(missing_ok=True)


def pull_job(
    config: dict[str, Any], server: str, now: datetime, receipt: Path, log: logging.Logger
) -> None:
    """Pull a secondary's minute files; a failed pull is recorded, not raised (see plan)."""
    from ingest.pull.rsync import alert_unreachable, pull_server

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
    """Publish an hour's IDs file, its day's report and the day's SHA256SUMS manifest (when the
    day has one: days built before manifests existed have none until scrub makes it); the
    receipt records every upload."""
    from ingest.vault.manifest import manifest_path
    from ingest.publish.osf import RetryPolicy, remote_path_for, upload

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
    atomic_write_json(receipt, receipts)


def mail_job(config: dict[str, Any], day: str, report: Path, marker: Path, log) -> None:
    """Mail a complete day's report with its tweets-per-minute plot, once."""
    from ingest.hours.stats import day_stats_paths, read_stats
    from ingest.notify import Mailer, mail_day_report
    from ingest.observe.plot import minutes_plot_png
    from ingest.observe.site import day_url

    servers = [s["name"] for s in config["servers"]]
    stats = [read_stats(p) for p in day_stats_paths(report.parent, day)]
    png = minutes_plot_png(day, stats, servers, tz=config["timezone"])
    mailer = Mailer.from_config(config["email"])
    link = day_url(config, day)
    mail_day_report(mailer, day, report.read_text(), png, marker, link)
    log.info("report of %s mailed to %s", day, ", ".join(config["email"]["to"]))


def failure_mail(
    config: dict[str, Any],
    now: datetime,
    log: str | Sequence[str] | None,
    errors: Sequence[str] = (),
) -> None:
    """Tell the operator a workflow run failed, with its errors and the end of its log
    (rate-limited).

    ``log`` is what Snakemake hands ``onerror``: since Snakemake 9 a list of the run's log
    files (one, unless logger plugins add more), a single path before.
    """
    paths = [log] if isinstance(log, str) else list(log or [])
    tail = ""
    for path in map(Path, paths):
        if path.is_file():
            tail += "".join(path.read_text(errors="replace").splitlines(True)[-60:])
    said = "\n".join(errors)[-4000:]
    alerts_for(config, FixedClock(now)).alert(
        "workflow-error",
        "hourly build failed",
        f"A run of the hourly workflow failed at {now.isoformat()}.\n"
        + (f"\nError:\n{said}\n" if said else "")
        + f"Log: {', '.join(paths) or 'none'}\n\n{tail}\n"
        "The next run retries what failed; hours already built are kept.",
    )


class RunWatch(logging.Handler):
    """Alerts when a workflow run fails at any stage: one rate-limited mail naming the error.

    Snakemake calls ``onerror`` only when jobs fail. An exception while it reads the Snakefile
    (config validation, the plan: ``onerror`` does not exist yet), builds the DAG or runs
    ``onsuccess`` ends the run with the error logged and exit status 1, which under cron only
    ``cron.log`` would know. Installed first thing in the Snakefile, the watch keeps the errors
    Snakemake logs and mails them at exit, unless ``on_error`` (the ``onerror`` hook) already
    mailed this run's failure.
    """

    LOGGER = "snakemake.logging"  # snakemake.logging.logger, where every error is logged

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(logging.ERROR)
        self.config = config  # read at exit: validation fills in the defaults meanwhile
        self.now: datetime | None = None  # the run's NOW once known, else the time of failure
        self.errors: list[str] = []
        self.mailed = False

    def install(self) -> RunWatch:
        logging.getLogger(self.LOGGER).addHandler(self)
        atexit.register(self.at_exit)
        return self

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.errors.append(str(record.getMessage()).strip())
        except Exception:  # noqa: BLE001 - logging must never fail the run
            self.errors.append(repr(record.msg))

    def on_error(self, log: str | Sequence[str] | None) -> None:
        self.mailed = True
        self._mail(log)

    def at_exit(self) -> None:
        if self.errors and not self.mailed:
            self.mailed = True
            self._mail(None)

    def _mail(self, log: str | Sequence[str] | None) -> None:
        from ingest.config import with_defaults

        try:
            config = with_defaults(self.config)  # the run may have failed validating it
            if not config.get("email", {}).get("enabled"):
                return
            failure_mail(config, self.now or datetime.now(UTC), log, self.errors)
        except Exception as e:  # noqa: BLE001 - e.g. the email section is what is broken
            print(f"could not mail the failure alert: {type(e).__name__}: {e}", file=sys.stderr)


def notify_once(
    config: dict[str, Any], kind: str, items: Sequence[str], subject: str, intro: str, now: datetime
) -> bool:
    """Mail the ``items`` not mailed before under ``kind`` (rate-limited like every alert).

    For conditions that last across runs (a damaged file, an unexpected name, a hung run): one
    mail when each appears, not one per run. Items that are gone are forgotten, so one that
    comes back is mailed again. True if a mail went out.
    """
    path = plan.work_paths(config["work_dir"])["state"] / "notified.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        known = set(state.get(kind, [])) if isinstance(state, dict) else set()
    except (OSError, ValueError):
        state, known = {}, set()
    new = [i for i in items if i not in known]
    sent = False
    if new:
        body = intro.rstrip() + "\n\n" + "\n".join(f"  {i}" for i in new) + "\n"
        sent = alerts_for(config, FixedClock(now)).alert(f"notice-{kind}", subject, body)
    keep = sorted(i for i in items if i in known or sent)  # unsent ones: tried again next run
    if keep != sorted(known):
        atomic_write_json(path, {**(state if isinstance(state, dict) else {}), kind: keep})
    return sent


def take_run_lock(config: dict[str, Any], now: datetime) -> RunLock | None:
    """This run's lock on work_dir/run.lock, held until the process ends; None if another run
    holds it: then say who and since when, and alert once if that run has held it longer than
    run_lock_alert_minutes (a hung run would otherwise stop every later run silently)."""
    path = plan.work_paths(config["work_dir"])["run_lock"]
    try:
        lock = RunLock(path, now)
    except LockBusy as busy:
        holder = busy.holder
        print(f"another workflow run is going: {busy}; this run does nothing", file=sys.stderr)
        minutes = config["run_lock_alert_minutes"]
        if holder is not None and now - holder.started > timedelta(minutes=minutes):
            notify_once(
                config,
                "run-lock",
                [f"pid {holder.pid} on {holder.host} since {holder.started.isoformat()}"],
                f"a run has held the run lock for {minutes}+ min",
                f"Every run since then found {path} held and did nothing. If the run below "
                "hangs, stop it (kill the pid); the next run catches up.",
                now,
            )
        return None
    if (gone := lock.unfinished) is not None:
        # A run killed (kill -9, OOM) or cut by a power loss says nothing itself; this run
        # redoes its unfinished jobs (rerun-incomplete), and the operator hears of it once.
        item = f"pid {gone.pid} on {gone.host}, started {gone.started.isoformat()}"
        print(f"the previous workflow run ({item}) never finished: redoing its jobs")
        notify_once(
            config,
            "run-unfinished",
            [item],
            "a workflow run ended without finishing",
            "The run below took the run lock and never released it: it was killed (kill -9, "
            "out of memory) or its machine lost power. The next run redid its unfinished jobs; "
            "the cron log and work_dir/logs/ around that time say how far it got.",
            now,
        )
    return lock
