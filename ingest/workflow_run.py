"""A workflow run as a whole: its lock (one run at a time) and the mail when it fails.

The Snakefile takes the lock and installs the watch first thing (workflow/rules/common.smk);
the jobs' own work is in each room's ``jobs`` module.
"""

from __future__ import annotations

import atexit
import logging
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ingest import layout
from ingest.clock import FixedClock
from ingest.locks import LockBusy, RunLock
from ingest.notify import alerts_for, notify_once

# What a failed rule was doing, as the operator reads it in a mail's subject.
FAILED_WORK = {
    "pull": "pull from a secondary",
    "parse_minutes": "parsing minute files",
    "build_hour": "hourly build",
    "day_report": "day report",
    "day_manifest": "day manifest",
    "replicate": "copy to a replica",
    "upload_osf": "OSF upload",
    "mail_report": "day mail",
}


def failure_subject(text: str) -> str:
    """The failure mail's subject: what failed, by the rules Snakemake names in ``text``
    ("Error in rule upload_osf:" says "OSF upload failed", not "hourly build failed")."""
    rules = sorted(set(re.findall(r"Error in rule (\w+):", text)))
    if not rules:
        return "workflow run failed"
    return ", ".join(FAILED_WORK.get(r, r) for r in rules) + " failed"


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
        failure_subject(said + tail),
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


def take_run_lock(config: dict[str, Any], now: datetime) -> RunLock | None:
    """This run's lock on work_dir/run.lock, held until the process ends; None if another run
    holds it: then say who and since when, and alert once if that run has held it longer than
    run_lock_alert_minutes (a hung run would otherwise stop every later run silently)."""
    path = layout.work_paths(config["work_dir"])["run_lock"]
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
    report_unfinished(config, lock, now)
    return lock


def wait_for_run_lock(
    config: dict[str, Any],
    wait_s: float,
    poll_s: float = 5,
    on_wait: Callable[[LockBusy], None] | None = None,
    what: str = "workflow run",
) -> RunLock:
    """The workflow's run lock (work_dir/run.lock), waiting up to ``wait_s`` for a run to end;
    LockBusy naming the holder after that. ``on_wait`` hears, once, that the lock is busy
    (to tell the operator why nothing happens). Cron runs meanwhile find it held and do
    nothing. Used by the commands that change what a run reads: scrub, restore, import."""
    path = layout.work_paths(config["work_dir"])["run_lock"]
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        try:
            lock = RunLock(path, datetime.now(UTC), what)
            report_unfinished(config, lock, datetime.now(UTC))  # a run killed just before
            return lock
        except LockBusy as busy:
            if time.monotonic() >= deadline:
                raise
            if on_wait is not None and not told:
                on_wait(busy)
                told = True
            time.sleep(poll_s)


def report_unfinished(config: dict[str, Any], lock: RunLock, now: datetime) -> None:
    """Say, and mail once, that the lock's previous holder never finished: a run killed
    (kill -9, OOM) or cut by a power loss says nothing itself. Whoever takes the lock next
    (a run, a scrub, a restore) reports it; the next run redoes its unfinished jobs."""
    if (gone := lock.unfinished) is None or gone.what == "import":
        return  # an import killed while placing: the next import finishes it and says so
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


def cancel_timers() -> int:
    """Cancel the ``threading.Timer`` threads still waiting in this process; how many.

    Snakemake's scheduler arms a 1 s timer at every scheduling step (its job rate limiter's
    next look), and Python joins such threads before it exits: every run ended up to a second
    after its last job, doing nothing (and its dashboard and health came that much later).
    Called when the run is over (onsuccess, onerror), when nothing is left to schedule.
    """
    import threading

    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
    for t in timers:
        t.cancel()
    return len(timers)
