"""Backfill (config ``hours``): each hour's job parses its own read window, then merges it.

No run-wide parse step and no state shared between jobs except files: the job parses the raw
minute files of its hour's read window into a temporary folder of its own (``$TMPDIR``, which
clusters point at node-local scratch), builds the hour from those intermediates and removes
the folder. So the hours of a range are independent jobs that run anywhere, in any order, on
as many cores or nodes as there are. The price: a minute file at an hour's edge is read by
both hours it may count for (``late_minutes`` + 1 of ~60 files), though in the files outside
its hour a job parses only the lines that may hold its own late copies (``OtherHours``). The
cron mode keeps its run-wide parse of the minutes that arrived.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ingest.hours.minutes import parse_many
from ingest.layout import Rejected


@dataclass
class ParsedWindow:
    # server -> [(tweets_tsv, users_tsv), ...]: build_hour's ``inputs``
    inputs: dict[str, list[tuple[str, str]]]
    # raw files that could not be read at all (named in the log): the hour is built without
    skipped_files: list[Rejected]
    files: int = 0  # raw files parsed
    seconds: float = 0.0  # the parse's wall time


def parse_window(
    raw: Mapping[str, Sequence[str | Path]],
    folder: Path,
    tz_name: str,
    late_minutes: int,
    workers: int = 1,
    log_path: str | None = None,
    for_hour: str | None = None,
) -> ParsedWindow:
    """Parse each server's raw minute files (``raw``) into intermediates under ``folder``;
    ``for_hour``: the label of the only hour the intermediates are for (``parse_many``)."""
    started = time.monotonic()
    jobs = []
    for server, files in raw.items():
        (folder / server).mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(files):
            base = folder / server / f"{i:05d}"
            jobs.append((str(path), f"{base}.tweets.tsv", f"{base}.users.tsv", server))
    # No fsync: the folder is gone with the job whatever happens; a new job parses again.
    result = parse_many(
        jobs, tz_name, late_minutes, workers, log_path, durable=False, for_hour=for_hour
    )
    unusable = {r.path for r in result.skipped_files}
    inputs: dict[str, list[tuple[str, str]]] = {server: [] for server in raw}
    for path, tweets, users, server in jobs:
        if path not in unusable:
            inputs[server].append((tweets, users))
    return ParsedWindow(inputs, result.skipped_files, len(result.metas), time.monotonic() - started)


@contextmanager
def parsed_window(
    raw: Mapping[str, Sequence[str | Path]],
    tz_name: str,
    late_minutes: int,
    workers: int = 1,
    log_path: str | None = None,
    for_hour: str | None = None,
) -> Iterator[ParsedWindow]:
    """``parse_window`` into a temporary folder, removed when the block ends (or fails)."""
    with tempfile.TemporaryDirectory(prefix="sampled-stream-window-") as tmp:
        yield parse_window(raw, Path(tmp), tz_name, late_minutes, workers, log_path, for_hour)
