"""Collector status files and the ``sampled-stream status`` report.

Each collector writes ``{status_dir}/{server}.json`` (atomically) at start, at every minute
rotation and at stop: connected since, last tweet, reconnects, tweets in the last minute and
this hour, last error. ``status_dir`` is ``stream.status_dir`` or ``{work_dir}/status``.

The report reads those files and, for every server of the config, the newest complete minute
file in its ``raw_dir`` (for a secondary pulled by rsync that is the newest pulled file): a
collector that writes no minute files is not collecting, whatever its status says.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ingest.atomic import atomic_write
from ingest.clock import Clock
from ingest.layout import MINUTE, parse_minute_name, raw_hours, work_paths


def status_dir(config: dict[str, Any]) -> Path:
    configured = config["stream"].get("status_dir")
    return Path(configured) if configured else Path(config["work_dir"]) / "status"


def status_path(config: dict[str, Any], server: str) -> Path:
    return status_dir(config) / f"{server}.json"


def write_status(path: Path, status: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(status, indent=1, sort_keys=True) + "\n")


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        return {"unreadable": f"{type(e).__name__}: {e}"}
    return data if isinstance(data, dict) else {"unreadable": "not a JSON object"}


def newest_minute(raw_dir: Path, tz: ZoneInfo) -> tuple[datetime, Path] | None:
    """UTC start and path of the newest complete minute file under ``raw_dir``."""
    # Hour labels sort in time order (the repeated DST hour shares its label): look at the
    # newest hour directories only, newest first, and stop at the first that has a file.
    for hour in sorted(raw_hours(Path(raw_dir)), reverse=True):
        d = Path(raw_dir) / hour.day / f"{hour.hh:02d}"
        best: tuple[datetime, Path] | None = None
        with os.scandir(d) as entries:
            for entry in entries:
                minute = parse_minute_name(entry.name, tz)
                if minute is not None and (best is None or minute > best[0]):
                    best = (minute, Path(entry.path))
        if best is not None:
            return best
    return None


def _age(delta: timedelta) -> str:
    s = int(delta.total_seconds())
    sign = "-" if s < 0 else ""
    s = abs(s)
    if s < 120:
        return f"{sign}{s} s"
    if s < 7200:
        return f"{sign}{s // 60} min"
    return f"{sign}{s // 3600} h {s % 3600 // 60} min"


def server_report(
    config: dict[str, Any], server_cfg: dict[str, Any], tz: ZoneInfo, now: datetime
) -> dict[str, Any]:
    """One server's status file and newest minute file, as a dict (``--json`` prints these).
    An imported server (an archive: no collector, no liveness) has its import summary
    instead, written by ``sampled-stream import``."""
    name = server_cfg["name"]
    path = status_path(config, name)
    raw_dir = Path(server_cfg["raw_dir"])
    report: dict[str, Any] = {
        "server": name,
        "raw_dir": server_cfg["raw_dir"],
        "raw_dir_exists": raw_dir.is_dir(),
    }
    if server_cfg.get("imported"):
        summary = work_paths(config["work_dir"])["imports"] / name / "summary.json"
        report["archive"] = read_status(summary) or {}
        return report
    report |= {
        "status_file": str(path),
        "status": read_status(path),
        "newest_minute": None,
        "newest_minute_file": None,
        "newest_minute_age_seconds": None,
    }
    newest = newest_minute(Path(server_cfg["raw_dir"]), tz)
    if newest is not None:
        minute, file = newest
        report["newest_minute"] = minute.astimezone(tz).isoformat()
        report["newest_minute_file"] = str(file)
        # Age since the minute ended, i.e. since the file could first have existed.
        report["newest_minute_age_seconds"] = round((now - (minute + MINUTE)).total_seconds(), 1)
    return report


def format_archive(report: dict[str, Any]) -> str:
    a = report["archive"]
    lines = [f"{report['server']}: archive (imported)"]
    if "unreadable" in a:
        lines.append(f"  import summary unreadable: {a['unreadable']}")
    elif not a.get("inputs"):
        lines.append("  nothing imported yet")
    else:
        lines.append(
            f"  {a['lines']:,} lines from {a['inputs']:,} input{'s' * (a['inputs'] != 1)}, "
            f"minutes {a['first_minute']} to {a['last_minute']}, last import {a['last_import']}"
        )
    return "\n".join(lines + _raw_dir_lines(report))


def _raw_dir_lines(report: dict[str, Any]) -> list[str]:
    if report.get("raw_dir_exists", True):
        return []
    return [f"  raw_dir {report['raw_dir']} does not exist (read as empty)"]


def format_report(report: dict[str, Any]) -> str:
    if "archive" in report:
        return format_archive(report)
    lines = [f"{report['server']}:"]
    st = report["status"]
    if st is None:
        lines.append(f"  status: no status file ({report['status_file']})")
    elif "unreadable" in st:
        lines.append(f"  status: unreadable {report['status_file']}: {st['unreadable']}")
    else:
        state = st.get("state", "?")
        if state == "running":
            state = "connected" if st.get("connected_since") else "disconnected (reconnecting)"
        lines.append(f"  state: {state} (pid {st.get('pid')}, updated {st.get('updated_at')})")
        if st.get("stopped_reason"):
            lines.append(f"  stopped: {st.get('stopped_at')} ({st['stopped_reason']})")
        lines.append(f"  connected since: {st.get('connected_since') or '-'}")
        lines.append(f"  last tweet: {st.get('last_tweet_at') or '-'}")
        last = st.get("last_minute") or {}
        hour = st.get("this_hour") or {}
        lines.append(
            f"  tweets: {last.get('tweets', 0)} in minute {last.get('minute', '-')}, "
            f"{hour.get('tweets', 0)} in hour {hour.get('hour', '-')}, "
            f"{st.get('tweets_total', 0)} since start"
        )
        lines.append(f"  reconnects: {st.get('reconnects', 0)}")
        err = st.get("last_error")
        if err:
            lines.append(f"  last error: {err.get('at')} {err.get('message')}")
        unwritten = (st.get("unwritten_minutes") or {}).get("minutes") or []
        if unwritten:
            lines.append(
                f"  NOT WRITTEN: {len(unwritten)} closed minute(s), {unwritten[0]} to "
                f"{unwritten[-1]}, kept in .part files and retried: "
                f"{st['unwritten_minutes'].get('error')}"
            )
        clock = st.get("clock") or {}
        if clock.get("judging_step_seconds") is not None:
            lines.append(
                f"  CLOCK STEPPED {clock['judging_step_seconds']:+.0f} s: waiting for tweets to "
                "tell whether the new reading is right; the time from before the step goes on"
            )
        elif clock.get("correction_seconds"):
            lines.append(
                f"  CLOCK CORRECTED: filing by the wall clock {clock['correction_seconds']:+.0f} s "
                f"since {clock.get('since')} ({clock.get('reason')}); check the time sync"
            )
        for taken in (st.get("unwritten_minutes") or {}).get("taken") or []:
            lines.append(
                f"  NAME TAKEN: {taken.get('file')} is {taken.get('is')}: move it away; the "
                "minute's lines wait in its .part file and are written once the name is free"
            )
        step = st.get("last_clock_step")
        if step:
            lines.append(
                f"  clock steps: {st.get('clock_steps')}, last {step.get('seconds'):+.0f} s "
                f"at {step.get('at')}"
            )
        pruned = st.get("pruned") or {}
        if pruned.get("files"):
            lines.append(
                f"  pruned: {pruned['files']} minute file(s) older than "
                f"{pruned.get('keep_raw_days')} days since start"
            )
    if report["newest_minute"] is None:
        lines.append(f"  newest minute file: none in {report['raw_dir']}")
    else:
        age = timedelta(seconds=report["newest_minute_age_seconds"])
        lines.append(
            f"  newest minute file: {report['newest_minute']} ({_age(age)} ago) "
            f"{report['newest_minute_file']}"
        )
    return "\n".join(lines + _raw_dir_lines(report))


def report_all(
    config: dict[str, Any], clock: Clock, servers: list[str] | None = None
) -> list[dict[str, Any]]:
    tz = ZoneInfo(config["timezone"])
    now = clock.now()
    return [
        server_report(config, s, tz, now)
        for s in config["servers"]
        if not servers or s["name"] in servers
    ]
