"""Scrub: find bit rot, lost files and copies left behind in the vault and its replicas, and
repair them by the hours' records and generations.

Per hour and per copy (the primary and each replica) the copy's record is read, checked by its
own hash, and the copy's files are checked against that record: SHA-256, and ``xz -t`` for
.xz files (one read feeds both). A copy is good when its record is intact and every file
matches it. The reference is the good copy with the highest generation (the primary on a
tie). Every other copy that is older, bad or missing the hour gets the reference's files, then
its record, verified: the primary as a build commits an hour (``restore.install_hour``), a
replica by ``put`` guarded by the reference's generation. A copy whose record claims a higher
generation than the reference (an intact record, or a damaged one: its files may be the newest
build) is never replaced: the hour is reported NOT repaired, naming each copy's generation, and
none of its copies changes. An older replica is so brought forward, never used to "repair" a
newer primary; a damaged record is repaired from a copy whose record is intact.

Hours without a record anywhere (built before records) are checked file by file against a
manifest that is checked first: the primary's, when it is readable and lists the hour, else a
replica's that does. Each file is repaired from a copy that matches it, and the hour then gets
its record (generation 1, ``day.adopt``). A day with no manifest anywhere is never given one
from its files as they are: its .xz files are checked with ``xz -t``, its other files (stats,
report) only by the replicas holding the same bytes; one copy alone, or copies that differ,
are reported unverifiable, not blessed.

Then the day: its report and its compliance log are checked against the primary's manifest
(one written after that manifest is taken as it is), else a replica's, and repaired like a
file; the primary's
manifest is derived again from its records (``day.derive_manifest``); each replica gets the
primary's report once it verifies and, when the replica's hours are now the primary's, the
primary's manifest. A replica's malformed or wrong manifest, or damaged record, costs only its
own day (or hour) and is named.

All copies are read at the same time; on the primary ``jobs`` files at once, all reads together
held to ``mb_per_s``; a remote replica checks its own disk under ``ionice -c3 nice``. Repairs
wait for the workflow's run lock. Everything found goes into one alert, each file and what was
done.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest import complied
from ingest.layout import Hour, report_path, work_paths
from ingest.locks import LockBusy
from ingest.text import plural
from ingest.vault import records
from ingest.vault.day import adopt, day_state, derive_manifest, settle_vault
from ingest.vault.manifest import is_day, manifest_name, manifest_path, sha256_file
from ingest.vault.records import HourRecord
from ingest.vault.replicate import (
    Check,
    Guard,
    Replica,
    ReplicaError,
    check_file,
    replicas,
)
from ingest.vault.restore import (
    Claim,
    CopyDay,
    day_labels,
    fetch_copy_day,
    install_hour,
    install_verified,
    read_copy_day,
)
from ingest.workflow_run import wait_for_run_lock

if TYPE_CHECKING:
    from ingest.notify import Alerts

_log = logging.getLogger(__name__)

PRIMARY = "primary"


class Throttle:
    """At most ``bytes_per_s`` across all threads calling it (None: unlimited)."""

    def __init__(self, bytes_per_s: float | None, sleep: Callable[[float], None] = time.sleep):
        self.rate = bytes_per_s
        self.sleep = sleep
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def __call__(self, n: int) -> None:
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + n / self.rate
        if start > now:
            self.sleep(start - now)


@dataclass
class Finding:
    location: str  # "primary" or a replica's name
    day: str
    name: str  # "*" when the whole location could not be checked; "{hour}_*": the whole hour
    # missing, mismatch, damaged (xz -t, or a record), older (generation), conflict,
    # unverifiable, manifest (malformed), unreachable, unlisted, not repaired
    status: str
    detail: str = ""
    repair: str = ""  # what was done; "" when nothing could be

    def line(self) -> str:
        what = f"{self.location}: {self.day}/{self.name} {self.status}"
        what += f" ({self.detail})" if self.detail else ""
        return what + (f" -> {self.repair}" if self.repair else " -> NOT repaired")


@dataclass
class ScrubReport:
    days: int = 0
    files: int = 0  # checks made (files x copies)
    bytes: int = 0
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    created_manifests: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)  # hours built before records, given one
    checked: dict[str, list[str]] = field(default_factory=dict)  # "day/name" -> its locations

    @property
    def unrepaired(self) -> list[Finding]:
        return [f for f in self.findings if not f.repair and f.status != "unlisted"]

    def summary(self) -> str:
        """The one line a scrub ends with."""
        repaired = sum(1 for f in self.findings if f.repair)
        return (
            f"scrub: {plural(self.days, 'day')}, {plural(len(self.checked), 'file')} checked "
            f"({plural(self.files, 'check')} over the copies), {self.bytes / 1e6:.1f} MB in "
            f"{self.seconds:.1f} s: {plural(len(self.findings), 'finding')}, {repaired} repaired, "
            f"{len(self.unrepaired)} not repaired"
        )

    def lines(self) -> list[str]:
        """Each file checked or written, by name, once: "ok" with the copies it was checked
        on, or its findings (which say what was repaired); findings about no single file (a copy
        unreachable, a whole hour) in their place in the order."""
        by_file: dict[str, list[Finding]] = {}
        for f in self.findings:
            by_file.setdefault(f"{f.day}/{f.name}", []).append(f)
        written = {
            f"{d}/{manifest_name(d)}": "manifest derived from its records"
            for d in (self.created_manifests)
        }
        for label in self.adopted:
            day = Hour.parse(label).day
            written[f"{day}/{records.record_name(label)}"] = "record written (built before records)"
        out = []
        for path in sorted(set(self.checked) | set(by_file) | set(written)):
            found = by_file.get(path, [])
            if found:
                out += [f"  {f.line()}" for f in found]
            elif path in self.checked:
                note = f"; {written[path]}" if path in written else ""
                out.append(f"  ok: {path} ({', '.join(self.checked[path])}){note}")
            else:
                out.append(f"  {written[path]}: {path}")
        return out


def vault_days(vault_dir: Path, last: int | None = None) -> list[str]:
    if not Path(vault_dir).is_dir():
        return []
    days = sorted(p.name for p in Path(vault_dir).iterdir() if p.is_dir() and is_day(p.name))
    return days[-last:] if last else days


# --- the plan: what each copy says of a day, what each file is checked against --------------


@dataclass
class HourPlan:
    label: str
    # record: a copy holds an intact record; lost: only damaged ones; manifest: an hour built
    # before records, a manifest lists it; unverified: such an hour, no manifest lists it
    mode: str
    claims: dict[str, Claim]  # location -> its record of the hour (none: no record there)
    reference: HourRecord | None = None  # record mode: the newest intact record anywhere
    lines: dict[str, str] = field(default_factory=dict)  # other modes: {file name: sha256}
    source: str = PRIMARY  # manifest mode: whose manifest

    def expected(self, location: str) -> dict[str, str]:
        """{file: sha256} a copy's files are checked against: its own intact record; without
        one, the newest intact record (so a copy whose record alone is damaged or missing
        needs only the record)."""
        if self.mode == "record":
            claim = self.claims.get(location)
            record = claim.record if claim is not None and claim.record else self.reference
            assert record is not None
            return {n: e.sha256 for n, e in record.files.items()}
        return dict(self.lines)


@dataclass
class DayPlan:
    day: str
    copies: dict[str, CopyDay]  # the copies that answered, the primary first
    hours: list[HourPlan]
    report: str | None = None  # the sha256 the day report must have; None: no report known
    report_mode: str = ""  # manifest, newer (the primary's, written after its manifest), unverified
    log: str | None = None  # the same for the day's compliance log (``ingest.complied``)
    log_mode: str = ""

    def expected(self, location: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for hour in self.hours:
            out.update(hour.expected(location))
        if self.report is not None:
            out[f"{self.day}_report.txt"] = self.report
        if self.log is not None:
            out[complied.log_path("", self.day).name] = self.log
        return out


def _survey(vault: Path, days: list[str], reps: list[Replica]) -> dict[str, dict | str]:
    """location -> {day: CopyDay}, or why the location could not be read; the replicas at the
    same time (a remote one: a listing, then one fetch a day)."""

    def replica(r: Replica) -> dict[str, CopyDay] | str:
        try:
            held = set(r.days())
            return {d: fetch_copy_day(r, d) if d in held else CopyDay(r.name) for d in days}
        except (ReplicaError, OSError) as e:
            return str(e)

    with ThreadPoolExecutor(max(1, len(reps)), thread_name_prefix="scrub-survey") as pool:
        futures = {r.name: pool.submit(replica, r) for r in reps}
        out: dict[str, dict | str] = {
            PRIMARY: {d: read_copy_day(vault / d, d, PRIMARY) for d in days}
        }
        out.update({name: f.result() for name, f in futures.items()})
    return out


def _plan_hour(day_dir: Path, label: str, copies: dict[str, CopyDay], throttle) -> HourPlan:
    claims = {loc: c.records[label] for loc, c in copies.items() if label in c.records}
    intact = [c.record for c in claims.values() if c.record is not None]
    if intact:
        # max() keeps the first of equals: the primary's record on a tie.
        return HourPlan(label, "record", claims, max(intact, key=lambda r: r.generation))
    if claims:
        return HourPlan(label, "lost", claims)
    names = records.hour_file_names(Hour.parse(label))
    for c in copies.values():  # the primary's manifest first
        lines = c.lines(names)
        if lines is not None:
            return HourPlan(label, "manifest", claims, lines=lines, source=c.location)
    # Nothing names these files' hashes: the primary's as they are, for the replicas to agree.
    lines = {n: sha256_file(day_dir / n, throttle) for n in names if (day_dir / n).is_file()}
    return HourPlan(label, "unverified", claims, lines=lines)


def _plan_day_file(
    day_dir: Path, path: Path, copies: dict[str, CopyDay], throttle
) -> tuple[str | None, str]:
    """(the sha256 a day file, its report or compliance log, must have, how it is known)."""
    primary = copies[PRIMARY]
    written = path.stat().st_mtime_ns if path.exists() else None
    if primary.manifest is not None and written is not None:
        # Written after the manifest: a day file made since (a kill before the manifest was
        # derived), not rot, which changes no time stamp.
        if written > (primary.manifest_mtime_ns or 0):
            return sha256_file(path, throttle), "newer"
    lines = [c.manifest[path.name] for c in copies.values() if path.name in (c.manifest or {})]
    if written is not None and len(set(lines)) > 1:
        # The manifests disagree: one that lists the file as it is vouches for it (the
        # other's line rotted); else the primary's manifest decides (the file rotted).
        actual = sha256_file(path, throttle)
        if actual in lines:
            return actual, "manifest"
    if lines:  # the primary's manifest first
        return lines[0], "manifest"
    if written is not None:
        return sha256_file(path, throttle), "unverified"
    return None, ""


def _plan(vault: Path, day: str, copies: dict[str, CopyDay], throttle) -> DayPlan:
    day_dir = vault / day
    labels = set(day_labels(day, *copies.values())) | set(day_state(day_dir).legacy)
    hours = [_plan_hour(day_dir, label, copies, throttle) for label in sorted(labels)]
    report, mode = _plan_day_file(day_dir, report_path(vault, day), copies, throttle)
    log, log_mode = _plan_day_file(day_dir, complied.log_path(vault, day), copies, throttle)
    return DayPlan(day, copies, hours, report, mode, log, log_mode)


_Results = dict[str, dict[tuple[str, str], Check] | str]  # location -> its checks, or its error


def _check_everywhere(
    vault: Path, plans: dict[str, DayPlan], reps: list[Replica], jobs: int, throttle: Throttle
) -> _Results:
    """Every file checked against what its copy's plan expects: on the primary ``jobs`` at
    once and on each replica, all locations at the same time: location -> {(day, name):
    check}, or why it could not be."""

    def primary() -> dict[tuple[str, str], Check]:
        work = [(d, n, h) for d, p in plans.items() for n, h in p.expected(PRIMARY).items()]
        with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="scrub") as pool:
            checks = pool.map(lambda w: check_file(vault / w[0] / w[1], w[2], throttle), work)
            return {(d, n): c for (d, n, _), c in zip(work, checks, strict=True)}

    def replica(r: Replica) -> dict[tuple[str, str], Check] | str:
        out = {}
        try:
            for day, plan in plans.items():
                for c in r.check(day, plan.expected(r.name), throttle):
                    out[(day, c.name)] = c
        except ReplicaError as e:
            return str(e)
        return out

    with ThreadPoolExecutor(1 + len(reps), thread_name_prefix="scrub-loc") as pool:
        fut_primary = pool.submit(primary)
        fut_reps = {r.name: pool.submit(replica, r) for r in reps}
        return {
            PRIMARY: fut_primary.result(),
            **{name: f.result() for name, f in fut_reps.items()},
        }


def scrub(
    config: dict[str, Any],
    days: int | None = None,
    jobs: int = 2,
    mb_per_s: float | None = None,
    alerts: Alerts | None = None,
    log: logging.Logger | None = None,
    lock_wait_s: float = 3600,
) -> ScrubReport:
    """Check the newest ``days`` day folders (default all) everywhere, repair, alert."""
    log = log or _log
    start = time.monotonic()
    vault = Path(config["vault_dir"])
    report = ScrubReport()
    chosen = vault_days(vault, days)
    throttle = Throttle(mb_per_s * 1e6 if mb_per_s else None)
    reps = replicas(config)
    survey = _survey(vault, chosen, reps)
    for name, res in survey.items():
        if isinstance(res, str):
            report.findings.append(Finding(name, "-", "*", "unreachable", res))
    answered = [r for r in reps if isinstance(survey[r.name], dict)]
    plans = {
        d: _plan(
            vault, d, {loc: v[d] for loc, v in survey.items() if isinstance(v, dict)}, throttle
        )
        for d in chosen
    }
    report.days = len(plans)
    results = _check_everywhere(vault, plans, answered, jobs, throttle)
    for name, res in results.items():
        if isinstance(res, str):
            report.findings.append(Finding(name, "-", "*", "unreachable", res))
    report.files = sum(len(v) for v in results.values() if isinstance(v, dict))
    _list_checked(report, plans, results)
    # Bytes read: the primary's files, once per copy that could be checked.
    size = sum(
        (vault / d / n).stat().st_size
        for (d, n), c in results[PRIMARY].items()
        if c.status != "missing"
    )
    report.bytes = size * sum(isinstance(v, dict) for v in results.values())
    _repair_between_runs(config, lock_wait_s, plans, answered, results, report, log)
    report.seconds = round(time.monotonic() - start, 2)
    if alerts and any(f.status != "unlisted" for f in report.findings):
        _alert(report, alerts)
    return report


def _list_checked(report: ScrubReport, plans: dict[str, DayPlan], results: _Results) -> None:
    """Every file checked, with the copies it was checked on: the hours' files and day reports,
    the records and manifests read in the plan."""
    checked: dict[str, set[str]] = {}
    for loc, res in results.items():
        for day, name in res if isinstance(res, dict) else ():
            checked.setdefault(f"{day}/{name}", set()).add(loc)
    for day, plan in plans.items():
        for hour in plan.hours:
            for loc in hour.claims:
                checked.setdefault(f"{day}/{records.record_name(hour.label)}", set()).add(loc)
        for loc, copy in plan.copies.items():
            if copy.manifest_sha is not None:
                checked.setdefault(f"{day}/{manifest_name(day)}", set()).add(loc)
    order = list(results)  # the primary first, then the replicas
    rank = {loc: i for i, loc in enumerate(order)}
    report.checked = {
        p: sorted(locs, key=lambda x: rank.get(x, len(rank))) for p, locs in checked.items()
    }


def _repair_between_runs(
    config: dict[str, Any],
    lock_wait_s: float,
    plans: dict[str, DayPlan],
    reps: list[Replica],
    results: _Results,
    report: ScrubReport,
    log: logging.Logger,
) -> None:
    """Record the findings and, holding the run lock, repair them."""
    # Repairs only while no workflow run is going: a run renames a rebuilt hour's files and
    # writes its record, and a "repair" from a plan made before would work on the old hour. A
    # day whose records or manifest changed since it was planned is left for the next scrub.
    vault = Path(config["vault_dir"])
    lock_path = work_paths(config["work_dir"])["state"] / "manifest.lock"
    try:
        lock = wait_for_run_lock(config, lock_wait_s)
    except LockBusy as e:
        dry = _Repairs(vault, reps, results, report, log, lock_path, repair=False)
        for plan in plans.values():
            dry.day(plan)
        if report.unrepaired:
            report.findings.append(Finding(PRIMARY, "-", "*", "not repaired", str(e)))
        return
    try:
        for problem in settle_vault(vault):  # a killed build's or repair's leftovers first
            log.warning("scrub: %s", problem)
        repairs = _Repairs(vault, reps, results, report, log, lock_path, repair=True)
        for plan in plans.values():
            if _changed(vault, plan):
                log.info("scrub: %s changed while it was checked; next scrub", plan.day)
                continue
            try:
                repairs.day(plan)
            except OSError as e:  # a full or failing disk: this day waits, the others go on
                log.error("scrub: %s: repairs stopped: %s", plan.day, e)
                report.findings.append(Finding(PRIMARY, plan.day, "*", "not repaired", str(e)))
    finally:
        lock.release()


def _changed(vault: Path, plan: DayPlan) -> bool:
    """Did a run write the day's records or manifest since the plan read them?"""
    before = plan.copies[PRIMARY]
    now = read_copy_day(vault / plan.day, plan.day, PRIMARY)
    data = {label: c.data for label, c in before.records.items()}
    return data != {label: c.data for label, c in now.records.items()} or (
        now.manifest_sha != before.manifest_sha
    )


# --- deciding and repairing ------------------------------------------------------------------


class _Repairs:
    """The findings of each day and, with ``repair``, what a copy that verifies can mend."""

    def __init__(self, vault, reps, results, report, log, lock_path, repair: bool) -> None:
        self.vault, self.results, self.report, self.log = vault, results, report, log
        self.reps = {r.name: r for r in reps}
        self.lock_path, self.repair = lock_path, repair
        self.behind: set[tuple[str, str]] = set()  # (replica, day): hours not the primary's
        # (replica, day): an hour brought forward (its report and manifest were as old as its
        # hours), or given its first record (its manifest was): they follow without a finding.
        self.forward: set[tuple[str, str]] = set()
        self.upgraded: set[tuple[str, str]] = set()

    def check(self, location: str, day: str, name: str) -> Check:
        res = self.results[location]
        assert isinstance(res, dict)
        return res.get((day, name), Check(name, "missing"))

    def ok(self, location: str, day: str, name: str) -> bool:
        return self.check(location, day, name).status == "ok"

    def find(self, location: str, day: str, name: str, status: str, detail: str = "") -> Finding:
        finding = Finding(location, day, name, status, detail)
        self.report.findings.append(finding)
        return finding

    def day(self, plan: DayPlan) -> None:
        locs = [loc for loc in plan.copies if isinstance(self.results.get(loc), dict)]
        for hour in plan.hours:
            if hour.mode == "record":
                self.record_hour(plan, hour, locs)
            elif hour.mode == "lost":
                self.lost_hour(plan, hour, locs)
            else:
                self.old_hour(plan, hour, locs)
        report_ok = self.day_file(plan, locs, report_path(self.vault, plan.day).name)
        # A log not repaired keeps its manifest line (``day.derive_manifest``): never blessed.
        self.day_file(plan, locs, complied.log_path(self.vault, plan.day).name)
        self.manifests(plan, locs, report_ok)
        self.unlisted(plan)

    # --- hours with records

    def good(self, day: str, hour: HourPlan, location: str) -> bool:
        claim = hour.claims.get(location)
        if claim is None or claim.record is None:
            return False
        return all(self.ok(location, day, n) for n in claim.record.files)

    def record_hour(self, plan: DayPlan, hour: HourPlan, locs: list[str]) -> None:
        """The newest good copy is the reference; every other copy follows it, the primary
        first (a replica is then copied from the primary)."""
        gens = {loc: hour.claims[loc].generation for loc in locs if loc in hour.claims}
        top = max((g for g in gens.values() if g is not None), default=0)
        good = [loc for loc in locs if self.good(plan.day, hour, loc)]
        ref = max(good, key=lambda loc: gens[loc] or 0, default=None)  # the primary on a tie
        if ref is None or (gens[ref] or 0) < top:
            held = ", ".join(
                f"{loc} {gens[loc] if gens[loc] is not None else '?'}"
                + ("" if loc in good else " (bad)")
                for loc in gens
            )
            why = f"no good copy of generation {top}; generations: {held}"
            for loc in locs:
                if loc not in good:
                    for f in self.hour_findings(plan.day, hour, loc, None, ""):
                        f.detail = _also(f.detail, why)
                self.behind.add((loc, plan.day))
            return
        record = hour.claims[ref].record
        assert record is not None
        source = ref
        for loc in locs:
            claim = hour.claims.get(loc)
            if loc == ref or (loc in good and claim is not None and claim.record == record):
                continue
            if self.bring(plan.day, hour, loc, source, record) and loc == PRIMARY:
                source = PRIMARY  # verified there now: the replicas get it from the primary

    def hour_findings(
        self, day: str, hour: HourPlan, loc: str, record: HourRecord | None, ref: str
    ) -> list[Finding]:
        """What is wrong with ``loc``'s copy of the hour (against ``record``, the reference's,
        when there is one), one finding per file and one for the record."""
        claim = hour.claims.get(loc)
        checks = {n: self.check(loc, day, n) for n in hour.expected(loc)}
        name = records.record_name(hour.label)
        if claim is None and all(c.status == "missing" for c in checks.values()):
            return [self.find(loc, day, f"{hour.label}_*", "missing", "the whole hour")]
        if record is None and claim is not None and claim.record is None:
            # Its files were checked against another copy's record: with no reference to
            # repair them from, a difference says nothing (they may be a newer build).
            checks = {}
        out = [
            self.find(loc, day, n, c.status, c.detail)
            for n, c in sorted(checks.items())
            if c.status != "ok"
        ]
        if claim is None:
            out.append(self.find(loc, day, name, "missing"))
        elif claim.record is None:
            out.append(self.find(loc, day, name, "damaged", claim.error))
        elif record is not None and claim.record.generation < record.generation:
            what = f"generation {claim.record.generation}; {ref} holds {record.generation}"
            out.append(self.find(loc, day, name, "older", what))
        elif record is not None and claim.record != record:
            what = f"generation {record.generation} differs from {ref}'s: compare them by hand"
            out.append(self.find(loc, day, name, "conflict", what))
        return out

    def bring(self, day: str, hour: HourPlan, loc: str, source: str, record: HourRecord) -> bool:
        """Give ``loc`` the reference's files it lacks, then the record; whether it has them."""
        claim = hour.claims.get(loc)
        expected = hour.expected(loc)
        need = {
            n: e.sha256
            for n, e in record.files.items()
            if not (self.ok(loc, day, n) and expected.get(n) == e.sha256)
        }
        with_record = claim is None or claim.record != record
        findings = self.hour_findings(day, hour, loc, record, source)
        conflict = any(f.status == "conflict" for f in findings)
        stuck = loc != PRIMARY and source != PRIMARY  # the primary's own repair failed
        if not self.repair or conflict or stuck:
            for f in findings if self.repair and stuck and not conflict else ():
                f.detail = _also(f.detail, "the primary could not be repaired first")
            self.behind.add((loc, day))
            return False
        older = any(f.status == "older" for f in findings)
        try:
            if loc == PRIMARY:
                self.install(day, source, need, record if with_record else None)
            else:
                if with_record:
                    name = records.record_name(hour.label)
                    need[name] = sha256_file(self.vault / day / name)
                self.put_hour(loc, day, hour.label, need, record.generation, claim is not None)
        except (ReplicaError, OSError) as e:
            self.log.warning("scrub: %s of hour %s to %s: %s", source, hour.label, loc, e)
            for f in findings:
                f.detail = _also(f.detail, str(e))
            self.behind.add((loc, day))
            return False
        where = f"from {source}" if loc == PRIMARY else "from the primary"
        done = (
            f"brought forward {where} (generation {record.generation})"
            if older
            else (f"repaired {where}" if loc == PRIMARY else "copied again from the primary")
        )
        for f in findings:
            f.repair = done
        if older and loc != PRIMARY:
            self.forward.add((loc, day))
        return True

    def install(
        self, day: str, source: str, files: dict[str, str], record: HourRecord | None
    ) -> None:
        """The primary's hour from replica ``source``: all its files verified, then renamed,
        the record last; ReplicaError unless every file verified."""
        got = install_hour(self.reps[source], self.vault / day, files, record)
        bad = [f"{n} {c.status} on {source}" for n, c in got.items() if c.status != "ok"]
        if bad:
            raise ReplicaError(", ".join(bad))
        primary = self.results[PRIMARY]
        assert isinstance(primary, dict)
        primary.update({(day, n): Check(n, "ok") for n in files})

    def put_hour(
        self, loc: str, day: str, label: str, files: dict[str, str], gen: int, held: bool = True
    ) -> None:
        """The primary's ``files`` of an hour to replica ``loc``, never over a newer generation
        there than ``gen`` (the guard, checked on the replica before any rename). The record
        goes last when it is among ``files``."""
        day_dir = self.vault / day
        todo = {day_dir / n: sha for n, sha in files.items()}
        name = records.record_name(label)
        if name in files:
            todo[day_dir / name] = todo.pop(day_dir / name)  # renamed after the files it names
        # Without a record there when the day was read (``held``), there is no claim to guard:
        # only a workflow run writes records to a replica, and it waits for the run lock this
        # scrub holds. (The remote guard also fails when the record is absent.)
        self.reps[loc].put(day, todo, Guard(name, gen) if held else None)

    def lost_hour(self, plan: DayPlan, hour: HourPlan, locs: list[str]) -> None:
        """Only damaged records of the hour: no copy says which files are right."""
        name = records.record_name(hour.label)
        for loc in locs:
            claim = hour.claims.get(loc)
            if claim is not None:
                why = f"{claim.error}; no copy holds an intact record of the hour"
                self.find(loc, plan.day, name, "damaged", why)
            self.behind.add((loc, plan.day))

    # --- hours built before records

    def old_hour(self, plan: DayPlan, hour: HourPlan, locs: list[str]) -> None:
        """File by file: against a manifest (the primary repaired from a replica whose copy
        matches it, a replica from the primary), or, with none, by xz -t and the replicas'
        copies agreeing with the primary's; then the hour's record from its verified files."""
        day = plan.day
        if hour.mode == "unverified" and not self.primary_verified(plan, hour, locs):
            return
        for name, sha in sorted(hour.lines.items()):
            if not self.ok(PRIMARY, day, name):
                c = self.check(PRIMARY, day, name)
                finding = self.find(PRIMARY, day, name, c.status, c.detail)
                self.repair_primary_file(day, name, sha, locs, finding)
            for loc in locs[1:]:
                if not self.ok(loc, day, name):
                    c = self.check(loc, day, name)
                    self.put_file(
                        loc, day, name, sha, self.find(loc, day, name, c.status, c.detail)
                    )
        self.adopt(plan, hour, locs)

    def primary_verified(self, plan: DayPlan, hour: HourPlan, locs: list[str]) -> bool:
        """An old hour no manifest lists: are the primary's files right (xz -t, and for the
        others a replica holding the same bytes)? Each that is not is named."""
        day, bad = plan.day, False
        for name in records.hour_file_names(Hour.parse(hour.label)):
            c = self.check(PRIMARY, day, name)
            nowhere = "no manifest or record lists it"
            if name not in hour.lines:
                self.find(PRIMARY, day, name, "missing", f"{nowhere}: nothing to restore it by")
            elif c.status != "ok":
                self.find(PRIMARY, day, name, c.status, _also(c.detail, nowhere))
            elif not name.endswith(".xz") and not any(self.ok(r, day, name) for r in locs[1:]):
                why = f"{nowhere} and no replica holds the same bytes"
                self.find(PRIMARY, day, name, "unverifiable", why)
            else:
                continue
            bad = True
        if bad:
            self.behind.update((loc, day) for loc in locs)
        return not bad

    def repair_primary_file(
        self, day: str, name: str, sha: str, locs: list[str], finding: Finding
    ) -> bool:
        """One primary file from the first replica whose copy matches ``sha``."""
        for loc in locs[1:] if self.repair else ():
            if not self.ok(loc, day, name):
                continue
            try:
                got = install_verified(self.reps[loc], self.vault / day, {name: sha})
            except (ReplicaError, OSError) as e:
                self.log.warning("scrub: repairing %s/%s from %s: %s", day, name, loc, e)
                continue
            if got[name].status == "ok":
                finding.repair = f"repaired from {loc}"
                primary = self.results[PRIMARY]
                assert isinstance(primary, dict)
                primary[(day, name)] = got[name]
                return True
        return False

    def put_file(self, loc: str, day: str, name: str, sha: str, finding: Finding | None) -> bool:
        """One replica file from the primary, once the primary's verifies."""
        if not self.repair or not self.ok(PRIMARY, day, name):
            self.behind.add((loc, day))
            return False
        try:
            self.reps[loc].put(day, {self.vault / day / name: sha})
        except (ReplicaError, OSError) as e:
            if finding is not None:
                finding.detail = _also(finding.detail, f"copying again failed: {e}")
            self.behind.add((loc, day))
            return False
        if finding is not None:
            finding.repair = "copied again from the primary"
        res = self.results[loc]
        assert isinstance(res, dict)
        res[(day, name)] = Check(name, "ok")
        return True

    def adopt(self, plan: DayPlan, hour: HourPlan, locs: list[str]) -> None:
        """An old hour whose files verify on the primary gets its record (generation 1); each
        replica whose files verify gets it too."""
        day, names = plan.day, records.hour_file_names(Hour.parse(hour.label))
        if not self.repair or not all(self.ok(PRIMARY, day, n) for n in names):
            return
        if not adopt(self.vault / day, Hour.parse(hour.label), hour.lines, self.log):
            return
        name = records.record_name(hour.label)
        record = {name: sha256_file(self.vault / day / name)}
        self.report.adopted.append(hour.label)
        for loc in locs[1:]:
            if not all(self.ok(loc, day, n) for n in names):
                self.behind.add((loc, day))
                continue
            try:
                self.put_hour(loc, day, hour.label, record, 1, held=False)
            except (ReplicaError, OSError) as e:
                self.log.warning("scrub: the record of %s to %s: %s", hour.label, loc, e)
                self.behind.add((loc, day))
                continue
            self.upgraded.add((loc, day))

    # --- the day: its report and manifest

    def day_file(self, plan: DayPlan, locs: list[str], name: str) -> bool:
        """The day report or compliance log (``name``) checked (and repaired) on every copy;
        whether the primary's is the one expected (else the manifest does not list it as it
        is)."""
        day = plan.day
        report = name == report_path(self.vault, day).name
        sha, mode = (plan.report, plan.report_mode) if report else (plan.log, plan.log_mode)
        if sha is None:
            return True
        if mode == "unverified":
            if not any(self.ok(loc, day, name) for loc in locs[1:]):
                why = "no manifest lists it and no replica holds the same bytes"
                self.find(PRIMARY, day, name, "unverifiable", why)
                return False
        elif not self.ok(PRIMARY, day, name):
            c = self.check(PRIMARY, day, name)
            finding = self.find(PRIMARY, day, name, c.status, c.detail)
            if not self.repair_primary_file(day, name, sha, locs, finding):
                return False
        for loc in locs[1:]:
            if not self.ok(loc, day, name):
                c = self.check(loc, day, name)
                # A replica brought forward had the older report with its hours: no finding.
                quiet = (loc, day) in self.forward
                self.put_file(
                    loc,
                    day,
                    name,
                    sha,
                    None if quiet else self.find(loc, day, name, c.status, c.detail),
                )
        return True

    def manifests(self, plan: DayPlan, locs: list[str], report_ok: bool) -> None:
        """The primary's manifest derived from its records; each replica in step with the
        primary gets it. A malformed one anywhere is named."""
        day, primary = plan.day, plan.copies[PRIMARY]
        name = manifest_name(day)
        broken = {
            loc: self.find(loc, day, name, "manifest", plan.copies[loc].manifest_error)
            for loc in locs
            if plan.copies[loc].manifest_error
        }
        if PRIMARY not in broken and self.rotten_manifest(plan, report_ok):
            what = "differs from its records, which it postdates (rot)"
            broken[PRIMARY] = self.find(PRIMARY, day, name, "mismatch", what)
        if not self.repair:
            return
        day_dir = self.vault / day
        if (
            primary.manifest_sha is not None
            or primary.manifest_error
            or records.day_records(day_dir)
        ):
            lines = {n: s for h in plan.hours if h.mode == "manifest" for n, s in h.lines.items()}
            if not report_ok and plan.report_mode == "manifest" and plan.report is not None:
                lines[report_path(self.vault, day).name] = plan.report  # kept until repaired
            derive_manifest(
                day_dir,
                self.lock_path,
                self.log,
                adopt_legacy=False,
                lines=lines,
                hash_report=report_ok,
            )
            if primary.manifest_sha is None and not primary.manifest_error:
                self.report.created_manifests.append(day)
            if PRIMARY in broken:
                broken[PRIMARY].repair = "derived again from the records"
        path = manifest_path(day_dir)
        if not path.exists():
            return
        sha = sha256_file(path)
        for loc in locs[1:]:
            self.replica_manifest(plan, loc, path, sha, broken.get(loc))

    def rotten_manifest(self, plan: DayPlan, report_ok: bool) -> bool:
        """Does the primary's manifest, derived after the day's last change, name other hashes
        than its intact records and the verified report (as surveyed, before any repair)?"""
        primary = plan.copies[PRIMARY]
        if primary.manifest is None or not primary.current:
            return False
        expected = {}
        for label, claim in primary.records.items():
            if claim.record is not None:
                expected |= {n: e.sha256 for n, e in claim.record.files.items()}
                expected[records.record_name(label)] = hashlib.sha256(claim.data).hexdigest()
        if report_ok and plan.report is not None and plan.report_mode == "manifest":
            expected[report_path(self.vault, plan.day).name] = plan.report
        return any(primary.manifest.get(n) != sha for n, sha in expected.items())

    def replica_manifest(
        self, plan: DayPlan, loc: str, path: Path, sha: str, finding: Finding | None
    ) -> None:
        """The primary's manifest to a replica whose hours are now the primary's (one whose
        hours are not was named for them, and keeps its own). A replica's that differs is
        named unless it is only as stale as the primary's was, or its hours were brought
        forward by this scrub."""
        day, theirs, primary = plan.day, plan.copies[loc], plan.copies[PRIMARY]
        if theirs.manifest_sha == sha:
            return
        if (loc, day) in self.behind:
            if finding is not None:
                finding.detail = _also(finding.detail, "the replica's hours differ: not replaced")
            return
        quiet = (
            (loc, day) in self.forward
            or (loc, day) in self.upgraded
            or theirs.manifest_sha == primary.manifest_sha
        )
        if finding is None and not quiet:
            if theirs.manifest_sha is None:
                finding = self.find(loc, day, path.name, "missing")
            else:
                what = "differs from the one derived from the primary's records"
                finding = self.find(loc, day, path.name, "mismatch", what)
        try:
            self.reps[loc].put(day, {path: sha})
        except (ReplicaError, OSError) as e:
            if finding is not None:
                finding.detail = _also(finding.detail, f"copying again failed: {e}")
            return
        if finding is not None:
            finding.repair = "copied again from the primary"

    def unlisted(self, plan: DayPlan) -> None:
        """Vault files the primary's manifest does not list, not named already: nothing to
        check them against (say so)."""
        day_dir = self.vault / plan.day
        path = manifest_path(day_dir)
        listed = read_copy_day(day_dir, plan.day, PRIMARY).manifest
        if listed is None or not path.exists():
            return
        named = {
            f.name for f in self.report.findings if f.location == PRIMARY and f.day == plan.day
        }
        for p in sorted(day_dir.iterdir()):
            if (
                p.is_file()
                and p.name.startswith(f"{plan.day}_")
                and p.name not in listed
                and p.name != path.name
                and p.name not in named
            ):
                self.find(PRIMARY, plan.day, p.name, "unlisted", "not in the manifest")


def _also(detail: str, more: str) -> str:
    return f"{detail}; {more}" if detail else more


def _alert(report: ScrubReport, alerts: Alerts) -> None:
    """One alert naming every damaged or missing file and what was done."""
    bad = [f for f in report.findings if f.status != "unlisted"]
    left = len(report.unrepaired)
    alerts.alert(
        "scrub-damage",
        f"scrub: {len(bad)} damaged or missing file(s), {left} not repaired",
        "Scrub found:\n"
        + "\n".join(f"  {f.line()}" for f in bad)
        + "\n\n"
        + (
            "Everything was repaired from a copy that verifies.\n"
            if not left
            else "Files marked NOT repaired have no copy that verifies; see the scrub's log.\n"
        ),
    )
