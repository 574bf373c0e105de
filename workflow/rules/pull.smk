# Redundancy: pull each secondary's finished minute files over rsync before hours are built.
# A checkpoint, because which minute files exist is known only after the transfer. Its output
# is named after this run, so every run pulls once.


# No conda env or container (snakemake --lint asks): jobs run in the project's .venv.
checkpoint pull:
    output:
        str(WORK["pulls"] / "{server}/{run}.json"),
    log:
        str(WORK["logs"] / "pull/{server}/{run}.log"),
    threads: 1
    # Python ~17 MB and rsync; the transfer's time is the network's (a local rule anyway).
    resources:
        mem_mb=300,
        runtime=60,
    params:
        now=NOW.isoformat(),
    script:
        "../../scripts/pull.py"
