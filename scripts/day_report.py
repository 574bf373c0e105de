"""Snakemake entry point of rule day_report: rebuild a day's report from its hours' stats.

The inputs are this run's receipts of the day's (re)built hours; the report is made from the
stats of every built hour of the day in the vault, and written there (temp and rename). The
rule's output is this run's receipt of the report.
"""

from pathlib import Path

from ingest.hours.report import write_day_report
from ingest.hours.stats import day_stats_paths
from ingest.layout import report_path
from ingest.logs import job_logger
from ingest.receipts import replace_receipt

sm = snakemake  # noqa: F821 (injected by Snakemake)
day, vault = sm.wildcards.day, Path(sm.params.vault)
stats = day_stats_paths(vault / day, day)
report = report_path(vault, day)
write_day_report(day, stats, report, sm.params.servers)
replace_receipt(sm.output[0], {"day": day, "report": str(report), "hours": len(stats)})
job_logger("day_report", sm.log[0]).info("report of %s from %d hours", day, len(stats))
