"""Free disk space once it is safe: intermediates after their hours are built, raw files later.

A raw minute file is read by up to three hours (its own, the one after it starts a minute
later, the one before it through the late window). Nothing is removed until every one of
those hours is built from it: its stats file (written last, after the three .xz files) lists
the file among the build's inputs, with the size it has now. A secondary's minutes that arrive
after the hour was built, or a minute file that grew, stay until a rebuild has merged them in.
A raw file goes only once ``retention.keep_raw_hours`` have passed by its name's minute and by
its modification time (a clock stepped forward, or a file named in the future, keeps it), and
once each hour reading it is on every replica that is not ``optional``, as its record is now
(a replication receipt newer than the record): with the primary's disk dead, the hour is
then still somewhere.
The raw files of an imported server (``servers[].imported``) are never deleted unless
``retention.delete_imported`` says so: the archive they came from may be gone. Their
intermediates go as any others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ingest import changed_hours, layout
from ingest.atomic import atomic_write_json
from ingest.hours.plan import intermediate
from ingest.hours.stats import StatsError, input_sizes, read_stats_if_built
from ingest.layout import MinuteFile, work_paths
from ingest.vault.replicate import copied

log = logging.getLogger(__name__)


@dataclass
class CleanSummary:
    intermediates_removed: int = 0
    raw_removed: int = 0
    raw_held: int = 0  # old enough to go, but their hours are not on every replica yet


def clean(config: dict[str, Any], now: datetime) -> CleanSummary:
    tz = ZoneInfo(config["timezone"])
    late = config["late_minutes"]
    keep = timedelta(hours=config["retention"]["keep_raw_hours"])
    vault = Path(config["vault_dir"])
    inputs: dict[layout.Hour, dict[str, dict[str, int | None]] | None] = {}
    copies = _Copies(config)

    def built_from(h: layout.Hour, f: MinuteFile, size: int) -> bool:
        """Is hour ``h`` built, and did its build read ``f`` at its current size?"""
        if h not in inputs:
            inputs[h] = _built_inputs(layout.vault_paths(vault, h)["stats"])
        read = inputs[h]
        if read is None or f.path.name not in read.get(f.server, {}):
            return False
        recorded = read[f.server][f.path.name]
        return recorded is None or recorded == size  # None: an older build, names only

    summary = CleanSummary()
    for s in config["servers"]:
        raw_dir = Path(s["raw_dir"])
        keep_all = s["imported"] and not config["retention"]["delete_imported"]
        marked = changed_hours.changed(config["work_dir"], s["name"]) if s["imported"] else None
        unbuilt: set[layout.Hour] = set()  # hours holding a file not every reader was built from
        for hour, files in _files_by_hour(s["name"], raw_dir, tz, marked):
            for f in files:
                try:
                    st = f.path.stat()
                except FileNotFoundError:
                    continue
                if not all(
                    built_from(h, f, st.st_size) for h in layout.hours_reading(f.minute, tz, late)
                ):
                    unbuilt.add(hour)
                    continue
                summary.intermediates_removed += _remove_intermediates(config["work_dir"], f)
                if keep_all:
                    continue
                if now - f.minute >= keep and now.timestamp() - st.st_mtime >= keep.total_seconds():
                    if not all(
                        copies.on_every_replica(h) for h in layout.hours_reading(f.minute, tz, late)
                    ):
                        summary.raw_held += 1
                        continue
                    f.path.unlink(missing_ok=True)
                    summary.raw_removed += 1
        if s["imported"]:
            _settle_marks(config["work_dir"], s["name"], marked, unbuilt)
        if not keep_all:  # a kept raw_dir loses no file: no folder to prune, no walk
            _prune_empty_dirs(raw_dir, now)
    _prune_empty_dirs(work_paths(config["work_dir"])["minutes"], now)
    _remove_empty_logs(work_paths(config["work_dir"])["logs"] / "parse")
    # What the health shows: raw files kept for a replica (read by ingest.observe.health).
    held = {"raw_held": summary.raw_held, "at": now.isoformat()}
    atomic_write_json(work_paths(config["work_dir"])["state"] / "retention.json", held)
    return summary


def _files_by_hour(
    server: str, raw_dir: Path, tz: ZoneInfo, marked: set[layout.Hour] | None
) -> list[tuple[layout.Hour, list[MinuteFile]]]:
    """The raw files to look at, by the hour they sit in: those of the marked hours of an
    imported server (``ingest.changed_hours``), else every file of the raw_dir."""
    if marked is None:  # one listing of every hour folder
        hours = sorted(layout.raw_hours(raw_dir))
        first = layout.hour_bounds(hours[0], tz) if hours else None
        last = layout.hour_bounds(hours[-1], tz) if hours else None
        if first is None or last is None:
            return []
        by_hour: dict[layout.Hour, list[MinuteFile]] = {}
        for f in layout.minute_files(server, raw_dir, first[0], last[1], tz):
            by_hour.setdefault(layout.hour_of(f.minute, tz), []).append(f)
        return sorted(by_hour.items())
    out = []
    for hour in sorted(marked):
        bounds = layout.hour_bounds(hour, tz)
        if bounds is not None:
            out.append((hour, layout.minute_files(server, raw_dir, bounds[0], bounds[1], tz)))
    return out


def _settle_marks(
    work_dir: str, server: str, marked: set[layout.Hour] | None, unbuilt: set[layout.Hour]
) -> None:
    """An imported server's marks after this pass: a marked hour whose files every reader
    was built from is done; after a full walk (no complete marks yet), the hours still to
    build are marked and the marks declared complete, so later runs need no walk."""
    if marked is None:
        changed_hours.mark(work_dir, server, unbuilt)
        changed_hours.mark_complete(work_dir, server)
        return
    for hour in marked - unbuilt:
        changed_hours.unmark(work_dir, server, hour)


class _Copies:
    """Whether an hour's newest build is on every replica that is not optional (cached)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.vault, self.work_dir = Path(config["vault_dir"]), config["work_dir"]
        self.required = [r["name"] for r in config["vault_replicas"] if not r["optional"]]
        self.known: dict[layout.Hour, bool] = {}

    def on_every_replica(self, hour: layout.Hour) -> bool:
        if hour not in self.known:
            self.known[hour] = all(
                copied(self.work_dir, self.vault, replica, hour) for replica in self.required
            )
        return self.known[hour]


def _built_inputs(stats_path: Path) -> dict[str, dict[str, int | None]] | None:
    """The raw files (name -> size) a built hour read per server; None if it is not built.

    A damaged stats file counts as not built: the plan rebuilds the hour, and until then
    nothing it read may go.
    """
    try:
        stats = read_stats_if_built(stats_path)
    except StatsError as e:
        log.warning("%s: keeping the hour's raw files until it is rebuilt", e)
        return None
    if stats is None:
        return None
    return {
        server: {Path(name).name: size for name, size in files.items()}
        for server, files in input_sizes(stats).items()
    }


def _remove_intermediates(work_dir: str, f: MinuteFile) -> int:
    removed = 0
    for kind in ("tweets", "users"):
        p = intermediate(work_dir, f, kind)
        if p.exists():
            p.unlink()
            removed += 1
    return removed


def _remove_empty_logs(folder: Path) -> None:
    """A run's parse log that says something (skipped lines) is kept; an empty one goes."""
    if folder.is_dir():
        for log_file in folder.glob("*.log"):
            if log_file.stat().st_size == 0:
                log_file.unlink()


def _prune_empty_dirs(root: Path, now: datetime) -> None:
    """Remove empty folders untouched for an hour (a collector may have just made one). Only
    the layout's folders: one named like a file (``*.jsonl``) is something else, which the
    plan reports until someone looks at it."""
    if not root.is_dir():
        return
    cutoff = now.timestamp() - 3600
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if d.suffix:
            continue
        try:
            if d.stat().st_mtime < cutoff:
                d.rmdir()
        except OSError:
            pass  # not empty
