"""Snakemake entry point of checkpoint pull: bring a secondary's minute files over."""

from datetime import datetime
from pathlib import Path

from ingest.logs import job_failures_logged
from ingest.pull.jobs import pull_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_failures_logged("pull", sm.log[0]) as log:
    pull_job(
        sm.config,
        sm.wildcards.server,
        datetime.fromisoformat(sm.params.now),
        Path(sm.output[0]),
        log,
    )
