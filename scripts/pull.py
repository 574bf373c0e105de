"""Snakemake entry point of checkpoint pull: bring a secondary's minute files over."""

from datetime import datetime
from pathlib import Path

from ingest.logs import job_logger
from ingest.pull.jobs import pull_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
pull_job(
    sm.config,
    sm.wildcards.server,
    datetime.fromisoformat(sm.params.now),
    Path(sm.output[0]),
    job_logger("pull", sm.log[0]),
)
