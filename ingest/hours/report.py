"""The seed's day report, rebuilt from the day's per-hour stats (never appended to).

Two servers (the seed's layout)::

    hour	serv 1	serv 2	total	diff	diff %
    0	158234	158190	158301	178	0.11%

A server with no minute file at all for an hour (down, or a secondary not pulled in time)
shows ``-`` in its column. One server: ``hour\\ttweets``. More than two: one ``serv N`` column
per server, then total, diff (IDs not seen by every server) and diff %.

A day with posts removed for compliance (issue 24) ends with one more line, after the table::

    removed for compliance: deleted 1520, protected 310, suspended 402

(posts, by action; the counts above are of the IDs, which stay). ``sampled-stream comply``
writes the report again after it rewrote hours of the day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from ingest.atomic import atomic_write
from ingest.hours.stats import HourStats, complied_by_action, read_stats
from ingest.layout import Hour

COMPLIED_LINE = "removed for compliance: "


def report_table(
    day: str, stats: Iterable[HourStats | str | Path], server_names: Sequence[str]
) -> str:
    """The report text for ``day`` from hour stats (dicts or paths); hours of other days skipped.

    An hour built twice (two stats for one label) is shown once, from the last one given.
    """
    loaded = [s if isinstance(s, dict) else read_stats(s) for s in stats]
    by_hour: dict[Hour, HourStats] = {}
    for s in loaded:
        h = Hour.parse(s["hour"])
        if h.day == day:
            by_hour[h] = s
    names = list(server_names)
    if len(names) == 1:
        lines = ["hour\ttweets"]
    else:
        cols = [f"serv {i}" for i in range(1, len(names) + 1)]
        lines = ["\t".join(["hour", *cols, "total", "diff", "diff %"])]
    for h in sorted(by_hour):
        s = by_hour[h]
        counts = s.get("counts", {})
        if len(names) == 1:
            lines.append(f"{h.hh}\t{s['total']}")
            continue
        diff_pct = s.get("diff_pct")
        if diff_pct is None:
            diff_pct = round(100 * s["diff"] / s["total"], 2) if s["total"] else 0.0
        # A server without a single minute file for the hour shows "-", not a count of 0.
        missing = set(s.get("missing_servers", []))
        row = [str(h.hh), *("-" if n in missing else str(counts.get(n, 0)) for n in names)]
        row += [str(s["total"]), str(s["diff"]), f"{diff_pct:.2f}%"]
        lines.append("\t".join(row))
    removed = complied_by_action(by_hour.values())
    if removed:
        lines.append(COMPLIED_LINE + ", ".join(f"{a} {n}" for a, n in removed.items()))
    return "\n".join(lines) + "\n"


def write_day_report(
    day: str, stats_paths: Sequence[str | Path], out_path: str | Path, server_names: Sequence[str]
) -> str:
    """Write the day's report (atomically) from its hours' stats files; return its text."""
    text = report_table(day, stats_paths, server_names)
    atomic_write(out_path, text)
    return text
