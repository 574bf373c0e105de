"""The static dashboard: one folder of self-contained HTML pages any web server can serve.

- ``index.html``: the system's health, the last 7 days as a heat map of tweets per minute per
  server (a cell a minute; outages red, zero minutes black, hours not built grey; each cell's
  title names the minute, the count and the reason for a gap), and a table of the last days;
- ``month/YYYY-mm.html``: a day-by-hour grid of the month, each day linked;
- ``day/YYYY-mm-dd.html``: the hour table, a tweets-per-minute chart and links to the files.

Inline CSS and SVG only: no script, no font, no request to anywhere; the numbers are in tables.
Built from the per-hour stats and the OSF and mail receipts alone, incrementally: each day
folder gets a fingerprint (its stats files' names, sizes and mtimes, its upload receipts, its
mail marker); a run rewrites the pages of the days whose fingerprint changed, their months and
the front page. ``data/{day}.json`` keeps a day's figures (also for scripts), ``data/index.json``
the fingerprints and per-hour totals the month pages and the front table are made from. Every
file is written atomically (``ingest.atomic``).
"""

from __future__ import annotations

import hashlib
import html
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from ingest import layout
from ingest.atomic import atomic_write, atomic_write_json
from ingest.hours import plan as planning
from ingest.hours.stats import (
    HourStats,
    StatsError,
    complied_by_action,
    day_stats_paths,
    read_stats,
)
from ingest.layout import MINUTE, Hour
from ingest.observe import health as healthmod
from ingest.observe.plot import merge_minutes
from ingest.observe.site import dashboard_dir
from ingest.observe.site import day_page as day_path
from ingest.vault.manifest import is_day

FORMAT = 2  # bump when pages or data change shape: every day is rewritten once
FRONT_DAYS = 7  # days in the front page's heat map
TABLE_DAYS = 14  # days in the front page's table
NOT_BUILT = -1  # in data/{day}.json's minute lists: the minute's hour has no stats


# --- the data: a day's figures from its stats and receipts ----------------------------------


def _stat_key(entry: os.DirEntry) -> str:
    st = entry.stat()
    return f"{entry.name}:{st.st_size}:{st.st_mtime_ns}"


def _listing(folder: Path, suffixes: tuple[str, ...]) -> list[str]:
    try:
        with os.scandir(folder) as it:
            return [_stat_key(e) for e in it if e.name.endswith(suffixes)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def fingerprints(config: dict[str, Any]) -> dict[str, str]:
    """Per day folder of the vault: a hash of what its pages are made from."""
    vault = Path(config["vault_dir"])
    work = layout.work_paths(config["work_dir"])
    mails = {}
    try:
        with os.scandir(work["mail"]) as it:
            mails = {
                e.name.removesuffix(".sent"): _stat_key(e) for e in it if e.name.endswith(".sent")
            }
    except FileNotFoundError:
        pass
    out = {}
    try:
        days = [e.name for e in os.scandir(vault) if e.is_dir() and is_day(e.name)]
    except FileNotFoundError:
        return out
    for day in days:
        parts = _listing(vault / day, ("_stats.json",))
        parts += _listing(work["osf"] / day, (".json", ".backoff"))
        parts.append(mails.get(day, ""))
        out[day] = hashlib.sha1("\n".join(sorted(parts)).encode()).hexdigest()[:16]
    return out


def _hour_ranges(day: str, tz: ZoneInfo, start: datetime) -> dict[str, tuple[int, int]]:
    """Hour label -> [first, end) minute index of the day."""
    out = {}
    for h in layout.day_hours(day, tz):
        a, b = layout.hour_bounds(h, tz)
        out[h.label] = (int((a - start) / MINUTE), int((b - start) / MINUTE))
    return out


def day_summary(config: dict[str, Any], day: str) -> dict[str, Any]:
    """A day's figures: per hour the counts, outages, skipped lines and upload state; per server
    the tweets of every minute (None: no file; NOT_BUILT: no stats); the mail's state."""
    tz = ZoneInfo(config["timezone"])
    servers = [s["name"] for s in config["servers"]]
    vault = Path(config["vault_dir"])
    work = layout.work_paths(config["work_dir"])
    start = datetime.fromisoformat(day).replace(tzinfo=tz).astimezone(UTC)
    n = int((layout.day_end(day, tz) - start) / MINUTE)
    ranges = _hour_ranges(day, tz, start)
    stats: list[HourStats] = []
    damaged = []
    for p in day_stats_paths(vault / day, day):
        try:
            s = read_stats(p)
        except StatsError:
            damaged.append(p.name)
            continue
        if s.get("hour") in ranges:
            stats.append(s)
    merged = merge_minutes(stats, servers)
    minutes: dict[str, list[int | None]] = {s: [NOT_BUILT] * n for s in servers}
    for server, by_minute in merged.items():
        row = minutes[server]
        for t, count in by_minute.items():
            i = int((t - start) / MINUTE)
            if 0 <= i < n:
                row[i] = count
    hours = []
    osf_on = bool(config["osf"]["enabled"])
    for s in sorted(stats, key=lambda s: s["hour"]):
        a, b = ranges[s["hour"]]
        own = {srv: minutes[srv][a:b] for srv in servers}
        receipt = work["osf"] / day / f"{s['hour']}.json"
        osf = None
        if receipt.exists():
            osf = "uploaded"
        elif planning.upload_backoff(receipt).exists():
            osf = "failed"
        elif osf_on:
            osf = "pending"
        hours.append(
            {
                "hour": s["hour"],
                "hh": Hour.parse(s["hour"]).hh,
                "counts": {srv: (s.get("counts") or {}).get(srv) for srv in servers},
                "missing": list(s.get("missing_servers") or []),
                "total": s.get("total"),
                "diff": s.get("diff"),
                "diff_pct": s.get("diff_pct"),
                "users": s.get("users"),
                "skipped": {
                    srv: sum((s.get("skipped") or {}).get(srv, {}).values()) for srv in servers
                },
                "outage": {srv: sum(1 for v in own[srv] if v is None) for srv in servers},
                "zero": {srv: sum(1 for v in own[srv] if v == 0) for srv in servers},
                "state": _hour_state(own, b - a),
                "osf": osf,
                "complied": dict(s.get("complied") or {}),  # rows removed, by action (issue 24)
            }
        )
    marker = work["mail"] / f"{day}.sent"
    if marker.exists():
        sent_at = _read_json(marker).get("sent_at")
        mail: str | None = f"sent {healthmod.local_time(sent_at, tz)}" if sent_at else "sent"
    else:
        mail = "not sent" if config["email"]["enabled"] else None
    return {
        "format": FORMAT,
        "day": day,
        "servers": servers,
        "timezone": config["timezone"],
        "start": start.isoformat(),
        "hours": hours,
        "minutes": minutes,
        "damaged_stats": damaged,
        "mail": mail,
        "report": layout.report_path(vault, day).exists(),
    }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _hour_state(own: dict[str, list[int | None]], n: int) -> str:
    """gap: a minute no server has; partial: a server missed minutes; zero: a minute every
    server had empty; ok; unknown: no minutes recorded (older builds)."""
    rows = list(own.values())
    if not rows or all(v == NOT_BUILT for r in rows for v in r):
        return "unknown"
    cols = list(zip(*rows, strict=True)) if rows else []
    if any(all(v is None for v in col) for col in cols):
        return "gap"
    if any(v is None for r in rows for v in r):
        return "partial"
    if any(all(v == 0 for v in col) for col in cols):
        return "zero"
    return "ok"


def index_entry(summary: dict[str, Any], fingerprint: str) -> dict[str, Any]:
    """What the month pages and the front table need of a day."""
    servers = summary["servers"]
    hours = summary["hours"]
    counts = {s: sum(h["counts"].get(s) or 0 for h in hours) for s in servers}
    total = sum(h["total"] or 0 for h in hours)
    diff = sum(h["diff"] or 0 for h in hours)
    return {
        "fp": fingerprint,
        "hours": {
            f"{h['hh']:02d}": {
                k: h[k] for k in ("counts", "total", "diff_pct", "outage", "missing", "state")
            }
            for h in hours
        },
        "built": len(hours),
        "counts": counts,
        "total": total,
        "diff_pct": round(100 * diff / total, 2) if total else 0.0,
        "missing": {s: sum(1 for h in hours if s in h["missing"]) for s in servers},
        "outage": {s: sum(h["outage"][s] for h in hours) for s in servers},
        "skipped": sum(sum(h["skipped"].values()) for h in hours),
        "complied": complied_by_action(hours),
        "osf": _osf_state(hours),
        "mail": summary["mail"],
        "damaged": len(summary["damaged_stats"]),
    }


def _complied_text(complied: dict[str, int]) -> str:
    return ", ".join(f"{a} {_num(n)}" for a, n in complied.items()) or "-"


def _osf_state(hours: list[dict[str, Any]]) -> str | None:
    states = [h["osf"] for h in hours if h["osf"]]
    if not states:
        return None
    up, failed = states.count("uploaded"), states.count("failed")
    return f"{up}/{len(states)} uploaded" + (f", {failed} failed" if failed else "")


# --- updating -------------------------------------------------------------------------------


@dataclass
class Update:
    days: list[str] = field(default_factory=list)  # days whose pages were rewritten
    months: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def _global_key(config: dict[str, Any], out: Path) -> str:
    """What every page depends on: a change rewrites them all."""
    parts = [
        FORMAT,
        [s["name"] for s in config["servers"]],
        config["timezone"],
        config["osf"]["enabled"],
        config["email"]["enabled"],
        os.path.relpath(config["vault_dir"], out),
    ]
    return hashlib.sha1(orjson.dumps(parts)).hexdigest()[:16]


def update_dashboard(
    config: dict[str, Any], now: datetime, health: healthmod.Health | None
) -> Update:
    """Rewrite the pages of the days that changed since the last update, their months and the
    front page. A first update (or a new FORMAT) writes every day's."""
    t0 = time.monotonic()
    out = dashboard_dir(config)
    index_path = out / "data" / "index.json"
    index = _read_json(index_path)
    key = _global_key(config, out)
    days_known: dict[str, Any] = index.get("days", {}) if index.get("key") == key else {}
    fps = fingerprints(config)
    result = Update()
    write = _writer(result)
    for day in sorted(fps):
        if days_known.get(day, {}).get("fp") == fps[day]:
            continue
        summary = day_summary(config, day)
        write(out / "data" / f"{day}.json", orjson.dumps(summary))
        write(out / day_path(day), day_page(config, summary, out, now))
        days_known[day] = index_entry(summary, fps[day])
        result.days.append(day)
    for gone in sorted(set(days_known) - set(fps)):  # a day folder removed from the vault
        del days_known[gone]
        for p in (out / "data" / f"{gone}.json", out / "day" / f"{gone}.html"):
            p.unlink(missing_ok=True)
    result.months = sorted({d[:7] for d in result.days})
    for month in result.months:
        write(out / "month" / f"{month}.html", month_page(config, month, days_known, now))
    write(index_path, orjson.dumps({"key": key, "days": days_known}))
    write(out / "index.html", front_page(config, days_known, out, now, health))
    result.seconds = round(time.monotonic() - t0, 3)
    return result


def _writer(result: Update):
    def write(path: Path, data: str | bytes) -> None:
        atomic_write(path, data)
        result.written.append(path)

    return write


# --- HTML -----------------------------------------------------------------------------------

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#222;margin:0 auto;
max-width:1600px;padding:0 10px 20px}
header{display:flex;flex-wrap:wrap;gap:4px 16px;align-items:baseline;padding:8px 0;
border-bottom:1px solid #ccc}
header a{color:#08519c}
h1{font-size:20px;margin:0}h2{font-size:16px;margin:18px 0 6px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:2px 6px;border-bottom:1px solid #e3e3e3;text-align:right;white-space:nowrap}
th{background:#f4f4f4;font-weight:600}
td.l,th.l{text-align:left}td.wrap{white-space:normal;text-align:left}
.scroll{overflow-x:auto;max-width:100%}
.ok{background:#dcf2dc}.warning{background:#fff1b8}.failing{background:#f9c9c9}
.gap{background:#f9c9c9}.partial{background:#fff1b8}.zero{background:#bbb}
.unknown{background:#eef}.none{color:#999}
.badge{padding:2px 8px;border-radius:4px;font-weight:600}
svg{display:block;max-width:100%;height:auto}
svg text{font:12px system-ui,sans-serif;fill:#444}
rect.o{fill:#d62728}rect.z{fill:#111}rect.n{fill:#e4e4e4}
rect.c1{fill:#fd8d3c}rect.c2{fill:#9ecae1}rect.c3{fill:#2171b5}rect.c4{fill:#08306b}
rect.ob{fill:#d62728;opacity:.25}rect.nb{fill:#ccc;opacity:.4}
path.line{fill:none;stroke:#2171b5;stroke-width:1}
.legend span{display:inline-block;width:12px;height:12px;vertical-align:middle;margin:0 3px 0 10px}
p.note{padding:4px 8px}
footer{margin-top:20px;color:#777;font-size:12px}
"""


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _short(n: int | None) -> str:
    if n is None:
        return ""
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 10_000:
        return f"{n / 1e3:.0f}k"
    if n >= 1_000:
        return f"{n / 1e3:.1f}k"
    return str(n)


def page(title: str, body: str, root: str, now: datetime, tz: ZoneInfo) -> str:
    """A whole page; ``root``: the relative path to the dashboard folder ("" or "../")."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<link rel="icon" href="data:,">'  # no favicon request
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<header><h1>{esc(title)}</h1><a href="{root}index.html">overview</a></header>'
        f"<main>{body}</main>"
        f"<footer>Written {healthmod.local_time(now, tz)} from the per-hour stats and "
        "the workflow's receipts. Times are local.</footer></body></html>\n"
    )


# The heat map's colours: a minute's tweets against the expected rate, one scale for every
# server and hour (not each server's own median, which made a half-rate server look usual).
BANDS = ((0.6, "c1"), (0.9, "c2"), (1.1, "c3"))  # below 60 %, 60-90 %, 90-110 %; c4 above
COLOURS = {
    "c1": "#fd8d3c",
    "c2": "#9ecae1",
    "c3": "#2171b5",
    "c4": "#08306b",
    "z": "#111",
    "o": "#d62728",
    "n": "#e4e4e4",
}


def expected_rate(
    config: dict[str, Any], summaries: list[dict[str, Any]], servers: Sequence[str]
) -> tuple[float, str]:
    """Tweets per minute a server should have, and where that figure comes from: the config's
    ``dashboard.expected_per_minute``, else the busiest server's median minute of these days
    (the servers collect the same stream, so the busiest one is what each should have)."""
    configured = config["dashboard"]["expected_per_minute"]
    if configured:
        return float(configured), "dashboard.expected_per_minute"
    medians = []
    for s in servers:
        counts = [
            v for d in summaries for v in d["minutes"].get(s, []) if v not in (None, NOT_BUILT)
        ]
        if any(counts):
            medians.append(statistics.median(v for v in counts if v > 0))
    return (max(medians) if medians else 0.0), "the busiest server's median minute shown"


def legend(expected: float, source: str) -> str:
    def rate(share: float) -> str:
        return f"{share * expected:,.0f}"

    (low, _), (mid, _), (high, _) = BANDS
    items = [
        ("c1", f"under {rate(low)} (< {healthmod.percent(100 * low)} of expected)"),
        ("c2", f"{rate(low)}-{rate(mid)}"),
        ("c3", f"{rate(mid)}-{rate(high)} (as expected)"),
        ("c4", f"over {rate(high)}"),
        ("z", "0 (connected, nothing came)"),
        ("o", "no minute file (not connected)"),
        ("n", "not built yet"),
    ]
    head = (
        f"Tweets per minute, against {expected:,.0f} expected ({esc(source)}):"
        if expected
        else "Tweets per minute:"
    )
    return (
        f'<p class="legend" id="legend">{head}'
        + "".join(f'<span style="background:{COLOURS[c]}"></span>{esc(t)}' for c, t in items)
        + "</p>"
    )


# A heat map row: one rect a minute (runs of outages or unbuilt minutes as one rect).
# 12 px rows and labels: a 1,590 px wide map shrunk to a laptop's width still reads at ~10 px.
ROW_H, DAY_GAP, LABEL_W = 12, 6, 170


def _bucket(v: int, expected: float) -> str:
    if v == 0:
        return "z"
    if expected <= 0:
        return "c3"
    ratio = v / expected
    return next((cls for limit, cls in BANDS if ratio < limit), "c4")


def _minute_label(start: datetime, i: int, tz: ZoneInfo) -> str:
    return f"{(start + i * MINUTE).astimezone(tz):%a %Y-%m-%d %H:%M}"


def _span(start: datetime, i: int, j: int, tz: ZoneInfo) -> str:
    """Minutes [i, j) of a day: "Wed 2026-01-14 10:20" or "... 10:20 to 10:35 (15 min)"."""
    if j - i == 1:
        return _minute_label(start, i, tz)
    end = (start + j * MINUTE).astimezone(tz)
    return f"{_minute_label(start, i, tz)} to {end:%H:%M} ({j - i} min)"


def _gap(v: int | None) -> str | None:
    """The class of a minute without a count: "o" no file (outage), "n" not built."""
    return "o" if v is None else "n" if v == NOT_BUILT else None


def _run_end(row: list[int | None], i: int) -> int:
    """The end of the run of gaps of one kind starting at ``i``."""
    kind, j = _gap(row[i]), i + 1
    while j < len(row) and _gap(row[j]) == kind:
        j += 1
    return j


def heat_map(
    summaries: list[dict[str, Any]], servers: Sequence[str], tz: ZoneInfo, expected: float
) -> str:
    """SVG: a row per day and server, a cell per minute coloured against ``expected``; each
    cell titled; a built day's label links its page."""
    width = max([len(d["minutes"][servers[0]]) for d in summaries] + [1440])
    parts = []
    y = 16
    for d in summaries:
        start = datetime.fromisoformat(d["start"])
        missing_hours = {h["hour"]: set(h["missing"]) for h in d["hours"]}
        ranges = _hour_ranges(d["day"], tz, start)
        label_of = [""] * len(d["minutes"][servers[0]])
        for label, (a, b) in ranges.items():
            for i in range(a, min(b, len(label_of))):
                label_of[i] = label
        for s in servers:
            row = d["minutes"][s]
            name = f"{date.fromisoformat(d['day']):%a %d %b} {s}"
            label = f'<text x="0" y="{y + ROW_H - 1}">{esc(name)}</text>'
            if d["hours"]:
                label = f'<a href="{day_path(d["day"])}">{label}</a>'
            parts.append(label)
            i = 0
            while i < len(row):
                v = row[i]
                gap = _gap(v)
                if gap is None:
                    what = f"{v} tweets" if v else "0 tweets (connected, nothing came)"
                    parts.append(
                        f'<rect x="{LABEL_W + i}" y="{y}" width="1" height="{ROW_H}" '
                        f'class="{_bucket(v, expected)}"><title>{esc(s)} '
                        f"{_minute_label(start, i, tz)}: {what}</title></rect>"
                    )
                    i += 1
                    continue
                j = _run_end(row, i)
                if gap == "o":
                    whole = any(s in missing_hours.get(label_of[k], ()) for k in range(i, j))
                    why = "no minute file: not connected" + (
                        " (no file from this server all hour)" if whole else ""
                    )
                else:
                    why = "hour not built yet"
                title = f"{s} {_span(start, i, j, tz)}: {why}"
                parts.append(
                    f'<rect x="{LABEL_W + i}" y="{y}" width="{j - i}" height="{ROW_H}" '
                    f'class="{gap}"><title>{esc(title)}</title></rect>'
                )
                i = j
            y += ROW_H + 1
        y += DAY_GAP
    ticks = "".join(f'<text x="{LABEL_W + h * 60}" y="12">{h:02d}</text>' for h in range(0, 24, 3))
    return (
        f'<svg viewBox="0 0 {LABEL_W + width} {y}" width="{LABEL_W + width}" role="img" '
        f'aria-label="tweets per minute per server, last {len(summaries)} days">{ticks}'
        + "".join(parts)
        + "</svg>"
    )


def minutes_chart(summary: dict[str, Any], tz: ZoneInfo) -> str:
    """SVG: per server a line of tweets per minute; outages as red bands, unbuilt grey."""
    servers = summary["servers"]
    start = datetime.fromisoformat(summary["start"])
    n = len(summary["minutes"][servers[0]]) if servers else 1440
    top = max(
        [v for s in servers for v in summary["minutes"][s] if v not in (None, NOT_BUILT)] + [1]
    )
    panel, left = 90, 50
    out = []
    for k, s in enumerate(servers):
        y0 = 16 + k * (panel + 24)
        row = summary["minutes"][s]
        out.append(f'<text x="0" y="{y0 - 4}">{esc(s)}: tweets per minute (max {top:,})</text>')
        out.append(f'<rect x="{left}" y="{y0}" width="{n}" height="{panel}" fill="#fafafa"/>')
        i = 0
        while i < n:
            gap = _gap(row[i])
            if gap is None:
                i += 1
                continue
            j = _run_end(row, i)
            why = "no minute file: not connected" if gap == "o" else "not built"
            out.append(
                f'<rect class="{gap}b" x="{left + i}" y="{y0}" width="{j - i}" height="{panel}">'
                f"<title>{esc(f'{s} {_span(start, i, j, tz)}: {why}')}</title></rect>"
            )
            i = j
        d, pen = [], False
        for i, v in enumerate(row):
            if v is None or v == NOT_BUILT:
                pen = False
                continue
            y = y0 + panel - panel * v / top
            d.append(f"{'L' if pen else 'M'}{left + i} {y:.1f}")
            pen = True
        out.append(f'<path class="line" d="{" ".join(d)}"/>')
        out.append(f'<text x="{left - 4}" y="{y0 + 10}" text-anchor="end">{_short(top)}</text>')
        out.append(f'<text x="{left - 4}" y="{y0 + panel}" text-anchor="end">0</text>')
        for label, (a, _) in _hour_ranges(summary["day"], tz, start).items():
            hh = int(label[-2:])
            if hh % 3 == 0:
                out.append(f'<text x="{left + a}" y="{y0 + panel + 11}">{hh:02d}</text>')
    height = 16 + len(servers) * (panel + 24)
    return (
        f'<svg viewBox="0 0 {left + n + 10} {height}" width="{left + n + 10}" role="img" '
        f'aria-label="tweets per minute, {esc(summary["day"])}">' + "".join(out) + "</svg>"
    )


def _file_links(config: dict[str, Any], day: str, label: str, page_dir: Path) -> str:
    vault = Path(config["vault_dir"])
    links = []
    for kind, path in layout.vault_paths(vault, Hour.parse(label)).items():
        if path.exists():
            rel = os.path.relpath(path, page_dir)
            links.append(f'<a href="{esc(rel)}">{esc(kind)}</a>')
    return " ".join(links)


def day_page(config: dict[str, Any], summary: dict[str, Any], out: Path, now: datetime) -> str:
    tz = ZoneInfo(config["timezone"])
    day, servers = summary["day"], summary["servers"]
    page_dir = out / "day"
    head = (
        ["hour"]
        + [f"{s}" for s in servers]
        + ["total", "diff", "diff %", "users"]
        + [f"outage min {s}" for s in servers]
        + ["skipped lines", "OSF", "files"]
    )
    rows = []
    for h in summary["hours"]:
        missing = set(h["missing"])
        cells = [f'<th class="l {h["state"]}">{h["hh"]:02d}</th>']
        cells += [
            f'<td data-server="{esc(s)}">{"-" if s in missing else _num(h["counts"].get(s))}</td>'
            for s in servers
        ]
        cells += [
            f'<td data-k="total">{_num(h["total"])}</td>',
            f"<td>{_num(h['diff'])}</td>",
            f"<td>{'-' if h['diff_pct'] is None else healthmod.percent(h['diff_pct'])}</td>",
            f"<td>{_num(h['users'])}</td>",
        ]
        cells += [
            f'<td class="{"gap" if h["outage"][s] else ""}">{h["outage"][s]}</td>' for s in servers
        ]
        cells += [
            f"<td>{sum(h['skipped'].values())}</td>",
            f'<td class="l">{esc(h["osf"] or "off")}</td>',
            f'<td class="l">{_file_links(config, day, h["hour"], page_dir)}</td>',
        ]
        rows.append(f'<tr data-hour="{esc(h["hour"])}">' + "".join(cells) + "</tr>")
    table = (
        '<div class="scroll"><table id="hours"><tr>'
        + "".join(
            f'<th class="{"l" if c in ("hour", "OSF", "files") else ""}">{esc(c)}</th>'
            for c in head
        )
        + "</tr>"
        + "".join(rows)
        + "</table></div>"
    )
    report = layout.report_path(Path(config["vault_dir"]), day)
    extra = []
    if summary["report"]:
        extra.append(f'<a href="{esc(os.path.relpath(report, page_dir))}">day report</a>')
    extra.append(f'<a href="../data/{esc(day)}.json">figures (JSON)</a>')
    extra.append(f'<a href="../month/{day[:7]}.html">month {day[:7]}</a>')
    notes = []
    if summary["damaged_stats"]:
        notes.append(
            '<p class="failing">Unreadable stats (rebuilt by the next run): '
            + esc(", ".join(summary["damaged_stats"]))
            + "</p>"
        )
    if summary["mail"]:
        notes.append(f"<p>Day mail: {esc(summary['mail'])}</p>")
    removed = complied_by_action(summary["hours"])
    if removed:
        notes.append(
            f'<p id="complied">Posts removed for compliance: {esc(_complied_text(removed))}</p>'
        )
    body = (
        f"<p>{' · '.join(extra)}</p>"
        + "".join(notes)
        + f"<h2>Hours ({len(summary['hours'])} built)</h2>{table}"
        + "<h2>Tweets per minute</h2>"
        + f'<div class="scroll">{minutes_chart(summary, tz)}</div>'
    )
    return page(f"sampled-stream {day}", body, "../", now, tz)


def month_page(config: dict[str, Any], month: str, days: dict[str, Any], now: datetime) -> str:
    tz = ZoneInfo(config["timezone"])
    servers = [s["name"] for s in config["servers"]]
    first = date.fromisoformat(f"{month}-01")
    rows = []
    d = first
    while d.month == first.month:
        day = d.isoformat()
        entry = days.get(day)
        cells = []
        for hh in range(24):
            h = (entry or {}).get("hours", {}).get(f"{hh:02d}")
            if h is None:
                cells.append('<td class="none">·</td>')
                continue
            detail = ", ".join(
                f"{s} {'-' if s in h['missing'] else _num(h['counts'].get(s))}"
                + (f" ({h['outage'][s]} min no file)" if h["outage"].get(s) else "")
                for s in servers
            )
            title = f"{day} {hh:02d}: {_num(h['total'])} tweets; {detail}; {h['state']}"
            cells.append(f'<td class="{h["state"]}" title="{esc(title)}">{_short(h["total"])}</td>')
        link = f'<a href="../day/{day}.html">{d:%d %a}</a>' if entry else f"{d:%d %a}"
        total = _num(entry["total"]) if entry else ""
        rows.append(
            f'<tr data-day="{day}"><th class="l">{link}</th>{"".join(cells)}<td>{total}</td></tr>'
        )
        d += timedelta(days=1)
    head = (
        '<tr><th class="l">day</th>'
        + "".join(f"<th>{h:02d}</th>" for h in range(24))
        + "<th>total</th></tr>"
    )
    body = (
        "<p>Each cell is an hour: its tweets (all servers); "
        '<span class="ok">&nbsp;ok&nbsp;</span> '
        '<span class="partial">&nbsp;a server missed minutes&nbsp;</span> '
        '<span class="gap">&nbsp;minutes no server has&nbsp;</span> '
        '<span class="zero">&nbsp;a minute with 0 tweets everywhere&nbsp;</span> '
        "· not built.</p>"
        f'<div class="scroll"><table id="grid">{head}{"".join(rows)}</table></div>'
    )
    return page(f"sampled-stream {month}", body, "../", now, tz)


def _days(n: float | None) -> str:
    return "-" if n is None else f"{n:.0f}"


def health_section(health: healthmod.Health | None, tz: ZoneInfo) -> str:
    if health is None:
        return "<h2>Health</h2><p>Not known on this machine.</p>"
    rows = "".join(
        f'<tr><td class="l {c.level}">{c.level.upper()}</td><td class="l">{esc(c.name)}</td>'
        f'<td class="wrap">{esc(c.summary)}</td></tr>'
        for c in health.checks
    )
    wf = health.facts["workflow"]
    run = wf.get("last_run") or {}
    when = healthmod.local_time
    facts = [
        f"last run: {esc(run.get('result', 'none'))}"
        + (
            f", {esc(when(run.get('started'), tz))} to {esc(when(run.get('ended'), tz))}"
            if run
            else ""
        ),
        f"newest built hour: {esc(wf['newest_built_hour'] or '-')}",
        f"oldest complete hour not built: {esc(wf['oldest_unbuilt_hour'] or 'none')}",
        f"hours waiting for a secondary: {len(wf['hours_waiting_for_secondary'])}",
    ]
    if wf["osf_enabled"]:
        facts.append(
            f"OSF uploads pending: {wf['uploads_pending']}, failed: {len(wf['uploads_failed'])}"
        )
    if wf["email_enabled"]:
        last = wf["last_day_mailed"]
        facts.append(
            "last day mailed: "
            + (esc(f"{last['day']} ({when(last['sent_at'], tz)})") if last else "none")
        )
    disks = "".join(
        f'<tr><td class="l">{esc(d["path"])}</td><td class="l">{esc(d["dir"])}</td>'
        + (
            f"<td>{d['free_bytes'] / 1e9:,.1f} GB</td>"
            f"<td>{healthmod.percent(d['free_percent'])}</td>"
            f"<td>{_days(d['days_left'])}</td>"
            if "error" not in d
            else f'<td colspan="3">{esc(d["error"])}</td>'
        )
        + "</tr>"
        for d in health.facts["disks"]
    )
    alerts = health.facts["alerts_24h"]
    alert_list = "".join(
        f"<li>{esc(when(a['at'], tz))} {esc(a.get('subject') or a.get('kind'))}</li>"
        for a in alerts[-20:]
    )
    return (
        f'<h2>Health <span class="badge {health.level}">{health.level.upper()}</span></h2>'
        f'<div class="scroll"><table id="health">{rows}</table></div>'
        f"<p>{'<br>'.join(facts)}</p>"
        '<div class="scroll"><table id="disks"><tr><th class="l">folder</th><th class="l">path</th>'
        f"<th>free</th><th>free %</th><th>days left</th></tr>{disks}</table></div>"
        f"<h2>Alerts in the last 24 h ({len(alerts)})</h2>"
        + (f"<ul>{alert_list}</ul>" if alerts else "<p>none</p>")
    )


def front_page(
    config: dict[str, Any],
    days: dict[str, Any],
    out: Path,
    now: datetime,
    health: healthmod.Health | None,
) -> str:
    tz = ZoneInfo(config["timezone"])
    servers = [s["name"] for s in config["servers"]]
    anchor, note = map_anchor(days, now.astimezone(tz).date())
    recent = [(anchor - timedelta(days=k)).isoformat() for k in range(FRONT_DAYS)]
    summaries = []
    for day in recent:
        s = _read_json(out / "data" / f"{day}.json") if day in days else {}
        summaries.append(s if s.get("minutes") else empty_summary(config, day))
    table_rows = []
    for day in sorted(days, reverse=True)[:TABLE_DAYS]:
        e = days[day]
        missing = ", ".join(f"{s} {n} h" for s, n in e["missing"].items() if n) or "-"
        outage = ", ".join(f"{s} {n}" for s, n in e["outage"].items() if n) or "-"
        cells = [f'<th class="l"><a href="day/{day}.html">{day}</a></th>']
        cells += [f'<td data-server="{esc(s)}">{_num(e["counts"].get(s))}</td>' for s in servers]
        cells += [
            f'<td data-k="total">{_num(e["total"])}</td>',
            f"<td>{healthmod.percent(e['diff_pct'])}</td>",
            f"<td>{e['built']}</td>",
            f'<td class="l">{esc(missing)}</td>',
            f'<td class="l">{esc(outage)}</td>',
            f"<td>{_num(e['skipped'])}</td>",
            f'<td class="l" data-k="complied">{esc(_complied_text(e.get("complied") or {}))}</td>',
            f'<td class="l">{esc(e["osf"] or "off")}</td>',
            f'<td class="l">{esc(e["mail"] or "off")}</td>',
        ]
        table_rows.append(f'<tr data-day="{day}">' + "".join(cells) + "</tr>")
    head = (
        '<tr><th class="l">day</th>'
        + "".join(f"<th>{esc(s)}</th>" for s in servers)
        + '<th>total</th><th>diff %</th><th>hours</th><th class="l">server missing</th>'
        '<th class="l">outage min</th><th>skipped lines</th><th class="l">removed (compliance)</th>'
        '<th class="l">OSF</th><th class="l">day mail</th></tr>'
    )
    months = sorted({d[:7] for d in days}, reverse=True)
    expected, source = expected_rate(config, summaries, servers)
    span = f"last {FRONT_DAYS} days" if not note else f"the {FRONT_DAYS} days up to {anchor}"
    body = (
        demo_note(health, tz)
        + health_section(health, tz)
        + f"<h2>Tweets per minute, {span}</h2>"
        + note
        + legend(expected, source)
        + f'<div class="scroll">{heat_map(summaries, servers, tz, expected)}</div>'
        + "<h2>Last days</h2>"
        + f'<div class="scroll"><table id="days">{head}{"".join(table_rows)}</table></div>'
        + "<h2>Months</h2><p>"
        + " · ".join(f'<a href="month/{m}.html">{m}</a>' for m in months)
        + "</p>"
    )
    return page("sampled-stream archive", body, "", now, tz)


def map_anchor(days: dict[str, Any], today: date) -> tuple[date, str]:
    """The heat map's last day: today, or the newest day holding data when that is older than
    the map (an import, a paused collection, a finished demo), with a note saying so."""
    if not days or max(days) > (today - timedelta(days=FRONT_DAYS)).isoformat():
        return today, ""
    newest = date.fromisoformat(max(days))
    return newest, (
        f'<p class="note warning" id="anchor">No data in the last {FRONT_DAYS} days: the newest '
        f"is from {newest} ({(today - newest).days} days ago), so the map shows the "
        f"{FRONT_DAYS} days up to it. Every day is in its month's page below.</p>"
    )


def demo_note(health: healthmod.Health | None, tz: ZoneInfo) -> str:
    """A finished ``make demo`` says so first: its stopped collectors are not an outage."""
    demo = health.facts.get("demo") if health else None
    if not demo:
        return ""
    return (
        '<p class="note ok" id="demo">A finished demo: collectors stopped at '
        f"{esc(healthmod.local_time(demo.get('stopped_at'), tz))}. Nothing is collecting; "
        "the pages show what the demo collected and built.</p>"
    )


def empty_summary(config: dict[str, Any], day: str) -> dict[str, Any]:
    """A day with nothing built: every minute NOT_BUILT."""
    tz = ZoneInfo(config["timezone"])
    start = datetime.fromisoformat(day).replace(tzinfo=tz).astimezone(UTC)
    n = int((layout.day_end(day, tz) - start) / MINUTE)
    servers = [s["name"] for s in config["servers"]]
    return {
        "day": day,
        "start": start.isoformat(),
        "hours": [],
        "servers": servers,
        "minutes": {s: [NOT_BUILT] * n for s in servers},
    }


# --- at the end of a workflow run -----------------------------------------------------------


def recent_stats(config: dict[str, Any], now: datetime) -> list[HourStats]:
    """The stats of the built hours of today and yesterday (for the metrics)."""
    tz = ZoneInfo(config["timezone"])
    vault = Path(config["vault_dir"])
    today = now.astimezone(tz).date()
    out = []
    for day in ((today - timedelta(days=1)).isoformat(), today.isoformat()):
        for p in day_stats_paths(vault / day, day):
            try:
                out.append(read_stats(p))
            except StatsError:
                continue
    return out


def after_run(
    config: dict[str, Any], run: str, started: datetime, ended: datetime, result: str
) -> Update | None:
    """What the workflow's main process does when a run ends: record it, sample the disks,
    assess the health, mail a lasting failure, write the metrics file and the dashboard.
    Each step's failure is printed and costs only itself: the run's result stays the same."""
    from ingest.observe.metrics import metrics_path, metrics_text, write_metrics

    def step(what, fn, *args):
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - monitoring must never fail the archive's run
            print(f"{what} failed: {type(e).__name__}: {e}", file=sys.stderr)
            return None

    step("recording the run", healthmod.record_run, config, run, started, ended, result)
    step("sampling the disks", healthmod.sample_disk, config, ended)
    health = step("assessing the health", healthmod.system_health, config, ended)
    if health is not None:
        step("mailing the health", healthmod.mail_lasting_failures, config, health, ended)
        step(
            "writing the metrics",
            lambda: write_metrics(
                metrics_path(config), metrics_text(health, recent_stats(config, ended))
            ),
        )
    update = step("writing the dashboard", write_dashboard, config, ended, health)
    if update is not None:
        print(
            f"dashboard: {len(update.days)} day(s), {len(update.months)} month(s) rewritten in "
            f"{update.seconds:.2f} s: {dashboard_dir(config) / 'index.html'}",
            file=sys.stderr,
        )
    return update


def write_dashboard(
    config: dict[str, Any], now: datetime, health: healthmod.Health | None
) -> Update:
    """``update_dashboard``; if it fails, the failure is a health item (until an update works),
    an alert, and the front page says so instead of going stale in silence. Re-raises."""
    failure = healthmod.state_file(config, healthmod.DASHBOARD_FILE)
    try:
        update = update_dashboard(config, now, health)
    except Exception as e:
        from ingest.notify import notify_once

        error = f"{type(e).__name__}: {e}"
        atomic_write_json(failure, {"at": now.isoformat(), "error": error})
        notify_once(
            config,
            "dashboard",
            [error],
            "dashboard not updated",
            "The dashboard's pages could not be written; they show an older state:",
            now,
        )
        atomic_write(dashboard_dir(config) / "index.html", failed_page(config, now, error))
        raise
    failure.unlink(missing_ok=True)
    return update


def failed_page(config: dict[str, Any], now: datetime, error: str) -> str:
    """The front page when the update failed: what failed, and the older pages still there."""
    tz = ZoneInfo(config["timezone"])
    months = sorted(
        (p.stem for p in (dashboard_dir(config) / "month").glob("*.html")), reverse=True
    )
    body = (
        '<h2>Health <span class="badge failing">FAILING</span></h2>'
        f'<p class="failing" id="failed">The dashboard could not be updated at '
        f"{esc(healthmod.local_time(now, tz))}: {esc(error)}. The month and day pages are "
        "from an earlier run; <code>sampled-stream status</code> shows the current health.</p>"
        "<h2>Months (older pages)</h2><p>"
        + " · ".join(f'<a href="month/{esc(m)}.html">{esc(m)}</a>' for m in months)
        + "</p>"
    )
    return page("sampled-stream archive", body, "", now, tz)


class RunEnd:
    """Calls ``after_run`` when the workflow's main process exits, whatever ended the run:
    ``onsuccess``/``onerror`` set ``result``; a run with nothing to do has neither (then
    "nothing to do", or "failed" if the run watch saw errors, e.g. before any job)."""

    def __init__(self, config: dict[str, Any], started: datetime, run: str, watch=None) -> None:
        self.config, self.started, self.run, self.watch = config, started, run, watch
        self.t0 = time.monotonic()
        self.result: str | None = None

    def install(self) -> RunEnd:
        import atexit

        atexit.register(self.at_exit)
        return self

    def at_exit(self) -> None:
        result = self.result
        if result is None:
            result = "failed" if self.watch is not None and self.watch.errors else "nothing to do"
        ended = self.started + timedelta(seconds=time.monotonic() - self.t0)
        after_run(self.config, self.run, self.started, ended, result)
