"""What the manifest and replicate rules' scripts call."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from ingest.layout import Hour
from ingest.vault.manifest import update_manifest
from ingest.vault.replicate import replicate_hour


def manifest_job(vault_dir: Path, day: str, names: list[str], work_dir: str, receipt: Path, log):
    """The workflow's day_manifest job: hash the files this run wrote into the day's manifest."""
    from ingest.receipts import replace_receipt

    day_dir = Path(vault_dir) / day
    present = [n for n in names if (day_dir / n).exists()]
    path = update_manifest(day_dir, present, Path(work_dir) / "state" / "manifest.lock")
    replace_receipt(receipt, {"day": day, "manifest": str(path), "hashed": present})
    log.info("manifest of %s: %d file(s) written by this run hashed", day, len(present))


def replicate_job(config: dict[str, Any], replica: str, hour: Hour, now: datetime, receipt, log):
    """The workflow's replicate job (with the run's alerts)."""
    from ingest.clock import FixedClock
    from ingest.notify import alerts_for

    alerts = alerts_for(config, FixedClock(now), log)
    replicate_hour(config, replica, hour, now, Path(receipt), log, alerts)
