"""Screenshots of the dashboard's front page for the README (issue 23), in three states: healthy,
one server at half the rate, and after ``make demo``.

    python -m ingest.devtools.screenshots [--demo demo-run] [--out docs]

The first two are made from per-hour stats written here as the build writes them (two servers,
two days up to a fixed "now", collectors running, a good run recorded); the third is the front
page ``make demo`` left in ``--demo`` (run the demo first). Debian's headless Chromium takes
each picture (``chromium --headless --screenshot``); nothing is fetched from anywhere.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ingest import layout
from ingest.atomic import atomic_write_json
from ingest.collect.status import status_path, write_status
from ingest.config import validate_config
from ingest.layout import MINUTE, Hour
from ingest.observe import dashboard, health
from ingest.observe.site import dashboard_dir

TZ = ZoneInfo("Europe/Berlin")
NOW = datetime.fromisoformat("2026-01-14T15:20:00+00:00")  # 16:20 in Berlin
RATE = 3500  # tweets a minute at the 1 % sample
SERVERS = ("server1", "server2")
Count = Callable[[Hour, str, int], int | None]  # (hour, server, minute of the hour) -> tweets


def hour_stats(hour: Hour, tz: ZoneInfo, servers: tuple[str, ...], count: Count) -> dict[str, Any]:
    """An hour's stats as ``ingest.hours.hourly`` writes them, from a count per minute (None: no
    minute file); a server with no file all hour is listed missing."""
    start, end = layout.hour_bounds(hour, tz)
    minutes: dict[str, dict[str, int | None]] = {}
    for s in servers:
        minutes[s] = {
            (start + m * MINUTE).astimezone(tz).isoformat(timespec="minutes"): count(hour, s, m)
            for m in range(int((end - start) / MINUTE))
        }
    counts = {s: sum(v or 0 for v in minutes[s].values()) for s in servers}
    total = max(counts.values()) + 10
    diff = total - min(counts.values())
    return {
        "hour": hour.label,
        "servers": list(servers),
        "counts": counts,
        "total": total,
        "diff": diff,
        "diff_pct": round(100 * diff / total, 2),
        "users": total - 100,
        "minutes": minutes,
        "skipped": {s: {"invalid_json": 2} for s in servers},
        "missing_servers": [s for s in servers if all(v is None for v in minutes[s].values())],
        "inputs": {s: {} for s in servers},
    }


def write_hours(vault: Path, tz: ZoneInfo, first: datetime, now: datetime, stats) -> None:
    """The stats (``stats(hour)``) of every hour complete at ``now`` from ``first`` on."""
    t = first
    while layout.is_complete(hour := layout.hour_of(t, tz), tz, now, 6, 5):
        paths = layout.vault_paths(vault, hour)
        paths["stats"].parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(paths["stats"], stats(hour))
        t += timedelta(hours=1)


def world(root: Path, shares: dict[str, float]) -> dict[str, Any]:
    """Two days of two servers, each at ``shares[server]`` of RATE (a few % of noise), the
    collectors running and writing, a good run just recorded; the validated config."""

    def count(hour: Hour, server: str, m: int) -> int:
        noise = ((hour.hh * 37 + m * 11 + len(server)) % 13 - 6) / 100
        return round(RATE * shares[server] * (1 + noise))

    config = validate_config(
        {
            "timezone": "Europe/Berlin",
            "vault_dir": str(root / "vault"),
            "work_dir": str(root / "work"),
            "servers": [{"name": s, "raw_dir": str(root / "raw" / s)} for s in SERVERS],
            "dashboard": {"expected_per_minute": RATE},
        }
    )
    day = (NOW.astimezone(TZ) - timedelta(days=1)).date()
    first = datetime(day.year, day.month, day.day, tzinfo=TZ)
    write_hours(root / "vault", TZ, first, NOW, lambda h: hour_stats(h, TZ, SERVERS, count))
    for s in config["servers"]:
        newest = layout.minute_path(Path(s["raw_dir"]), NOW - 2 * MINUTE, TZ)
        newest.parent.mkdir(parents=True, exist_ok=True)
        newest.touch()
        write_status(
            status_path(config, s["name"]),
            {"state": "running", "connected_since": (NOW - timedelta(days=2)).isoformat()},
        )
    health.record_run(config, "screenshot", NOW - MINUTE, NOW - MINUTE / 2, "ok")
    return config


def shoot(page: Path, png: Path, width: int = 1400, height: int = 1100) -> None:
    """``page`` as headless Chromium shows it at ``width`` x ``height``, to ``png``."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    png.parent.mkdir(parents=True, exist_ok=True)
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    cmd += [f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("demo-run"), help="make demo's folder")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args(argv)
    states = {
        "healthy": {"server1": 1.0, "server2": 0.99},
        "half-rate": {"server1": 1.0, "server2": 0.5},
    }
    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp:
        for name, shares in states.items():
            config = world(Path(tmp) / name, shares)
            dashboard.update_dashboard(config, NOW, health.system_health(config, NOW))
            shoot(dashboard_dir(config) / "index.html", args.out / f"dashboard-{name}.png")
            print(f"{args.out / f'dashboard-{name}.png'}: {name}")
    demo = (args.demo / "vault" / "dashboard" / "index.html").resolve()
    if not demo.exists():
        print(f"no {demo}: run make demo first for the third picture", file=sys.stderr)
        return 1
    shoot(demo, args.out / "dashboard-after-demo.png")
    print(f"{args.out / 'dashboard-after-demo.png'}: after make demo")
    return 0


if __name__ == "__main__":
    sys.exit(main())
