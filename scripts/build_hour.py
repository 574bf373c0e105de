"""Snakemake entry point of rule build_hour: merge an hour's minutes into the vault files."""

from ingest.build.hourly import build_hour
from ingest.layout import Hour
from ingest.logs import job_logger

sm = snakemake  # noqa: F821 (injected by Snakemake)
hour = Hour(sm.wildcards.day, int(sm.wildcards.hh))
log = job_logger("build_hour", sm.log[0])
inputs = {
    server: list(zip(sm.input[f"{server}__tweets"], sm.input[f"{server}__users"], strict=True))
    for server in sm.params.servers
    if f"{server}__tweets" in sm.input.keys()
}
if not inputs:
    raise SystemExit(
        f"hour {hour} is not due in this run (incomplete, or no raw data);"
        " to rebuild it run with --config hours=DAY_or_HOUR --forcerun build_hour"
    )
build_hour(
    hour,
    sm.params.timezone,
    inputs,
    {k: sm.output[k] for k in ("ids", "tweets", "users", "stats")},
    xz_preset=sm.params.xz_preset,
    xz_threads=sm.params.xz_threads,
    server_names=sm.params.servers,
    log=log,
)
