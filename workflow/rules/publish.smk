# Publication: each built hour's IDs file and its day's report go to the OSF project.
# Only these two kinds of file ever leave the machine: X's terms allow sharing tweet IDs only.


# No conda env or container (snakemake --lint asks): jobs run in the project's .venv.
rule upload_osf:
    input:
        ids=vault_file("ids"),
        report=str(VAULT / "{day}/{day}_report.txt"),
    output:
        str(WORK["osf"] / "{day}/{day}_{hh}.json"),
    log:
        str(WORK["logs"] / "osf/{day}_{hh}.log"),
    params:
        now=NOW.isoformat(),
    script:
        "../../scripts/upload_osf.py"
