"""What the pull rule's script calls."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ingest import layout
from ingest.clock import FixedClock
from ingest.layout import Hour
from ingest.notify import alerts_for
from ingest.receipts import write_receipt


def pull_job(
    config: dict[str, Any], server: str, now: datetime, receipt: Path, log: logging.Logger
) -> None:
    """Pull a secondary's minute files; a failed pull is recorded, not raised (see plan)."""
    from ingest.pull.rsync import alert_unreachable, pull_server

    server_cfg = next(s for s in config["servers"] if s["name"] == server)
    state_dir = layout.work_paths(config["work_dir"])["state"]
    hours = None
    if not server_cfg["remove_source_files"]:
        # The secondary keeps its copies: pull only hours retention still keeps here, or each
        # run would fetch again every minute file retention has removed, forever.
        hours = retained_hours(config, now)
    result = pull_server(
        server_cfg, now, state_dir, log, hours=hours, vault_dir=Path(config["vault_dir"])
    )
    alerts = alerts_for(config, FixedClock(now), log)
    alert_unreachable(result, state_dir, alerts, now, config["email"]["alert_after_minutes"])
    write_receipt(receipt, result.to_json())


def retained_hours(config: dict[str, Any], now: datetime) -> list[Hour]:
    """Hours whose minute files are all younger than retention.keep_raw_hours, up to the one
    after ``now`` (a collector's clock may run a little ahead)."""
    tz = ZoneInfo(config["timezone"])
    oldest = now - timedelta(hours=config["retention"]["keep_raw_hours"])
    hours = layout.hours_between(oldest, now + layout.HOUR, tz)
    return [h for h in hours if (b := layout.hour_bounds(h, tz)) is not None and b[0] >= oldest]
