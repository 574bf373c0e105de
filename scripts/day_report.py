"""Snakemake entry point of rule day_report: rebuild a day's report from its hours' stats.

The inputs are this run's receipts of the day's (re)built hours; the report is made from the
stats of every built hour of the day in the vault, and written there (temp and rename). The
rule's output is this run's receipt of the report (ingest.hours.jobs.report_job).
"""

from pathlib import Path

from ingest.hours.jobs import report_job
from ingest.logs import job_failures_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_failures_logged("day_report", sm.log[0]):
    report_job(sm.wildcards.day, Path(sm.params.vault), sm.params.servers, sm.output[0], sm.log[0])
