"""The seeded fault injector. It never takes both collectors down at once, and it records every
fault and every collector's down time (faults.jsonl), the ledger's half that the stand-in
cannot know.

Bad files: invalid JSON, a directory or a FIFO at a minute file's name in a collector's raw
dir, either a minute gone by without a file or the next minute. A directory or FIFO at the
next minute's name blocks that minute: the collector keeps its lines in ``.part`` and alerts
("cannot write minute files"). The soak then plays the operator, and only that: once the alert
(or a mail naming the entry) is there and ``run.OPERATOR_DELAY`` has passed, or at the end after
that alert, it removes the entries it planted itself (and the pull's copy of one on the
primary), nothing else; the collector then writes the minute. An entry nobody was told of is
left in place, and its fault counts as leaving no trace. Invalid JSON stays: the build skips
its lines and counts them in the hour's stats.

Storms (429, 503) are answered to reconnections, so each comes with a cut that causes one.

The vault's side (issue 21): a bit flipped in one file of a built hour (or of its day's report
or manifest) on the primary or a replica, only where another copy can mend it
(``copies.repairable``: the soak damages no more than the copies survive) and one open flip
per hour or day at a time; ``sampled-stream scrub`` as cron's weekly line runs it, now and
then, and one killed with kill -9 at a random point; a built day's folder deleted on the
primary (an ``rm`` gone wrong), then ``sampled-stream restore`` of that day from a replica that
holds it all. The injector watches each flipped byte until something renames a new file over
it (a rebuild, a copy, a repair), and notes when.

Deletion compliance (issue 24): ``sampled-stream comply`` as cron's weekly line runs it, and one
killed with kill -9, mostly during its rewrite (once it holds the run lock), else while it
asks the stand-in; the next pass must finish the job.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ingest.devtools.soak.copies import (
    PRIMARY,
    Spot,
    claimed_generation,
    day_dirs,
    flip,
    good_generation,
    repairable,
    sha_or_none,
    spots,
    still_flipped,
)
from ingest.devtools.soak.world import (
    KEEP_RAW_HOURS,
    LOCAL_REPLICA,
    REPLICAS,
    SECONDARY_WAIT_MINUTES,
    SERVERS,
    SSH_REPLICA,
    TIMEZONE,
    Run,
    Tool,
    World,
)
from ingest.devtools.stack import stand_in_fault
from ingest.layout import report_path, work_paths
from ingest.vault import records

STEP_SAFE_AGE = 3.0  # seconds a collector needs before it handles SIGUSR1 (clock steps)
KILL_WAIT = 40.0  # seconds an armed workflow kill waits for its job to appear
KILLED_JOBS = ("build_hour", "day_manifest", "replicate")  # the vault's writers in a run
KILLED_JOB_WEIGHTS = (3, 1, 2)
TERM_WAIT = 30.0  # seconds a collector has to exit after SIGTERM
FLIP_TRIES = 20  # files looked at for one that another copy can mend
SCRUB_KILL_WITHIN = 8.0  # real seconds: a scrub is killed this long after its start at most
COMPLY_KILL_WITHIN = 1.0  # real seconds: a pass is killed this long into its rewrite at most
COMPLY_ASKING_KILLED = 0.3  # the share of killed passes killed while they ask, not rewrite
COMPLY_ASK_KILL_WITHIN = 3.0  # real seconds from its start (a second of it is Python's start)
COMPLY_KILLED = 0.75  # the share of compliance passes killed
COMPLY_EVERY = 20.0  # real seconds (20 clock minutes) between compliance passes, on average
RESTORE_AFTER = 10.0  # real seconds (10 clock minutes) at most from the rm to the restore
RESTORE_KILLED = 0.4  # the share of restores killed once before they are run again
RESTORE_KILL_WITHIN = 5.0  # real seconds: a killed restore dies this long after its start at most
UNPLUGGED_HOURS = (1.5, 4.0)  # clock hours the local replica's disk is away
DAY_OVER_FOR = timedelta(hours=1)  # a day this long over has no build due (late minutes)


@dataclass
class Fault:
    id: int
    t: float
    kind: str
    target: str = ""
    detail: str = ""
    end: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)  # what the injector saw of it

    def covers(self, t: float, margin: float) -> bool:
        end = self.end if self.end is not None else self.t
        return self.t - margin <= t <= end + margin

    def describe(self) -> str:
        span = f" for {self.end - self.t:.1f} s" if self.end is not None else ""
        return f"#{self.id} {self.kind} {self.target} {self.detail}{span}".replace("  ", " ")


def longest_run(down: list[list[float | None]], start: float, end: float) -> float:
    """The longest stretch of [start, end] (real seconds) that one process of a collector
    ran through, from its start or ``start``, whichever is later; ``down`` holds the
    collector's [stopped, started again] times (None: not yet)."""
    longest, up_since = 0.0, start
    for down_at, up_at in down:
        if down_at >= end:
            break
        if up_at is not None and up_at <= start:
            continue
        longest = max(longest, down_at - up_since)
        up_since = up_at if up_at is not None else end
    return max(longest, end - up_since)


@dataclass
class Injector:
    world: World
    rnd: random.Random
    record: Path
    faults: list[Fault] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    down: dict[str, list[list[float | None]]] = field(
        default_factory=lambda: {s: [] for s in SERVERS}
    )
    _events: list[tuple[float, int, Callable[[], None]]] = field(default_factory=list)
    _seq: itertools.count = field(default_factory=itertools.count)
    _busy: set[str] = field(default_factory=set)  # stretches under way (sshd, osf, smtp, ...)
    _started: dict[str, float] = field(default_factory=dict)
    _kill_deadline: float | None = None
    _kill_fault: Fault | None = None
    _kill_job: str = ""
    planted: list[tuple[Fault, Path]] = field(default_factory=list)  # directories and FIFOs
    open_flips: list[tuple[Fault, Spot]] = field(default_factory=list)  # their byte still there
    _flips_seen: float = 0.0  # when the flipped bytes were last looked at
    # running scrubs, restores, compliance passes
    _tools: list[tuple[str, Tool, Fault]] = field(default_factory=list)
    _restoring: set[str] = field(default_factory=set)  # days deleted and not yet restored
    # scrubs and compliance passes to kill once they hold the run lock, (tool, fault, delay)
    _to_kill: list[tuple[Tool, Fault, float]] = field(default_factory=list)
    _healing: bool = False

    def __post_init__(self) -> None:
        now = time.time()
        self._started = {s: now for s in SERVERS}
        self.kinds: list[tuple[int, Callable[[], bool]]] = [
            (6, self.kill_collector),
            (5, self.term_collector),
            (6, lambda: self.stand_in("cut")),
            (5, lambda: self.stand_in("429", count=str(self.rnd.randint(1, 4)))),
            (5, lambda: self.stand_in("503", count=str(self.rnd.randint(1, 6)))),
            (5, lambda: self.stand_in("stall", seconds=f"{self.rnd.uniform(1, 4):.1f}")),
            (5, lambda: self.stand_in("disconnect-line")),
            (5, lambda: self.stand_in("malformed")),
            (3, self.secondary_unreachable),
            (3, self.kill_workflow),
            (3, self.two_runs),
            (5, self.bad_file),
            (2, self.osf_outage),
            (2, self.smtp_down),
            (2, self.disk_full),
            (3, self.clock_step),
            (6, self.bit_flip),
            (2, self.scrub_run),
            (2, self.scrub_killed),
            (2, self.restore_deleted_day),
            (1, self.replica_unplugged),
        ]
        # Compliance passes come on their own schedule (``fire_comply``) from their own random
        # stream: the other faults of a seed are those they were before issue 24.
        self.comply_rnd = random.Random(str(self.rnd.getstate()[1][:8]))

    # -- bookkeeping -----------------------------------------------------------------------------

    def _note(self, kind: str, target: str = "", detail: str = "") -> Fault:
        f = Fault(len(self.faults) + 1, time.time(), kind, target, detail)
        self.faults.append(f)
        self.counts[kind] += 1
        self._write({"fault": f.id, "t": f.t, "kind": kind, "target": target, "detail": detail})
        return f

    def _ended(self, f: Fault) -> None:
        f.end = time.time()
        self._write({"end": f.id, "t": f.end})

    def _write(self, record: dict[str, Any]) -> None:
        with open(self.record, "a") as out:
            out.write(json.dumps(record) + "\n")

    def at(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (time.time() + delay, next(self._seq), action))

    def tick(self) -> None:
        """Run what is due: scheduled ends and restarts, an armed workflow kill; look at the
        flipped bytes and the scrubs and restores."""
        while self._events and self._events[0][0] <= time.time():
            heapq.heappop(self._events)[2]()
        self._check_armed_kill()
        self._check_armed_tools()
        self.note_flips()
        self._reap_tools()

    def heal(self) -> None:
        """End every stretch now (restarts, reconnections, space), in the order they were due."""
        self._healing = True
        while self._events:
            heapq.heappop(self._events)[2]()
        if self._kill_fault is not None:
            self._kill_fault.detail = "no run came"
            self._kill_deadline = self._kill_fault = None
        self._check_armed_tools()  # now, wherever it is

    def settle(self) -> None:
        """Wait until every collector is old enough to have its signal handlers."""
        time.sleep(max(0.0, max(self._started.values()) + STEP_SAFE_AGE - time.time()))

    def fire(self) -> None:
        """One fault of a random kind (another kind when the drawn one cannot happen now)."""
        kinds = list(self.kinds)
        while kinds:
            weights = [w for w, _ in kinds]
            pick = self.rnd.choices(range(len(kinds)), weights)[0]
            if kinds[pick][1]():
                return
            kinds.pop(pick)

    # -- collectors ------------------------------------------------------------------------------

    def _down_or_going(self) -> bool:
        return any(not self.world.collector_up(s) or s in self._busy for s in SERVERS)

    def _take_down(self, server: str, sig: signal.Signals, kind: str, detail: str = "") -> None:
        proc = self.world.collectors[server]
        if proc.poll() is None:
            proc.send_signal(sig)
        self._note(kind, server, detail)
        self.down[server].append([time.time(), None])
        self.at(self.rnd.uniform(0.3, 6.0), lambda: self._restart(server))

    def _restart(self, server: str, deadline: float | None = None) -> None:
        proc = self.world.collectors[server]
        deadline = deadline or time.time() + TERM_WAIT
        if proc.poll() is None and time.time() < deadline and not self._healing:
            # SIGTERM: the collector closes its minute first; look again soon, the soak goes on
            self.at(0.5, lambda: self._restart(server, deadline))
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.time()))  # heal(): no time goes on meanwhile
        if proc.poll() is None:
            self.world.notes.append(f"{server}: no exit {TERM_WAIT:.0f} s after SIGTERM: kill -9")
            proc.kill()
            proc.wait()
        self.world.start_collector(server)
        self._started[server] = time.time()
        self.down[server][-1][1] = time.time()
        self._busy.discard(server)

    def kill_collector(self) -> bool:
        if self._down_or_going():
            return False
        server = self.rnd.choice(SERVERS)
        self._busy.add(server)
        if self.rnd.random() < 0.5:
            self._take_down(server, signal.SIGKILL, "collector kill -9")
            return True
        # Right at a minute boundary, when the collector renames the minute's file.
        now = self.world.clock.now()
        boundary = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        delay = (boundary - now).total_seconds() / self.world.clock.speed
        self.at(
            delay,
            lambda: self._take_down(server, signal.SIGKILL, "collector kill -9 at minute end"),
        )
        return True

    def term_collector(self) -> bool:
        if self._down_or_going():
            return False
        server = self.rnd.choice(SERVERS)
        self._busy.add(server)
        self._take_down(server, signal.SIGTERM, "collector SIGTERM")
        return True

    def clock_step(self) -> bool:
        free = [s for s in SERVERS if f"clock-{s}" not in self._busy]
        if not free:
            return False
        server = self.rnd.choice(free)
        minutes = self.rnd.choice((-1, 1)) * self.rnd.uniform(2, 90)
        f = self._note("collector clock step", server, f"{minutes:+.0f} min")
        self._busy.add(f"clock-{server}")
        self._set_offset(server, minutes)

        def back() -> None:
            self._set_offset(server, 0)
            self._busy.discard(f"clock-{server}")
            self._ended(f)
            f.evidence["longest run"] = longest_run(self.down[server], f.t, f.end or f.t)

        self.at(self.rnd.uniform(3, 20), back)
        return True

    def _set_offset(self, server: str, minutes: float) -> None:
        self.world.offset_file(server).write_text(f"{minutes}\n")
        # A collector reads the file at start; one that started before the write hears of it
        # by SIGUSR1, once it is old enough to have its handler (the default would kill it).
        wait = self._started[server] + STEP_SAFE_AGE - time.time()
        proc = self.world.collectors[server]  # one started later reads the file itself

        def signal_it() -> None:
            # heal() runs events early: never before the handler is there.
            time.sleep(max(0.0, self._started[server] + STEP_SAFE_AGE - time.time()))
            if proc.poll() is None:
                proc.send_signal(signal.SIGUSR1)

        if wait > 0:
            self.at(wait, signal_it)
        else:
            signal_it()

    # -- the stream stand-in ---------------------------------------------------------------------

    def stand_in(self, kind: str, **params: str) -> bool:
        server = self.rnd.choice(SERVERS)
        stand_in_fault(self.world.url, kind, server, **params)
        if kind in ("429", "503"):  # a storm answers reconnections: make one happen now
            stand_in_fault(self.world.url, "cut", server)
        names = {"429": "429 storm", "503": "503 storm", "disconnect-line": "disconnect line"}
        detail = " ".join(f"{k}={v}" for k, v in params.items())
        self._note(f"stand-in {names.get(kind, kind)}", server, detail)
        return True

    # -- the secondary, OSF, SMTP, the vault's disk ------------------------------------------------

    def _stretch(
        self,
        resource: str,
        kind: str,
        seconds: float,
        begin: Callable[[], object],
        finish: Callable[[Fault], object],
    ) -> bool:
        """``begin`` now, ``finish`` (given the fault) after ``seconds``; one stretch per
        resource at a time."""
        if resource in self._busy:
            return False
        self._busy.add(resource)
        begin()
        f = self._note(kind, resource, f"{seconds:.0f} s")

        def end() -> None:
            finish(f)
            self._busy.discard(resource)
            self._ended(f)

        self.at(seconds, end)
        return True

    def secondary_unreachable(self) -> bool:
        clock = self.world.clock
        wait = clock.real_seconds(SECONDARY_WAIT_MINUTES)
        keep = clock.real_seconds(KEEP_RAW_HOURS * 60)
        r = self.rnd.random()
        if r < 0.5:
            kind, seconds = "secondary unreachable < wait", wait * self.rnd.uniform(0.2, 0.8)
        elif r < 0.9:
            kind, seconds = "secondary unreachable > wait", wait * self.rnd.uniform(1.2, 2.0)
        else:
            kind, seconds = "secondary unreachable > keep_raw", keep * self.rnd.uniform(1.1, 1.3)
        return self._stretch(
            "sshd", kind, seconds, self.world.sshd.stop, lambda _: self.world.sshd.restart()
        )

    def osf_outage(self) -> bool:
        osf = self.world.osf
        seconds = self.rnd.uniform(5, 30)
        first = len(osf.requests)  # the requests answered during the stretch follow

        def begin() -> None:
            osf.inject(self.rnd.choice((500, 502, 503)), times=10**9)

        def finish(f: Fault) -> None:
            osf.clear_faults()
            answered = [r for r in osf.requests[first:] if str(r[3]).startswith("5")]
            f.evidence["5xx answered"] = len(answered)

        return self._stretch("osf", "OSF 5xx stretch", seconds, begin, finish)

    def smtp_down(self) -> bool:
        seconds = self.rnd.uniform(5, 30)
        return self._stretch(
            "smtp", "SMTP down", seconds, self.world.smtp_down, lambda _: self.world.smtp_up()
        )

    def disk_full(self) -> bool:
        if not self.world.vault_mounted:
            return False
        filler = self.world.vault / ".soak-filler"

        def fill() -> None:
            free = os.statvfs(self.world.vault)
            with open(filler, "wb") as f, contextlib.suppress(OSError):
                os.posix_fallocate(f.fileno(), 0, free.f_bavail * free.f_frsize)

        seconds = self.rnd.uniform(3, 15)
        return self._stretch(
            "vault disk",
            "vault disk full",
            seconds,
            fill,
            lambda _: filler.unlink(missing_ok=True),
        )

    def replica_unplugged(self) -> bool:
        """The local replica's disk away for hours (unplugged, not mounted): its folder gone.
        Copies to it fail and wait; raw files of the hours it lacks are kept meanwhile."""
        if "restore" in self._busy or any(s.location == LOCAL_REPLICA for _, s in self.open_flips):
            return False  # a restore may read from it; a flip there is watched
        root = self.world.copies()[LOCAL_REPLICA]
        away = root.with_name(root.name + ".unplugged")
        hours = self.rnd.uniform(*UNPLUGGED_HOURS)
        logs = self.world.work / "logs" / "replicate" / LOCAL_REPLICA

        def plug_back(f: Fault) -> None:
            away.rename(root)
            # Copies to it tried meanwhile (their logs), for whether anything met the stretch.
            tried = [p for p in logs.glob("*.log") if p.stat().st_mtime >= f.t]
            f.evidence["copies tried"] = len(tried)

        return self._stretch(
            "unplugged",
            "replica unplugged",
            self.world.clock.real_seconds(hours * 60),
            lambda: root.rename(away),
            plug_back,
        )

    # -- the workflow ------------------------------------------------------------------------------

    def kill_workflow(self) -> bool:
        """kill -9 of a run while one of the vault's writers runs (a build, a day's manifest,
        a copy to a replica), armed until such a job appears."""
        if self._kill_fault is not None:
            return False
        self._kill_job = self.rnd.choices(KILLED_JOBS, KILLED_JOB_WEIGHTS)[0]
        self._kill_fault = self._note("workflow killed", "primary", f"armed for {self._kill_job}")
        self._kill_deadline = time.time() + KILL_WAIT
        return True

    def _check_armed_kill(self) -> None:
        f, job = self._kill_fault, self._kill_job
        if f is None:
            return
        script = f".{job}.py"  # Snakemake runs a rule's script as .snakemake/scripts/tmp*.{name}
        for run in self.world.active_runs():
            if any(script in cmd for _, cmd in run.processes()):
                # At a random point of the job: at once, or a moment into it.
                time.sleep(self.rnd.uniform(0, 0.3))
                run.kill(f"during {job}")
                f.detail = f"run {run.number} during {job}"
                f.evidence["run"] = run.number
                break
        else:
            if time.time() < (self._kill_deadline or 0):
                return
            runs = self.world.active_runs() or [self.world.start_run("to-kill")]
            time.sleep(self.rnd.uniform(0.5, 3.0))
            # Killed before it took the run lock (starting, or finding it busy), it did nothing.
            _, f.evidence["held the run lock"] = self._kill_and_judge(runs[0], "mid-run")
            f.detail = f"run {runs[0].number} mid-run (no {job} came)"
            f.evidence["run"] = runs[0].number
        self._write({"fault": f.id, "detail": f.detail})
        self._kill_fault = self._kill_deadline = None

    def _holds_run_lock(self, run: Run, pids: set[int] | None = None) -> bool:
        """Does the run lock's record name one of ``run``'s processes (or ``pids``) as its open
        holder?"""
        try:
            record = json.loads(work_paths(str(self.world.work))["run_lock"].read_text())
        except (OSError, ValueError):
            return False
        pids = pids if pids is not None else {p for p, _ in run.processes()}
        return record.get("open") is True and record.get("pid") in pids

    def _kill_and_judge(self, run: Run, why: str) -> tuple[list[int], bool]:
        """kill -9 ``run``; (its pids, whether the record it left names it as the lock's open
        holder). Judged once it is dead: one killed while it exited had emptied the record
        already, and nobody is then told of a run that never finished."""
        pids = [pid for pid, _ in run.processes()]
        run.kill(why)
        with contextlib.suppress(subprocess.TimeoutExpired):
            run.proc.wait(5)
        return pids, self._holds_run_lock(run, set(pids))

    def two_runs(self) -> bool:
        a, b = self.world.start_run("pair"), self.world.start_run("pair")
        self._note("two workflow runs at once", "primary", f"runs {a.number} and {b.number}")
        return True

    # -- bad files ---------------------------------------------------------------------------------

    def bad_file(self) -> bool:
        server = self.rnd.choice(SERVERS)
        tz = ZoneInfo(TIMEZONE)
        for _ in range(10):
            # A minute gone by without a file, or the next one (its file will not be written
            # until the bad entry is removed).
            ago = self.rnd.choice((self.rnd.randint(2, 20), -1))
            minute = self.world.clock.now() - timedelta(minutes=ago)
            local = minute.astimezone(tz)
            rel = Path(f"{local:%Y-%m-%d}", f"{local:%H}", f"{local:%Y-%m-%dT%H%M}{local:%z}.jsonl")
            path = self.world.collector_raw_dir(server) / rel
            copies = (path, self.world.primary / "raw" / server / rel)  # the same for server1
            if not any(p.exists() or p.with_name(p.name + ".part").exists() for p in copies):
                break
        else:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        what = self.rnd.choice(("invalid JSON", "directory named *.jsonl", "FIFO"))
        if what == "invalid JSON":
            path.write_bytes(b'{"data": {"id": "12\n\x00\xff not json\n{"data": 5}\n')
        elif what == "directory named *.jsonl":
            path.mkdir()
        else:
            os.mkfifo(path)
        f = self._note(f"bad file: {what}", server, str(rel))
        if what != "invalid JSON":
            self.planted.append((f, path))
        return True

    def note_blocked(self) -> None:
        """A planted entry whose minute the collector tried to write (its lines wait in
        ``.part`` beside it) met the collector."""
        for f, path in self.planted:
            if path.with_name(path.name + ".part").exists():
                f.evidence["blocked a minute"] = True

    def remove_answered(self, alerted: Callable[[Fault], bool], delay: float) -> None:
        """What an operator does about a directory or FIFO at a minute file's name once the
        alert came: remove it, ``delay`` seconds after it was planted at the earliest. The
        pull may have copied it to the primary: that copy goes too. Entries nobody was told
        of stay (and the soak reports their fault as untraced)."""
        for f, path in list(self.planted):
            if time.time() - f.t < delay or not alerted(f):
                continue
            self.planted.remove((f, path))
            rel = path.relative_to(self.world.collector_raw_dir(f.target))
            for p in {path, self.world.primary / "raw" / f.target / rel}:
                try:
                    if p.is_dir() and not p.is_symlink():
                        p.rmdir()
                    elif p.exists() and not p.is_file():
                        p.unlink()
                except OSError as e:
                    f.evidence[f"not removed: {p}"] = str(e)
            f.evidence["removed after the alert"] = round(time.time() - f.t, 1)
            self._write({"fault": f.id, "removed": time.time()})

    # -- the vault's copies: bit flips, scrubs, a deleted day restored -------------------------

    def bit_flip(self) -> bool:
        """One bit of one file of a built hour (or of its day's report or manifest) on the primary
        or a replica: not in an hour or day with an open flip, nor in a day being restored, and
        only where another copy can mend it."""
        copies = self.world.copies()
        taken = {spot.unit for _, spot in self.open_flips}
        candidates = [
            s for s in spots(copies) if s.unit not in taken and s.day not in self._restoring
        ]
        self.rnd.shuffle(candidates)
        spot = next((s for s in candidates[:FLIP_TRIES] if repairable(copies, s)), None)
        if spot is None:
            return False
        path = spot.path(copies)
        try:
            flipped = flip(path, self.rnd)
        except (OSError, ValueError):  # renamed away meanwhile, or empty
            return False
        where = f"{spot.day}/{spot.name} byte {flipped['offset']}"
        f = self._note("vault bit flip", spot.location, where)
        f.evidence.update(
            location=spot.location, day=spot.day, file=spot.name, path=str(path), **flipped
        )
        self.open_flips.append((f, spot))
        return True

    def note_flips(self) -> None:
        """A flip whose byte is gone: something renamed a new file over it (a build, a copy, a
        repair, a restore). When (between two looks), for the end's rules."""
        now = time.time()
        for f, spot in list(self.open_flips):
            if not still_flipped(Path(f.evidence["path"]), f.evidence):
                f.evidence["gone"] = [self._flips_seen, now]
                self.open_flips.remove((f, spot))
                self._write({"fault": f.id, "gone": now})
        self._flips_seen = now

    def scrub_run(self) -> bool:
        """``sampled-stream scrub`` as cron's weekly line runs it (the soak's weeks are short)."""
        if "scrub" in self._busy:
            return False
        tool = self.world.start_scrub("cron")
        f = self._note("scrub run", PRIMARY, f"scrub {tool.number}")
        self._track("scrub", tool, f)
        return True

    def scrub_killed(self) -> bool:
        """A scrub killed with kill -9 at a random point (reading, waiting for the run lock,
        repairing), or once it holds the run lock: while it repairs (its lock is short)."""
        if "scrub" in self._busy:
            return False
        tool = self.world.start_scrub("to-kill")
        f = self._note("scrub killed", PRIMARY, f"scrub {tool.number}")
        self._track("scrub", tool, f)
        if self.rnd.random() < 0.5:
            self.at(self.rnd.uniform(0.5, SCRUB_KILL_WITHIN), lambda: self._kill_tool(tool, f))
        else:
            f.detail += " holding the run lock"
            self._to_kill.append((tool, f, 0.0))
        return True

    def fire_comply(self) -> None:
        """A compliance pass, as cron's weekly line (the soak's weeks are short), or one
        killed."""
        if self.comply_rnd.random() < COMPLY_KILLED:
            self.comply_killed()
        else:
            self.comply_run()

    def comply_run(self) -> bool:
        """``sampled-stream comply`` as cron's weekly line runs it (the soak's weeks are
        short): it resumes a pass a kill left open."""
        if "comply" in self._busy or not self._built():
            return False
        tool = self.world.start_comply("cron")
        self._track("comply", tool, self._note("comply run", PRIMARY, f"comply {tool.number}"))
        return True

    def comply_killed(self) -> bool:
        """A compliance pass killed with kill -9: mostly during its rewrite (it holds the run
        lock from the first log written to the last copy to a replica), else while it asks
        the stand-in (its jobs are resumed by the next pass)."""
        if "comply" in self._busy or not self._built():
            return False
        tool = self.world.start_comply("to-kill")
        f = self._note("comply killed", PRIMARY, f"comply {tool.number}")
        self._track("comply", tool, f)
        rnd = self.comply_rnd
        if rnd.random() < COMPLY_ASKING_KILLED:
            f.detail += " asking"
            self.at(rnd.uniform(0.5, COMPLY_ASK_KILL_WITHIN), lambda: self._kill_tool(tool, f))
        else:
            f.detail += " rewriting"
            self._to_kill.append((tool, f, rnd.uniform(0.0, COMPLY_KILL_WITHIN)))
        return True

    def _built(self) -> bool:
        """Has the primary a built hour (something for a compliance pass to ask about)?"""
        return any(self.world.vault.glob("*/*_record.json"))

    def _check_armed_tools(self) -> None:
        """A scrub or compliance pass armed to be killed holding the run lock: killed once it
        does (or has ended), ``into`` seconds later (a pass's rewrite takes a while)."""
        for armed in list(self._to_kill):
            tool, f, into = armed
            if tool.proc.poll() is not None or self._healing or self._holds_run_lock(tool):
                self._to_kill.remove(armed)
                if self._healing or not into:
                    self._kill_tool(tool, f)
                else:
                    self.at(into, lambda tool=tool, f=f: self._kill_tool(tool, f))

    def _kill_tool(self, tool: Tool, f: Fault) -> None:
        if tool.proc.poll() is not None:
            f.detail += " (it had ended)"
            self._write({"fault": f.id, "detail": f.detail})
            return
        # Killed before it took the run lock, it had only read; holding it, the next run names
        # its pid as a run that never finished.
        f.evidence["pids"], f.evidence["held the run lock"] = self._kill_and_judge(tool, "kill -9")
        f.detail += f" after {time.time() - tool.started:.1f} s"
        self._write({"fault": f.id, "detail": f.detail})

    def restore_deleted_day(self) -> bool:
        """A built day's folder deleted on the primary (an ``rm`` gone wrong), then, a few clock
        minutes later, ``sampled-stream restore --days DAY`` from a replica that holds the whole
        day, as the operator would. Only a day over for ``DAY_OVER_FOR``, whose builds are done,
        with no open flip on the primary (the replica's copy is the one left)."""
        if "restore" in self._busy:
            return False
        tz = ZoneInfo(TIMEZONE)
        over = f"{(self.world.clock.now() - DAY_OVER_FOR).astimezone(tz):%Y-%m-%d}"
        copies = self.world.copies()
        # A flip open on the primary would go with the day; one on a replica makes that copy
        # of its hour bad, and ``holds_day`` passes that replica over.
        flipped = {spot.day for _, spot in self.open_flips if spot.location == PRIMARY}
        away = {SSH_REPLICA: "sshd", LOCAL_REPLICA: "unplugged"}
        reachable = [r for r in REPLICAS if away[r] not in self._busy]
        days = [d for d in day_dirs(copies[PRIMARY]) if d.name < over and d.name not in flipped]
        self.rnd.shuffle(days)
        for day_dir in days:
            holding = [r for r in reachable if holds_day(copies, r, day_dir.name)]
            if holding:
                break
        else:
            return False
        replica, day = self.rnd.choice(holding), day_dir.name
        hours = {
            label: claimed_generation(day_dir, label) for label in records.day_records(day_dir)
        }
        shutil.rmtree(day_dir)
        f = self._note("vault day deleted, restored", replica, day)
        f.evidence.update(day=day, hours=hours)
        self._busy.add("restore")
        self._restoring.add(day)
        kill = self.rnd.random() < RESTORE_KILLED
        self.at(self.rnd.uniform(0, RESTORE_AFTER), lambda: self._restore(f, replica, kill))
        return True

    def _restore(self, f: Fault, replica: str, kill: bool) -> None:
        """The restore of ``f``'s day; if ``kill``, one killed with kill -9 at a random point
        first, and run again a moment later (as the operator would, seeing it die)."""
        day = f.evidence["day"]
        tool = self.world.start_restore(replica, day)
        if not kill:
            self._track("restore", tool, f)
            return
        k = self._note("restore killed", PRIMARY, f"restore {tool.number} of {day}")

        def kill_it() -> None:
            self._kill_tool(tool, k)
            self._ended(k)
            self.at(self.rnd.uniform(1, 3), lambda: self._restore(f, replica, kill=False))

        self.at(self.rnd.uniform(0.3, RESTORE_KILL_WITHIN), kill_it)

    def _track(self, resource: str, tool: Tool, f: Fault) -> None:
        self._busy.add(resource)
        f.evidence["tool"] = tool.number
        self._tools.append((resource, tool, f))

    def _reap_tools(self) -> None:
        """Scrubs and restores that ended: their outcome to their fault, their resource free."""
        for resource, tool, f in list(self._tools):
            if tool.proc.poll() is None:
                continue
            self._tools.remove((resource, tool, f))
            self.world.poll_runs()
            f.evidence["outcome"] = tool.outcome()
            self._busy.discard(resource)
            self._restoring.discard(f.evidence.get("day", ""))
            self._ended(f)

    def redo_failed_restores(self) -> None:
        """At the end, what the operator does about a restore that did not finish well: run it
        again, from the local replica."""
        for f in self.faults:
            if f.kind == "vault day deleted, restored" and f.evidence.get("outcome") != "ok":
                tool = self.world.start_restore("usb", f.evidence["day"])
                self.world.wait_tools()
                f.evidence["run again"] = f"restore {tool.number}: {tool.outcome()}"
                self._write({"fault": f.id, "run again": f.evidence["run again"]})


def holds_day(copies: dict[str, Path], replica: str, day: str) -> bool:
    """Does ``replica`` hold every hour of the primary's ``day``, good and at least as new,
    and its report?"""
    primary, theirs = copies[PRIMARY] / day, copies[replica] / day
    for label in records.day_records(primary):
        mine = claimed_generation(primary, label) or 1
        if (good_generation(theirs, label) or 0) < mine:
            return False
    report = report_path(copies[PRIMARY], day).name
    return sha_or_none(theirs / report) == sha_or_none(primary / report)
