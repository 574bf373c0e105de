"""A minute's ``.part`` file on disk: committed to its final name without losing a line, and
recovered after a crash.

A minute is written to ``{final}.part`` and at the minute's end fsynced and linked to ``final``
(``layout.minute_path``). If ``final`` already exists (a restart within the same minute), the
new lines are appended to it by an atomic rewrite; a minute file is never replaced by one with
less in it (``commit_minute``). ``recover_partials`` turns ``.part`` files left by a crash into
complete files.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ingest.atomic import atomic_write, fsync_dir

PART = ".part"

log = logging.getLogger(__name__)


def part_path(final: Path) -> Path:
    return final.with_name(final.name + PART)


class NameTaken(OSError):
    """A minute's final name is held by something that is not a regular file (a directory, a
    link, a FIFO ...): the minute cannot be written until that is moved away."""

    def __init__(self, final: Path, what: str) -> None:
        super().__init__(errno.EEXIST, f"{final} is {what}, not a minute file")
        self.final, self.what = final, what


def _kind(mode: int) -> str:
    for test, what in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return what
    return "not a regular file"


def _read_final(final: Path) -> tuple[bytes, os.stat_result] | None:
    """``final``'s bytes and stat; None if it does not exist. Raises NameTaken for anything but
    a regular file, which is never opened (no link followed, no FIFO or device read)."""
    try:
        st = os.lstat(final)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise NameTaken(final, _kind(st.st_mode))
    try:
        fd = os.open(final, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None  # removed meanwhile (a pull)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise NameTaken(final, "a symbolic link") from None
        raise
    with open(fd, "rb") as f:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):  # replaced between the lstat and the open
            raise NameTaken(final, _kind(fst.st_mode))
        return f.read(), fst


def commit_minute(part: Path, final: Path, data: bytes | None = None) -> None:
    """Make ``part``'s lines (or ``data``) the complete file ``final``, then remove ``part``.

    ``final`` is never replaced by less than it holds. If it exists (a restart within the same
    minute, a clock stepped back into a minute already written) the lines are appended: the
    concatenation goes to a temporary file, is fsynced and renamed over ``final``. Otherwise
    ``part`` is hard-linked to ``final``: unlike a rename, a link fails if ``final`` appeared
    meanwhile, and then the lines are appended. Only the collector (one per raw_dir) creates
    minute files; a pull may remove ``final`` at any moment, which at worst brings back the old
    lines with the new ones, never fewer. A kill at any point leaves the old whole file or the
    new whole file, and ``part``, which the next start commits again: lines that ``final``
    already ends with are not added twice. A ``final`` that is not a regular file is never
    touched: NameTaken is raised and ``part`` stays.
    """
    if data is None:
        try:
            os.link(part, final)
        except OSError:  # final exists, or a file system without hard links: append
            data = part.read_bytes()
        else:
            os.unlink(part)
            fsync_dir(final.parent)
            return
    part_stat = os.stat(part)  # no part: an error, never an empty commit
    found = _read_final(final)
    if found is not None and os.path.samestat(found[1], part_stat):
        os.unlink(part)  # linked by a commit killed before its unlink
        return
    old = found[0] if found is not None else None
    if old is None:
        atomic_write(final, data)
    elif not old.endswith(data):
        atomic_write(final, old + data)
    os.unlink(part)
    fsync_dir(final.parent)


def complete_lines(data: bytes) -> tuple[bytes, int]:
    """The complete JSON lines of ``data`` and how many lines were dropped (cut or garbled)."""
    *lines, tail = data.split(b"\n")
    dropped = 1 if tail.strip() else 0
    kept = []
    for line in lines:
        if not line.strip():
            continue
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            dropped += 1
            continue
        kept.append(line + b"\n")
    return b"".join(kept), dropped


@dataclass
class Recovery:
    files: int = 0
    lines: int = 0
    dropped_lines: int = 0
    # (final, lines) of minutes whose final name is taken (NameTaken): left in .part, retried
    waiting: list[tuple[Path, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"files": self.files, "lines": self.lines, "dropped_lines": self.dropped_lines}


def recover_partials(raw_dir: Path, logger: logging.Logger = log) -> Recovery:
    """Complete the ``.part`` files a killed collector left in ``raw_dir``.

    Complete lines are kept under the final ``.jsonl`` name; a cut last line (or a line that
    is not JSON, as after a power loss) is dropped and counted. A minute whose final name is
    taken by something that is not a regular file stays in ``.part`` (cleaned) and is listed in
    ``waiting``, for the collector to retry. Run only while holding the raw_dir lock: every
    ``.part`` file is then a leftover.
    """
    rec = Recovery()
    root = Path(raw_dir)
    # Interrupted rewrites: of a minute file (commit_minute), of a part (cleaned below).
    for pattern in ("*/*/.*.jsonl.tmp-*", f"*/*/.*.jsonl{PART}.tmp-*"):
        for tmp in root.glob(pattern):
            tmp.unlink(missing_ok=True)
    for part in sorted(root.glob(f"*/*/*.jsonl{PART}")):
        final = part.with_name(part.name[: -len(PART)])
        data, dropped = complete_lines(part.read_bytes())
        n = data.count(b"\n")
        try:
            commit_minute(part, final, data)
        except NameTaken as e:
            if dropped:
                atomic_write(part, data)
            rec.waiting.append((final, n))
            rec.dropped_lines += dropped
            logger.error("cannot recover %s: %s; its %d line(s) wait in %s", final, e, n, part)
            continue
        rec.files += 1
        rec.lines += n
        rec.dropped_lines += dropped
        logger.warning(
            "recovered %s: %d complete line(s) kept, %d cut or garbled line(s) dropped",
            final,
            n,
            dropped,
        )
    return rec
