# Hourly stage: merge every server's minutes of the hour into the three .xz files and stats.


rule build_hour:
    input:
        unpack(hour_inputs),
    output:
        ids=vault_file("ids"),
        tweets=vault_file("tweets"),
        users=vault_file("users"),
        stats=vault_file("stats"),
    log:
        str(WORK["logs"] / "build/{day}_{hh}.log"),
    params:
        servers=list(SERVERS),
        timezone=config["timezone"],
        xz_preset=config["xz_preset"],
        xz_threads=config["xz_threads"],
    threads: 2
    script:
        "../../scripts/build_hour.py"
