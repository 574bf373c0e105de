"""The soak's command line and timeline.

    python -m ingest.devtools.soak [--seed N] [--hours H] [--faults F] [--dir soak-run] ...

1. the world starts (stand-ins, collectors, sshd, the vault's tmpfs);
2. for ``hours`` stream hours (a minute a second by default) the workflow runs as cron runs it
   every ``interval`` seconds while the injector fires faults, at least ``faults`` of them;
3. every fault is healed, the collectors stop, scrubs and restores end (one that failed is
   run again), the clock jumps past the last hour's late and grace minutes, and clean runs
   follow until one has nothing to do; then one scrub and one compliance pass, as cron's
   weekly lines run them, so that every flipped bit has had its chance to be found and mended
   and every tweet has been asked about, and clean runs again;
4. the checks; the table on stdout, the same and the evidence as JSON (``--json``, default
   DIR/soak.json). Exit 0 only if every check passed.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ingest.collect.status import newest_minute
from ingest.devtools.compliance import ComplianceJobs
from ingest.devtools.soak.faults import COMPLY_EVERY, Injector
from ingest.devtools.soak.ledger import (
    Compliance,
    StandInLedger,
    Watch,
    check,
    osf_mismatches,
    table,
)
from ingest.devtools.soak.traces import Observer, assess
from ingest.devtools.soak.world import STAND_IN_SEED, TIMEZONE, World
from ingest.devtools.stack import FastClock

START_MINUTE = 55  # whole-hour soaks end just before an hour ends: the last hour is due soon
# after the collectors stop.
LATE_AND_GRACE_MINUTES = 6 + 5  # the schema's late_minutes and grace_minutes
SCAN_EVERY = 2.0  # seconds between the soak's own looks at the raw dirs and the vault
FINAL_RUNS = 6
FINAL_PAUSE = 2.0  # real seconds between the clean runs at the end
FINAL_PASSES = 4  # compliance passes at the end: one resumed, one after a repair, a new one
OPERATOR_DELAY = 30.0  # real seconds (half a clock hour) from a bad entry to its removal
ALERT_WAIT = 10.0  # at the end, real seconds to wait for the alerts about bad entries
KINDS = ("scrub", "restore", "comply")  # the operator's commands the soak runs
VAULT_KINDS = (
    "vault bit flip",
    "scrub run",
    "scrub killed",
    "vault day deleted, restored",
    "restore killed",
    "replica unplugged",
    "comply run",
    "comply killed",
)


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
        if (root / "primary" / "vault").is_mount():  # a soak that was killed left it
            subprocess.run(["umount", root / "primary" / "vault"], check=True)
        shutil.rmtree(root)
    root.mkdir(parents=True)
    started = time.time()
    command = f"--seed {args.seed} --hours {args.hours:g} --faults {args.faults}"
    print(f"soak {command}: everything under {root}", flush=True)
    epoch = time.time() + 3
    world = World(
        root,
        FastClock(args.speed, clock_start(epoch), epoch),
        args.rate,
        args.interval,
        args.run_timeout,
    )
    rnd = random.Random(args.seed)
    injector = Injector(world, rnd, root / "faults.jsonl")
    watch = Watch(world.raw_dirs(), world.vault)
    observer = Observer(world)
    try:
        world.start()
        while time.time() < world.clock.epoch:
            time.sleep(0.05)
        soak(world, injector, watch, observer, args)
        open_pass = finish(world, injector, watch, observer, args)
        observer.finish(world.runs, world.tools)
        ledger = StandInLedger.read(root / "ledger.jsonl")
        ledger.malformed_received(injector.faults, watch.seen)
        result = check(
            ledger,
            injector.faults,
            injector.down,
            watch,
            world.copies(),
            world.osf,
            [world.primary, root / "secondary", *world.replica_dirs().values()],
            ZoneInfo(TIMEZONE),
            assess(injector.faults, observer.events, world.runs, observer.pulls, world.tools),
            Compliance(
                ComplianceJobs(STAND_IN_SEED),
                [d for d in world.raw_dirs().values() if d.is_relative_to(world.primary)],
                open_pass,
            ),
        )
        result.update(
            command=command,
            seed=args.seed,
            faults=dict(injector.counts),
            runs=[r.outcome() for r in world.runs],
            tools={k: [t.outcome() for t in world.tools if t.kind == k] for k in KINDS},
            vault_faults=[
                {"fault": f.describe(), **f.evidence}
                for f in injector.faults
                if f.kind in VAULT_KINDS
            ],
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


def clock_start(epoch: float) -> datetime:
    """Where the fast clock starts: the first ``hh:55`` at or after the real instant ``epoch``.

    Files get real modification times, so a clock that starts at (or just after) the real time
    runs ahead of them as fast as it runs ahead of their names: retention's two ages (by the
    name's minute and by the modification time) pass together, as they do in production.
    """
    real = datetime.fromtimestamp(epoch, UTC)
    start = real.replace(minute=START_MINUTE, second=0, microsecond=0)
    return start if start >= real else start + timedelta(hours=1)


def soak(
    world: World, injector: Injector, watch: Watch, observer: Observer, args: argparse.Namespace
) -> None:
    """The faulty stretch: cron runs, faults, the soak's own watch."""
    begin = time.time()
    end = begin + args.hours * 3600 / args.speed
    gap = (end - begin) / max(1, args.faults)
    next_fault = begin + gap * injector.rnd.uniform(0.5, 1.5)
    next_comply = begin + COMPLY_EVERY * injector.comply_rnd.uniform(0.5, 1.5)
    next_run = begin + args.interval
    next_scan = begin
    last_report = begin
    while time.time() < end or sum(injector.counts.values()) < args.faults:
        now = time.time()
        if now >= next_fault:
            injector.fire()
            next_fault = now + gap * injector.rnd.uniform(0.5, 1.5)
        if now >= next_comply:
            injector.fire_comply()
            next_comply = now + COMPLY_EVERY * injector.comply_rnd.uniform(0.5, 1.5)
        if now >= next_run:
            world.start_run("cron")
            next_run += args.interval
        if now >= next_scan:
            watch.scan()
            observer.scan()
            injector.note_blocked()
            injector.remove_answered(observer.traced, OPERATOR_DELAY)
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


def finish(
    world: World, injector: Injector, watch: Watch, observer: Observer, args: argparse.Namespace
) -> str | None:
    """Heal everything (bad entries go once their alert came), stop the collectors, let the
    last hour become due, run clean, run the last compliance pass and the last scrub. Returns
    why a compliance pass is still open, or None."""
    print("  healing; then clean runs", flush=True)
    injector.heal()
    deadline = time.time() + ALERT_WAIT
    while injector.planted and time.time() < deadline:
        observer.scan()
        injector.note_blocked()
        injector.remove_answered(observer.traced, 0)
        time.sleep(0.5)
    time.sleep(3.0)  # restarted collectors reconnect and backfill, blocked minutes are written
    injector.settle()  # a SIGTERM before the collector's handler would kill it mid-minute
    world.stop_collectors()
    stop = time.time()
    for spans in injector.down.values():
        spans.append([stop, None])
    # The last hour with a minute file (a collector's clock set ahead names files in the
    # future) must become due, with its late and grace minutes.
    last = max([world.clock.now(), *newest_minutes(world, ZoneInfo(TIMEZONE))])
    due = last.replace(minute=0, second=0, microsecond=0) + timedelta(
        hours=1, minutes=LATE_AND_GRACE_MINUTES + 1
    )
    world.wait_runs()
    world.wait_tools()
    injector.tick()  # the scrubs' and restores' outcomes
    injector.redo_failed_restores()
    watch.scan()
    observer.scan()
    # Nothing collects any more: the clock may jump there instead of running (the runs get
    # their "now" from it; a clock further ahead of the files' real times changes nothing).
    world.clock.skip_to(due)
    clean_runs(world, watch)
    # The weekly scrub, once: a flip the runs did not rebuild or copy over is found and mended.
    final = world.start_scrub("final")
    world.wait_tools()
    injector.tick()  # which flipped bytes it mended
    print(f"  final scrub: {final.outcome()}, {_last_line(final.output(), 'scrub: ')}", flush=True)
    # The weekly compliance pass, once all is built and mended: it asks about every tweet the
    # vault holds (the end's checks rely on that). One that finishes a pass a kill left open
    # asks only what that pass did: a new pass follows. One that could not rewrite a damaged
    # hour says "repair it, then run comply again": the operator runs scrub, then comply
    # again. Then clean runs again: OSF gets the days' new reports and manifests.
    for _ in range(FINAL_PASSES):
        resumes = world.comply_state().exists()
        passed = world.start_comply("final")
        world.wait_tools()
        injector.tick()
        print(f"  final comply: {passed.outcome()}, {_last_line(passed.output(), 'comply: ')}")
        if passed.outcome() == "ok" and not resumes:
            break
        if "repair it" in passed.output():
            world.start_scrub("operator")
            world.wait_tools()
            injector.tick()
    clean_runs(world, watch)
    watch.scan()
    if passed.outcome() != "ok":
        return f"the final compliance pass: {passed.outcome()} (see {passed.log})"
    if world.comply_state().exists():
        return f"{world.comply_state()} left by the final pass"
    return None


def clean_runs(world: World, watch: Watch) -> None:
    """Clean runs until one succeeds, changes nothing in the vault and leaves OSF equal to it."""
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


def newest_minutes(world: World, tz: ZoneInfo) -> list[datetime]:
    """The newest minute file's minute in each raw dir that has one."""
    found = (newest_minute(d, tz) for d in world.raw_dirs().values() if d.is_dir())
    return [n[0] for n in found if n is not None]


def _last_line(text: str, prefix: str) -> str:
    """The last line of ``text`` starting with ``prefix`` (a command's totals), or '-'."""
    found = [line for line in text.splitlines() if line.startswith(prefix)]
    return found[-1] if found else "-"


def _subject_kind(subject: str) -> str:
    """A mail's subject without the parts that change (times, counts)."""
    words = [w for w in subject.split() if not any(c.isdigit() for c in w)]
    return " ".join(words)[:60]


if __name__ == "__main__":
    sys.exit(main())
