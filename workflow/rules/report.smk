# Day report: rebuilt from the per-hour stats every time an hour of the day is (re)built. It
# waits for this run's builds of the day (day_builds), then reads the stats of every built hour
# of the day from the vault and writes the report there (temp and rename). The rule's output
# is this run's receipt of the report (ingest.receipts): no vault file is an output.


# No conda env or container (snakemake --lint asks): jobs run in the project's .venv.
rule day_report:
    input:
        day_builds,
    output:
        str(report_receipt(config["work_dir"], "{day}", RUN)),
    log:
        str(WORK["logs"] / "report/{day}.log"),
    threads: 1
    # 26 MB, under a second (measured at 1 %; reads 24 stats files at any rate).
    resources:
        mem_mb=200,
        runtime=5,
    params:
        vault=str(VAULT),
        servers=list(SERVERS),
    script:
        "../../scripts/day_report.py"
