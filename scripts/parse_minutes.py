"""Snakemake entry point of checkpoint parse_minutes: the run's minute files -> intermediates."""

from datetime import datetime
from pathlib import Path

from ingest.hours.jobs import parse_job
from ingest.logs import job_failures_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_failures_logged("parse_minutes", sm.log[0]):
    parse_job(
        sm.config, datetime.fromisoformat(sm.params.now), sm.threads, sm.log[0], Path(sm.output[0])
    )
