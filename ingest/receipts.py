"""Receipts: what the workflow's build and report jobs leave in work_dir for Snakemake.

``build_hour`` and ``day_report`` write their vault files themselves, each to a temporary name
then renamed. Snakemake sees only these receipts as the jobs' outputs, so it never backs up,
restores (in place, unsynced) or deletes a vault file. A receipt is named after the run that
planned its job (``{key}.{run}.json``): it never exists before the run, so a planned hour is
built in the run that planned it, and `-n` lists it. The job removes its key's older receipts
once its own is written, so one per hour and one per day stay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.atomic import atomic_write_json, glob_escape
from ingest.layout import work_paths


def build_receipt(work_dir: str | Path, day: str, hh: str, run: str) -> Path:
    """Receipt of run ``run``'s build of hour ``{day}_{hh}`` (also as a pattern: "{day}")."""
    return work_paths(work_dir)["built"] / day / f"{day}_{hh}.{run}.json"


def report_receipt(work_dir: str | Path, day: str, run: str) -> Path:
    """Receipt of run ``run``'s report of ``day``."""
    return work_paths(work_dir)["reported"] / f"{day}.{run}.json"


def replace_receipt(path: str | Path, data: Any) -> list[Path]:
    """Write a receipt atomically, then remove the older ones of its key; return those.

    (Per-run receipts of the pull and parse jobs keep the latest few instead:
    write_receipt below.)
    """
    path = Path(path)
    atomic_write_json(path, data)
    key = path.name.split(".", 1)[0]
    older = [p for p in path.parent.glob(f"{glob_escape(key)}.*.json") if p != path]
    for p in older:
        p.unlink(missing_ok=True)
    return older


def write_receipt(path: Path, data: Any, keep: int = 48) -> None:
    """A run's receipt, written atomically; only the latest ``keep`` of its kind are kept."""
    atomic_write_json(path, data)
    for old in sorted(path.parent.glob("*.json"))[:-keep]:
        old.unlink(missing_ok=True)
