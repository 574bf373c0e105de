"""``sampled-stream``: the command line of the collector side.

    sampled-stream collect --config CONFIG --server NAME
    sampled-stream status  --config CONFIG [--server NAME] [--json]

A plain argparse dispatch: each subcommand is ``add_<name>(subparsers)`` setting ``func``,
so other modules can add theirs (append to ``SUBCOMMANDS``). The stream stand-in has its
own command line, ``python -m ingest.devtools.emulate``, since production never needs it.

Exit codes: 0 done (the collector also after SIGTERM/SIGINT), 2 bad config or usage, 1 crash.
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
        "work_dir/status) and each server's raw_dir.",
    )
    p.add_argument("--config", required=True)
    p.add_argument("--server", action="append", help="only this server (repeatable)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_clock_options(p)
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from ingest.collect.status import format_report, report_all
    from ingest.config import ConfigError, load_config

    try:
        config = load_config(args.config)
        clock = make_clock(args)
    except (ConfigError, ValueError) as e:
        return _fail("status", str(e))
    known = {s["name"] for s in config["servers"]}
    unknown = sorted(set(args.server or []) - known)
    if unknown:
        return _fail("status", f"no server named {', '.join(unknown)} in {args.config}")
    reports = report_all(config, clock, args.server)
    if args.json:
        print(json.dumps(reports, indent=1))
    else:
        print("\n".join(format_report(r) for r in reports))
    return 0


# --- dispatch -------------------------------------------------------------------------------

SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_collect,
    add_status,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sampled-stream",
        description="Collect the X/Twitter API v2 sampled stream and look after the collectors.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
