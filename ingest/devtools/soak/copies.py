"""The vault's copies in the soak: the primary's ``vault_dir`` and each replica's folder (the
ssh replica's too: its sshd is on this machine). What the injector damages there (one bit of
one file, as rot does: no time stamp changes), and the end's checks, read from the disks
themselves, never from the product's receipts: do the copies agree hour by hour, and is each
damaged file again what its copy's record says.

A file is one ``Spot``: a copy (``primary`` or a replica's name), a day and a file name. Its
``unit`` is what damaging it puts at risk: its hour (the four files and the record), or its
day (the report and the manifest).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.complied import log_path
from ingest.layout import Hour, report_path
from ingest.vault import records
from ingest.vault.manifest import ManifestError, is_day, manifest_name, read_manifest, sha256_file
from ingest.vault.records import HourRecord, RecordError
from ingest.vault.replicate import loose_generation
from ingest.vault.restore import hour_label

PRIMARY = "primary"
CONTEXT = 12  # bytes kept on each side of a flipped byte: what it looks like in its file


@dataclass(frozen=True)
class Spot:
    """One file of one copy of the vault."""

    location: str
    day: str
    name: str

    def path(self, copies: dict[str, Path]) -> Path:
        return copies[self.location] / self.day / self.name

    @property
    def label(self) -> str | None:
        """The hour whose file or record it is; None for the day's report and manifest."""
        return hour_label(self.name, self.day)

    @property
    def unit(self) -> str:
        return self.label or self.day

    def describe(self) -> str:
        """As scrub's findings name a file: ``usb: 2026-12-07/2026-12-07_14_IDs.txt.xz``."""
        return f"{self.location}: {self.day}/{self.name}"


def day_dirs(root: Path) -> list[Path]:
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and is_day(p.name))
    except FileNotFoundError:
        return []


def hour_names(label: str) -> list[str]:
    """An hour's four files, then its record."""
    return [*records.hour_file_names(Hour.parse(label)), records.record_name(label)]


def day_names(day: str) -> list[str]:
    return [report_path(Path("."), day).name, manifest_name(day)]


def spots(copies: dict[str, Path]) -> list[Spot]:
    """Every file a flip may hit: each recorded hour's files and record, each day's report and
    manifest, on every copy."""
    out = []
    for location, root in copies.items():
        for day_dir in day_dirs(root):
            labels = [records.label_of(p.name) for p in day_dir.iterdir()]
            names = [n for label in sorted(filter(None, labels)) for n in hour_names(label)]
            names += day_names(day_dir.name)
            out += [Spot(location, day_dir.name, n) for n in names if (day_dir / n).is_file()]
    return out


# --- what each copy holds ------------------------------------------------------------------------


def read_record(day_dir: Path, label: str) -> HourRecord | str | None:
    """A copy's record of an hour, why it cannot be trusted, or None when it has none."""
    try:
        return records.read_record(day_dir / records.record_name(label))
    except RecordError as e:
        return str(e)


def good_generation(day_dir: Path, label: str) -> int | None:
    """The generation of a copy's hour when its record is intact and every file matches it."""
    record = read_record(day_dir, label)
    if not isinstance(record, HourRecord):
        return None
    if not all(records.matches(day_dir / n, e) for n, e in record.files.items()):
        return None
    return record.generation


def claimed_generation(day_dir: Path, label: str) -> int | None:
    """The generation a copy's record states, damaged or not (what scrub goes by)."""
    try:
        return loose_generation((day_dir / records.record_name(label)).read_bytes())
    except OSError:
        return None


def sha_or_none(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def derived_manifest(day_dir: Path) -> dict[str, str]:
    """What a day's manifest must list: every file its intact records name, each record file,
    the report and the compliance log (as ``day.derive_manifest`` makes it)."""
    out: dict[str, str] = {}
    for label, record in records.day_records(day_dir).items():
        if isinstance(record, HourRecord):
            out.update({n: e.sha256 for n, e in record.files.items()})
            out[records.record_name(label)] = sha256_file(day_dir / records.record_name(label))
    for path in (report_path(day_dir.parent, day_dir.name), log_path(day_dir.parent, day_dir.name)):
        if path.exists():
            out[path.name] = sha256_file(path)
    return out


def repairable(copies: dict[str, Path], spot: Spot) -> bool:
    """Can scrub mend ``spot`` from another copy? The soak damages no more than the copies can
    survive, as it never takes both collectors down: an hour's file only while another copy's
    hour is good at a generation at least as new as the spot's copy's; a report only while the
    primary's manifest vouches for it and another copy holds the same bytes (a manifest is
    derived from the records again)."""
    others = [loc for loc in copies if loc != spot.location]
    if spot.label is not None:
        mine = claimed_generation(copies[spot.location] / spot.day, spot.label) or 0
        return any(
            (good_generation(copies[loc] / spot.day, spot.label) or 0) >= max(mine, 1)
            for loc in others
        )
    if spot.name == manifest_name(spot.day):
        return True
    try:
        vouched = read_manifest(copies[PRIMARY] / spot.day / manifest_name(spot.day))
    except ManifestError:
        return False
    sha = sha_or_none(spot.path(copies))
    return (
        sha is not None
        and vouched.get(spot.name) == sha
        and any(sha_or_none(copies[loc] / spot.day / spot.name) == sha for loc in others)
    )


# --- the damage ----------------------------------------------------------------------------------


def flip(path: Path, rnd: random.Random) -> dict[str, Any]:
    """Flip one bit of one byte of ``path`` in place, as rot does: the file keeps its inode and
    its time stamps (scrub takes a report newer than its manifest as written since; the plan
    and the replicas go by records' times). What was flipped, for the evidence."""
    st = path.stat()
    offset = rnd.randrange(st.st_size)
    bit = 1 << rnd.randrange(8)
    with open(path, "r+b") as f:
        lo = max(0, offset - CONTEXT)
        f.seek(lo)
        around = bytearray(f.read(2 * CONTEXT + 1))
        before = around[offset - lo]
        around[offset - lo] ^= bit
        f.seek(offset)
        f.write(bytes([before ^ bit]))
        f.flush()
        os.fsync(f.fileno())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return {
        "offset": offset,
        "before": before,
        "after": before ^ bit,
        "inode": st.st_ino,
        "size": st.st_size,
        "flipped": bytes(around).hex(),  # the flipped byte amid its neighbours
    }


def still_flipped(path: Path, flipped: dict[str, Any]) -> bool:
    """Does ``path`` still hold the flipped byte? (The product never writes a vault file in
    place: a repaired or rebuilt file is a new one, renamed over it.)"""
    try:
        st = path.stat()
        if (st.st_ino, st.st_size) != (flipped["inode"], flipped["size"]):
            return False
        with open(path, "rb") as f:
            f.seek(flipped["offset"])
            return f.read(1) == bytes([flipped["after"]])
    except OSError:
        return False


def carried(path: Path, flipped: dict[str, Any]) -> bool:
    """Are the flipped bytes (the flipped byte amid its neighbours) in ``path``? A repair
    brings the old bytes back and a rebuild writes new ones; a rebuild that took them over
    from the damaged file (a stats file merged into the next generation's) keeps them, now
    vouched for by a new record."""
    if "flipped" not in flipped:
        return False
    bad = bytes.fromhex(flipped["flipped"])
    lo = max(0, flipped["offset"] - CONTEXT)
    good = bytearray(bad)
    good[flipped["offset"] - lo] = flipped["before"]
    try:
        data = path.read_bytes()
    except OSError:
        return False
    # Mended in place, the flipped bytes found elsewhere are other bytes that read the same (a
    # stats file's "19:52": 20 beside its mended "19:12": 20), not the flip carried over.
    return data[lo : lo + len(good)] != good and bad in data


def spot_problem(copies: dict[str, Path], spot: Spot) -> str:
    """'' when the spot's file is what its copy says it must be (an hour's file: its record;
    a record: intact; a report: its copy's manifest line; a manifest: derived from its copy's
    records and report); else why not."""
    day_dir = copies[spot.location] / spot.day
    path = day_dir / spot.name
    if not path.is_file():
        return "missing"
    if spot.label is not None:
        record = read_record(day_dir, spot.label)
        if not isinstance(record, HourRecord):
            return record or "no record"
        entry = record.files.get(spot.name)
        if spot.name == records.record_name(spot.label) or (
            entry is not None and records.matches(path, entry)
        ):
            return ""
        return f"differs from its record (generation {record.generation})"
    try:
        manifest = read_manifest(day_dir / manifest_name(spot.day))
    except ManifestError as e:
        return str(e)
    if spot.name == manifest_name(spot.day):
        return "" if manifest == derived_manifest(day_dir) else "not as derived from the records"
    return "" if manifest.get(spot.name) == sha256_file(path) else "differs from its manifest"


# --- do the copies agree? ------------------------------------------------------------------------


def hour_disagreements(copies: dict[str, Path]) -> list[str]:
    """Every hour any copy holds whose record is not intact and equal (generation, file hashes)
    on every copy, or whose files on some copy do not match it: one line each, saying where."""
    hours: set[tuple[str, str]] = set()
    for root in copies.values():
        for day_dir in day_dirs(root):
            found = (hour_label(p.name, day_dir.name) for p in day_dir.iterdir())
            hours |= {(day_dir.name, label) for label in found if label}
    out = []
    for day, label in sorted(hours):
        problems = _hour_problems(copies, day, label)
        if problems:
            out.append(f"{label}: {'; '.join(problems)}")
    return out


def _hour_problems(copies: dict[str, Path], day: str, label: str) -> list[str]:
    problems = []
    held: dict[str, HourRecord] = {}
    for location, root in copies.items():
        record = read_record(root / day, label)
        if not isinstance(record, HourRecord):
            problems.append(f"{location}: {record or 'no record'}")
            continue
        held[location] = record
        bad = [n for n, e in record.files.items() if not records.matches(root / day / n, e)]
        if bad:
            problems.append(f"{location}: {', '.join(bad)} differ from its record")
    primary = held.get(PRIMARY)
    for location, record in held.items():
        if primary is not None and record != primary:
            what = "other files" if record.generation == primary.generation else "generation"
            problems.append(
                f"{location}: generation {record.generation} ({what}), primary's "
                f"{primary.generation}"
            )
    return problems


def day_disagreements(copies: dict[str, Path]) -> list[str]:
    """Every day whose report, manifest or compliance log differs between the copies, or whose
    primary manifest is not the one its records and report derive."""
    days = sorted({d.name for root in copies.values() for d in day_dirs(root)})
    out = []
    for day in days:
        for name in [*day_names(day), log_path(".", day).name]:
            shas = {loc: sha_or_none(root / day / name) for loc, root in copies.items()}
            if len(set(shas.values())) > 1:
                held = ", ".join(f"{loc} {(s or 'missing')[:12]}" for loc, s in shas.items())
                out.append(f"{day}/{name}: {held}")
        problem = spot_problem(copies, Spot(PRIMARY, day, manifest_name(day)))
        if problem and problem != "missing":
            out.append(f"{day}/{manifest_name(day)} on the primary: {problem}")
    return out
