"""Snakemake entry point of rule day_manifest: derive {day}_SHA256SUMS from the day's records."""

from pathlib import Path

from ingest.logs import job_failures_logged
from ingest.vault.jobs import manifest_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_failures_logged("day_manifest", sm.log[0]) as log:
    manifest_job(
        Path(sm.params.vault),
        sm.wildcards.day,
        sm.config["work_dir"],
        Path(sm.output[0]),
        log,
    )
