"""Snakemake entry point of rule day_report: rebuild a day's report from its hours' stats."""

from pathlib import Path

from ingest.build.report import write_day_report
from ingest.logs import job_logger

sm = snakemake  # noqa: F821 (injected by Snakemake)
out = Path(sm.output[0])
# Every built hour of the day counts, not only those rebuilt in this run.
stats = sorted(out.parent.glob(f"{sm.wildcards.day}_*_stats.json"))
write_day_report(sm.wildcards.day, stats, out, sm.params.servers)
job_logger("day_report", sm.log[0]).info("report of %s from %d hours", sm.wildcards.day, len(stats))
