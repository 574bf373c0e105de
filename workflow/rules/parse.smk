# Per-minute stage: one raw minute file of one server -> its sorted tweet and user rows.
# A lean `shell:` call (no Snakemake or pandas import) keeps the ~130 jobs of an hour cheap.


rule parse_minute:
    input:
        raw_minute,
    output:
        tweets=str(WORK["minutes"] / "{server}/{day}/{hh}/{stem}.tweets.tsv"),
        users=str(WORK["minutes"] / "{server}/{day}/{hh}/{stem}.users.tsv"),
    log:
        str(WORK["logs"] / "parse/{server}/{day}/{hh}/{stem}.log"),
    params:
        python=PYTHON,
        timezone=config["timezone"],
        late=config["late_minutes"],
    shell:
        "{params.python} -m ingest.minutes --server {wildcards.server} --timezone {params.timezone}"
        " --late-minutes {params.late} {input:q} {output.tweets:q} {output.users:q} 2> {log:q}"
