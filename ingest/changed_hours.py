"""Which hours of an imported server changed since they were built: an index, not a walk.

An imported server's raw_dir is kept for good (it may be the only copy of an archive), so a
walk of it costs every run more with every archive imported: a year of minute files is
525,600 stats. The import marks each hour it places minutes into (``changed/{label}``, an
empty file, written before the minutes); the plan reads that folder instead of walking the
raw_dir, and retention removes a mark once every hour reading the hour's files was built
from them. ``changed/.complete`` says the marks cover the whole raw_dir: the first import
into an empty raw_dir writes it, or retention after one full walk (a raw_dir imported by an
older version). Without it, the plan and retention walk as before.

The import places under the workflow's run lock, so a mark is never removed between its
writing and the placing of its minutes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ingest.atomic import fsync_dir
from ingest.layout import Hour, work_paths

COMPLETE = ".complete"


def changed_dir(work_dir: str | Path, server: str) -> Path:
    return work_paths(work_dir)["imports"] / server / "changed"


def mark(work_dir: str | Path, server: str, hours: Iterable[Hour]) -> None:
    """Mark ``hours`` changed (durably: the marks are on disk before this returns)."""
    folder = changed_dir(work_dir, server)
    folder.mkdir(parents=True, exist_ok=True)
    for hour in hours:
        os.close(os.open(folder / hour.label, os.O_WRONLY | os.O_CREAT, 0o640))
    fsync_dir(folder)


def mark_complete(work_dir: str | Path, server: str) -> None:
    """From now on the marks cover the raw_dir: the plan and retention trust them."""
    mark(work_dir, server, [])
    folder = changed_dir(work_dir, server)
    os.close(os.open(folder / COMPLETE, os.O_WRONLY | os.O_CREAT, 0o640))
    fsync_dir(folder)


def changed(work_dir: str | Path, server: str) -> set[Hour] | None:
    """The marked hours; None when the marks do not cover the raw_dir (walk it instead)."""
    folder = changed_dir(work_dir, server)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return None
    if COMPLETE not in names:
        return None
    out = set()
    for name in names:
        try:
            out.add(Hour.parse(name))
        except ValueError:
            continue  # .complete, a temp file
    return out


def unmark(work_dir: str | Path, server: str, hour: Hour) -> None:
    (changed_dir(work_dir, server) / hour.label).unlink(missing_ok=True)
