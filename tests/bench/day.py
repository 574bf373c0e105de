"""Benchmark of a day's backfill (``make bench-day [SCALE=10]``): issue 13's goal.

1. Generate once, cached under ``--cache/day-scale-N/raw`` (bench.py's ``ensure_data``, same
   generator and parameters): the minute files of two servers for local day 2026-01-14 in
   bench's timezone, from the first hour's read window start to the last hour's window end.
2. Backfill the day as an operator would (``snakemake --profile workflow/profiles/default
   --cores 2 --config hours=2026-01-14``) on a fresh vault and work dir: wall and CPU of the
   whole run, and the peak memory per build_hour job (the largest sum of RSS over one job's
   processes at one sampling instant: its shell, python and xz children).
3. The floor: ``xz -6 -T2`` of each built hour's tweets CSV; the sum of the 24 wall times.
   Goal: backfill wall <= 1.3 x floor; peak per job <= 300 MB at 1 % (600 MB at 10 %).

Prints one table and writes it to ``--cache/day-scale-N/day-results.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import bench
import measure
from bench import TZ, layout, log

DAY = "2026-01-14"


def day_hours(limit: int) -> tuple[list[layout.Hour], str]:
    """The day's first ``limit`` hours and the ``hours=`` value that selects them."""
    hours = layout.day_hours(DAY, TZ)[:limit]
    if len(hours) == len(layout.day_hours(DAY, TZ)):
        return hours, DAY
    return hours, f"{hours[0].label}..{hours[-1].label}"


def run_backfill(day_dir: Path, hours: list[layout.Hour], selector: str, sample: float) -> dict:
    run, raw = bench.new_run_dir(day_dir, day_dir / "raw", "backfill")
    cfg = bench.write_config(run, raw)
    env = bench.sm_env()
    profile = str(bench.CODE / "workflow" / "profiles" / "default")
    # now= the day's last hour due: retention and completeness as just after the day.
    now = bench.due_time(hours[-1])
    cmd = bench.snakemake_cmd(run, cfg, now, "--profile", profile, hours=selector)
    jobs = bench.dry_run_jobs(cmd, env)
    if jobs.get("build_hour") != len(hours):
        raise RuntimeError(f"expected {len(hours)} build_hour jobs, the dry run has {jobs}")
    outputs = [layout.vault_paths(run / "vault", h) for h in hours]

    def poll(bar) -> None:
        bar.n = sum(1 for o in outputs if o["tweets"].exists())

    subprocess.run(["sync"], check=False)
    with (
        open(run / "snakemake.log", "w") as f,
        bench.progress("backfill", len(hours), "hour", poll),
    ):
        res = measure.run(
            "backfill", cmd, env=env, sample=sample, stdout=f, stderr=f, job_kind="build_hour"
        )
    for o in outputs:
        for p in o.values():
            if not p.exists():
                raise RuntimeError(f"the backfill did not write {p}; see {run / 'snakemake.log'}")
    return {"result": res, "jobs": jobs, "outputs": outputs, "run": run}


def run_floors(day_dir: Path, outputs: list[dict[str, Path]]) -> list[dict]:
    """``xz -6 -T2`` of each hour's tweets CSV (bench.run_floor), one after the other."""
    floors = []
    with bench.progress("floor", len(outputs), "hour") as bar:
        for o in outputs:
            tmp = Path(tempfile.mkdtemp(dir=day_dir / "runs"))
            f = bench.run_floor(o["tweets"], tmp, single_thread=False)
            floors.append(
                {
                    **f["result"].to_json(),
                    "csv_bytes": f["csv_bytes"],
                    "xz_T2_bytes": f["xz_T2_bytes"],
                    "tweets_xz_bytes": o["tweets"].stat().st_size,
                }
            )
            shutil.rmtree(tmp)
            bar.update(1)
    return floors


def render(res: dict) -> str:
    tag = f"{res['scale']:g}"
    info = res["machine"]
    b = res["backfill"]
    fl = res["floor"]
    n = res["hours"]
    jobs = b["jobs"]
    worst = max(jobs, key=lambda j: j["peak_rss_mb"])
    kinds = b["kinds"]
    rss_goal = 300 if res["scale"] <= 1 else 600
    mib = 2**20
    rows = [
        (f"backfill: {n} hours of 2 servers, --cores 2, wall s", f"{b['wall_s']:.1f}", ""),
        ("backfill: CPU s (every process of the run)", f"{b['cpu_s']:.1f}", ""),
        ("backfill: other load meanwhile, CPU s", f"{b['other_cpu_s']:.1f}", "near 0"),
        (
            f"floor: sum of {n} x (xz -6 -T2 of the hour's tweets CSV), wall s",
            f"{fl['wall_s']:.1f}",
            "",
        ),
        ("floor: CPU s", f"{fl['cpu_s']:.1f}", ""),
        ("backfill / floor, wall", f"**{b['wall_s'] / fl['wall_s']:.2f}**", "<= 1.3"),
        ("backfill / floor, CPU", f"{b['cpu_s'] / fl['cpu_s']:.2f}", ""),
        (
            "peak RSS per job (largest sum over one build_hour job's processes), MB",
            f"**{worst['peak_rss_mb']:.0f}**",
            f"<= {rss_goal}",
        ),
        (
            "  that job's processes at its peak, MB",
            ", ".join(f"{k} {v:.0f}" for k, v in worst["peak_parts_mb"].items()),
            "",
        ),
        (
            "peak RSS per job, median over the jobs, MB",
            f"{sorted(j['peak_rss_mb'] for j in jobs)[len(jobs) // 2]:.0f}",
            "",
        ),
        ("peak RSS, biggest single process (ru_maxrss), MB", f"{b['peak_rss_mb']:.0f}", ""),
    ]
    for k in ("build_hour", "xz", "snakemake"):
        if k in kinds:
            rows.append(
                (
                    f"peak RSS, biggest {k} process (sampled), MB",
                    f"{kinds[k]['peak_rss_mb']:.0f}",
                    "",
                )
            )
    spans = [j["last_s"] - j["first_s"] for j in jobs]
    notes = [
        f"Data: scale {tag} ({bench.RATE * res['scale']:.0f} tweets/min a server generated, "
        f"{bench.DISAGREEMENT:.1%} disagreement), local day {DAY} {bench.TZ_NAME} ({n} hours): "
        f"{res['data']['raw_bytes'] / mib:,.0f} MiB of minute files of 2 servers.",
        f"Output: {sum(h['tweets_xz_bytes'] for h in res['floor_hours']) / mib:,.0f} MiB of "
        f"tweets.csv.xz from {sum(h['csv_bytes'] for h in res['floor_hours']) / mib:,.0f} MiB "
        f"of tweets CSV (xz -6 -T2 of them: "
        f"{sum(h['xz_T2_bytes'] for h in res['floor_hours']) / mib:,.0f} MiB).",
        f"Jobs: {res['dry_run_jobs']}; a build_hour job ran {min(spans):.0f}-{max(spans):.0f} s "
        f"(sampled), {len(jobs)} jobs seen by the sampler.",
        f"Code: {res['code']} (checkout at {res['commit']}).",
        f"Per job: its processes (Snakemake's shell for the script, the python, its xz) summed at "
        f"each sample ({res['sample_s']:g} s); build_hour counts the shell and the python.",
    ]
    return (
        "\n\n".join(
            [
                f"### Backfill of a day, scale {tag}",
                f"Machine: {info['nproc']} cores ({info['cpu']}), {info['mem_gb']} GB RAM; Python "
                f"{info['python']}, Snakemake {info['snakemake']}, {info['xz']}.",
                f"Command: `make bench-day SCALE={tag}` (`.venv/bin/python tests/bench/day.py "
                f"--scale {tag} --cache bench-cache{res['extra_args']}`).",
                bench.table(rows, ("figure", "value", "goal")),
                "\n".join(f"- {x}" for x in notes),
            ]
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Benchmark a day's backfill (issue 13).")
    ap.add_argument("--scale", type=float, default=1, help="1 = 1 %% rate, 10 = 10 %% rate")
    ap.add_argument("--cache", type=Path, default=bench.ROOT / "bench-cache")
    ap.add_argument("--hours-limit", type=int, default=24, help="only the day's first N hours")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    ap.add_argument("--sample", type=float, default=0.1, help="process sampler interval, s")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument(
        "--code",
        type=Path,
        default=bench.ROOT,
        help="a copy of the project whose workflow/ and ingest/ are measured (default: this one)",
    )
    args = ap.parse_args(argv)
    bench.PROGRESS = not args.no_progress
    bench.CODE = args.code.resolve()

    tag = f"{args.scale:g}"
    hours, selector = day_hours(args.hours_limit)
    suffix = "" if selector == DAY else f"-{len(hours)}h"
    day_dir = args.cache.resolve() / f"day-scale-{tag}{suffix}"
    day_dir.mkdir(parents=True, exist_ok=True)
    runs = day_dir / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir()
    info = bench.machine()
    log(f"machine: {info['nproc']} x {info['cpu']}, {info['mem_gb']} GB")

    span = (
        layout.read_window(hours[0], TZ, bench.LATE)[0],
        layout.read_window(hours[-1], TZ, bench.LATE)[1],
    )
    data = bench.ensure_data(day_dir, args.scale, span, label=selector)
    back = run_backfill(day_dir, hours, selector, args.sample)
    r = back["result"]
    log(f"backfill: {r.wall:.1f} s wall, {r.cpu:.1f} s CPU, other load {r.other_cpu:.0f} s")
    floors = run_floors(day_dir, back["outputs"])
    floor = {k: sum(f[k] for f in floors) for k in ("wall_s", "cpu_s")}
    log(f"floor: {floor['wall_s']:.1f} s wall, {floor['cpu_s']:.1f} s CPU")

    extra = "" if selector == DAY else f" --hours-limit {len(hours)}"
    results = {
        "machine": info,
        "scale": args.scale,
        "hours": len(hours),
        "selector": selector,
        "sample_s": args.sample,
        "extra_args": extra,
        # The checkout's commit; the code measured is that plus its uncommitted changes, or --code.
        "commit": subprocess.run(
            ["git", "-C", str(bench.ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
        "code": str(bench.CODE),
        "data": data["summary"],
        "dry_run_jobs": back["jobs"],
        "backfill": r.to_json(),
        "floor": floor,
        "floor_hours": floors,
    }
    bench.write_results(day_dir, "day-results", results, render(results))
    if not args.keep:
        shutil.rmtree(runs, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
