"""Scrub: find bit rot and lost files in the vault and its replicas, and repair them.

Every file a day's manifest lists is read on the primary and on each replica: its SHA-256 must
equal the manifest's and ``xz -t`` must pass for ``.xz`` files (one read feeds both). The
primary and each replica are checked at the same time; on the primary ``jobs`` files at once,
all reads together held to ``mb_per_s``; a remote replica checks its own disk under
``ionice -c3 nice`` so its host's work comes first.

Then repairs: a bad primary file is replaced by a replica's copy that verifies
(``restore.install_verified``); a bad replica file is copied again from the primary (once the
primary's verifies). Anything found goes into one alert naming each file and what was done.

A day folder without a manifest (built before manifests existed) gets one from its files as
they are, if every ``.xz`` file passes ``xz -t``; it is then the reference from that day on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.locks import LockBusy
from ingest.vault.manifest import (
    ManifestError,
    is_day,
    manifest_name,
    manifest_path,
    read_manifest,
    sha256_file,
    update_manifest,
)
from ingest.vault.replicate import (
    Check,
    Replica,
    ReplicaError,
    check_file,
    replicas,
    wait_for_run_lock,
)
from ingest.vault.restore import install_verified

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
    name: str  # "*" when the whole location could not be checked
    status: str  # missing, mismatch, damaged, unreachable, unlisted, manifest
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

    @property
    def unrepaired(self) -> list[Finding]:
        return [f for f in self.findings if not f.repair and f.status != "unlisted"]


def vault_days(vault_dir: Path, last: int | None = None) -> list[str]:
    if not Path(vault_dir).is_dir():
        return []
    days = sorted(p.name for p in Path(vault_dir).iterdir() if p.is_dir() and is_day(p.name))
    return days[-last:] if last else days


def _manifests(vault_dir: Path, days: list[str], state_dir: Path, report: ScrubReport):
    """{day: manifest entries}; days without one get it from their files (if xz -t passes)."""
    out = {}
    for day in days:
        day_dir = vault_dir / day
        try:
            entries = read_manifest(manifest_path(day_dir))
        except ManifestError as e:
            report.findings.append(Finding(PRIMARY, day, manifest_name(day), "manifest", str(e)))
            continue
        if not entries:
            names = sorted(
                p.name
                for p in day_dir.iterdir()
                if p.is_file() and p.name.startswith(f"{day}_") and p.name != manifest_name(day)
            )
            bad = [n for n in names if n.endswith(".xz") and _xz_bad(day_dir / n)]
            if bad:
                report.findings.append(
                    Finding(PRIMARY, day, ", ".join(bad), "damaged", "xz -t failed; no manifest")
                )
                continue
            update_manifest(day_dir, names, state_dir / "manifest.lock")
            report.created_manifests.append(day)
            entries = read_manifest(manifest_path(day_dir))
        out[day] = entries
    return out


def _xz_bad(path: Path) -> bool:
    import subprocess

    return subprocess.run(["xz", "-t", "--", str(path)], capture_output=True).returncode != 0


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
    from ingest.layout import work_paths

    log = log or _log
    start = time.monotonic()
    vault = Path(config["vault_dir"])
    report = ScrubReport()
    state_dir = work_paths(config["work_dir"])["state"]
    chosen = vault_days(vault, days)
    manifests = _manifests(vault, chosen, state_dir, report)
    report.days = len(manifests)
    throttle = Throttle(mb_per_s * 1e6 if mb_per_s else None)
    reps = replicas(config)
    results = _check_everywhere(vault, manifests, reps, jobs, throttle)
    report.files = sum(len(v) for v in results.values() if isinstance(v, dict))
    # Bytes read: the primary's files, once per copy that could be checked.
    size = sum(
        (vault / d / n).stat().st_size
        for (d, n), c in results[PRIMARY].items()
        if c.status != "missing"
    )
    report.bytes = size * sum(isinstance(v, dict) for v in results.values())
    _repair_between_runs(config, lock_wait_s, vault, manifests, reps, results, report, log)
    _unlisted(vault, manifests, report)
    report.seconds = round(time.monotonic() - start, 2)
    _log_report(report, log)
    if alerts and any(f.status != "unlisted" for f in report.findings):
        _alert(report, alerts)
    return report


_Results = dict[str, dict[tuple[str, str], Check] | str]  # location -> its checks, or its error


def _check_everywhere(
    vault: Path,
    manifests: dict[str, dict[str, str]],
    reps: list[Replica],
    jobs: int,
    throttle: Throttle,
) -> _Results:
    """Every listed file checked on the primary (``jobs`` at once) and on each replica, all
    locations at the same time: location -> {(day, name): check}, or why it could not be."""

    def primary() -> dict[tuple[str, str], Check]:
        work = [(d, n, h) for d, entries in manifests.items() for n, h in entries.items()]
        with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="scrub") as pool:
            checks = pool.map(lambda w: check_file(vault / w[0] / w[1], w[2], throttle), work)
            return {(d, n): c for (d, n, _), c in zip(work, checks, strict=True)}

    def replica(r: Replica) -> dict[tuple[str, str], Check] | str:
        out = {}
        try:
            for day, entries in manifests.items():
                for c in r.check(day, entries, throttle):
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


def _repair_between_runs(
    config: dict[str, Any],
    lock_wait_s: float,
    vault: Path,
    manifests: dict[str, dict[str, str]],
    reps: list[Replica],
    results: _Results,
    report: ScrubReport,
    log: logging.Logger,
) -> None:
    """Record the findings and, holding the run lock, repair them and send new manifests."""
    # Repairs only while no workflow run is going: a run renames a rebuilt hour's files before
    # it updates the manifest, and a "repair" in between would put the old copy back. A day
    # whose manifest changed since it was checked is left for the next scrub.
    try:
        lock = wait_for_run_lock(config, lock_wait_s)
    except LockBusy as e:
        _repair(vault, manifests, reps, results, report, log, repair=False)
        if report.unrepaired:
            report.findings.append(Finding(PRIMARY, "-", "*", "not repaired", str(e)))
        lock = None
    if lock is not None:
        try:
            _drop_changed_days(vault, manifests, results, log)
            _repair(vault, manifests, reps, results, report, log)
            _send_new_manifests(vault, report, reps, results, log)
        finally:
            lock.release()


def _drop_changed_days(
    vault: Path, manifests: dict[str, dict[str, str]], results: _Results, log: logging.Logger
) -> None:
    """Forget the days whose manifest changed since they were checked (a run rebuilt them)."""
    for day in list(manifests):
        if read_manifest(manifest_path(vault / day)) != manifests[day]:
            log.info("scrub: %s changed while it was checked; next scrub", day)
            del manifests[day]
            for res in results.values():
                if isinstance(res, dict):
                    for key in [k for k in res if k[0] == day]:
                        del res[key]


def _log_report(report: ScrubReport, log: logging.Logger) -> None:
    """The totals, then each finding: an error when nothing mended it."""
    log.info(
        "scrub: %d day(s), %d file checks, %.1f MB in %.1f s, %d finding(s)",
        report.days,
        report.files,
        report.bytes / 1e6,
        report.seconds,
        len(report.findings),
    )
    for f in report.findings:
        (log.info if f.repair or f.status == "unlisted" else log.error)("scrub: %s", f.line())


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


def _repair(vault, manifests, reps, results, report, log, repair: bool = True) -> None:
    """Record every finding; with ``repair``, mend what a copy that verifies can mend."""
    by_name = {r.name: r for r in reps}
    primary = results[PRIMARY]
    for name, res in results.items():
        if isinstance(res, str):
            report.findings.append(Finding(name, "-", "*", "unreachable", res))
    # The primary first: a replica is repaired from it afterwards.
    for (day, fname), c in sorted(primary.items()):
        if c.status == "ok":
            continue
        finding = Finding(PRIMARY, day, fname, c.status, c.detail)
        report.findings.append(finding)
        for rname, res in results.items() if repair else ():
            if rname == PRIMARY or isinstance(res, str) or res[(day, fname)].status != "ok":
                continue
            try:
                got = install_verified(by_name[rname], vault / day, {fname: manifests[day][fname]})
            except (ReplicaError, OSError) as e:
                log.warning("scrub: repairing %s/%s from %s: %s", day, fname, rname, e)
                continue
            if got[fname].status == "ok":
                finding.repair = f"repaired from {rname}"
                primary[(day, fname)] = got[fname]
                break
    for rname, res in results.items():
        if rname == PRIMARY or isinstance(res, str):
            continue
        for (day, fname), c in sorted(res.items()):
            if c.status == "ok":
                continue
            finding = Finding(rname, day, fname, c.status, c.detail)
            report.findings.append(finding)
            if not repair or primary[(day, fname)].status != "ok":
                continue
            try:
                by_name[rname].put(day, {vault / day / fname: manifests[day][fname]})
            except (ReplicaError, OSError) as e:
                finding.detail += f"; copying again failed: {e}"
                continue
            finding.repair = "copied again from the primary"


def _send_new_manifests(vault, report, reps, results, log) -> None:
    """A manifest made by this scrub goes to every replica that answered, so a restore from
    it can verify the day."""
    for day in report.created_manifests:
        path = manifest_path(vault / day)
        for r in reps:
            if isinstance(results[r.name], str):
                continue
            try:
                r.put(day, {path: sha256_file(path)})
            except (ReplicaError, OSError) as e:
                log.warning("scrub: sending %s to %s: %s", path.name, r.name, e)


def _unlisted(vault: Path, manifests: dict[str, dict[str, str]], report: ScrubReport) -> None:
    """Vault files a manifest does not list: nothing to check them against (say so)."""
    for day, entries in manifests.items():
        for p in sorted((vault / day).iterdir()):
            if (
                p.is_file()
                and p.name.startswith(f"{day}_")
                and p.name not in entries
                and p.name != manifest_name(day)
            ):
                report.findings.append(
                    Finding(PRIMARY, day, p.name, "unlisted", "not in the manifest", "")
                )
