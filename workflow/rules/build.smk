# Hourly stage: merge every server's minutes of the hour into the three .xz files and stats.
# The vault files are the job's alone: build_hour writes each to a temporary name and renames
# it, merging into what the hour already holds. The rule's output is this run's receipt of the
# hour in work_dir (ingest.receipts), so Snakemake never backs up, restores in place or
# deletes a vault file, and an hour planned in a run is built in that run.


# No conda env or container (snakemake --lint asks): jobs run in the project's .venv.
rule build_hour:
    input:
        unpack(hour_inputs),
    output:
        str(build_receipt(config["work_dir"], "{day}", "{hh}", RUN)),
    log:
        str(WORK["logs"] / "build/{day}_{hh}.log"),
    # Before any upload_osf (priority 0): builds never wait for OSF, however slow it is.
    priority: 1
    # The run's cores shared by the hours' input (common.smk): one hour alone parses and
    # compresses on every core, many hours run side by side on a core each.
    threads: build_threads
    # What an executor asks for (a cluster's slot), from the inputs' size: measured at 1 % and
    # 10 % (ingest.hours.resources).
    resources:
        mem_mb=lambda wildcards, input: build_resources.build_mem_mb(input.size_mb, BACKFILL),
        runtime=lambda wildcards, input: build_resources.build_runtime_min(input.size_mb, BACKFILL),
    params:
        now=NOW.isoformat(),
    script:
        "../../scripts/build_hour.py"
