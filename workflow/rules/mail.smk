# The day's report by mail, once the day is complete, with a plot of tweets per minute.


# No conda env or container (snakemake --lint asks): jobs run in the project's .venv.
rule mail_report:
    input:
        report=str(VAULT / "{day}/{day}_report.txt"),
    output:
        str(WORK["mail"] / "{day}.sent"),
    log:
        str(WORK["logs"] / "mail/{day}.log"),
    script:
        "../../scripts/mail_report.py"
