# The day's report by mail, once the day is complete, with a plot of tweets per minute; again,
# marked revised, when a newer generation of one of its hours rewrote the report.
# The job waits for this run's report of the day, if any (mail_inputs), and reads the report
# named in params.


# No conda env or container (snakemake --lint asks): jobs run in the project's .venv.
rule mail_report:
    input:
        mail_inputs,
    output:
        str(WORK["mail"] / "{day}.sent"),
    log:
        str(WORK["logs"] / "mail/{day}.log"),
    threads: 1
    # ~70 MB with matplotlib for the plot (measured).
    resources:
        mem_mb=300,
        runtime=10,
    params:
        report=lambda wildcards: report_file(wildcards.day),
        revised=lambda wildcards: wildcards.day in run_plan().revised,
        now=NOW.isoformat(),
    script:
        "../../scripts/mail_report.py"
