"""Did every fault leave a trace where an operator looks?

While the soak runs, ``Observer.scan`` reads what an operator would read: each collector's
status file (``sampled-stream status``), the alert state files (every alert raised, sent or
not: the health view's "alerts of 24 h"), the pull state (a secondary unreachable since when),
the OSF upload back-off files; the SMTP stand-in keeps each mail with the time it arrived.
It also reads each replicate job's log that says a vault file was not copied. At the end it
adds each workflow run's output (what cron.log holds), each scrub's and restore's (scrub.log,
the operator's terminal) and the vault's stats files. All of it becomes ``Event``\\ s.

``assess`` gives each fault one of: ``traced`` (an event of the kinds its ``Rule`` names, for
its server, from its start until ``TRACE_WINDOW`` after its end), ``not met`` (nothing ran
into it: no run while the secondary or the disk was away, no OSF request answered 5xx, no
alert raised while SMTP was down, a malformed line lost unread in a cut, a bad entry on the
secondary at a minute its collector never wrote, an armed workflow kill that found no run,
a clock step no collector process ran through long enough to judge),
or ``no trace``, a failure of the soak. A bit flip is traced when a scrub finding or a
failed replicate job names it; it met nothing when a build, a copy or a restore renamed a new
file over it before anything looked (its byte went while one of them ran, and no scrub alone).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ingest.devtools.soak.faults import Fault
from ingest.devtools.soak.world import SERVERS, Run, Tool, World

TRACE_WINDOW = 60.0  # real seconds (a clock hour) after a fault in which its trace must show
STATUS_COUNTERS = {  # status field -> what its rise tells the operator
    "reconnects": "reconnected",
    "malformed_lines": "malformed line",
    "clock_steps": "clock step",
    "write_errors": "write error",
}


@dataclass
class Event:
    t: float | None  # real time it showed (None: found at the end, e.g. a stats file)
    server: str | None
    # mail, alert, status, pull state, OSF back-off, run log, job log, scrub log, restore log,
    # stats
    source: str
    text: str

    def describe(self) -> str:
        return f"{self.source}: {self.text}"[:160]


@dataclass
class Rule:
    pattern: str  # matched (case-insensitive) against an event's text
    sources: tuple[str, ...] = ()  # only these sources (all when empty)
    per_server: bool = True  # the event must name the fault's server
    # None: any time after the fault (bad files and flipped bits stay until someone looks)
    window: float | None = TRACE_WINDOW

    def matches(self, f: Fault, e: Event) -> bool:
        if self.sources and e.source not in self.sources:
            return False
        if self.per_server and e.server not in (None, f.target):
            return False
        if self.per_server and e.server is None and f.target not in e.text:
            return False
        end = f.end if f.end is not None else f.t
        if e.t is not None and e.t < f.t:
            return False
        if e.t is not None and self.window is not None and e.t > end + self.window:
            return False
        pattern = self.pattern
        if "{" in pattern:
            pattern = pattern.format(**_fields(f))
        return re.search(pattern, e.text, re.IGNORECASE) is not None


def _fields(f: Fault) -> dict[str, str]:
    """What a rule's ``{placeholders}`` stand for, escaped (one that does not apply matches
    nothing): a flip's spot (as scrub names it) and path; a scrub's or restore's number and
    day, a killed scrub's pids; a bad file's hour and name (its detail is its path under the
    raw dir)."""
    fields = dict.fromkeys(("spot", "path", "tool", "day", "hour", "name", "pids"), "(?!)")
    ev = f.evidence
    if ev.get("pids"):  # a killed scrub's processes
        fields["pids"] = "(" + "|".join(str(pid) for pid in ev["pids"]) + ")"
    if "path" in ev:
        fields["spot"] = re.escape(f"{ev['location']}: {ev['day']}/{ev['file']}")
        fields["path"] = re.escape(ev["path"])
    elif "tool" in ev:
        fields["tool"] = str(ev["tool"])
        if "day" in ev:
            fields["day"] = re.escape(ev["day"])
    elif f.kind.startswith("bad file"):
        rel = Path(f.detail)
        fields["hour"] = re.escape(f"{rel.parts[0]}_{rel.parts[1]}" if len(rel.parts) == 3 else "-")
        fields["name"] = re.escape(rel.name)
    return fields


ALERTS = ("mail", "alert")
# A process killed holding the run lock, as the next holder names it; and who takes the lock.
NEVER_FINISHED = r"\(pid {pids} on \S+, started [^)]*\) never finished"
TOOL_LOGS = ("run log", "scrub log", "restore log", "comply log")
RULES: dict[str, Rule] = {
    "collector kill -9": Rule(r"restarted|collector (started|stopped)"),
    "collector kill -9 at minute end": Rule(r"restarted|collector (started|stopped)"),
    "collector SIGTERM": Rule(r"restarted|collector (started|stopped)"),
    # A step while running, or a clock found off by the tweets at a start (a step while down).
    "collector clock step": Rule(r"clock step|the clock is"),
    "stand-in cut": Rule(r"reconnected|stream (disconnected|unstable)"),
    "stand-in stall": Rule(r"reconnected|stream (disconnected|unstable)"),
    "stand-in disconnect line": Rule(r"reconnected|stream (disconnected|unstable)"),
    "stand-in 429 storm": Rule(r"reconnected|stream (disconnected|unstable)"),
    "stand-in 503 storm": Rule(r"reconnected|stream (disconnected|unstable)"),
    "stand-in malformed": Rule(r"malformed line"),
    "secondary unreachable < wait": Rule(r"unreachable|cannot pull", per_server=False),
    "secondary unreachable > wait": Rule(r"unreachable|cannot pull", per_server=False),
    "secondary unreachable > keep_raw": Rule(r"unreachable|cannot pull", per_server=False),
    "workflow killed": Rule(r"never finished|without finishing", per_server=False),
    "two workflow runs at once": Rule(r"another workflow run", ("run log",), per_server=False),
    # {hour} and {name}: the hour label and the file name of the planted entry, which stays
    # until someone removes it: its trace may come any time later (the next build, a pull).
    "bad file: invalid JSON": Rule(r"{hour}_stats\.json: skipped|{name}", window=None),
    "bad file: directory named *.jsonl": Rule(r"{name}", (*ALERTS, "run log"), window=None),
    "bad file: FIFO": Rule(r"{name}", (*ALERTS, "run log"), window=None),
    "OSF 5xx stretch": Rule(r"osf|upload", per_server=False),
    "SMTP down": Rule(r"not sent|could not be sent", ("alert", "mail"), per_server=False),
    "vault disk full": Rule(r"no space|disk|failed", ALERTS, per_server=False),
    # {spot}: "usb: 2026-12-07/2026-12-07_14_IDs.txt.xz", as a scrub finding (its output and its
    # mail) names a file; {path}: the primary's file, as a failed replicate job names it.
    "vault bit flip": Rule(
        r"{spot} |{path}: ", ("scrub log", "job log", "mail"), per_server=False, window=None
    ),
    # A scrub's own output ends with its totals; one killed holding the run lock is named by
    # whoever takes the lock next (a workflow run, a scrub, a restore), as a killed run is.
    "scrub run": Rule(r"(?s)^scrub {tool}: .*scrub: \d+ day", ("scrub log",), False, None),
    "scrub killed": Rule(NEVER_FINISHED, TOOL_LOGS, per_server=False),
    "restore killed": Rule(NEVER_FINISHED, TOOL_LOGS, per_server=False),
    # A pass prints its totals, or why it stopped; one killed holding the run lock (during its
    # rewrite) is named by whoever takes the lock next, as a killed scrub is.
    "comply run": Rule(
        r"(?s)^comply {tool}: .*(comply: \d+ day|comply: error:)", ("comply log",), False, None
    ),
    "comply killed": Rule(NEVER_FINISHED, TOOL_LOGS, per_server=False),
    # A copy to a folder that is not there fails its job and alerts (not mounted?); a scrub
    # names the replica unreachable for the same reason.
    "replica unplugged": Rule(r"not mounted", (*ALERTS, "job log", "scrub log"), per_server=False),
    # A restore's output: the day's counts, or why it could not start (an unreachable replica).
    "vault day deleted, restored": Rule(
        r"(?s)^restore {tool}: .*({day}: \d+ restored|restore: error:)",
        ("restore log",),
        False,
        None,
    ),
}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass
class Observer:
    """What an operator would see, read every few seconds while the soak runs."""

    world: World
    events: list[Event] = field(default_factory=list)
    pulls: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of each pull
    _job_logs: dict[Path, tuple[int, int]] = field(default_factory=dict)  # (size, mtime) seen
    _status: dict[str, dict[str, Any]] = field(default_factory=dict)
    _alerts: set[tuple[str, str, str]] = field(default_factory=set)
    _failed: dict[tuple[str, str], int] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)
    _mails: int = 0

    def scan(self) -> None:
        now = time.time()
        for t, subject, body in self.world.mails.timed(self._mails):
            self.events.append(Event(t, _server_of(subject), "mail", f"{subject}\n{body}"))
            self._mails += 1
        for server in SERVERS:
            self._scan_status(server, self.world.status_file(server), now)
        for path in self.world.alert_state_files():
            self._scan_alerts(path, now)
        for server in SERVERS:
            pull = _read_json(self.world.pull_state_file(server)) or {}
            if pull.get("first_failure"):
                # A streak goes on across outages when no pull succeeds between them: what the
                # operator sees is "unreachable since", whenever they look (every 10 s here).
                self._once(
                    f"pull {pull['first_failure']} {now // 10}",
                    Event(
                        now,
                        server,
                        "pull state",
                        f"{server} unreachable since "
                        f"{pull['first_failure']}: {pull.get('last_error')}",
                    ),
                )
        for path in self.world.osf_backoff_files():
            st = _read_json(path) or {}
            self._once(
                f"{path} {st.get('attempts')}",
                Event(now, None, "OSF back-off", f"upload {path.stem}: {st.get('last_error')}"),
            )
        self._scan_job_logs(now)

    def _scan_job_logs(self, now: float) -> None:
        """Each replicate job's log that says a vault file was not copied (the next run's job
        writes the same log again)."""
        for path in (self.world.work / "logs" / "replicate").glob("*/*.log"):
            try:
                st = path.stat()
                if self._job_logs.get(path) == (st.st_size, st.st_mtime_ns):
                    continue
                self._job_logs[path] = (st.st_size, st.st_mtime_ns)
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if "not copied" in text:
                self.events.append(Event(now, None, "job log", f"{path.name}: {text}"))

    def _once(self, key: str, event: Event) -> None:
        if key not in self._seen:
            self._seen.add(key)
            self.events.append(event)

    def _scan_status(self, server: str, path: Path, now: float) -> None:
        st = _read_json(path)
        if not isinstance(st, dict):
            return
        old = self._status.get(server)
        self._status[server] = st
        if old is None:
            return
        if (st.get("pid"), st.get("started_at")) != (old.get("pid"), old.get("started_at")):
            self.events.append(Event(now, server, "status", f"restarted at {st.get('started_at')}"))
            old = {}  # a new process: its counters started at zero
        for key, what in STATUS_COUNTERS.items():
            if (st.get(key) or 0) > (old.get(key) or 0):
                self.events.append(Event(now, server, "status", f"{what} ({key} {st[key]})"))
        unwritten = (st.get("unwritten_minutes") or {}).get("minutes") or []
        for minute in unwritten:
            self._once(
                f"unwritten {server} {minute}",
                Event(now, server, "status", f"minute {minute} unwritten"),
            )

    def _scan_alerts(self, path: Path, now: float) -> None:
        state = _read_json(path)
        if not isinstance(state, dict):
            return
        for a in state.get("recent") or []:
            key = (a.get("at", ""), a.get("kind", ""), a.get("subject", ""))
            if key in self._alerts:
                continue
            self._alerts.add(key)
            self.events.append(Event(self._real(key[0], now), _server_of(key[1]), "alert", key[2]))
        for kind, entry in (state.get("kinds") or {}).items():
            failed = entry.get("failed", 0) if isinstance(entry, dict) else 0
            if failed > self._failed.get((str(path), kind), 0):
                self.events.append(Event(now, _server_of(kind), "alert", f"{kind}: not sent"))
            self._failed[(str(path), kind)] = failed

    def _real(self, at: str, default: float) -> float:
        try:
            return self.world.clock.real_time(datetime.fromisoformat(at))
        except ValueError:
            return default

    def finish(self, runs: list[Run], tools: Sequence[Tool] = ()) -> None:
        """Each run's, scrub's and restore's output, the pulls' times and the vault's stats
        files, once the soak is over."""
        self.scan()
        self.pulls = pull_spans(self.world.primary / "work")
        for run in runs:
            # The output only (what cron.log holds), not the soak's own word for the outcome.
            text = run.log.read_text(errors="replace") if run.log.exists() else ""
            end = run.ended or run.started
            self.events.append(Event(end, None, "run log", f"run {run.number}: {text}"))
        for tool in tools:
            text = f"{tool.kind} {tool.number}: {tool.output()}"
            self.events.append(Event(tool.ended or time.time(), None, f"{tool.kind} log", text))
        for path in sorted(self.world.vault.rglob("*_stats.json")):
            stats = _read_json(path) or {}
            for server, reasons in (stats.get("skipped") or {}).items():
                lines = sum(reasons.values()) if isinstance(reasons, dict) else 0
                if lines:
                    text = f"{path.name}: skipped {lines} line(s) of {server}: {reasons}"
                    self.events.append(Event(None, server, "stats", text))
            for server in stats.get("missing_servers") or []:
                self.events.append(Event(None, server, "stats", f"{path.name}: {server} missing"))

    def traced(self, f: Fault) -> bool:
        rule = RULES.get(f.kind)
        return rule is not None and any(rule.matches(f, e) for e in self.events)


def pull_spans(work: Path) -> list[tuple[float, float]]:
    """(start, end) of each pull that did not succeed: the run's local time stamp in its log's
    name (whole seconds: up to a second early) and the log's last write. A pull whose receipt
    says it worked met no outage, even if its rounded start falls inside one."""
    spans = []
    for path in (work / "logs" / "pull").glob("*/*.log"):
        receipt = work / "pulls" / path.parent.name / f"{path.stem}.json"
        if (_read_json(receipt) or {}).get("ok"):
            continue
        try:
            start = time.mktime(time.strptime(path.stem.split("-")[0], "%Y%m%dT%H%M%S"))
            spans.append((start, path.stat().st_mtime))
        except (ValueError, OSError):
            continue
    return spans


def _server_of(text: str) -> str | None:
    found = [s for s in SERVERS if s in text]
    return found[0] if len(found) == 1 else None


def assess(
    faults: list[Fault],
    events: list[Event],
    runs: list[Run],
    pulls: list[tuple[float, float]],
    tools: Sequence[Tool] = (),
) -> dict[str, Any]:
    """Per fault kind: injected, traced, not met, no trace; the faults without one named.
    Each fault's own verdict goes to its evidence ("trace")."""
    kinds: dict[str, dict[str, Any]] = {}
    for f in faults:
        k = kinds.setdefault(
            f.kind, {"injected": 0, "traced": 0, "not met": 0, "no trace": 0, "where": {}}
        )
        k["injected"] += 1
        rule = RULES.get(f.kind)
        found = [e for e in events if rule is not None and rule.matches(f, e)]
        if found:
            verdict = "traced"
            where = found[0].source
            k["where"][where] = k["where"].get(where, 0) + 1
        elif not met(f, runs, events, pulls, tools):
            verdict = "not met"
        else:
            verdict = "no trace"
            k.setdefault("untraced", []).append(f.describe())
        k[verdict] += 1
        f.evidence["trace"] = verdict
    return kinds


def met(
    f: Fault,
    runs: list[Run],
    events: list[Event],
    pulls: list[tuple[float, float]],
    tools: Sequence[Tool] = (),
) -> bool:
    """Did anything run into a stretch? (Faults on a process or a stream always meet it.)"""
    end = f.end if f.end is not None else f.t
    during = [r for r in runs if r.started <= end and (r.ended or float("inf")) >= f.t]
    if f.kind == "SMTP down":  # an alert raised meanwhile met it
        return any(e.source == "alert" and e.t is not None and f.t <= e.t <= end for e in events)
    if f.kind.startswith("secondary unreachable"):  # a pull ran while sshd was away
        return any(start <= end and stop >= f.t for start, stop in pulls)
    if f.kind == "vault disk full":  # a run that wrote nothing meanwhile met nothing
        return any(r.outcome() == "failed" for r in during)
    if f.kind == "workflow killed":  # at the end, an armed kill that found no run is void
        return "run" in f.evidence and f.evidence.get("held the run lock", True)
    if f.kind == "stand-in malformed":  # its line may be lost unread in a cut after it
        return bool(f.evidence.get("line received"))
    if f.kind.startswith("stand-in") and stopped_meanwhile(f, events):
        return False
    if f.kind in ("bad file: directory named *.jsonl", "bad file: FIFO"):
        # The primary's plan lists server1's raw dir; the secondary's is only pulled (regular
        # files), so there only a minute the collector could not write met the entry.
        return f.target == "server1" or bool(f.evidence.get("blocked a minute"))
    if f.kind == "OSF 5xx stretch":
        return bool(f.evidence.get("5xx answered"))
    if f.kind == "vault bit flip":
        return not superseded(f, runs, tools)
    if f.kind == "collector clock step":
        # Killed and restarted meanwhile, no process may have run long enough to judge the
        # clock by the tweets (seen in CI: three restarts in a 14.5 s step); lines it held
        # for the verdict died with it.
        return f.evidence.get("longest run", float("inf")) >= CLOCK_JUDGED_WITHIN
    if f.kind == "replica unplugged":  # a copy to it, or a scrub, ran meanwhile
        scrubs = [t for t in tools if t.kind == "scrub" and t.started <= end]
        return bool(f.evidence.get("copies tried")) or any(
            (t.ended or float("inf")) >= f.t for t in scrubs
        )
    if f.kind in ("scrub killed", "restore killed", "comply killed"):
        # Before the run lock, it had only read (a pass: asked the stand-in).
        return bool(f.evidence.get("held the run lock"))
    return True


# Real seconds a collector needs with a stepped clock to tell the operator: the signal waits
# for its handler (STEP_SAFE_AGE, 3 s), a start reads the offset itself; then a tick and the
# tweets of the verdict, under a second.
CLOCK_JUDGED_WITHIN = 5.0

# A stream fault on a collector that stops within this many real seconds may never be seen by
# it: a stall needs stall_seconds (2) to be one, and the stopped collector's next start opens a
# new connection that the fault no longer touches.
STOPPED_WITHIN = 5.0


def stopped_meanwhile(f: Fault, events: list[Event]) -> bool:
    """Did the fault's collector stop (or start again after a kill) while the fault was on or
    right after it began? (Seen in the soak: a 2.9 s stall ended 2 s in by a SIGTERM fault.)"""
    end = (f.end if f.end is not None else f.t) + STOPPED_WITHIN
    return any(
        e.t is not None
        and f.t <= e.t <= end
        and (e.server == f.target or (e.server is None and f.target in e.text))
        and re.search(r"collector (stopped|started)", e.text, re.IGNORECASE)
        for e in events
    )


def superseded(f: Fault, runs: list[Run], tools: Sequence[Tool]) -> bool:
    """Did a build, a copy or a restore rename a new file over a flipped one before anything
    looked? Its byte went while a workflow run that took the run lock, or a restore, ran (they
    and scrub hold the lock in turn: a byte gone while only a scrub ran was mended by it; a
    compliance pass copies its new generations to the replicas). A
    scrub killed with kill -9 may have mended it and died before it printed its findings (seen
    in the short soak): its report is lost with it, and the kill is what the operator hears."""
    gone = f.evidence.get("gone")
    if not gone:
        return False
    writers = [r for r in runs if r.outcome() != "lock busy"]
    writers += [t for t in tools if t.kind in ("restore", "comply") or t.outcome() == "killed"]
    return any(w.started <= gone[1] and (w.ended or float("inf")) >= gone[0] for w in writers)
