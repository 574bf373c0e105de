"""An hour's record: the commit that makes its files valid, and which version of it is newest.

The build writes ``{day}/{day}_{HH}_record.json`` last, after the hour's files are renamed into
place and fsynced (as git writes a commit after the objects it names). The renames are
journalled (``commit_hour``): a crash between them leaves ``.{day}_{HH}_record.journal``, and
``settle`` (the next run's start, the next build of the hour) finishes the commit.

A record lists each file of the hour (IDs, tweets, users, stats) with its SHA-256, size and row
count, all taken while the file was written, and a **generation** that grows by one with every
build of the hour. The hour's files are valid only as the set a record names; a copy (the
primary or a replica) is good when its files match its own record.

A record carries the SHA-256 of its own content (``record_sha256``), so a damaged record is
told from an intact one without any other file. Everything derived from an hour (the day's
``SHA256SUMS``, a replica's copy, an OSF upload) follows the newest generation: a newer
generation is never replaced by an older one.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from ingest.atomic import atomic_write, fsync_dir
from ingest.layout import Hour, vault_paths
from ingest.vault.manifest import sha256_file

SUFFIX = "record.json"
FORMAT = 1
_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2}_\d{2})_record\.json$")


class RecordError(ValueError):
    """A record that cannot be trusted (unreadable, malformed, or its own hash differs); the
    message names the file."""


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int
    rows: int | None = None  # lines of data (CSV rows without the header); None for the stats


@dataclass(frozen=True)
class HourRecord:
    hour: str  # the hour's label, e.g. 2026-01-14_05
    generation: int
    files: dict[str, FileEntry] = field(default_factory=dict)  # file name -> entry

    @property
    def tweets(self) -> int | None:
        """The rows of the hour's tweets file: how many tweets the vault holds for the hour."""
        entry = self.files.get(f"{self.hour}_tweets.csv.xz")
        return entry.rows if entry is not None else None

    def to_bytes(self) -> bytes:
        """The record's file content: canonical JSON with the hash of the rest appended."""
        body = _body(self)
        return _dump({**body, "record_sha256": _digest(body)})


def record_name(label: str) -> str:
    return f"{label}_{SUFFIX}"


def record_path(vault_dir: str | Path, hour: Hour) -> Path:
    return Path(vault_dir) / hour.day / record_name(hour.label)


def label_of(name: str) -> str | None:
    """The hour label of a record's file name, or None for any other name."""
    m = _NAME.match(name)
    return m[1] if m else None


def parse_record(data: bytes, source: str) -> HourRecord:
    """The record in ``data``; RecordError naming ``source`` unless it is intact."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise RecordError(f"{source}: not a record ({e})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("record_sha256"), str):
        raise RecordError(f"{source}: not a record (no record_sha256)")
    body = {k: v for k, v in raw.items() if k != "record_sha256"}
    if _digest(body) != raw["record_sha256"]:
        raise RecordError(f"{source}: damaged (its content does not match its record_sha256)")
    try:
        files = {
            name: FileEntry(e["sha256"], int(e["bytes"]), e.get("rows"))
            for name, e in body["files"].items()
        }
        record = HourRecord(body["hour"], int(body["generation"]), files)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise RecordError(f"{source}: malformed record ({type(e).__name__}: {e})") from None
    if body.get("format") != FORMAT:
        raise RecordError(f"{source}: record format {body.get('format')!r}, expected {FORMAT}")
    return record


def read_record(path: str | Path) -> HourRecord | None:
    """The record at ``path``; None when there is none; RecordError when it is damaged."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RecordError(f"{path}: unreadable ({e})") from None
    return parse_record(data, str(path))


def write_record(path: str | Path, record: HourRecord) -> bytes:
    """Write ``record`` atomically (temp, fsync, rename, fsync of the folder); its bytes."""
    data = record.to_bytes()
    atomic_write(path, data)
    return data


def hour_file_names(hour: Hour) -> list[str]:
    """The names an hour's record lists (IDs, tweets, users, stats), in the vault's order."""
    return [p.name for p in vault_paths(Path("."), hour).values()]


def day_records(day_dir: str | Path) -> dict[str, HourRecord | RecordError]:
    """{hour label: its record, or the RecordError of a damaged one} of a day folder."""
    out: dict[str, HourRecord | RecordError] = {}
    day_dir = Path(day_dir)
    try:
        names = sorted(p.name for p in day_dir.iterdir())
    except FileNotFoundError:
        return out
    for name in names:
        label = label_of(name)
        if label is None:
            continue
        try:
            record = read_record(day_dir / name)
        except RecordError as e:
            out[label] = e
            continue
        if record is not None:
            out[label] = record
    return out


def _body(record: HourRecord) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "hour": record.hour,
        "generation": record.generation,
        "files": {
            name: {"sha256": e.sha256, "bytes": e.bytes, "rows": e.rows}
            for name, e in sorted(record.files.items())
        },
    }


def _dump(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


# --- the commit: renames journalled, the record last ------------------------------------------


class Staged(Protocol):
    """A complete, fsynced temporary file waiting to be renamed (``XzWriter``, ``StagedFile``)."""

    path: Path
    tmp: Path
    sha256: str
    size: int

    def commit(self, *, sync_dir: bool = True) -> None: ...


def journal_path(day_dir: str | Path, label: str) -> Path:
    return Path(day_dir) / f".{label}_record.journal"


def commit_hour(day_dir: str | Path, record: HourRecord, staged: Sequence[Staged]) -> None:
    """Rename ``staged`` into place and write ``record``: the hour's new generation.

    First a journal names the record and each file's temporary name; then the renames, the
    folder's fsync, the record, and the journal goes. Killed in between, ``settle`` finishes
    it from the journal: every file is then either renamed already or still under its
    temporary name (a temp is removed only by the next build of the hour, after ``settle``).
    """
    day_dir = Path(day_dir)
    journal = journal_path(day_dir, record.hour)
    temps = {s.path.name: s.tmp.name for s in staged}
    atomic_write(journal, _dump({"record": record.to_bytes().decode(), "temps": temps}))
    for s in staged:
        s.commit(sync_dir=False)
    fsync_dir(day_dir)
    write_record(day_dir / record_name(record.hour), record)
    journal.unlink()


def settle(day_dir: str | Path, label: str) -> str | None:
    """Finish the commit of hour ``label`` that a crash interrupted, if any.

    Returns None when there was none, "committed" when it is finished now (or was, and only
    the journal was left), and an explanation when it cannot be finished (a file is neither
    in place nor under its temporary name): the hour must then be rebuilt; its tweets file,
    old or new, still holds every tweet the hour had.
    """
    day_dir = Path(day_dir)
    journal = journal_path(day_dir, label)
    try:
        data = orjson.loads(journal.read_bytes())
        record = parse_record(data["record"].encode(), f"{journal} (its record)")
        temps: dict[str, str] = data["temps"]
    except FileNotFoundError:
        return None
    except (orjson.JSONDecodeError, RecordError, KeyError, TypeError, AttributeError) as e:
        return f"{journal}: unreadable journal ({e})"
    path = day_dir / record_name(label)
    try:
        current = read_record(path)
    except RecordError:
        current = None
    if current is None or current.generation < record.generation:
        for name, entry in record.files.items():
            if not matches(day_dir / name, entry):
                tmp = day_dir / temps.get(name, "")
                if name not in temps or not matches(tmp, entry):
                    return f"{day_dir / name}: neither the new file nor its temporary copy"
                os.replace(tmp, day_dir / name)
        fsync_dir(day_dir)
        write_record(path, record)
    journal.unlink()
    return "committed"


def journalled(day_dir: str | Path) -> list[str]:
    """The labels of the hours whose commit a crash interrupted in ``day_dir``."""
    try:
        names = os.listdir(day_dir)
    except FileNotFoundError:
        return []
    return sorted(
        n[1:].removesuffix("_record.journal")
        for n in names
        if n.startswith(".") and n.endswith("_record.journal")
    )


def matches(path: Path, entry: FileEntry) -> bool:
    """Is ``path`` the file ``entry`` describes (size, then SHA-256)?"""
    try:
        return path.stat().st_size == entry.bytes and sha256_file(path) == entry.sha256
    except FileNotFoundError:
        return False
