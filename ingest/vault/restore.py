"""Bring vault files back from a replica, by the hours' records and generations.

``restore`` is for a lost or damaged vault (the primary's disk died, an ``rm`` went wrong). Per
day and per hour, the replica's copy is installed when it is good (its files match its own
record, and that record is intact) and the primary's is missing, bad or an older generation;
an older generation never replaces a newer intact one on the primary. An hour's files are
fetched into a temporary folder inside the day folder, all checked (SHA-256 against the
record, ``xz -t``), fsynced and renamed together, the record last (``install_hour``, with the
build's journal, so a crash in between is finished like a build's). A file that does not
verify is never installed.

Hours built before records (none on either copy) are restored by the day's manifest as before:
the primary's, when it is there, readable and lists the hour, else the replica's, checked
first (a malformed one is not used). Once their files verify they get their record here
(``day.adopt``). The day report is checked against the manifest too. The primary's manifest
is then derived again from its records (``day.derive_manifest``), never copied: a replica's
manifest is only evidence, and a malformed or wrong one costs only its own day's report, named
in the result (``notes``); one day's problem never stops the others.

``install_verified`` (single files) and ``install_hour`` are also how ``scrub`` repairs the
primary; ``CopyDay`` is what scrub and restore read of a day on each copy before its files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest import complied
from ingest.atomic import fsync_dir, temp_name
from ingest.layout import Hour, report_path, work_paths
from ingest.text import plural
from ingest.vault import day as vault_day
from ingest.vault import records
from ingest.vault.manifest import (
    ManifestError,
    manifest_name,
    manifest_path,
    parse_manifest,
)
from ingest.vault.records import HourRecord, RecordError
from ingest.vault.replicate import (
    Check,
    Replica,
    ReplicaError,
    check_file,
    loose_generation,
    replicas,
)
from ingest.workflow_run import wait_for_run_lock

_log = logging.getLogger(__name__)


# --- what a copy holds of a day, besides its files ---------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One copy's record of an hour: intact (``record``) or damaged (``error``). A damaged
    record's generation, as its text still states it, counts as a claim: its files may be a
    newer build than any intact copy, so nothing older replaces them."""

    record: HourRecord | None
    data: bytes
    error: str = ""

    @property
    def generation(self) -> int | None:
        return self.record.generation if self.record else loose_generation(self.data)


@dataclass
class CopyDay:
    """What one copy (the primary or a replica) holds of a day besides its files: its hours'
    records and its manifest, read before any file is checked."""

    location: str
    records: dict[str, Claim] = field(default_factory=dict)  # hour label -> record
    manifest: dict[str, str] | None = None  # None: no manifest, or a malformed one
    manifest_error: str = ""
    manifest_sha: str | None = None  # of its bytes; None: no manifest
    manifest_mtime_ns: int | None = None  # the primary's: is the report newer than it?
    # The manifest was derived after the day's last change (``day.untouched``): if it differs
    # from what its records derive, that is rot, not staleness.
    current: bool = False

    def lines(self, names: Iterable[str]) -> dict[str, str] | None:
        """The manifest's lines for ``names``, if it lists every one of them."""
        names = list(names)
        if self.manifest is None or any(n not in self.manifest for n in names):
            return None
        return {n: self.manifest[n] for n in names}


def read_copy_day(folder: Path, day: str, location: str) -> CopyDay:
    """The records and manifest of ``day`` in ``folder`` (a day folder, or what was fetched
    of a replica's); each record checked by its own hash, the manifest parsed. An unreadable
    one counts as damaged."""
    copy = CopyDay(location)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return copy
    source = f"{location}:{day}/"
    for e in entries:
        label = records.label_of(e.name)
        if label is None and e.name != manifest_name(day):
            continue
        try:
            data = Path(e.path).read_bytes()
        except OSError as err:
            data, error = b"", f"{source}{e.name}: unreadable ({err})"
        else:
            error = ""
        if label is not None:
            record = None
            try:
                record = None if error else records.parse_record(data, source + e.name)
            except RecordError as err:
                error = str(err)
            copy.records[label] = Claim(record, data, error)
            continue
        copy.manifest_sha = hashlib.sha256(data).hexdigest()
        copy.manifest_mtime_ns = e.stat().st_mtime_ns
        copy.current = copy.manifest_mtime_ns == os.stat(folder).st_mtime_ns
        try:
            copy.manifest = None if error else parse_manifest(data.decode(), source + e.name)
        except UnicodeDecodeError:
            error = f"{source}{e.name}: not UTF-8 text"
        except ManifestError as err:
            error = str(err)
        copy.manifest_error = error
    return copy


def fetch_copy_day(replica: Replica, day: str) -> CopyDay:
    """A replica's records and manifest of ``day``, in one fetch (one rsync for a remote
    replica): every hour's record name is asked for, those it lacks simply do not come.
    Raises ReplicaError."""
    names = [records.record_name(Hour(day, hh).label) for hh in range(24)]
    with tempfile.TemporaryDirectory(prefix="vault-copy-") as tmp:
        replica.fetch(day, [*names, manifest_name(day)], Path(tmp))
        return read_copy_day(Path(tmp), day, replica.name)


def hour_label(name: str, day: str) -> str | None:
    """The label of the hour whose file (or record) ``name`` is, or None."""
    label = name[: len(day) + 3]
    try:
        hour = Hour.parse(label)
    except ValueError:
        return None
    if hour.day != day or hour.hh > 23:
        return None
    known = [*records.hour_file_names(hour), records.record_name(label)]
    return label if name in known else None


def day_labels(day: str, *copies: CopyDay) -> list[str]:
    """Every hour either copy holds a record of or whose files a readable manifest lists."""
    labels = set()
    for c in copies:
        labels |= set(c.records)
        labels |= {label for n in c.manifest or {} if (label := hour_label(n, day))}
    return sorted(labels)


# --- installing on the primary -------------------------------------------------------------


def install_verified(replica: Replica, day_dir: Path, expected: dict[str, str]) -> dict[str, Check]:
    """Fetch ``expected``'s files ({name: sha256}) of ``day_dir``'s day from ``replica`` and
    rename each into ``day_dir`` if it verifies; returns each file's check (status ok: installed).
    Raises ReplicaError when the replica cannot be read at all."""
    day_dir.mkdir(parents=True, exist_ok=True)
    staging = day_dir / f".restoring-{os.urandom(6).hex()}"
    staging.mkdir()
    try:
        replica.fetch(day_dir.name, sorted(expected), staging)
        checks = {}
        for name, digest in sorted(expected.items()):
            check = check_file(staging / name, digest)
            if check.status == "ok":
                with open(staging / name, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(staging / name, day_dir / name)
            checks[name] = check
        fsync_dir(day_dir)
        return checks
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass
class _Fetched:
    """A verified file waiting under its temporary name in the day folder (records.Staged)."""

    path: Path
    tmp: Path
    sha256: str
    size: int

    def commit(self, *, sync_dir: bool = True) -> None:
        os.replace(self.tmp, self.path)
        if sync_dir:
            fsync_dir(self.path.parent)


def install_hour(
    replica: Replica, day_dir: Path, files: dict[str, str], record: HourRecord | None
) -> dict[str, Check]:
    """Fetch an hour's ``files`` ({name: sha256}) from ``replica``, check them all, then rename
    them all into ``day_dir`` and write ``record`` (when given) last, as a build commits an
    hour (``records.commit_hour``). Nothing is renamed unless every file verifies: the hour is
    never left half old, half new. Returns each file's check. Raises ReplicaError."""
    day_dir.mkdir(parents=True, exist_ok=True)
    staging = day_dir / f".restoring-{os.urandom(6).hex()}"
    staging.mkdir()
    try:
        replica.fetch(day_dir.name, sorted(files), staging)
        checks = {name: check_file(staging / name, sha) for name, sha in sorted(files.items())}
        if any(c.status != "ok" for c in checks.values()):
            return checks
        staged = []
        for name, sha in sorted(files.items()):
            with open(staging / name, "rb") as f:
                os.fsync(f.fileno())
            # Temporary names beside their place, as the build's: the journal names them.
            tmp = temp_name(day_dir / name)
            os.replace(staging / name, tmp)
            staged.append(_Fetched(day_dir / name, tmp, sha, tmp.stat().st_size))
        if record is not None:
            records.commit_hour(day_dir, record, staged)
        else:
            for s in staged:
                s.commit(sync_dir=False)
            fsync_dir(day_dir)
        return checks
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- restore ---------------------------------------------------------------------------------


@dataclass
class DayRestore:
    day: str
    restored: list[str] = field(default_factory=list)
    intact: list[str] = field(default_factory=list)  # already on the primary, verified
    failed: dict[str, str] = field(default_factory=dict)  # name -> why
    notes: dict[str, str] = field(default_factory=dict)  # name -> what is wrong on the replica
    source: str = ""  # the replica it came from

    def lines(self) -> list[str]:
        """The day's counts, then each file by name: restored, intact, failed (why), notes."""
        origin = f" (from {self.source})" if self.source else ""
        out = [
            f"{self.day}: {len(self.restored)} restored, {len(self.intact)} intact, "
            f"{len(self.failed)} failed{origin}"
        ]
        out += [f"  restored: {self.day}/{n}" for n in sorted(self.restored)]
        out += [f"  intact: {self.day}/{n}" for n in sorted(self.intact)]
        out += [f"  FAILED: {self.day}/{n}: {why}" for n, why in sorted(self.failed.items())]
        out += [f"  note: {self.day}/{n}: {why}" for n, why in sorted(self.notes.items())]
        return out


def restore_summary(results: list[DayRestore]) -> str:
    """The one line a restore ends with."""
    sources = sorted({r.source for r in results if r.source})
    n = {k: sum(len(getattr(r, k)) for r in results) for k in ("restored", "intact", "failed")}
    days = plural(len(results), "day")
    origin = f" from {', '.join(sources)}" if sources else ""
    return (
        f"restore: {days}{origin}: {n['restored']} files restored, {n['intact']} intact, "
        f"{n['failed']} failed"
    )


def _check_ours(day_dir: Path, record: HourRecord, result: DayRestore, why: str) -> None:
    """The primary keeps its hour (``why``): its files are checked against its own record."""
    for name, entry in sorted(record.files.items()):
        check = check_file(day_dir / name, entry.sha256)
        if check.status == "ok":
            result.intact.append(name)
        else:
            result.failed[name] = f"{check.status} on the primary; {why}"
    result.intact.append(records.record_name(record.hour))


def _keep_ours(ours: Claim | None, theirs: Claim | None, replica: str) -> str | None:
    """Why the primary's copy of an hour stays as it is (None: the replica's may replace it)."""
    mine = ours.generation if ours is not None else None
    if theirs is None or theirs.record is None:
        if theirs is not None:
            return f"the record on {replica} is damaged ({theirs.error})"
        return f"{replica} has no record of the hour" if ours is not None else None
    if mine is not None and mine > theirs.record.generation:
        return (
            f"the primary holds generation {mine}, {replica} only generation "
            f"{theirs.record.generation}: not replaced"
        )
    return None


def _restore_hour(
    replica: Replica, day_dir: Path, label: str, ours: Claim | None, theirs: Claim | None
) -> DayRestore:
    """One hour: the replica's copy installed where it is good and the primary's is not newer."""
    result = DayRestore(day_dir.name)
    name = records.record_name(label)
    why = _keep_ours(ours, theirs, replica.name)
    if why is not None:
        if ours is not None and ours.record is not None:
            _check_ours(day_dir, ours.record, result, why)
        elif ours is not None:
            result.failed[name] = f"damaged on the primary ({ours.error}); {why}"
        else:
            result.failed[name] = f"not restored: {why}"
        return result
    assert theirs is not None and theirs.record is not None
    their = theirs.record
    same = ours is not None and ours.record == their
    if ours is not None and ours.record is not None and not same:
        if ours.record.generation == their.generation:
            result.failed[name] = (
                f"the primary and {replica.name} hold different records of generation "
                f"{their.generation}: not replaced (compare them by hand)"
            )
            return result
    need = {}
    for fname, entry in sorted(their.files.items()):
        if check_file(day_dir / fname, entry.sha256).status == "ok":
            result.intact.append(fname)
        else:
            need[fname] = entry.sha256
    if same and not need:
        result.intact.append(name)
        return result
    got = install_hour(replica, day_dir, need, None if same else their)
    if all(c.status == "ok" for c in got.values()):
        result.restored += [*need, *([] if same else [name])]
        return result
    bad = ", ".join(n for n, c in got.items() if c.status != "ok")
    for fname, c in got.items():
        result.failed[fname] = (
            f"{c.status} on {replica.name} {c.detail}".strip()
            if c.status != "ok"
            else f"not installed: {bad} of the same hour did not verify"
        )
    return result


def _restore_old_hour(
    replica: Replica, day_dir: Path, hour: Hour, lines: dict[str, str] | None, log: logging.Logger
) -> DayRestore:
    """An hour with no record on either copy: its files by the manifest ``lines``, then its
    record from them (generation 1) once every file verifies."""
    result = DayRestore(day_dir.name)
    if lines is None:
        return result  # no manifest lists it: nothing to check a copy against
    wanted = {}
    for name, digest in sorted(lines.items()):
        if check_file(day_dir / name, digest).status == "ok":
            result.intact.append(name)
        else:
            wanted[name] = digest
    if wanted:
        for name, check in install_verified(replica, day_dir, wanted).items():
            if check.status == "ok":
                result.restored.append(name)
            else:
                result.failed[name] = f"{check.status} on {replica.name} {check.detail}".strip()
    if not result.failed:
        vault_day.adopt(day_dir, hour, lines, log)
    return result


def _merge(into: DayRestore, part: DayRestore) -> None:
    into.restored += part.restored
    into.intact += part.intact
    into.failed.update(part.failed)
    into.notes.update(part.notes)


def _check_their_manifest(replica: str, ours: CopyDay, theirs: CopyDay, result: DayRestore) -> None:
    """Name a replica's manifest that is malformed or contradicts its own intact records: it is
    not used (scrub copies the primary's there)."""
    name = manifest_name(result.day)
    if theirs.manifest_error and not theirs.records and ours.manifest is None:
        # A day from before records, the primary's manifest gone too: the replica's manifest
        # was the only check of the day's hours there.
        result.failed[name] = (
            f"{theirs.manifest_error}: the day's hours on {replica} cannot be verified"
        )
        return
    if theirs.manifest_error:
        result.notes[name] = f"{theirs.manifest_error} (not used; scrub repairs it)"
        return
    listed = theirs.manifest or {}
    for claim in theirs.records.values():
        files = claim.record.files if claim.record else {}
        wrong = sorted(n for n, e in files.items() if listed.get(n, e.sha256) != e.sha256)
        if wrong:
            result.notes[name] = (
                f"{replica}:{result.day}/{name} lists {', '.join(wrong)} with a sha256 the "
                "hour's record does not have (not used; scrub repairs it)"
            )
            return


def _report_line(ours: CopyDay, theirs: CopyDay, report: Path) -> tuple[str | None, bool]:
    """(the sha256 the day report must have, whether the primary's is newer than its manifest
    and so taken as it is: a report written after the last manifest is not rot)."""
    if ours.manifest is not None and report.name in ours.manifest:
        newer = report.exists() and report.stat().st_mtime_ns > (ours.manifest_mtime_ns or 0)
        return ours.manifest[report.name], newer
    return (theirs.manifest or {}).get(report.name), False


def _restore_report(
    replica: Replica, day_dir: Path, ours: CopyDay, theirs: CopyDay, result: DayRestore
) -> bool:
    """The day report, checked against the primary's manifest, else the replica's; whether the
    primary's report is now verified (else its manifest does not list it as it is)."""
    report = report_path(day_dir.parent, day_dir.name)
    line, newer = _report_line(ours, theirs, report)
    if newer:
        result.intact.append(report.name)
        return True
    if line is None:
        if not report.exists() and replica.read(day_dir.name, report.name) is not None:
            why = theirs.manifest_error or f"{replica.name}'s manifest does not list it"
            result.failed[report.name] = f"not restored: nothing to verify it against ({why})"
        return False
    if check_file(report, line).status == "ok":
        result.intact.append(report.name)
        return True
    check = install_verified(replica, day_dir, {report.name: line})[report.name]
    if check.status == "ok":
        result.restored.append(report.name)
        return True
    result.failed[report.name] = f"{check.status} on {replica.name} {check.detail}".strip()
    return False


def _restore_compliance_log(
    replica: Replica, day_dir: Path, ours: CopyDay, theirs: CopyDay, result: DayRestore
) -> None:
    """The day's compliance log (``ingest.complied``), checked against the primary's manifest,
    else the replica's: without it, later builds and pulls could bring complied posts back."""
    path = complied.log_path(day_dir.parent, day_dir.name)
    line = (ours.manifest or {}).get(path.name) or (theirs.manifest or {}).get(path.name)
    if line is None:
        return
    if check_file(path, line).status == "ok":
        result.intact.append(path.name)
        return
    check = install_verified(replica, day_dir, {path.name: line})[path.name]
    if check.status == "ok":
        result.restored.append(path.name)
    else:
        result.failed[path.name] = f"{check.status} on {replica.name} {check.detail}".strip()


def restore_day(
    replica: Replica, vault_dir: Path, day: str, lock_path: Path, log: logging.Logger
) -> DayRestore:
    """Restore one day from ``replica``: its hours, its report, then its manifest derived."""
    day_dir = Path(vault_dir) / day
    day_dir.mkdir(parents=True, exist_ok=True)
    result = DayRestore(day)
    theirs = fetch_copy_day(replica, day)
    ours = read_copy_day(day_dir, day, "primary")
    _check_their_manifest(replica.name, ours, theirs, result)
    old_lines: dict[str, str] = {}
    for label in day_labels(day, ours, theirs):
        mine, their = ours.records.get(label), theirs.records.get(label)
        if mine is None and their is None:
            hour = Hour.parse(label)
            names = records.hour_file_names(hour)
            lines = ours.lines(names) or theirs.lines(names)
            _merge(result, _restore_old_hour(replica, day_dir, hour, lines, log))
            old_lines.update(lines or {})
        else:
            _merge(result, _restore_hour(replica, day_dir, label, mine, their))
    report_ok = _restore_report(replica, day_dir, ours, theirs, result)
    _restore_compliance_log(replica, day_dir, ours, theirs, result)
    had_manifest = manifest_path(day_dir).exists()
    if had_manifest or records.day_records(day_dir):
        vault_day.derive_manifest(
            day_dir, lock_path, log, adopt_legacy=False, lines=old_lines, hash_report=report_ok
        )
        if not had_manifest:
            result.restored.append(manifest_name(day))
    return result


def restore(
    config: dict[str, Any],
    source: str | None = None,
    days: Iterable[str] | None = None,
    log: logging.Logger | None = None,
    lock_wait_s: float = 600,
) -> list[DayRestore]:
    """Restore ``days`` (default: every day the replica holds) from replica ``source`` (default:
    the first configured one that answers), holding the workflow's run lock (LockBusy when a
    run holds it longer than ``lock_wait_s``). Raises ReplicaError when no replica can be
    read; a day that cannot be restored is named in its result, the others go on."""
    log = log or _log
    candidates = replicas(config)
    if source is not None:
        candidates = [r for r in candidates if r.name == source]
        if not candidates:
            known = ", ".join(r.name for r in replicas(config)) or "none configured"
            raise ReplicaError(f"vault_replicas: no replica named {source!r} (known: {known})")
    if not candidates:
        raise ReplicaError("no vault_replicas configured: nothing to restore from")
    # No workflow run at the same time (it could rebuild a day being restored); cron runs
    # meanwhile find the lock held and do nothing.
    lock = wait_for_run_lock(config, lock_wait_s)
    try:
        for problem in vault_day.settle_vault(Path(config["vault_dir"])):  # leftovers first
            log.warning("restore: %s", problem)
        return _restore(config, candidates, days, log)
    finally:
        lock.release()


def _restore(config, candidates, days, log) -> list[DayRestore]:
    errors = []
    lock_path = work_paths(config["work_dir"])["state"] / "manifest.lock"
    for replica in candidates:
        try:
            held = replica.days()
        except ReplicaError as e:
            errors.append(str(e))
            log.warning("%s", e)
            continue
        wanted = sorted(days) if days is not None else held
        results = []
        for day in wanted:
            if day not in held:
                results.append(DayRestore(day, failed={"*": f"not on replica {replica.name}"}))
                continue
            try:
                r = restore_day(replica, Path(config["vault_dir"]), day, lock_path, log)
            except (ReplicaError, OSError, ValueError) as e:
                # One day's problem (the replica went away, a disk error) costs only that day.
                r = DayRestore(day, failed={"*": str(e)})
            r.source = replica.name
            results.append(r)
        return results
    raise ReplicaError("no replica could be read: " + "; ".join(errors))
