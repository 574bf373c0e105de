"""Snakemake entry point of rule replicate: copy a built hour to one replica, verified."""

from datetime import datetime
from pathlib import Path

from ingest.layout import Hour
from ingest.logs import job_logger
from ingest.vault.jobs import replicate_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
replicate_job(
    sm.config,
    sm.wildcards.replica,
    Hour(sm.wildcards.day, int(sm.wildcards.hh)),
    datetime.fromisoformat(sm.params.now),
    Path(sm.output[0]),
    job_logger("replicate", sm.log[0]),
)
