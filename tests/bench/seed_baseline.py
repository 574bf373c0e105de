"""The seed's hourly post-processing, rebuilt from its README, as the benchmark's baseline.

What the seed did (``../shared/seed/twitter_sampled_stream_v2-README.md``): a shell loop runs
``jq`` once per raw minute file of each server to flatten its JSON lines into a CSV file; then
``collect_data.py`` reads every CSV of the hour with pandas into one data frame per server,
compares the two by tweet ID for the day report, merges them (tweets one server missed are
supplied by the other), keeps each author's latest row as the users table, and writes the
IDs, tweets and users files with pandas' xz compression (Python's lzma, preset 6, one thread).

Here the same steps run on the hour's raw minute files (by default the same read window the
workflow's build reads, so both do the same input work). Deliberate differences from the
seed, all in its favour or neutral: one ``pd.concat`` per server (the seed concatenated in a
loop, quadratic in the number of files), invalid JSON lines are skipped (``fromjson?``; the
seed's jq stopped at the first one and lost the rest of the file), rows are sorted by ID so
the output holds what the workflow's does, and the raw files are kept.

    python tests/bench/seed_baseline.py --server server1=RAW1 --server server2=RAW2 \
        --hour 2026-01-14_11 --timezone CET --late-minutes 6 --out OUT --work TMP
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ingest import layout  # noqa: E402 (only for listing the hour's minute files)
from ingest.hours.parse import TWEET_COLUMNS  # noqa: E402

COLUMNS = list(TWEET_COLUMNS)  # the seed's 20 columns, in its order
AUTHOR_COLS = ["author_id", "lang", *COLUMNS[10:]]

# One stream line -> one CSV row of the 20 columns. Stream lines carry the tweet in .data and
# its author in .includes.users; the seed's own (twarc-flattened) lines have the tweet at the
# top level with .author folded in. Like the seed, only the text's newlines are replaced.
JQ_PROGRAM = r"""
fromjson?
| select(type == "object")
| (if (.data | type) == "object" then .data elif .id != null then . else empty end) as $t
| (((.includes.users // []) | map(select(.id == $t.author_id)) | .[0]) // $t.author // {}) as $a
| [ $t.id, $t.conversation_id, $t.author_id, $t.created_at, .__twarc.retrieved_at,
    $t.source, $t.lang, (($t.text // "") | gsub("\n"; " ")),
    ((($t.referenced_tweets // [])[0] // {type: "original", id: null}) | .type, .id),
    $a.created_at, $a.location, $a.name, $a.username, $a.verified, $a.protected,
    $a.public_metrics.followers_count, $a.public_metrics.following_count,
    $a.public_metrics.tweet_count, $a.public_metrics.listed_count ]
| @csv
"""

# How the seed's collect_data.py read the CSVs (sampled_stream_functions.DTYPES, parse_dates).
DTYPES = {
    "id": str,
    "conversation_id": str,
    "author_id": str,
    "source": str,
    "lang": str,
    "text": str,
    "reference_type": str,
    "referenced_tweet_id": str,
    "author.location": str,
    "author.name": str,
    "author.username": str,
    "author.verified": str,
    "author.protected": str,
    "author.public_metrics.followers_count": float,
    "author.public_metrics.following_count": float,
    "author.public_metrics.tweet_count": float,
    "author.public_metrics.listed_count": float,
}
DATES = ["created_at", "retrieved_at", "author.created_at"]


def flatten(raw_files: list[Path], csv_dir: Path) -> list[Path]:
    """jq once per minute file, as parse_json_tweets.sh did; returns the CSV files."""
    csv_dir.mkdir(parents=True, exist_ok=True)
    header = ",".join(f'"{c}"' for c in COLUMNS) + "\n"
    out = []
    for raw in raw_files:
        target = csv_dir / (raw.name.removesuffix(".jsonl") + ".csv")
        with open(target, "w", encoding="utf-8") as f:
            f.write(header)
            f.flush()
            with open(raw, "rb") as src:
                subprocess.run(["jq", "-R", "-r", JQ_PROGRAM], stdin=src, stdout=f, check=True)
        out.append(target)
    return out


def read_server(csvs: list[Path]):
    import pandas as pd

    frames = [pd.read_csv(p, dtype=DTYPES, parse_dates=DATES) for p in csvs]
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)


def collect(per_server: dict[str, list[Path]], out_dir: Path, label: str) -> dict:
    """collect_data.py: merge, count, write the three xz files; returns the report row."""
    import pandas as pd

    frames = [read_server(csvs) for csvs in per_server.values()]
    id_sets = [set(df["id"]) for df in frames]
    merged = frames[0]
    for df in frames[1:]:  # tweets the earlier servers missed, from this one
        merged = pd.concat([merged, df[~df["id"].isin(merged["id"])]])
    merged = merged.drop_duplicates(subset=["id"])
    merged = merged.assign(_n=merged["id"].astype("uint64")).sort_values("_n").drop(columns="_n")
    total = len(merged)
    union = set().union(*id_sets)
    common = set.intersection(*id_sets) if id_sets else set()
    diff = len(union - common)
    users = (
        merged[AUTHOR_COLS + ["created_at"]]
        .sort_values(by="created_at", ascending=False)
        .drop_duplicates(subset=["author_id"])
        .drop(columns=["created_at"])
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    merged["id"].to_csv(
        out_dir / f"{label}_IDs.txt.xz", index=False, header=False, compression="xz"
    )
    users.to_csv(out_dir / f"{label}_users.csv.xz", index=False, compression="xz")
    merged.to_csv(out_dir / f"{label}_tweets.csv.xz", index=False, compression="xz")
    pct = round(diff / total * 100, 2) if total else 0.0
    return {
        "hour": label,
        "per_server": [len(s) for s in id_sets],
        "total": total,
        "diff": diff,
        "diff_pct": pct,
        "users": len(users),
    }


def window_files(
    raw_dirs: dict[str, Path], hour: layout.Hour, tz: ZoneInfo, late: int, own_hour_only: bool
) -> dict[str, list[Path]]:
    if own_hour_only:  # the seed read its hour's folder only
        start, end = layout.hour_bounds(hour, tz)
    else:
        start, end = layout.read_window(hour, tz, late)
    return {
        name: [f.path for f in layout.minute_files(name, d, start, end, tz)]
        for name, d in raw_dirs.items()
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", action="append", required=True, help="NAME=RAW_DIR (repeat)")
    p.add_argument("--hour", required=True, help="YYYY-mm-dd_HH (local)")
    p.add_argument("--timezone", required=True)
    p.add_argument("--late-minutes", type=int, default=6)
    p.add_argument("--own-hour-only", action="store_true", help="read the hour's 60 files only")
    p.add_argument("--out", required=True, type=Path, help="where the three xz files go")
    p.add_argument("--work", required=True, type=Path, help="where the per-minute CSVs go")
    args = p.parse_args(argv)

    raw_dirs = dict(s.split("=", 1) for s in args.server)
    tz = ZoneInfo(args.timezone)
    hour = layout.Hour.parse(args.hour)
    files = window_files(
        {k: Path(v) for k, v in raw_dirs.items()}, hour, tz, args.late_minutes, args.own_hour_only
    )
    t0 = time.perf_counter()
    csvs = {name: flatten(fs, args.work / name) for name, fs in files.items()}
    t1 = time.perf_counter()
    row = collect(csvs, args.out, hour.label)
    t2 = time.perf_counter()
    row["jq_s"] = round(t1 - t0, 2)
    row["pandas_s"] = round(t2 - t1, 2)
    row["files"] = {k: len(v) for k, v in files.items()}
    print(__import__("json").dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
