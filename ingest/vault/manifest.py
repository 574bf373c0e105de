"""A day's ``{day}_SHA256SUMS``: the SHA-256 of every vault file of the day, as the build wrote it.

The format is GNU ``sha256sum``'s (``<64 hex>  <name>``, one line per file, names relative to
the day folder), so anyone holding the files checks them with
``cd 2026-01-14 && sha256sum -c 2026-01-14_SHA256SUMS``. It reveals no tweet content and goes to
OSF beside the IDs files and the report.

The manifest is the reference scrub and restore trust, so it is updated only from files the
workflow has just written (``update_manifest`` with their names), never by rehashing whatever
the folder holds: a file that rots later keeps its original hash here and is found. An entry
whose file is gone stays (the file is to be restored, not forgotten). Written atomically.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from ingest.atomic import atomic_write
from ingest.locks import exclusive_lock

SUFFIX = "SHA256SUMS"
CHUNK = 1 << 20
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file and line."""


def manifest_name(day: str) -> str:
    return f"{day}_{SUFFIX}"


def manifest_path(day_dir: str | Path) -> Path:
    day_dir = Path(day_dir)
    return day_dir / manifest_name(day_dir.name)


def is_day(name: str) -> bool:
    return bool(_DAY.match(name))


def sha256_file(path: str | Path, throttle: Callable[[int], None] | None = None) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (``throttle(n)`` before each, if given)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            if throttle:
                throttle(len(chunk))
            h.update(chunk)
    return h.hexdigest()


def parse_manifest(text: str, source: str = "manifest") -> dict[str, str]:
    """{file name: sha256} of a manifest's text; ManifestError naming ``source`` and line."""
    entries = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m or "/" in m[2]:
            raise ManifestError(f"{source}: line {number} is not '<sha256>  <file name>': {line!r}")
        entries[m[2]] = m[1]
    return entries


def read_manifest(path: str | Path) -> dict[str, str]:
    """The entries of a manifest file; {} when there is none."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not UTF-8 text") from None
    return parse_manifest(text, str(path))


def format_manifest(entries: dict[str, str]) -> str:
    for name in entries:
        # sha256sum escapes such names with a leading backslash; the vault never has them.
        if "\n" in name or "\\" in name or "/" in name:
            raise ManifestError(f"cannot list {name!r} in a manifest")
    return "".join(f"{entries[name]}  {name}\n" for name in sorted(entries))


def update_manifest(day_dir: str | Path, names: Iterable[str], lock_path: str | Path) -> Path:
    """Hash the day's files ``names`` (just written by the workflow) into its manifest.

    A listed file older than the manifest keeps its entry (a build that left a file as it was
    must not bless rot it may have caught since); other entries are kept as they are.
    ``lock_path`` serialises writers of the same manifest. Returns the manifest's path. A named
    file that does not exist raises FileNotFoundError.
    """
    day_dir = Path(day_dir)
    path = manifest_path(day_dir)
    with exclusive_lock(lock_path):
        entries = read_manifest(path)
        try:
            written = path.stat().st_mtime_ns
        except FileNotFoundError:
            written = 0
        fresh = {
            name: sha256_file(day_dir / name)
            for name in names
            if name not in entries or (day_dir / name).stat().st_mtime_ns >= written
        }
        if any(entries.get(n) != h for n, h in fresh.items()) or not path.exists():
            entries.update(fresh)
            atomic_write(path, format_manifest(entries))
    return path
