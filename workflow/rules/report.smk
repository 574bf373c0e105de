# Day report: rebuilt from the per-hour stats every time an hour of the day is (re)built. Its
# inputs are the stats of every built hour of the day (day_stats), and the report is made from
# exactly those.


# No conda env or container (snakemake --lint asks): jobs run in the project's .venv.
rule day_report:
    input:
        day_stats,
    output:
        update(str(VAULT / "{day}/{day}_report.txt")),
    log:
        str(WORK["logs"] / "report/{day}.log"),
    params:
        servers=list(SERVERS),
    script:
        "../../scripts/day_report.py"
