"""The per-hour stats file ``{day}_{HH}_stats.json``: its one reader.

The hourly merge writes it last (its existence means the hour is built); the merge itself
(a built hour's tweets file is merged into its rebuild, its inputs counted), the plan (inputs
seen), the day report and the mail's plot read it, all through ``read_stats``.

A stats file that exists but is not a JSON object is an error naming the file: the readers
cannot tell how many tweets the hour had, so none of them may guess. The hourly merge takes
such an hour as built from unknown inputs (its tweets file merged in, if readable).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypedDict

import orjson

from ingest.layout import VAULT_SUFFIXES


class HourStats(TypedDict, total=False):
    """What ``ingest.hours.hourly.build_hour`` writes (older builds may lack some keys)."""

    hour: str  # the hour's label, e.g. 2026-01-14_11
    servers: list[str]  # in config order
    counts: dict[str, int]  # per server: unique IDs counted for this hour
    total: int
    diff: int  # IDs not seen by every server
    diff_pct: float
    users: int
    minutes: dict[str, dict[str, int | None]]  # per server: local minute -> tweets or None
    skipped: dict[str, dict[str, int]]  # per server: reason -> lines
    missing_servers: list[str]  # servers without a single minute file for the hour
    # per server: raw file name -> its size when read (older builds: a list of names)
    inputs: dict[str, dict[str, int] | list[str]]
    # complied posts (issue 24): action -> IDs in the IDs file whose rows were removed
    complied: dict[str, int]


class StatsError(ValueError):
    """A stats file that exists but cannot be read as an hour's stats."""


def read_stats(path: str | Path) -> HourStats:
    """The stats in ``path``; ``FileNotFoundError`` when absent, ``StatsError`` when corrupt."""
    path = Path(path)
    data = path.read_bytes()
    try:
        stats = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise StatsError(
            f"{path}: unreadable hour stats ({e}); the next run rebuilds the hour"
        ) from None
    if not isinstance(stats, dict):
        raise StatsError(
            f"{path}: hour stats are not a JSON object; the next run rebuilds the hour"
        )
    return stats


def read_stats_if_built(path: str | Path) -> HourStats | None:
    """The stats in ``path``, or None when the hour has not been built (no file)."""
    try:
        return read_stats(path)
    except FileNotFoundError:
        return None


def complied_by_action(hours: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Posts removed for compliance, by action, summed over hours (their stats, or anything
    with their ``complied``): the day report's and the dashboard's count."""
    out: dict[str, int] = {}
    for h in hours:
        for action, n in (h.get("complied") or {}).items():
            out[action] = out.get(action, 0) + n
    return dict(sorted(out.items()))


def day_stats_paths(day_dir: str | Path, day: str) -> list[Path]:
    """The stats files of ``day``'s built hours in its vault folder, in hour order."""
    return sorted(Path(day_dir).glob(f"{day}_*_{VAULT_SUFFIXES['stats']}"))


def input_sizes(stats: HourStats) -> dict[str, dict[str, int | None]]:
    """Per server, the raw files a build read and their sizes (None: an older build's list)."""
    out: dict[str, dict[str, int | None]] = {}
    for server, names in stats.get("inputs", {}).items():
        if isinstance(names, dict):
            out[server] = dict(names)
        else:
            out[server] = {name: None for name in names}
    return out
