"""Snakemake entry point of rule upload_osf: publish an hour's IDs and the day's report."""

from datetime import datetime
from pathlib import Path

from ingest.logs import job_failures_logged
from ingest.publish.jobs import upload_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_failures_logged("upload_osf", sm.log[0]) as log:
    upload_job(
        sm.config,
        Path(sm.params.ids),  # the vault files; the inputs are receipts when built in this run
        Path(sm.params.report),
        datetime.fromisoformat(sm.params.now),
        Path(sm.output[0]),
        log,
    )
