# Publication: each built hour's IDs file and its day's report go to the OSF project.
# Only these two kinds of file ever leave the machine: X's terms allow sharing tweet IDs only.


rule upload_osf:
    input:
        ids=vault_file("ids"),
        report=str(VAULT / "{day}/{day}_report.txt"),
    output:
        str(WORK["osf"] / "{day}/{day}_{hh}.json"),
    log:
        str(WORK["logs"] / "osf/{day}_{hh}.log"),
    params:
        osf=config["osf"],
        now=NOW.isoformat(),
    script:
        "../../scripts/upload_osf.py"
