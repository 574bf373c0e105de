# Day report: rebuilt from the per-hour stats every time an hour of the day is (re)built.


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
