"""The stream stand-in's command line (tests, the demo; never needed in production).

    python -m ingest.devtools.emulate --port P [--rate 55] [--keepalive 20] [--token-file F]
        [--seed S] [--ledger FILE] [--speed N --clock-start ISO --clock-epoch UNIX_SECONDS]

Prints the stream URL on stdout once listening; runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from ingest.cli import add_clock_options, make_clock, setup_logging
from ingest.devtools.emulator import Emulator


def _fail(message: str) -> int:
    print(f"python -m ingest.devtools.emulate: error: {message}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ingest.devtools.emulate",
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
    p.add_argument(
        "--ledger", help="record every tweet made and every tweet written to a connection here"
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_clock_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)

    token = args.token
    if args.token_file:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            return _fail(f"--token-file: {e}")
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
            ledger=args.ledger,
        )
    except (OSError, ValueError) as e:
        return _fail(str(e))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    em.start()
    print(em.url, flush=True)
    while not done.wait(1.0):
        pass
    em.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
