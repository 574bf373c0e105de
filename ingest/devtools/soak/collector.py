"""``sampled-stream collect`` whose clock the soak can step, as a VM resume or an RTC fix would.

    python -m ingest.devtools.soak.collector OFFSET_FILE collect --config ... (the CLI's arguments)

The clock is the one the CLI would make, plus an offset in clock minutes read from
OFFSET_FILE whenever the process gets SIGUSR1. Everything else is the CLI's own ``collect``.
"""

from __future__ import annotations

import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path

from ingest import cli
from ingest.clock import Clock


class SteppableClock:
    """``base`` plus an offset that jumps when told to. Only the wall clock (``now``) jumps:
    everything else (``speed``, a monotonic reading) is the base's, as in a real clock step."""

    def __init__(self, base: Clock, offset_file: Path) -> None:
        self.base = base
        self.offset_file = offset_file
        self.offset = timedelta(0)
        self.reload()

    def reload(self) -> None:
        try:
            minutes = float(self.offset_file.read_text() or 0)
        except FileNotFoundError:
            minutes = 0.0
        self.offset = timedelta(minutes=minutes)

    def now(self) -> datetime:
        return self.base.now() + self.offset

    def __getattr__(self, name: str):
        return getattr(self.base, name)


def main(argv: list[str]) -> int:
    offset_file, rest = Path(argv[0]), argv[1:]
    make_clock = cli.make_clock

    def steppable(args) -> SteppableClock:
        clock = SteppableClock(make_clock(args), offset_file)
        signal.signal(signal.SIGUSR1, lambda *_: clock.reload())
        return clock

    cli.make_clock = steppable  # the CLI's collect, with this clock
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
