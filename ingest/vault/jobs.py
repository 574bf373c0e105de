"""What the manifest and replicate rules' scripts call."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from ingest.layout import Hour
from ingest.vault.day import derive_manifest
from ingest.vault.replicate import replicate_hour


def manifest_job(vault_dir: Path, day: str, work_dir: str, receipt: Path, log):
    """The workflow's day_manifest job: derive the day's manifest from its records."""
    from ingest.receipts import replace_receipt

    path = derive_manifest(Path(vault_dir) / day, Path(work_dir) / "state" / "manifest.lock", log)
    replace_receipt(receipt, {"day": day, "manifest": str(path)})
    log.info("manifest of %s derived from its records", day)


def replicate_job(config: dict[str, Any], replica: str, hour: Hour, now: datetime, receipt, log):
    """The workflow's replicate job (with the run's alerts)."""
    from ingest.clock import FixedClock
    from ingest.notify import alerts_for

    alerts = alerts_for(config, FixedClock(now), log)
    replicate_hour(config, replica, hour, now, Path(receipt), log, alerts)
