"""Snakemake entry point of checkpoint parse_minutes: the run's minute files -> intermediates."""

from datetime import datetime
from pathlib import Path

from ingest.hours.jobs import parse_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
parse_job(
    sm.config, datetime.fromisoformat(sm.params.now), sm.threads, sm.log[0], Path(sm.output[0])
)
