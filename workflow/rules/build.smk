# Hourly stage: merge every server's minutes of the hour into the three .xz files and stats.
# update(): Snakemake must not delete an hour's files before rebuilding it (nothing is deleted
# before its replacement is written; a rebuild with fewer tweets keeps the old files), and
# restores them if the rebuild fails.


# No conda env or container (snakemake --lint asks): jobs run in the project's .venv.
rule build_hour:
    input:
        unpack(hour_inputs),
    output:
        ids=update(vault_file("ids")),
        tweets=update(vault_file("tweets")),
        users=update(vault_file("users")),
        stats=update(vault_file("stats")),
    log:
        str(WORK["logs"] / "build/{day}_{hh}.log"),
    threads: 2
    params:
        servers=list(SERVERS),
        timezone=config["timezone"],
        xz_preset=config["xz_preset"],
        xz_threads=config["xz_threads"],
    script:
        "../../scripts/build_hour.py"
