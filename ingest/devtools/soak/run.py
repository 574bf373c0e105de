"""The soak's command line and timeline.

    python -m ingest.devtools.soak [--seed N] [--hours H] [--faults F] [--dir soak-run] ...

1. the world starts (stand-ins, collectors, sshd, the vault's tmpfs);
2. for ``hours`` stream hours (a minute a second by default) the workflow runs as cron runs it
   every ``interval`` seconds while the injector fires faults, at least ``faults`` of them;
3. every fault is healed, the collectors stop, the clock passes the last hour's late and grace
   minutes, and clean runs follow until one has nothing to do;
4. the checks; the table on stdout, the same and the evidence as JSON (``--json``, default
   DIR/soak.json). Exit 0 only if every check passed.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ingest.devtools.soak.faults import Injector
from ingest.devtools.soak.ledger import StandInLedger, Watch, check, osf_mismatches, table
from ingest.devtools.soak.world import TIMEZONE, World
from ingest.devtools.stack import FastClock

CLOCK_START = datetime(2026, 1, 14, 6, 55, tzinfo=UTC)  # 07:55 in Berlin: whole-hour soaks end
# just before an hour ends, so the last hour is due soon after the collectors stop.
LATE_AND_GRACE_MINUTES = 6 + 5  # the schema's late_minutes and grace_minutes
SCAN_EVERY = 2.0  # seconds between the soak's own looks at the raw dirs and the vault
FINAL_RUNS = 6
FINAL_PAUSE = 2.0  # real seconds between the clean runs at the end


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ingest.devtools.soak", description=__doc__)
    p.add_argument("--seed", type=int, default=1, help="the injector's seed (default 1)")
    p.add_argument("--hours", type=float, default=2.0, help="stream hours to run (default 2)")
    p.add_argument("--faults", type=int, default=100, help="inject at least this many faults")
    p.add_argument("--speed", type=float, default=60.0, help="clock speed (60: a minute a second)")
    p.add_argument("--rate", type=float, default=20.0, help="tweets per real second")
    p.add_argument(
        "--interval", type=float, default=10.0, help="real seconds between cron runs (10)"
    )
    p.add_argument("--run-timeout", type=float, default=180.0, help="a run is hung after this")
    p.add_argument("--dir", default="soak-run", help="where everything goes (recreated)")
    p.add_argument("--json", help="where the result goes (default DIR/soak.json)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(args.dir).resolve()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    started = time.time()
    command = f"--seed {args.seed} --hours {args.hours:g} --faults {args.faults}"
    print(f"soak {command}: everything under {root}", flush=True)
    world = World(
        root, FastClock(args.speed, CLOCK_START), args.rate, args.interval, args.run_timeout
    )
    rnd = random.Random(args.seed)
    injector = Injector(world, rnd, root / "faults.jsonl")
    watch = Watch(world.raw_dirs(), world.vault)
    try:
        world.start()
        while time.time() < world.clock.epoch:
            time.sleep(0.05)
        soak(world, injector, watch, args)
        finish(world, injector, watch, args)
        result = check(
            StandInLedger.read(root / "ledger.jsonl"),
            injector.faults,
            injector.down,
            watch,
            world.vault,
            world.osf,
            [world.primary, root / "secondary"],
            ZoneInfo(TIMEZONE),
        )
        result.update(
            command=command,
            seed=args.seed,
            faults=dict(injector.counts),
            runs=[r.outcome() for r in world.runs],
            mails=dict(Counter(_subject_kind(s) for s in world.mails.subjects())),
            wall_seconds=time.time() - started,
            notes=world.notes,
        )
    finally:
        world.stop()
        world.unmount_vault(root / "vault-copy")
    out = Path(args.json) if args.json else root / "soak.json"
    out.write_text(json.dumps(result, indent=1))
    print(table(result), flush=True)
    return 1 if any(p["count"] for p in result["problems"].values()) else 0


def soak(world: World, injector: Injector, watch: Watch, args: argparse.Namespace) -> None:
    """The faulty stretch: cron runs, faults, the soak's own watch."""
    begin = time.time()
    end = begin + args.hours * 3600 / args.speed
    gap = (end - begin) / max(1, args.faults)
    next_fault = begin + gap * injector.rnd.uniform(0.5, 1.5)
    next_run = begin + args.interval
    next_scan = begin
    last_report = begin
    while time.time() < end or sum(injector.counts.values()) < args.faults:
        now = time.time()
        if now >= next_fault:
            injector.fire()
            next_fault = now + gap * injector.rnd.uniform(0.5, 1.5)
        if now >= next_run:
            world.start_run("cron")
            next_run += args.interval
        if now >= next_scan:
            watch.scan()
            next_scan = now + SCAN_EVERY
        if now - last_report >= 30:
            last_report = now
            runs = Counter(r.outcome() for r in world.runs if r.rc is not None or r.killed)
            print(
                f"  t+{now - begin:4.0f}s  clock {world.clock.now():%H:%M}  "
                f"faults {sum(injector.counts.values())}  runs {dict(runs)}",
                flush=True,
            )
        injector.tick()
        world.poll_runs()
        time.sleep(0.05)


def finish(world: World, injector: Injector, watch: Watch, args: argparse.Namespace) -> None:
    """Heal everything, stop the collectors, let the last hour become due, run clean."""
    print("  healing; then clean runs", flush=True)
    injector.heal()
    time.sleep(3.0)  # restarted collectors reconnect and backfill
    world.stop_collectors()
    stop = time.time()
    for spans in injector.down.values():
        spans.append([stop, None])
    last = world.clock.now()
    due = last.replace(minute=0, second=0, microsecond=0) + timedelta(
        hours=1, minutes=LATE_AND_GRACE_MINUTES + 1
    )
    while world.clock.now() < due:
        watch.scan()
        world.poll_runs()
        time.sleep(0.5)
    world.wait_runs()
    # Clean runs until one succeeds, changes nothing in the vault and leaves OSF equal to it.
    for _ in range(FINAL_RUNS):
        before = {path: list(v) for path, v in watch.versions.items()}
        run = world.start_run("final")
        world.wait_runs()
        watch.scan()
        if (
            run.outcome() == "ok"
            and watch.versions == before
            and not osf_mismatches(world.osf, world.vault)
        ):
            break
        time.sleep(FINAL_PAUSE)
    watch.scan()


def _subject_kind(subject: str) -> str:
    """A mail's subject without the parts that change (times, counts)."""
    words = [w for w in subject.split() if not any(c.isdigit() for c in w)]
    return " ".join(words)[:60]


if __name__ == "__main__":
    sys.exit(main())
