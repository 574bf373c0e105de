"""Snakemake entry point of rule day_report: rebuild a day's report from its hours' stats."""

from ingest.build.report import write_day_report
from ingest.logs import job_logger

sm = snakemake  # noqa: F821 (injected by Snakemake)
# The inputs are every built hour's stats (day_stats), not only those rebuilt in this run.
stats = list(sm.input)
write_day_report(sm.wildcards.day, stats, sm.output[0], sm.params.servers)
job_logger("day_report", sm.log[0]).info("report of %s from %d hours", sm.wildcards.day, len(stats))
