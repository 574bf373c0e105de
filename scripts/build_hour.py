"""Snakemake entry point of rule build_hour: merge an hour's minutes into the vault files.

The rule's output is this run's receipt of the hour (ingest.hours.jobs.build_job). Its
inputs are the raw minute files of the hour's read window in a backfill (config ``hours``),
the run's intermediates in the cron mode.
"""

from datetime import datetime

from ingest.hours.jobs import build_job
from ingest.layout import Hour
from ingest.logs import job_failures_logged

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_failures_logged("build_hour", sm.log[0]):
    keys = set(sm.input.keys())
    servers = [s["name"] for s in sm.config["servers"]]
    build_job(
        sm.config,
        Hour(sm.wildcards.day, int(sm.wildcards.hh)),
        raw={s: list(sm.input[f"{s}__raw"]) for s in servers if f"{s}__raw" in keys},
        intermediates={
            s: list(zip(sm.input[f"{s}__tweets"], sm.input[f"{s}__users"], strict=True))
            for s in servers
            if f"{s}__tweets" in keys
        },
        threads=sm.threads,
        receipt=sm.output[0],
        log_path=sm.log[0],
        now=datetime.fromisoformat(sm.params.now),
    )
