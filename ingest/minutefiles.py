"""Put a minute file into a raw_dir without losing a line of it or of what is already there.

Shared by the pull (``ingest.pull.rsync``: a secondary's files arrive in a staging folder)
and the import (``ingest.imports.importer``: an archive's lines are sorted into staged minute
files first). Both end the same way: the staged file is fsynced and renamed into place, or,
when the raw_dir already holds that minute with other lines, replaced by the union of both.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from ingest.atomic import BUFFER, atomic_file, atomic_write
from ingest.complied import DayCache, scrub_bytes


def union_lines(old: bytes, new: bytes) -> bytes:
    """``old``'s lines, then the lines of ``new`` that ``old`` lacks (exact match), each ending
    in a newline. An unterminated last line of ``old`` (a copy cut short) is dropped when a line
    of ``new`` starts with it (its complete version), else kept and terminated."""
    *old_lines, old_tail = old.split(b"\n")
    *new_lines, new_tail = new.split(b"\n")
    if new_tail:
        new_lines.append(new_tail)
    out = [line + b"\n" for line in old_lines]
    if old_tail and not any(line.startswith(old_tail) for line in new_lines):
        out.append(old_tail + b"\n")
    present = set(out)
    out += [line + b"\n" for line in new_lines if line + b"\n" not in present]
    return b"".join(out)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_file(staged: Path, final: Path) -> None:
    """Rename ``staged`` to ``final``; across file systems (work_dir and raw_dir on separate
    disks) copy it to a temporary name beside ``final``, fsync and rename (mtime kept)."""
    try:
        os.replace(staged, final)
        return
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    st = staged.stat()
    with open(staged, "rb") as src, atomic_file(final) as dst:
        shutil.copyfileobj(src, dst, BUFFER)
    os.utime(final, ns=(st.st_atime_ns, st.st_mtime_ns))
    staged.unlink()


def place_minute(staged: Path, final: Path, complied: DayCache | None = None) -> tuple[str, int]:
    """Move a staged minute file into the raw_dir as ``final``, never losing a line of either.

    Returns ("new", 0) when ``final`` did not exist, ("same", 0) when it already held every
    line, ("merged", lines added) when it is replaced by the union (``union_lines``). The
    staged file is fsynced before it is renamed; a union is written to a temporary name,
    fsynced and renamed. The caller fsyncs the folders. Callers that may place the same
    ``final`` at once hold a lock around this (read, union, rename is not atomic).

    ``complied``: the staged file first loses the lines of complied posts and accounts
    (``ingest.complied.scrub_bytes``), so a late copy or an archive never brings back what a
    comply pass removed from the primary's copy.
    """
    if complied is not None:
        data, changed = scrub_bytes(staged.read_bytes(), complied.for_minute_file(final))
        if changed:
            atomic_write(staged, data)
    fsync_file(staged)
    try:
        old = final.read_bytes()
    except FileNotFoundError:
        final.parent.mkdir(parents=True, exist_ok=True)
        move_file(staged, final)
        return "new", 0
    new = staged.read_bytes()
    merged = old if new == old else union_lines(old, new)
    if merged == old:
        staged.unlink()
        return "same", 0
    atomic_write(final, merged)
    staged.unlink()
    return "merged", merged.count(b"\n") - old.count(b"\n")
