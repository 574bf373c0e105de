"""Snakemake entry point of rule build_hour: merge an hour's minutes into the vault files.

The vault files are build_hour's alone (temp and rename); the rule's output is this run's
receipt of the hour, written once they are in place. In a backfill (config ``hours``) the
inputs are the raw minute files of the hour's read window, parsed here first into a folder of
the job's own (ingest.build.backfill); in the cron mode they are the run's intermediates.
"""

from contextlib import nullcontext
from pathlib import Path

from ingest.build.backfill import ParsedWindow, parsed_window
from ingest.build.hourly import build_hour
from ingest.build.receipts import replace_receipt
from ingest.layout import Hour, vault_paths
from ingest.logs import job_logger

sm = snakemake  # noqa: F821 (injected by Snakemake)
hour = Hour(sm.wildcards.day, int(sm.wildcards.hh))
log = job_logger("build_hour", sm.log[0])
keys = set(sm.input.keys())
raw = {s: list(sm.input[f"{s}__raw"]) for s in sm.params.servers if f"{s}__raw" in keys}
if raw:
    window = parsed_window(raw, sm.params.timezone, sm.params.late_minutes, sm.threads, sm.log[0])
else:
    intermediates = {
        server: list(zip(sm.input[f"{server}__tweets"], sm.input[f"{server}__users"], strict=True))
        for server in sm.params.servers
        if f"{server}__tweets" in keys
    }
    window = nullcontext(ParsedWindow(intermediates, []))
with window as parsed:
    if not parsed.inputs:
        raise SystemExit(
            f"hour {hour} is not due in this run (incomplete, or no raw data);"
            " to rebuild it run with --config hours=DAY_or_HOUR"
        )
    if raw:
        log.info("%s: parsed %d minute files in %.1f s", hour, parsed.files, parsed.seconds)
    for skipped in parsed.skipped_files:
        log.warning("%s: not built into %s (the file could not be read)", skipped, hour)
    stats = build_hour(
        hour,
        sm.params.timezone,
        parsed.inputs,
        vault_paths(Path(sm.params.vault), hour),
        xz_preset=sm.params.xz_preset,
        xz_threads=sm.params.xz_threads,
        server_names=sm.params.servers,
        from_scratch=sm.params.from_scratch,
        log=log,
    )
for older in replace_receipt(sm.output[0], stats):
    log.info("removed %s, an earlier run's receipt", older)
