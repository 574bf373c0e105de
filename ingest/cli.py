"""``sampled-stream``: the command line of the collector side.

    sampled-stream collect --config CONFIG --server NAME
    sampled-stream status  --config CONFIG [--server NAME] [--json]
    sampled-stream scrub   --config CONFIG [--days N] [--jobs N] [--mb-per-s X]
    sampled-stream restore --config CONFIG [--from REPLICA] [--days DAY ...]
    sampled-stream import  --config CONFIG --server NAME [--jobs N] SOURCE ...
    sampled-stream comply  --config CONFIG [--days N]

A plain argparse dispatch: each subcommand is ``add_<name>(subparsers)`` setting ``func``,
so other modules can add theirs (append to ``SUBCOMMANDS``). The stream stand-in has its
own command line, ``python -m ingest.devtools.emulate``, since production never needs it.

Exit codes: 0 done (the collector also after SIGTERM/SIGINT), 2 bad config or usage, 1 crash;
scrub and restore: 1 when a file is left damaged or missing, or a replica could not be read.
import: 1 when an input failed or was damaged (what it held up to there is imported).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Callable
from datetime import datetime

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"


def setup_logging(level: str) -> None:
    from ingest.collect.stream_client import install_redaction, protect_logs

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    install_redaction(handler)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    protect_logs()


def _fail(command: str, message: str, code: int = 2) -> int:
    print(f"sampled-stream {command}: error: {message}", file=sys.stderr)
    return code


# --- clock options (tests and the demo run minutes of a second) ------------------------------


def add_clock_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("fast clock (tests and demos; the default is the system clock)")
    g.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="run the clock this many times faster than real time (60: a minute per second)",
    )
    g.add_argument(
        "--clock-start",
        metavar="ISO",
        help="the clock's time at --clock-epoch, e.g. 2026-01-14T09:58:00+00:00 (default: now)",
    )
    g.add_argument(
        "--clock-epoch",
        type=float,
        metavar="UNIX_SECONDS",
        help="the real instant at which the clock reads --clock-start (default: start of the "
        "process); give processes the same start and epoch to share one timeline",
    )


def make_clock(args: argparse.Namespace):
    from ingest.clock import ScaledClock, SystemClock

    if args.speed == 1.0 and not args.clock_start and args.clock_epoch is None:
        return SystemClock()
    start = datetime.fromisoformat(args.clock_start) if args.clock_start else None
    return ScaledClock(args.speed, start, args.clock_epoch)


# --- collect --------------------------------------------------------------------------------


def add_collect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "collect",
        help="collect the sampled stream into minute files (runs until SIGTERM/SIGINT)",
        description="Connect to the sampled stream (stream.url) and write one file per minute "
        "to the server's raw_dir; reconnect forever; exit 0 on SIGTERM/SIGINT after closing "
        "the current minute, 2 on bad config. The bearer token comes from "
        "stream.bearer_token_file or the TWITTER_BEARER_TOKEN environment variable.",
    )
    p.add_argument("--config", required=True, help="the YAML config shared with the workflow")
    p.add_argument("--server", required=True, help="this machine's server name in the config")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--backoff-scale",
        type=float,
        default=1.0,
        help="multiply every reconnect delay (tests and demos use e.g. 0.01)",
    )
    add_clock_options(p)
    p.set_defaults(func=cmd_collect)


def cmd_collect(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    from ingest.collect.collector import Collector, SetupError
    from ingest.config import ConfigError, load_config
    from ingest.notify import MailConfigError
    from ingest.secrets import SecretError

    try:
        config = load_config(args.config)
        clock = make_clock(args)
        collector = Collector.from_config(
            config, args.server, clock=clock, backoff_scale=args.backoff_scale
        )
        collector.prepare()
    except (ConfigError, SecretError, MailConfigError, SetupError, ValueError) as e:
        return _fail("collect", str(e))

    def on_signal(signum: int, _frame) -> None:
        collector.stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return collector.run()
    except Exception as e:  # noqa: BLE001 - report, then let systemd restart us
        logging.getLogger("ingest.collect.collector").exception("collector crashed")
        return _fail("collect", f"crashed: {type(e).__name__}: {e}", 1)


# --- status ---------------------------------------------------------------------------------


def add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="print each server's collector status and the age of its newest minute file",
        description="Read the collectors' status files (stream.status_dir, default "
        "work_dir/status) and each server's raw_dir. On the primary (where the workflow has "
        "run) the system's health follows; --json then prints {servers, health}. Exit status "
        "as a monitoring plugin's: 0 ok, 1 warning, 2 failing, 3 unknown (bad config).",
    )
    p.add_argument("--config", required=True)
    p.add_argument("--server", action="append", help="only this server (repeatable)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_clock_options(p)
    p.set_defaults(func=cmd_status)


# The monitoring-plugin convention (Nagios, Icinga, Checkmk): 0 ok, 1 warning, 2 failing
# (critical), 3 unknown (the state could not be read: a bad config or command line).
STATUS_EXIT = {"ok": 0, "warning": 1, "failing": 2}
STATUS_UNKNOWN = 3


def cmd_status(args: argparse.Namespace) -> int:
    from ingest.collect.status import format_report, report_all
    from ingest.config import ConfigError, load_config
    from ingest.observe.health import assess_collector, is_primary, system_health, worst

    try:
        config = load_config(args.config)
        clock = make_clock(args)
    except (ConfigError, ValueError) as e:
        return _fail("status", str(e), STATUS_UNKNOWN)
    known = {s["name"] for s in config["servers"]}
    unknown = sorted(set(args.server or []) - known)
    if unknown:
        names = ", ".join(unknown)
        return _fail("status", f"no server named {names} in {args.config}", STATUS_UNKNOWN)
    reports = report_all(config, clock, args.server)
    # On the primary (the workflow runs there) the whole system's health follows.
    health = system_health(config, clock.now()) if is_primary(config) else None
    if args.json:
        out = {"servers": reports, "health": health.to_json()} if health else reports
        print(json.dumps(out, indent=1))
    else:
        print("\n".join(format_report(r) for r in reports))
        if health:
            print(health.format())
    # The system's health on the primary; elsewhere (a secondary) its collectors'.
    if health is None:
        level = worst([assess_collector(r, config["health"]).level for r in reports])
    else:
        level = health.level
    return STATUS_EXIT[level]


# --- scrub and restore (the vault's replicas) -----------------------------------------------


def add_scrub(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scrub",
        help="check the vault and its replicas against the hour records, repair",
        description="Check each hour's files on the primary and on every vault_replicas entry "
        "against that copy's own record (SHA-256, and xz -t), all copies at once. The intact "
        "copy with the newest generation is the reference: every copy that is older, damaged "
        "or missing gets it, and a newer generation is never replaced by an older one. Day "
        "manifests are derived again from the records; what was found is mailed.",
    )
    p.add_argument("--config", required=True)
    p.add_argument("--days", type=int, metavar="N", help="only the newest N day folders")
    p.add_argument("--jobs", type=int, default=2, help="files checked at once on the primary")
    p.add_argument(
        "--mb-per-s",
        type=float,
        default=100.0,
        help="cap on the primary's reads, MB/s (0: no cap); remote replicas read under ionice",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_scrub)


def cmd_scrub(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    from ingest.clock import SystemClock
    from ingest.config import ConfigError, load_config
    from ingest.notify import alerts_for
    from ingest.vault.replicate import ReplicaConfigError
    from ingest.vault.scrub import scrub

    try:
        config = load_config(args.config)
        report = scrub(
            config,
            days=args.days,
            jobs=args.jobs,
            mb_per_s=args.mb_per_s or None,
            alerts=alerts_for(config, SystemClock()),
        )
    except (ConfigError, ReplicaConfigError) as e:
        return _fail("scrub", str(e))
    # Each file by name, each finding once (the scrub logs none of them), the totals last.
    print("\n".join([*report.lines(), report.summary()]))
    return 1 if report.unrepaired else 0


def add_restore(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "restore",
        help="bring hours back from a replica, verified against their records",
        description="For the given days (default: all the replica holds), install each hour "
        "the primary lacks, holds damaged or holds at an older generation from the replica; "
        "each file is checked (SHA-256 against the replica's intact record, xz -t) before it "
        "is renamed into the vault, the record last. The day manifests are then derived "
        "again from the records.",
    )
    p.add_argument("--config", required=True)
    p.add_argument(
        "--from",
        dest="source",
        metavar="REPLICA",
        help="replica name (default: first that answers)",
    )
    p.add_argument("--days", nargs="+", metavar="DAY", help="only these days (YYYY-mm-dd)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_restore)


def cmd_restore(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    from ingest.config import ConfigError, load_config
    from ingest.locks import LockBusy
    from ingest.vault.manifest import ManifestError, is_day
    from ingest.vault.replicate import ReplicaConfigError, ReplicaError
    from ingest.vault.restore import restore, restore_summary

    bad = [d for d in args.days or [] if not is_day(d)]
    if bad:
        return _fail("restore", f"--days: {', '.join(bad)} is not YYYY-mm-dd")
    try:
        config = load_config(args.config)
        results = restore(config, args.source, args.days)
    except (ConfigError, ReplicaConfigError) as e:
        return _fail("restore", str(e))
    except (ReplicaError, ManifestError, LockBusy) as e:
        return _fail("restore", str(e), 1)
    # Each file by name, each failure once (the restore logs none of them), the totals last.
    for r in results:
        print("\n".join(r.lines()))
    print(restore_summary(results))
    return 1 if any(r.failed for r in results) else 0


# --- import (existing twarc2 and seed archives) -------------------------------------------


def add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="import twarc2 sample/stream output, response pages or the seed's raw files",
        description="Write the tweet lines of SOURCE files (twarc2 sample/stream output, twarc2 "
        "response pages, the seed's raw files; plain, .gz, .bz2, .xz or .zst, told by content) "
        "into the raw_dir of --server as minute files, by __twarc.retrieved_at (by created_at "
        "when a line has none). Other lines are counted by kind and skipped. Each input leaves "
        "a receipt in work_dir/import/SERVER/receipts; an input imported before is skipped; a "
        "killed import, run again, finishes without losing or duplicating a line. The server "
        "must be marked `imported: true` in the config.",
    )
    p.add_argument("--config", required=True)
    p.add_argument("--server", required=True, help="a server entry with `imported: true`")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="input files or folders of them")
    p.add_argument("--jobs", type=int, default=1, help="inputs read at once (processes)")
    p.add_argument(
        "--progress",
        choices=["auto", "bar", "log", "none"],
        default="auto",
        help="auto: a bar on a terminal, else a log line every --log-every seconds",
    )
    p.add_argument("--log-every", type=float, default=60.0, metavar="SECONDS")
    p.add_argument("--json", action="store_true", help="print the receipts as JSON")
    wait = p.add_mutually_exclusive_group()
    wait.add_argument(
        "--wait-minutes",
        type=float,
        default=60.0,
        help="placing minute files waits this long for a workflow run to end (default 60)",
    )
    wait.add_argument(
        "--no-wait",
        action="store_true",
        help="fail at once, before reading, when a workflow run holds the run lock",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    from ingest.config import ConfigError, load_config
    from ingest.imports.importer import (
        ImportBusy,
        ImportSetupError,
        Progress,
        describe,
        import_sources,
    )

    if args.jobs < 1:
        return _fail("import", "--jobs must be at least 1")
    bar = args.progress == "bar" or (args.progress == "auto" and sys.stderr.isatty())

    def progress(total: int) -> Progress | None:
        if args.progress == "none":
            return None
        return Progress(total, f"import {args.server}", bar=bar, every=args.log_every)

    try:
        config = load_config(args.config)
        report = import_sources(
            config,
            args.server,
            args.sources,
            jobs=args.jobs,
            progress=progress,
            lock_wait_s=0 if args.no_wait else args.wait_minutes * 60,
            on_wait=lambda busy: print(
                f"import: waiting for the workflow run to release the run lock ({busy}); "
                "--no-wait fails at once instead",
                file=sys.stderr,
                flush=True,
            ),
        )
    except ImportBusy as e:
        return _fail("import", str(e), 1)
    except (ConfigError, ImportSetupError) as e:
        return _fail("import", str(e))
    if args.json:
        print(json.dumps({"resumed": report.resumed, "inputs": report.results}, indent=1))
    else:
        if report.discarded_reads:
            print(f"{report.discarded_reads} read(s) cut short by a killed import: thrown away")
        for r in report.resumed:
            print(f"resumed {describe(r)}")
        for r in report.results:
            print(describe(r))
        done = sum(r["status"] != "failed" for r in report.results)
        print(
            f"import {args.server}: {done} of {len(report.results)} input(s) done in "
            f"{report.seconds:.1f} s; {len(report.failed)} failed, {len(report.damaged)} damaged"
        )
    return 1 if report.failed or report.damaged else 0


# --- comply (X's batch compliance) ------------------------------------------------------------


def add_comply(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "comply",
        help="remove deleted, protected and suspended posts and accounts from every copy",
        description="Ask X's batch compliance jobs about the vault's tweet and author IDs, then "
        "rewrite each affected hour as its next generation without the complied posts and "
        "accounts (the IDs files stay as they are), write each day's {day}_compliance.tsv, "
        "rewrite the raw minute files still held, and copy the new generations to every "
        "replica. A killed run, started again, picks up its jobs.",
    )
    p.add_argument("--config", required=True)
    p.add_argument("--days", type=int, metavar="N", help="only the newest N day folders")
    p.add_argument("--json", action="store_true", help="print the pass's summary as JSON")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_comply)


def cmd_comply(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    from dataclasses import asdict

    from ingest.clock import SystemClock
    from ingest.comply.client import ComplyError
    from ingest.comply.run import comply, make_client
    from ingest.config import ConfigError, load_config
    from ingest.locks import LockBusy
    from ingest.secrets import SecretError

    try:
        config = load_config(args.config)
        result = comply(config, make_client(config), SystemClock(), days=args.days)
    except (ConfigError, SecretError) as e:
        return _fail("comply", str(e))
    except (ComplyError, LockBusy, ValueError, OSError) as e:
        # OSError: a full or failing disk; the pass stays open for the next run.
        return _fail("comply", str(e), 1)
    failed = bool(result.replica_errors or result.errors)
    if args.json:
        print(json.dumps(asdict(result), indent=1))
        return 1 if failed else 0
    removed = ", ".join(f"{a} {n}" for a, n in result.tweets_removed.items()) or "none"
    print(
        f"comply: {len(result.days)} day(s), "
        + ", ".join(f"{n} {t} IDs" for t, n in result.asked.items())
        + f" in {len(result.jobs)} job(s){' (resumed)' if result.resumed else ''}; "
        f"{len(result.hours_rewritten)} hour(s) rewritten, tweets removed: {removed}; "
        f"{result.raw_files} raw file(s) rewritten"
    )
    for day, n in result.logged.items():
        print(f"  {day}: {n} new entr{'y' if n == 1 else 'ies'} in its compliance log")
    for error in result.errors:
        print(f"  not rewritten (repair it or free space, then run comply again): {error}")
    for error in result.replica_errors:
        print(f"  replica not updated (the next workflow run retries): {error}")
    return 1 if failed else 0


# --- dispatch -------------------------------------------------------------------------------

SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_collect,
    add_status,
    add_scrub,
    add_restore,
    add_import,
    add_comply,
]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sampled-stream")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sampled-stream",
        description="Collect the X/Twitter API v2 sampled stream and look after the collectors.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ingest.perms import restrict_umask

    restrict_umask()  # files 0640, folders 0750, whatever the umask it was started with
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
