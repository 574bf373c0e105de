# Publication: each built hour's IDs file, its day's report and SHA256SUMS manifest go to the
# OSF project. Only these kinds of file ever leave the machine: X's terms allow sharing tweet
# IDs only (a manifest holds file names and hashes).
# The job waits for this run's build and report of them, if any (upload_inputs), and reads
# the vault files named in params.


# No conda env or container (snakemake --lint asks): jobs run in the project's .venv.
rule upload_osf:
    input:
        unpack(upload_inputs),
    output:
        str(WORK["osf"] / "{day}/{day}_{hh}.json"),
    log:
        str(WORK["logs"] / "osf/{day}_{hh}.log"),
    threads: 1
    # ~30 MB with osfclient (measured); retries with back-off within the job.
    resources:
        mem_mb=200,
        runtime=30,
    params:
        ids=lambda wildcards: vault_path(hour_of(wildcards), "ids"),
        report=lambda wildcards: report_file(wildcards.day),
        now=NOW.isoformat(),
    script:
        "../../scripts/upload_osf.py"
