"""Snakemake entry point of rule mail_report: mail a complete day's report once."""

from datetime import datetime
from pathlib import Path

from ingest.logs import job_failures_logged
from ingest.publish.jobs import mail_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_failures_logged("mail_report", sm.log[0]) as log:
    mail_job(
        sm.config,
        sm.wildcards.day,
        Path(sm.params.report),  # the vault file; the input is a receipt when made in this run
        Path(sm.output[0]),
        log,
        datetime.fromisoformat(sm.params.now),
        sm.params.revised,
    )
