"""Snakemake entry point of rule replicate: copy a built hour to one replica, verified."""

from datetime import datetime
from pathlib import Path

from ingest.layout import Hour
from ingest.logs import job_failures_logged
from ingest.vault.jobs import replicate_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_failures_logged("replicate", sm.log[0]) as log:
    replicate_job(
        sm.config,
        sm.wildcards.replica,
        Hour(sm.wildcards.day, int(sm.wildcards.hh)),
        datetime.fromisoformat(sm.params.now),
        Path(sm.output[0]),
        log,
    )
