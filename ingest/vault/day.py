"""A day's ``{day}_SHA256SUMS``, derived from its hour records, and which days need it again.

The manifest is never kept in step by hand: it is made from the day's records (each file they
name, with the hash the build took while writing it, and each record file itself) and the
day's report, whenever a record is newer than it (``stale_days``, checked every run for every
day: one listing per day folder). A day's hours without a record (built before records
existed) get one here, generation 1, when their files match the day's old manifest (or, for a
day that never had one, pass ``xz -t``): that is how an existing vault is upgraded, a few
days a run (``ADOPT_DAYS_PER_RUN``), newest first.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ingest import complied
from ingest.atomic import atomic_write, remove_stale_temps
from ingest.layout import Hour, report_path
from ingest.locks import exclusive_lock
from ingest.vault import records
from ingest.vault.manifest import (
    ManifestError,
    format_manifest,
    is_day,
    manifest_name,
    manifest_path,
    read_manifest,
    sha256_file,
)
from ingest.vault.records import FileEntry, HourRecord, RecordError

_log = logging.getLogger(__name__)

# Upgrading a vault built before records hashes each old day once (a 1 % day: ~3 GB): a few
# days a run, so a run's time stays bounded; every 10 minutes, a year takes about 15 hours.
ADOPT_DAYS_PER_RUN = 4
STATS_SUFFIX = "_stats.json"


@dataclass
class DayState:
    """What one listing of a day folder says about its derived files."""

    day: str
    stale: bool = False  # a record newer than the manifest, or records and no manifest
    legacy: list[str] = field(default_factory=list)  # hours built but without a record
    journalled: list[str] = field(default_factory=list)  # hours whose commit was cut short
    temps: set[str] = field(default_factory=set)  # files with temporary siblings


def day_state(day_dir: Path) -> DayState:
    """One ``scandir`` of ``day_dir`` (and a stat of each record) tells whether its manifest
    must be derived again."""
    state = DayState(day_dir.name)
    manifest_ns, newest, stats, recorded = None, 0, set(), set()
    with os.scandir(day_dir) as it:
        for e in it:
            if e.name == manifest_name(day_dir.name):
                manifest_ns = e.stat().st_mtime_ns
            elif (label := records.label_of(e.name)) is not None:
                recorded.add(label)
                newest = max(newest, e.stat().st_mtime_ns)
            elif e.name.endswith(STATS_SUFFIX):
                stats.add(e.name.removesuffix(STATS_SUFFIX))
            elif e.name.startswith(".") and e.name.endswith("_record.journal"):
                state.journalled.append(e.name[1:].removesuffix("_record.journal"))
            elif e.name.startswith(".") and ".tmp-" in e.name:
                state.temps.add(e.name[1:].rsplit(".tmp-", 1)[0])
    state.legacy = sorted(stats - recorded)
    state.stale = bool(recorded) and (manifest_ns is None or newest > manifest_ns)
    return state


def untouched(day_dir: Path) -> bool:
    """Nothing was created, renamed or removed in ``day_dir`` since its manifest was derived:
    ``derive_manifest`` sets the manifest's mtime to the folder's, and any later entry change
    moves the folder's. (Writers of a day never overlap its derivation: the workflow runs one
    at a time, and in a run the day's manifest waits for the day's builds.) Two stats a day, so
    a year of days costs milliseconds, not a listing of each."""
    try:
        return day_dir.stat().st_mtime_ns == manifest_path(day_dir).stat().st_mtime_ns
    except FileNotFoundError:
        return False


def vault_days(vault_dir: Path) -> list[Path]:
    try:
        return sorted(p for p in Path(vault_dir).iterdir() if is_day(p.name) and p.is_dir())
    except FileNotFoundError:
        return []


def days_to_derive(vault_dir: Path) -> list[str]:
    """The days whose manifest this run derives: every stale one, and the newest few with
    hours from before records (``ADOPT_DAYS_PER_RUN``)."""
    states = [day_state(d) for d in vault_days(vault_dir) if not untouched(d)]
    legacy = [s.day for s in states if s.legacy and not s.stale][-ADOPT_DAYS_PER_RUN:]
    return sorted({s.day for s in states if s.stale} | set(legacy))


def settle_vault(vault_dir: Path) -> list[str]:
    """Finish every hour's commit a crash cut short (``records.settle``), then remove the
    temporary files killed writers left (a build, a scrub's or restore's repair killed before
    its journal): what could not be finished, one line each (the hour must be rebuilt)."""
    problems = []
    for day_dir in (d for d in vault_days(vault_dir) if not untouched(d)):
        state = day_state(day_dir)
        for label in state.journalled:
            outcome = records.settle(day_dir, label)
            if outcome not in (None, "committed"):
                problems.append(f"{outcome}: rebuild hour {label} (--config hours={label})")
        if not records.journalled(day_dir):  # a journal left names its temps: they stay
            for name in state.temps:
                remove_stale_temps(day_dir / name)  # only those no live writer holds
    return problems


def derive_manifest(
    day_dir: Path,
    lock_path: Path,
    log: logging.Logger | None = None,
    *,
    adopt_legacy: bool = True,
    lines: Mapping[str, str] | None = None,
    hash_report: bool = True,
) -> Path:
    """Write ``day_dir``'s manifest from its records and report (when it differs).

    An hour whose record is damaged keeps its old manifest lines (scrub repairs the record
    from a replica); hours without a record are adopted first (``adopt``), unless
    ``adopt_legacy`` is false (scrub and restore adopt only hours whose files they verified).
    ``lines`` ({name: sha256}) count as old lines too, for names no record covers (an old
    hour's lines from a replica's manifest, when the primary's is gone). With ``hash_report``
    false the report is not hashed as it is (it could not be verified): it keeps its old
    line, if any.
    """
    log = log or _log
    day = day_dir.name
    path = manifest_path(day_dir)
    with exclusive_lock(lock_path):
        try:
            old = read_manifest(path)
        except ManifestError as e:
            log.warning("%s: derived again from the records", e)
            old = {}
        kept = {**old, **(lines or {})}
        entries: dict[str, str] = {}
        for label in day_state(day_dir).legacy:
            if not (adopt_legacy and adopt(day_dir, Hour.parse(label), kept, log)):
                entries.update(_old_lines(kept, label))  # still the reference scrub checks
        for label, record in sorted(records.day_records(day_dir).items()):
            if isinstance(record, RecordError):
                log.error("%s: its hour keeps its manifest lines until repaired", record)
                entries.update(_old_lines(kept, label))
                continue
            entries.update({name: e.sha256 for name, e in record.files.items()})
            entries[records.record_name(label)] = sha256_file(day_dir / records.record_name(label))
        _log_line(day_dir, old, entries)
        report = report_path(day_dir.parent, day)
        if hash_report and report.exists():
            entries[report.name] = sha256_file(report)
        elif not hash_report and report.name in kept:
            entries[report.name] = kept[report.name]
        if entries != old or not path.exists():
            atomic_write(path, format_manifest(entries))
        folder = day_dir.stat().st_mtime_ns
        os.utime(path, ns=(folder, folder))  # derived as of now: see untouched
    return path


def _log_line(day_dir: Path, old: dict[str, str], entries: dict[str, str]) -> None:
    """The day's compliance log (``ingest.complied``) into ``entries``: hashed when written
    since the manifest (a comply pass), else its old line, so rot or a loss is never
    blessed."""
    path = complied.log_path(day_dir.parent, day_dir.name)
    try:
        written = path.stat().st_mtime_ns
    except FileNotFoundError:  # lost: its line stays, for scrub or restore to mend it by
        if path.name in old:
            entries[path.name] = old[path.name]
        return
    try:
        derived = manifest_path(day_dir).stat().st_mtime_ns
    except FileNotFoundError:
        derived = 0
    if path.name in old and written < derived:
        entries[path.name] = old[path.name]
    else:
        entries[path.name] = sha256_file(path)


def _old_lines(old: dict[str, str], label: str) -> dict[str, str]:
    names = [*records.hour_file_names(Hour.parse(label)), records.record_name(label)]
    return {n: old[n] for n in names if n in old}


def adopt(day_dir: Path, hour: Hour, manifest: dict[str, str], log: logging.Logger) -> bool:
    """Give an hour built before records its record (generation 1), if its files are the ones
    the day's manifest lists (or, with no entry for them, if every .xz file passes ``xz -t``).
    """
    names = records.hour_file_names(hour)
    files: dict[str, FileEntry] = {}
    for name in names:
        p = day_dir / name
        if not p.is_file():
            log.error("%s: missing; hour %s not given a record (restore it)", p, hour)
            return False
        digest = sha256_file(p)
        if name in manifest and manifest[name] != digest:
            log.error("%s differs from its manifest; hour %s not given a record", p, hour)
            return False
        if name not in manifest and name.endswith(".xz") and _xz_damaged(p):
            log.error("%s fails xz -t; hour %s not given a record", p, hour)
            return False
        files[name] = FileEntry(digest, p.stat().st_size, _rows(day_dir, hour, name))
    record = HourRecord(hour.label, 1, files)
    records.write_record(day_dir / records.record_name(hour.label), record)
    log.info("hour %s: record written (generation 1) from its files", hour)
    return True


def _rows(day_dir: Path, hour: Hour, name: str) -> int | None:
    """An old hour's rows, from its stats (the IDs and tweets: total; the users: users)."""
    if name.endswith(STATS_SUFFIX):
        return None
    try:
        stats = json.loads((day_dir / f"{hour.label}{STATS_SUFFIX}").read_text())
    except (OSError, ValueError):
        return None
    key = "users" if name.endswith("_users.csv.xz") else "total"
    value = stats.get(key) if isinstance(stats, dict) else None
    return value if isinstance(value, int) else None


def _xz_damaged(path: Path) -> bool:
    return subprocess.run(["xz", "-t", "--", str(path)], capture_output=True).returncode != 0
