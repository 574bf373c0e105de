# Per-minute stage: every raw minute file of every server -> its sorted tweet and user rows
# (work_dir/minutes/{server}/{day}/{HH}/{minute}.tweets.tsv and .users.tsv), the inputs of
# build_hour. One job per run parses all minute files due, in `threads` processes: measured
# here, one Snakemake job per minute file cost more than the parsing itself (README, Speed).
# A checkpoint, so the hours' inputs are looked at again once their files exist; it runs after
# this run's pulls and finds the files due itself, pulled ones included.


# No conda env or container (snakemake --lint asks): jobs run in the project's .venv.
checkpoint parse_minutes:
    input:
        [str(WORK["pulls"] / server / f"{RUN}.json") for server in PULLED],
    output:
        str(WORK["parsed"] / "{run}.json"),
    log:
        str(WORK["logs"] / "parse/{run}.log"),
    # Before any upload_osf (priority 0): builds never wait for OSF, however slow it is.
    priority: 1
    # Every core of the run: the builds wait for it.
    threads: lambda wildcards: run_cores()
    # 82 MB for the job and its two workers at 1 % (measured), a minute file's rows each; ~10x
    # the rows at 10 %. A run parses the minutes since the last one; a backlog takes longer.
    resources:
        mem_mb=500,
        runtime=60,
    params:
        now=NOW.isoformat(),
    script:
        "../../scripts/parse_minutes.py"
