"""The PNG of tweets per minute for each server over a day, attached to the daily report mail.

Input is the hours' stats (``ingest.hours.stats.HourStats``):
``{"minutes": {server: {minute_key: count or null}}}``. A key is an ISO instant with offset:
local minutes as ingest.hours.hourly writes them (``2026-01-14T10:06+01:00``), UTC ones
(``2026-01-14T09:06:00+00:00``) and minute file stems (``2026-01-14T1006+0100``) alike.
Null means the server has no file for that minute (not connected: an outage). Outages are drawn
as gaps in the line over a red band; minutes of hours without stats (not built) are gaps without
a band.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ingest.hours.stats import HourStats
from ingest.layout import day_end

MINUTE = timedelta(minutes=1)


def parse_minute_key(key: str) -> datetime:
    """UTC start of the minute a stats key names."""
    try:
        instant = datetime.fromisoformat(key)
    except ValueError:
        # The minute file stem: YYYY-mm-ddTHHMM±hhmm
        instant = datetime.strptime(key, "%Y-%m-%dT%H%M%z")
    if instant.tzinfo is None:
        raise ValueError(f"minute key {key!r} has no UTC offset")
    return instant.astimezone(UTC).replace(second=0, microsecond=0)


def merge_minutes(
    stats_by_hour: Iterable[HourStats], server_names: Sequence[str]
) -> dict[str, dict[datetime, int | None]]:
    """Per server, minute -> count (None: outage). A minute listed by two hours (their read
    windows overlap) keeps its count if either hour has one, the larger if both do."""
    out: dict[str, dict[datetime, int | None]] = {s: {} for s in server_names}
    for stats in stats_by_hour:
        for server, minutes in (stats.get("minutes") or {}).items():
            if server not in out:
                continue
            merged = out[server]
            for key, count in minutes.items():
                t = parse_minute_key(key)
                old = merged.get(t)
                if count is None:
                    merged.setdefault(t, None)
                else:
                    merged[t] = count if old is None else max(old, int(count))
    return out


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """[start, end) index ranges where ``flags`` is true."""
    runs, start = [], None
    for i, f in enumerate([*flags, False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            runs.append((start, i))
            start = None
    return runs


def minutes_plot_png(
    day: str,
    stats_by_hour: list[HourStats],
    server_names: Sequence[str],
    tz: ZoneInfo | str | None = None,
) -> bytes:
    """PNG bytes: one panel per server, tweets per minute over the local day ``day`` in ``tz``
    (without ``tz``: UTC, over the minutes the stats cover)."""
    # Imported here: only the daily mail needs matplotlib, and it is slow to import. The Agg
    # canvas is used directly, without pyplot, so no global backend or GUI is involved.
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    per_server = merge_minutes(stats_by_hour, server_names)
    if zone is not None:
        start = datetime.fromisoformat(day).replace(tzinfo=zone).astimezone(UTC)
        end = day_end(day, zone)
    else:
        known = [t for m in per_server.values() for t in m]
        start = min(known) if known else datetime.fromisoformat(day).replace(tzinfo=UTC)
        end = max(known) + MINUTE if known else start + timedelta(days=1)
    n = int((end - start) / MINUTE)
    grid = [start + i * MINUTE for i in range(n)]
    shown_tz = zone or UTC

    fig = Figure(figsize=(12, 1.0 + 2.2 * max(1, len(server_names))), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(max(1, len(server_names)), 1, sharex=True, squeeze=False)[:, 0]
    x = [t.astimezone(shown_tz) for t in grid]
    for ax, server in zip(axes, server_names, strict=False):
        minutes = per_server.get(server, {})
        y = [
            float(minutes[t]) if minutes.get(t) is not None else math.nan  # gaps in the line
            for t in grid
        ]
        outage = [t in minutes and minutes[t] is None for t in grid]
        ax.plot(x, y, drawstyle="steps-post", linewidth=0.8, color="tab:blue")
        for a, b in _runs(outage):
            ax.axvspan(x[a], x[b - 1] + MINUTE, color="tab:red", alpha=0.25, linewidth=0)
        no_data = sum(1 for t in grid if t not in minutes)
        lost = sum(outage)
        total = sum(v for v in minutes.values() if v is not None)
        ax.set_ylabel(server)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.set_title(
            f"{server}: {total:,} tweets, {lost} outage minute(s)"
            + (f", {no_data} minute(s) without stats" if no_data else ""),
            loc="left",
            fontsize=9,
        )
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=shown_tz))
    if x:
        axes[-1].set_xlim(x[0], x[-1] + MINUTE)
    axes[-1].set_xlabel(f"time ({getattr(shown_tz, 'key', 'UTC')})")
    fig.suptitle(f"Tweets per minute, {day} (red: no file, server not connected)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
