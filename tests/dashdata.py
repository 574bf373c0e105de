"""A small archive of per-hour stats for the dashboard, health and metrics tests.

Stats are written as ``ingest.hours.hourly`` writes them (minute keys: local time with offset;
``null``: no minute file), with a known outage and a known zero minute, so tests can look for
them on the pages.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ingest import layout
from ingest.devtools import screenshots
from ingest.layout import Hour

TZ = ZoneInfo("Europe/Berlin")
SERVERS = ("server1", "server2")
NOW = datetime.fromisoformat("2026-01-14T11:20:00+00:00")  # 12:20 in Berlin
# server2 has no file 10:20-10:34 local on 2026-01-14; server1 has a 0 at 10:40.
OUTAGE = (Hour("2026-01-14", 10), "server2", range(20, 35))
ZERO = (Hour("2026-01-14", 10), "server1", 40)
MISSING = (Hour("2026-01-13", 3), "server2")  # server2 has no file at all that hour


def count(hour: Hour, server: str, m: int) -> int:
    """A made-up, deterministic count for a minute."""
    return 100 + (hour.hh * 7 + m * 3 + (5 if server == "server2" else 0)) % 40


def minute_count(hour: Hour, server: str, m: int) -> int | None:
    """The count of a minute, with the known outage, zero minute and missing hour."""
    if (hour, server) == OUTAGE[:2] and m in OUTAGE[2]:
        return None
    if (hour, server, m) == ZERO:
        return 0
    if (hour, server) == MISSING:
        return None
    return count(hour, server, m)


def hour_stats(hour: Hour) -> dict[str, Any]:
    return screenshots.hour_stats(hour, TZ, SERVERS, minute_count)


def write_archive(root: Path, now: datetime = NOW, days: int = 2) -> dict[str, Any]:
    """Built hours from ``days`` days before ``now``'s day up to its last complete hour; the
    config (two servers, as a user writes it) is returned."""
    vault = root / "vault"
    today = now.astimezone(TZ).date()
    first = today - timedelta(days=days)
    t = datetime(first.year, first.month, first.day, tzinfo=TZ).astimezone(now.tzinfo)
    while True:
        hour = layout.hour_of(t, TZ)
        if not layout.is_complete(hour, TZ, now, 6, 5):
            break
        paths = layout.vault_paths(vault, hour)
        paths["stats"].parent.mkdir(parents=True, exist_ok=True)
        paths["stats"].write_text(json.dumps(hour_stats(hour)))
        paths["ids"].write_bytes(b"\xfd7zXZ\x00fake")
        t += timedelta(hours=1)
    for s in SERVERS:
        (root / "raw" / s).mkdir(parents=True, exist_ok=True)
    return {
        "timezone": "Europe/Berlin",
        "vault_dir": str(vault),
        "work_dir": str(root / "work"),
        "servers": [{"name": s, "raw_dir": str(root / "raw" / s)} for s in SERVERS],
    }
