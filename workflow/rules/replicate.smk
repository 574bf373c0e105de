# Manifests and replicas (issues 15, 21). Once a day's report is rebuilt, day_manifest derives
# {day}_SHA256SUMS from the day's hour records and report (ingest.vault.day). Then each built hour
# (with its day's report and manifest) is copied to every vault_replicas entry and verified
# there; the receipt is work_dir/replicas/{replica}/{day}/{day}_{hh}.json. A replica that
# fails fails only its own jobs; later runs retry it with back-off, and nothing waits for a
# replica. The targets come from replication.workflow_targets (called in targets_of).
try:
    REPLICAS = replication.replicas(config)
except replication.ReplicaConfigError as e:
    raise WorkflowError(str(e)) from None


wildcard_constraints:
    # No replica configured: a pattern that matches nothing.
    replica="|".join(r.name for r in REPLICAS) or "(?!)",


# No conda env or container (snakemake --lint asks): jobs run in the project's .venv.
rule day_manifest:
    input:
        lambda wildcards: reported(wildcards.day),
    output:
        str(replication.manifest_receipt(config["work_dir"], "{day}", RUN)),
    log:
        str(WORK["logs"] / "manifest/{day}.log"),
    threads: 1
    # 23 MB (measured); hashes the day's new vault files (~6 GB a day at 10 %: ~15 s).
    resources:
        mem_mb=200,
        runtime=10,
    params:
        vault=str(VAULT),
    script:
        "../../scripts/day_manifest.py"


rule replicate:
    input:
        lambda wildcards: replication.copy_inputs(config, run_plan(), hour_of(wildcards), RUN),
    output:
        str(replication.receipt_path(config["work_dir"], "{replica}", "{day}", "{hh}")),
    log:
        str(WORK["logs"] / "replicate/{replica}/{day}_{hh}.log"),
    threads: 1
    # Python ~23 MB and rsync; the copy's time is the network's.
    resources:
        mem_mb=300,
        runtime=60,
    params:
        now=NOW.isoformat(),
    script:
        "../../scripts/replicate.py"
