"""``sampled-stream``: the command line of the collector side.

    sampled-stream collect --config CONFIG --server NAME
    sampled-stream status  --config CONFIG [--server NAME] [--json]
    sampled-stream emulate --port P [--rate 55] [--keepalive 20] [--token-file F] [--seed S]

A plain argparse dispatch: each subcommand is ``add_<name>(subparsers)`` setting ``func``,
so other modules can add theirs (append to ``SUBCOMMANDS``).

Exit codes: 0 done (the collector also after SIGTERM/SIGINT), 2 bad config or usage, 1 crash.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"


def setup_logging(level: str) -> None:
    from ingest.stream_client import install_redaction, protect_logs

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
    from ingest.layout import ScaledClock, SystemClock

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
    from ingest.collector import Collector, SetupError
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
        logging.getLogger("ingest.collector").exception("collector crashed")
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
    from ingest.config import ConfigError, load_config
    from ingest.status import format_report, report_all

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


# --- emulate --------------------------------------------------------------------------------


def add_emulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "emulate",
        help="run a loopback stand-in for the sampled stream (tests, demo)",
        description="Serve GET /2/tweets/sample/stream with realistic tweets, keep-alives and "
        "faults on request (POST /_fault?kind=cut|stall|disconnect-line|malformed|drop|429|"
        "503|500|401|403&count=N&client=NAME&seconds=S; GET /_stats). Prints the stream URL "
        "on stdout once listening.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: pick a free port (printed)")
    p.add_argument("--rate", type=float, default=55.0, help="tweets per second (default 55)")
    p.add_argument(
        "--keepalive", type=float, default=20.0, help="seconds of silence before a keep-alive"
    )
    tok = p.add_mutually_exclusive_group()
    tok.add_argument("--token", help="accepted bearer token (visible in ps: use --token-file)")
    tok.add_argument("--token-file", help="file holding the accepted bearer token")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated tweets")
    p.add_argument(
        "--refuse-backfill",
        type=int,
        choices=[400, 403],
        help="answer requests with backfill_minutes with this status",
    )
    p.add_argument(
        "--split-chunks", action="store_true", help="cut HTTP chunks in the middle of lines"
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_clock_options(p)
    p.set_defaults(func=cmd_emulate)


def cmd_emulate(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    from ingest.emulator import Emulator

    token = args.token
    if args.token_file:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            return _fail("emulate", f"--token-file: {e}")
    try:
        em = Emulator(
            args.host,
            args.port,
            rate=args.rate,
            keepalive=args.keepalive,
            token=token,
            seed=args.seed,
            clock=make_clock(args),
            refuse_backfill=args.refuse_backfill,
            split_chunks=args.split_chunks,
        )
    except (OSError, ValueError) as e:
        return _fail("emulate", str(e))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    em.start()
    print(em.url, flush=True)
    while not done.wait(1.0):
        pass
    em.stop()
    return 0


# --- dispatch -------------------------------------------------------------------------------

SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_collect,
    add_status,
    add_emulate,
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
