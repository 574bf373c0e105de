"""Benchmark of the hourly build (``make bench [SCALE=10]``): build vs xz floor vs the seed.

Steps (see issue 5 and ``tests/bench/README.md``):

1. Generate once, cached under ``--cache/scale-N/raw`` (a marker file records the parameters):
   a realistic 1 %-rate hour (``--scale`` times that) for two servers with
   ``ingest.devtools.generate``:
   the minute files of the hour's read window (1 min before the hour to ``late_minutes``
   after it) and on to the cron run that builds the hour.
2. Build the hour through ``snakemake`` as cron would, in a fresh run directory whose raw
   tree fills up (hard links into the cache, so retention can never touch it) as the
   collectors would have written it: cron every ``--cron-minutes`` (10, as the README
   installs it), each run seeing the files complete at its time. The last hour's runs, up
   to the one that builds the hour, are timed. Also timed: an hourly cron (all parsing in
   the build run) and a "cold" build of the hour alone (``--config hours=...``).
3. The floor: ``xz -6 -T2`` of the hour's own tweets CSV; and sizes vs single-thread ``xz -6``.
4. The baseline: ``tests/bench/seed_baseline.py`` (jq per minute file, then pandas).
5. The parts, outside Snakemake: every parse job as its own process, the same files in one
   process (start-up cost), the hourly merge alone; and a dry run against a year of built
   hours.
6. The vault's copies: the built hour under many hour names (``--replica-mb``) replicated to an
   empty local replica, again with nothing new, over ssh (a loopback sshd), then scrubbed.

Prints one table and writes it to ``--cache/scale-N/results.md`` (and ``results.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
# The code under test (workflow/ and ingest/): this checkout, or a copy given with --code
# (to measure a change without touching the checkout). The bench's own helpers use ROOT.
CODE = ROOT
sys.path.insert(0, str(Path(__file__).resolve().parent))

import import_history  # noqa: E402
import measure  # noqa: E402

from ingest import layout  # noqa: E402
from ingest.config import TEST_CLOCK_ENV  # noqa: E402

TZ_NAME = "CET"
TZ = ZoneInfo(TZ_NAME)
HOUR = layout.Hour("2026-01-14", 11)  # local (CET): 10:00-11:00 UTC, a plain winter hour
PREV = layout.Hour("2026-01-14", 10)
LATE = 6
GRACE = 5
RATE = 3500  # tweets a minute at 1 % (per server, before the servers' small losses)
DISAGREEMENT = 0.015
SEED = 20260114
SERVERS = ("server1", "server2")
GEN_VERSION = 3  # bump to invalidate caches when the generation parameters change
YEAR_VERSION = 1  # the dry run's year of built hours (with records since issue 21)
PYTHON = sys.executable
IDLE_LABEL = "dry run (-n), nothing to do (a year built, no new minute): a cron run's fixed cost"
PROGRESS = True  # --no-progress: no bars (they show only when stderr is a terminal anyway)


def log(msg: str) -> None:
    # tqdm.write: a bar running meanwhile is redrawn below the line instead of garbled.
    tqdm.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr)


@contextmanager
def progress(
    desc: str, total: int, unit: str, poll: Callable[[tqdm], None] | None = None
) -> Iterator[tqdm]:
    """A bar on stderr for one phase, redrawn every second so the elapsed time moves during a
    long step (``poll(bar)`` may update it then); a silent stand-in off a terminal."""
    bar = tqdm(
        desc=desc,
        total=total,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        disable=None if PROGRESS else True,  # None: off when stderr is not a terminal
    )
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(1.0):
            if poll:
                poll(bar)
            bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    if not bar.disable:
        ticker.start()
    try:
        yield bar
    finally:
        stop.set()
        if ticker.is_alive():
            ticker.join()
        bar.close()


# --- machine --------------------------------------------------------------------------------


def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30

    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
            return out.splitlines()[0].strip() if out else "?"
        except OSError:
            return "not found"

    import snakemake

    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "mem_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "snakemake": snakemake.__version__,
        "xz": version(["xz", "--version"]),
        "jq": version(["jq", "--version"]),
        "kernel": platform.release(),
        # Installed with SLURM's client and no controller, the plugin makes every snakemake
        # start wait ~9 s for `scontrol` (README, Speed): a bench run with it measures that.
        "slurm_plugin_wait": bool(
            importlib.util.find_spec("snakemake_executor_plugin_slurm") and shutil.which("scontrol")
        ),
    }


# --- 1. data --------------------------------------------------------------------------------


def window() -> tuple[datetime, datetime]:
    """UTC [start, end) of the minute files the hour reads."""
    return layout.read_window(HOUR, TZ, LATE)


def data_range() -> tuple[datetime, datetime]:
    """UTC [start, end) of the generated minute files: the hour's read window, and on to the
    cron run that builds the hour (the next hour's first minutes are parsed ahead then)."""
    return window()[0], due_time(HOUR)


def ensure_data(
    scale_dir: Path,
    scale: float,
    span: tuple[datetime, datetime] | None = None,
    label: str = HOUR.label,
) -> dict:
    """The cached raw tree of the hour's window for both servers (generated once); ``span``
    and ``label``: UTC [start, end) and name of another stretch (tests/bench/day.py's day)."""
    raw = scale_dir / "raw"
    marker = scale_dir / "raw.complete.json"
    start, end = span or data_range()
    params = {
        "version": GEN_VERSION,
        "hour": label,
        "timezone": TZ_NAME,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "rate_per_minute": RATE * scale,
        "disagreement": DISAGREEMENT,
        "seed": SEED,
        "bad_lines": True,
        # Data made by another version of the generator is made again.
        "generator_sha256": hashlib.sha256(
            (ROOT / "ingest/devtools/generate.py").read_bytes()
        ).hexdigest(),
    }
    if marker.exists():
        cached = json.loads(marker.read_text())
        if cached.get("params") == params:
            log(f"raw data: cached in {raw}")
            return cached
        log("raw data: cache made with other parameters, generating again")
    if raw.exists():
        shutil.rmtree(raw)
    marker.unlink(missing_ok=True)
    from ingest.devtools.generate import generate_raw_tree

    log(f"raw data: generating {RATE * scale:.0f} tweets/min x {len(SERVERS)} servers into {raw}")
    summary = generate_raw_tree(
        [(s, raw / s) for s in SERVERS],
        start,
        end,
        TZ,
        rate_per_minute=RATE * scale,
        disagreement=DISAGREEMENT,
        seed=SEED,
        bad_lines=True,
        keep_ids=False,
        progress=PROGRESS,
    )
    info = summary.to_dict()
    info.pop("servers", None)
    info["servers"] = {
        name: {k: v for k, v in s.to_dict().items() if k not in ("ids", "missing_minutes")}
        for name, s in summary.servers.items()
    }
    info["raw_bytes"] = sum(f.stat().st_size for f in raw.rglob("*.jsonl"))
    if span is None:
        info["window_bytes"] = sum(
            f.path.stat().st_size for fs in hour_minute_files(raw).values() for f in fs
        )
    done = {"params": params, "summary": info}
    marker.write_text(json.dumps(done, indent=1, default=str))
    log(f"raw data: {info['raw_bytes'] / 2**20:.0f} MiB in {info.get('seconds', 0):.0f} s")
    return done


# --- 2. the build through snakemake -----------------------------------------------------------


def write_config(run: Path, raw_root: Path, vault: Path | None = None, extra: dict | None = None):
    import yaml

    cfg = {
        "timezone": TZ_NAME,
        "vault_dir": str(vault or run / "vault"),
        "work_dir": str(run / "work"),
        "servers": [{"name": s, "raw_dir": str(raw_root / s)} for s in SERVERS],
        "late_minutes": LATE,
        "grace_minutes": GRACE,
        "xz_preset": 6,
        "xz_threads": 2,
        "osf": {"enabled": False},
        "email": {"enabled": False},
    }
    cfg.update(extra or {})
    path = run / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def due_time(hour: layout.Hour) -> datetime:
    """The first cron minute at which ``hour`` is complete (end + late + grace), plus one."""
    _, end = layout.hour_bounds(hour, TZ)
    return end + timedelta(minutes=LATE + GRACE + 1)


def snakemake_cmd(run: Path, cfg: Path, now: datetime, *extra: str, hours: str = "") -> list[str]:
    config = [f"now={now.isoformat()}"] + ([f"hours={hours}"] if hours else [])
    return [
        PYTHON,
        "-m",
        "snakemake",
        "--snakefile",
        str(CODE / "workflow" / "Snakefile"),
        "--directory",
        str(run),
        "--configfile",
        str(cfg),
        "--cores",
        "2",
        "--config",
        *config,
        *extra,
    ]


def new_run_dir(scale_dir: Path, data_raw: Path | None, name: str) -> tuple[Path, Path]:
    """A fresh run directory; with ``data_raw``, the cached raw tree hard-linked in."""
    runs = scale_dir / "runs"
    runs.mkdir(exist_ok=True)
    run = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=runs))
    raw = run / "raw"
    if data_raw is not None:
        subprocess.run(["cp", "-al", str(data_raw), str(raw)], check=True)
    else:
        raw.mkdir()
    return run, raw


def link_arrived(data_raw: Path, raw: Path, now: datetime) -> int:
    """Hard-link the cached minute files that are complete at ``now`` into the run's raw tree
    (a collector finishes the file of minute m at m + 1 min); returns how many are there."""
    start, _ = data_range()
    n = 0
    for s in SERVERS:
        for f in layout.minute_files(
            s, data_raw / s, start, now - layout.MINUTE + timedelta(seconds=1), TZ
        ):
            target = raw / s / f.path.relative_to(data_raw / s)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(f.path, target)
            n += 1
    return n


def cron_times(interval: int) -> list[datetime]:
    """Cron runs every ``interval`` minutes up to the one that builds the hour (its due time)."""
    due = due_time(HOUR)
    start, _ = data_range()
    times = []
    t = due
    while t > start + layout.MINUTE:
        times.append(t)
        t -= timedelta(minutes=interval)
    return sorted(times)


def dry_run_jobs(cmd: list[str], env: dict) -> dict[str, int]:
    """Job counts per rule of a ``snakemake -n`` (to check what a timed run will do)."""
    out = subprocess.run(
        [*cmd, "-n", "--quiet", "rules"], capture_output=True, text=True, env=env, check=False
    )
    counts: dict[str, int] = {}
    in_table = False
    for line in out.stdout.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table and len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    if out.returncode != 0:
        raise RuntimeError(f"dry run failed:\n{out.stdout}\n{out.stderr}")
    return counts


def sm_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(PYTHON).parent}:{env.get('PATH', '')}"
    # parse_minute's `python -m ingest.hours.minutes` needs the package: installed by `make setup`
    # (pip install -e .); the path makes the benchmark work before that, too.
    env["PYTHONPATH"] = os.pathsep.join(x for x in (str(CODE), env.get("PYTHONPATH")) if x)
    env[TEST_CLOCK_ENV] = "1"  # the runs write at a replayed now= (the test-only switch)
    return env


def run_build(
    scale_dir: Path, data_raw: Path, mode: str, sample: float | None, interval: int = 10
) -> dict:
    """Build the hour through snakemake.

    mode "cron": cron runs every ``interval`` minutes while the minute files arrive (each run
    sees the files complete at its time); the runs of the last hour up to the one that builds
    the hour are timed (the hour's whole cost; earlier runs only warm up). mode "cold": the
    hour alone (``hours=``), all its window parsed in one run.
    """
    if mode == "cold":
        run, raw = new_run_dir(scale_dir, data_raw, mode)
        times = [due_time(HOUR)]
    else:
        run, raw = new_run_dir(scale_dir, None, f"{mode}{interval}")
        times = cron_times(interval)
    cfg = write_config(run, raw)
    env = sm_env()
    logs = run / "bench-logs"
    logs.mkdir()
    due = due_time(HOUR)
    runs = []
    jobs: dict[str, int] = {}
    with progress(f"build ({mode}, {interval} min)", len(times), "run") as bar:
        for now in times:
            if mode != "cold":
                link_arrived(data_raw, raw, now)
            cmd = snakemake_cmd(run, cfg, now, hours=HOUR.label if mode == "cold" else "")
            timed = now > due - timedelta(hours=1)
            name = now.strftime("%H%M")
            bar.set_postfix_str(f"run at {now.astimezone(TZ):%H:%M}" + (", timed" if timed else ""))
            if not timed:
                with open(logs / f"{name}.log", "w") as f:
                    subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, check=True)
            else:
                run_jobs = dry_run_jobs(cmd, env)
                for k, v in run_jobs.items():
                    jobs[k] = jobs.get(k, 0) + v
                subprocess.run(["sync"], check=False)
                with open(logs / f"{name}.log", "w") as f:
                    res = measure.run(
                        f"{mode} {name}", cmd, env=env, sample=sample, stdout=f, stderr=f
                    )
                runs.append({"at": now.isoformat(), "jobs": run_jobs, "result": res})
            bar.update(1)
    log(f"build ({mode}, {interval} min): timed runs {len(runs)}, jobs {jobs}")
    if jobs.get("build_hour") != 1:
        raise RuntimeError(f"expected exactly one build_hour job, the timed runs had {jobs}")
    out = layout.vault_paths(run / "vault", HOUR)
    for p in out.values():
        if not p.exists():
            raise RuntimeError(f"build ({mode}) did not write {p}; see {logs}")
    last = runs[-1]["result"]
    total = measure.Result(
        f"{mode} total",
        sum(r["result"].wall for r in runs),
        sum(r["result"].user for r in runs),
        sum(r["result"].sys for r in runs),
        max(r["result"].peak_rss_mb for r in runs),
        0,
        machine_busy=sum(r["result"].machine_busy for r in runs),
    )
    return {"result": total, "last": last, "runs": runs, "run": run, "jobs": jobs, "outputs": out}


# --- 3. the floor ---------------------------------------------------------------------------


def decompress(xz_file: Path, target: Path) -> None:
    with open(target, "wb") as f:
        subprocess.run(["xz", "-d", "-c", "-T2", str(xz_file)], stdout=f, check=True)


def run_floor(tweets_xz: Path, tmp: Path, single_thread: bool = True) -> dict:
    """``xz -6 -T2`` of the tweets CSV, timed; and, with ``single_thread``, ``-T1``'s size."""
    csv = tmp / "tweets.csv"
    decompress(tweets_xz, csv)
    with open(tmp / "floor.xz", "wb") as f:
        res = measure.run("floor: xz -6 -T2", ["xz", "-6", "-T2", "-c", str(csv)], stdout=f)
    t2_size = (tmp / "floor.xz").stat().st_size
    if not single_thread:
        return {"result": res, "csv_bytes": csv.stat().st_size, "xz_T2_bytes": t2_size, "csv": csv}
    with open(tmp / "floor1.xz", "wb") as f:
        res1 = measure.run("xz -6 -T1", ["xz", "-6", "-T1", "-c", str(csv)], stdout=f)
    t1_size = (tmp / "floor1.xz").stat().st_size
    return {
        "result": res,
        "result_t1": res1,
        "csv_bytes": csv.stat().st_size,
        "xz_T2_bytes": t2_size,
        "xz_T1_bytes": t1_size,
        "csv": csv,
    }


# --- the paths of issue 25: each against its own hours' floor ------------------------------


# (name, what it does): every path that builds hours, timed as one snakemake run each.
PATHS = (
    ("hour", f"one hour rebuilt (hours={HOUR.label})"),
    ("day", f"a day rebuilt (hours={HOUR.day}: the hours with data)"),
    ("cron", "the cold cron run (parse checkpoint, then every hour due)"),
    ("imported", f"an imported day's backfill (hours={HOUR.day}, servers imported)"),
)


def path_cmd(run: Path, raw: Path, path: str) -> list[str]:
    """The snakemake command of one path, in the run directory ``run`` over ``raw``."""
    extra = {"servers": [{"name": s, "raw_dir": str(raw / s), "imported": True} for s in SERVERS]}
    cfg = write_config(run, raw, extra=extra if path == "imported" else None)
    hours = {"hour": HOUR.label, "day": HOUR.day, "imported": HOUR.day}.get(path, "")
    profile = str(CODE / "workflow" / "profiles" / "default")
    return snakemake_cmd(run, cfg, due_time(HOUR), "--profile", profile, hours=hours)


def hour_floor(tweets_xz: Path, tmp: Path) -> dict:
    """``xz -6`` on every core of a built hour's own tweets CSV: wall, and the sizes. Measured
    right after each path (never reused from another): on a shared machine the load moves."""
    csv = tmp / "tweets.csv"
    decompress(tweets_xz, csv)
    with open(tmp / "floor.xz", "wb") as f:
        res = measure.run("floor", ["xz", "-6", "-T0", "-c", str(csv)], stdout=f, sample=None)
    sizes = {"csv": csv.stat().st_size, "xz6": (tmp / "floor.xz").stat().st_size}
    csv.unlink()
    return {"wall": res.wall, "cpu": res.cpu, **sizes, "built": tweets_xz.stat().st_size}


def run_path(
    scale_dir: Path, data_raw: Path, path: str, sample: float | None, rounds: int = 1
) -> dict:
    """One path ``rounds`` times, each run followed right away by the floor of every hour it
    built; the path's figures are its median round's (of an even count, the better of the
    middle two). A round's ratio compares two runs a few seconds apart: this machine's clock
    speed moves by 15-20 % over minutes, which a best path against a best floor from other
    rounds would mix in."""
    tries = sorted(
        (_path_round(scale_dir, data_raw, path, sample) for _ in range(rounds)), key=_ratio
    )
    median = tries[(len(tries) - 1) // 2]
    return {
        **median,
        "job_peak_rss_mb": max(t["job_peak_rss_mb"] for t in tries),
        "rounds": [[t["result"]["wall_s"], t["floor_wall_s"]] for t in tries],
    }


def _ratio(p: dict) -> float:
    """A path's wall over its floor's."""
    return p["result"]["wall_s"] / p["floor_wall_s"]


def _path_round(scale_dir: Path, data_raw: Path, path: str, sample: float | None) -> dict:
    run, raw = new_run_dir(scale_dir, data_raw, f"path-{path}")
    cmd = path_cmd(run, raw, path)
    env = sm_env()
    jobs = dry_run_jobs(cmd, env)
    subprocess.run(["sync"], check=False)
    with open(run / "snakemake.log", "w") as f:
        res = measure.run(
            path, cmd, env=env, sample=sample, stdout=f, stderr=f, job_kind="build_hour"
        )
    built = sorted((run / "vault").glob("*/*_tweets.csv.xz"))
    if len(built) != jobs.get("build_hour"):
        raise RuntimeError(f"{path}: built {len(built)} hours, planned {jobs}")
    floors = [hour_floor(t, Path(tempfile.mkdtemp(dir=run))) for t in built]
    job_rss = max((j.peak_rss_mb for j in res.jobs.values()), default=0.0)
    return {
        "result": res.to_json(),
        "jobs": jobs,
        "hours": [t.name[:13] for t in built],
        "floor_wall_s": sum(f["wall"] for f in floors),
        "floor_cpu_s": sum(f["cpu"] for f in floors),
        "csv_bytes": sum(f["csv"] for f in floors),
        "xz6_bytes": sum(f["xz6"] for f in floors),
        "built_bytes": sum(f["built"] for f in floors),
        "job_peak_rss_mb": round(job_rss, 1),
    }


def kinds_cpu(result: dict) -> str:
    """The sampled CPU seconds by process kind (xz, the build job's Python, Snakemake, whose
    own process also runs the parse job's script), biggest first: where a path's CPU goes."""
    kinds = sorted(
        (k.get("cpu_s_sampled", 0.0), name) for name, k in (result.get("kinds") or {}).items()
    )
    return ", ".join(f"{name} {cpu:.0f}" for cpu, name in reversed(kinds) if cpu >= 0.5)


def path_line(name: str, p: dict) -> str:
    """The line a path prints: wall, floor, ratio, peak RSS, size against ``xz -6``."""
    r = p["result"]
    return (
        f"{name:9} {len(p['hours'])} h: wall {r['wall_s']:7.1f} s,"
        f" floor {p['floor_wall_s']:7.1f} s,"
        f" ratio {_ratio(p):.2f}, CPU {r['cpu_s']:.0f} s"
        f" (floor {p['floor_cpu_s']:.0f}; sampled: {kinds_cpu(r)}), peak RSS a job"
        f" {p['job_peak_rss_mb']:.0f} MB (biggest process {r['peak_rss_mb']:.0f}), size /"
        f" xz -6 {p['built_bytes'] / p['xz6_bytes']:.3f}, other load {r['other_cpu_s']:.0f} s"
        + _rounds(p)
    )


def _rounds(p: dict) -> str:
    """Each round's wall, floor and ratio, best first, when there were several (the line
    shows the median one)."""
    rounds = p.get("rounds") or []
    if len(rounds) < 2:
        return ""
    return "; rounds (wall/floor s): " + ", ".join(
        f"{w:.1f}/{f:.1f} = {w / f:.2f}" for w, f in rounds
    )


def run_paths(
    scale_dir: Path, data_raw: Path, sample: float | None, skip: list[str], rounds: int = 1
) -> dict:
    """Every path of ``PATHS`` not in ``skip``, each printed as one line when done."""
    out = {}
    for name, what in PATHS:
        if f"path-{name}" in skip:
            continue
        log(f"path {name}: {what}")
        out[name] = run_path(scale_dir, data_raw, name, sample, rounds)
        log(path_line(name, out[name]))
    return out


def render_paths(paths: dict, scale: float) -> str:
    """The paths' lines and table (README, Speed), from results.json's ``paths``."""
    lines = [path_line(name, p) for name, p in paths.items()]
    rows = []
    for name, what in PATHS:
        if name in paths:
            p, r = paths[name], paths[name]["result"]
            rows.append(
                (
                    what,
                    f"{r['wall_s']:.1f}",
                    f"{p['floor_wall_s']:.1f}",
                    f"**{_ratio(p):.2f}**",
                    f"{p['job_peak_rss_mb']:.0f}",
                    f"{p['built_bytes'] / p['xz6_bytes']:.3f}",
                )
            )
    header = ("path", "wall s", "floor s", "ratio", "peak RSS a job MB", "size / xz -6")
    return (
        f"### Paths, scale {scale:g}\n\n" + "\n".join(lines) + "\n\n" + table(rows, header) + "\n"
    )


# --- 4. the baseline -----------------------------------------------------------------------


def run_baseline(scale_dir: Path, data_raw: Path, own_hour_only: bool = True) -> dict:
    run = Path(tempfile.mkdtemp(prefix="baseline-", dir=scale_dir / "runs"))
    cmd = [
        PYTHON,
        str(Path(__file__).resolve().parent / "seed_baseline.py"),
        *[a for s in SERVERS for a in ("--server", f"{s}={data_raw / s}")],
        "--hour",
        HOUR.label,
        "--timezone",
        TZ_NAME,
        "--late-minutes",
        str(LATE),
        "--out",
        str(run / "out"),
        "--work",
        str(run / "csv"),
    ]
    if own_hour_only:
        cmd.append("--own-hour-only")
    # Progress: the per-minute CSVs jq has started (one a minute file), then pandas (one step).
    start, end = layout.hour_bounds(HOUR, TZ) if own_hour_only else window()
    n_files = sum(len(layout.minute_files(s, data_raw / s, start, end, TZ)) for s in SERVERS)

    def poll(bar: tqdm) -> None:
        started = sum(1 for _ in (run / "csv").glob("*/*.csv"))
        bar.n = max(bar.n, min(started, n_files))  # never back over the final count
        phase = f"jq: file {bar.n}/{n_files}" if started < n_files else "pandas: merge, xz"
        bar.set_postfix_str(phase, refresh=False)

    with (
        open(run / "stdout.json", "w") as out,
        open(run / "stderr.log", "w") as err,
        progress("baseline", n_files + 1, "step", poll) as bar,
    ):
        res = measure.run("baseline (seed)", cmd, stdout=out, stderr=err)
        bar.n = n_files + 1
    report = json.loads((run / "stdout.json").read_text().strip().splitlines()[-1])
    sizes = {p.name: p.stat().st_size for p in (run / "out").iterdir()}
    return {"result": res, "report": report, "sizes": sizes, "run": run}


# --- 5. the parts ---------------------------------------------------------------------------


def hour_minute_files(raw_root: Path) -> dict[str, list[layout.MinuteFile]]:
    start, end = window()
    return {s: layout.minute_files(s, raw_root / s, start, end, TZ) for s in SERVERS}


def run_parts(scale_dir: Path, data_raw: Path) -> dict:
    """Per-minute parsing outside Snakemake: one process per file vs one for all files."""
    run = Path(tempfile.mkdtemp(prefix="parts-", dir=scale_dir / "runs"))
    files = hour_minute_files(data_raw)
    jobs = [(s, f.path) for s, fs in files.items() for f in fs]
    out = run / "minutes"
    out.mkdir()
    base = [
        PYTHON,
        "-m",
        "ingest.hours.minutes",
        "--timezone",
        TZ_NAME,
        "--late-minutes",
        str(LATE),
    ]
    # One process per file, as the workflow's parse_minute jobs run (sequentially here).
    script = run / "per_file.sh"
    lines = ["set -e", f"cd {CODE}"]
    for i, (s, p) in enumerate(jobs):
        lines.append(
            " ".join(
                [*base, "--server", s, str(p), str(out / f"{i}.t.tsv"), str(out / f"{i}.u.tsv")]
            )
            + " 2>/dev/null"
        )
    script.write_text("\n".join(lines) + "\n")
    per_file = measure.run(
        "parse: one process per file", ["bash", str(script)], env=sm_env(), sample=None
    )
    # All files in one process: what is left without the per-job start-up.
    batch = run / "batch.txt"
    batch.write_text(
        "".join(
            f"{p}\t{out / f'b{i}.t.tsv'}\t{out / f'b{i}.u.tsv'}\t{s}\n"
            for i, (s, p) in enumerate(jobs)
        )
    )
    one = measure.run(
        "parse: all files in one process",
        [*base, "--batch", str(batch)],
        cwd=CODE,
        env=sm_env(),
        sample=None,
        stderr=subprocess.DEVNULL,
    )
    # Start-up alone: the same command on an empty minute file.
    empty = run / "empty" / "2026-01-14" / "11"
    empty.mkdir(parents=True)
    (empty / "2026-01-14T1130+0100.jsonl").write_bytes(b"")
    n = 20
    script2 = run / "startup.sh"
    script2.write_text(
        f"set -e\ncd {CODE}\n"
        + "".join(
            " ".join(
                [
                    *base,
                    "--server",
                    "s",
                    str(empty / "2026-01-14T1130+0100.jsonl"),
                    str(out / "e.t.tsv"),
                    str(out / "e.u.tsv"),
                ]
            )
            + "\n"
            for _ in range(n)
        )
    )
    startup = measure.run(
        "parse: start-up only (empty file)", ["bash", str(script2)], env=sm_env(), sample=None
    )
    sizes = {
        "raw_bytes": sum(p.stat().st_size for _, p in jobs),
        "intermediate_bytes": sum(p.stat().st_size for p in out.glob("b*.tsv")),
    }
    for p in out.glob("[0-9e]*.tsv"):
        p.unlink()
    # The one-process outputs stay for the merge measurement (run_merge_alone).
    inputs: dict[str, list[tuple[str, str]]] = {s: [] for s in SERVERS}
    for i, (s, _) in enumerate(jobs):
        inputs[s].append((str(out / f"b{i}.t.tsv"), str(out / f"b{i}.u.tsv")))
    return {
        "intermediates": inputs,
        "files": len(jobs),
        "per_file": per_file,
        "one_process": one,
        "startup_per_job_s": startup.wall / n,
        "startup_cpu_per_job_s": startup.cpu / n,
        **sizes,
    }


def run_merge_alone(parts: dict, scale_dir: Path) -> dict:
    """The hourly merge alone (ingest.hours.hourly.build_hour) on the intermediates of the parts."""
    inputs = parts["intermediates"]
    out = Path(tempfile.mkdtemp(prefix="merge-", dir=scale_dir / "runs"))
    spec = out / "spec.json"
    outputs = {k: str(out / f"{HOUR.label}_{v}") for k, v in layout.VAULT_SUFFIXES.items()}
    spec.write_text(json.dumps({"inputs": inputs, "outputs": outputs}))
    code = (
        "import json, resource, sys, time\n"
        f"sys.path.insert(0, {str(CODE)!r})\n"
        "from ingest.hours.hourly import build_hour\n"
        "from ingest.layout import Hour\n"
        f"spec = json.load(open({str(spec)!r}))\n"
        "t0 = time.perf_counter()\n"
        f"build_hour(Hour({HOUR.day!r}, {HOUR.hh}), {TZ_NAME!r}, "
        "{k: [tuple(p) for p in v] for k, v in spec['inputs'].items()}, spec['outputs'], "
        f"xz_preset=6, xz_threads=2, server_names={list(SERVERS)!r})\n"
        "s = resource.getrusage(resource.RUSAGE_SELF)\n"
        "c = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'wall': time.perf_counter() - t0, 'self_cpu': s.ru_utime + s.ru_stime,"
        " 'self_rss_mb': s.ru_maxrss / 1024, 'children_cpu': c.ru_utime + c.ru_stime,"
        " 'children_rss_mb': c.ru_maxrss / 1024}))\n"
    )
    with open(out / "stdout.json", "w") as f:
        res = measure.run("merge alone (build_hour)", [PYTHON, "-c", code], stdout=f, sample=0.1)
    inner = json.loads((out / "stdout.json").read_text().strip().splitlines()[-1])
    shutil.rmtree(out)
    for pairs in inputs.values():
        for pair in pairs:
            for p in pair:
                Path(p).unlink(missing_ok=True)
    return {"result": res, "inner": inner}


# --- the dashboard over a year ---------------------------------------------------------------


def dashboard_rewrite_seconds(root: Path, now: datetime, scale_dir: Path) -> float:
    """What a run's end costs once it built an hour, a year of built hours on disk: the run
    record, health, metrics file and the dashboard's rewrite (the day, its month, the front
    page). The dashboard is made once first (a new install's first run writes every day)."""
    from ingest.config import validate_config
    from ingest.observe.dashboard import after_run

    run = Path(tempfile.mkdtemp(prefix="dashboard-", dir=scale_dir / "runs"))
    config = validate_config(
        {
            "timezone": TZ_NAME,
            "vault_dir": str(root / "vault"),
            "work_dir": str(run / "work"),
            "servers": [{"name": s, "raw_dir": str(root / "raw" / s)} for s in SERVERS],
            "dashboard": {"dir": str(run / "dashboard")},
        }
    )
    after_run(config, "first", now, now, "ok")
    os.utime(layout.vault_paths(root / "vault", PREV)["stats"])  # the hour just rebuilt
    t = time.monotonic()
    update = after_run(config, "bench", now, now, "ok")
    seconds = time.monotonic() - t
    assert update is not None and update.days == [PREV.day], update
    return seconds


# --- dry run over a year ---------------------------------------------------------------------


def ensure_year(cache: Path) -> tuple[Path, datetime]:
    """A year of built hours (tiny fake vault files, stats, reports) and 48 h of raw minutes.

    Every hour but the last complete one is built; its stats list the raw files it read, so
    the plan finds exactly one pending hour. Shared by every scale (cache/year).
    """
    root = cache / "year"
    marker = root / "complete.json"
    last = HOUR  # the pending hour
    now = due_time(last)
    if marker.exists() and json.loads(marker.read_text()).get("version") == YEAR_VERSION:
        return root, now
    if root.exists():
        shutil.rmtree(root)
    log("dry run: making a year of built hours")
    vault = root / "vault"
    raw = root / "raw"
    _, last_end = layout.hour_bounds(last, TZ)
    first_day = (last_end.astimezone(TZ) - timedelta(days=365)).date()
    day = first_day
    last_day = datetime.fromisoformat(last.day).date()
    raw_from = last_end - timedelta(hours=48)
    n_hours = 0
    with progress("a year of built hours", (last_day - first_day).days + 1, "day") as bar:
        while day <= last_day:
            d = day.isoformat()
            dd = vault / d
            dd.mkdir(parents=True)
            rows = ["hour\tserv 1\tserv 2\ttotal\tdiff\tdiff %"]
            for h in layout.day_hours(d, TZ):
                if (d, h.hh) >= (last.day, last.hh):
                    break
                paths = layout.vault_paths(vault, h)
                for kind in ("ids", "tweets", "users"):
                    paths[kind].write_bytes(b"\xfd7zXZ\x00fake")
                start, end = layout.read_window(h, TZ, LATE)
                inputs = {}
                if end > raw_from:
                    for s in SERVERS:
                        names = []
                        t = start
                        while t < end:
                            if t >= raw_from:
                                p = layout.minute_path(raw / s, t, TZ)
                                p.parent.mkdir(parents=True, exist_ok=True)
                                p.write_bytes(b"")
                                names.append(p.name)
                            t += layout.MINUTE
                        inputs[s] = names
                paths["stats"].write_text(json.dumps({"hour": h.label, "inputs": inputs}))
                write_record(vault, h)
                rows.append(f"{h.hh}\t3500\t3500\t3550\t50\t1.41%")
                n_hours += 1
            layout.report_path(vault, d).write_text("\n".join(rows) + "\n")
            derive_manifest(dd, root / "manifest.lock")
            day += timedelta(days=1)
            bar.update(1)
    # The pending hour's raw minutes; raw-one: the same alone (for an empty-vault dry run).
    start, end = layout.read_window(last, TZ, LATE)
    for tree in (raw, root / "raw-one"):
        for s in SERVERS:
            t = start
            while t < end:
                p = layout.minute_path(tree / s, t, TZ)
                p.parent.mkdir(parents=True, exist_ok=True)
                p.touch()
                t += layout.MINUTE
    marker.write_text(json.dumps({"version": YEAR_VERSION, "hours": n_hours}))
    return root, now


def stale_check_seconds(vault: Path, repeat: int = 5) -> float:
    """What every run pays to find the days whose manifest is older than a record (issue 21),
    a year of days in the vault; the best of ``repeat``."""
    from ingest.vault.day import days_to_derive

    walls = []
    for _ in range(repeat):
        start = time.perf_counter()
        days_to_derive(vault)
        walls.append(time.perf_counter() - start)
    return min(walls)


def run_dry_year(cache: Path, scale_dir: Path, repeat: int = 3) -> dict:
    """``snakemake -n`` against a year of built hours, against an empty vault, and with
    nothing to do (the year up to the hour before, every minute file parsed and gone): the
    last is what every cron run pays before any work, Snakemake's start-up included (issue 23)."""
    root, now = ensure_year(cache)
    hours = json.loads((root / "complete.json").read_text())["hours"]
    env = sm_env()
    out = {"hours": hours}
    for s in SERVERS:
        (root / "raw-none" / s).mkdir(parents=True, exist_ok=True)
    for name, raw, vault, at in [
        ("year", root / "raw", root / "vault", now),
        ("empty", root / "raw-one", None, now),
        ("idle", root / "raw-none", root / "vault", due_time(PREV)),
    ]:
        (scale_dir / "runs").mkdir(exist_ok=True)
        run = Path(tempfile.mkdtemp(prefix=f"dry-{name}-", dir=scale_dir / "runs"))
        cfg = write_config(run, raw, vault=vault)
        cmd = [*snakemake_cmd(run, cfg, at), "-n", "--quiet", "rules"]
        results = []
        for i in range(repeat):
            with open(run / f"dry{i}.log", "w") as f:
                results.append(
                    measure.run(f"dry run ({name})", cmd, env=env, stdout=f, stderr=f, sample=None)
                )
        out[name] = {
            "result": min(results, key=lambda r: r.wall),
            "walls": [r.wall for r in results],
            "cpus": [r.cpu for r in results],
            "jobs": dry_run_jobs(snakemake_cmd(run, cfg, at), env),
        }
    assert out["idle"]["jobs"] == {}, f"the idle dry run has work: {out['idle']['jobs']}"
    out["dashboard_s"] = dashboard_rewrite_seconds(root, now, scale_dir)
    out["stale_check_s"] = stale_check_seconds(root / "vault")
    return out


def run_import(scale_dir: Path, data_raw: Path) -> dict:
    """``sampled-stream import`` of the hour's twarc2 JSONL (server1's minute files of HOUR in
    one file), plain and .gz, one job (one core), against ``cat``/``zcat`` of the same file
    (warm cache); and the plain file in two halves with ``--jobs 2``."""
    import yaml

    run = Path(tempfile.mkdtemp(prefix="import-", dir=scale_dir / "runs"))
    src = run / "sample.jsonl"
    with open(src, "wb") as out:
        for f in hour_minute_files(data_raw)["server1"]:
            if layout.hour_of(f.minute, TZ) == HOUR:
                out.write(f.path.read_bytes())
    jsonl_bytes = src.stat().st_size
    with open(src.with_suffix(".jsonl.gz"), "wb") as gz:
        subprocess.run(["gzip", "-6", "-c", str(src)], stdout=gz, check=True)
    halves = [run / "half1.jsonl", run / "half2.jsonl"]
    lines = src.read_bytes().splitlines(keepends=True)
    halves[0].write_bytes(b"".join(lines[: len(lines) // 2]))
    halves[1].write_bytes(b"".join(lines[len(lines) // 2 :]))
    del lines

    def sampled_stream_import(name: str, *inputs: Path, jobs: int = 1) -> measure.Result:
        root = run / name
        cfg = {
            "timezone": TZ_NAME,
            "vault_dir": str(root / "vault"),
            "work_dir": str(root / "work"),
            "servers": [{"name": "imported", "raw_dir": str(root / "raw"), "imported": True}],
        }
        root.mkdir()
        (root / "config.yaml").write_text(yaml.safe_dump(cfg))
        cmd = [PYTHON, "-m", "ingest.cli", "import", "--config", str(root / "config.yaml")]
        cmd += ["--server", "imported", "--progress", "none", "--jobs", str(jobs), *inputs]
        with open(root / "import.log", "w") as f:
            return measure.run(f"import {name}", cmd, cwd=CODE, stdout=f, stderr=f, sample=None)

    def read_all(tool: str, path: Path) -> measure.Result:
        subprocess.run([tool, str(path)], stdout=subprocess.DEVNULL, check=True)  # warm cache
        return measure.run(f"{tool} {path.name}", ["sh", "-c", f'{tool} "$0" >/dev/null', path])

    out = {"jsonl_bytes": jsonl_bytes, "gz_bytes": src.with_suffix(".jsonl.gz").stat().st_size}
    out["cat"] = read_all("cat", src)
    out["plain"] = sampled_stream_import("plain", src)
    out["zcat"] = read_all("zcat", src.with_suffix(".jsonl.gz"))
    out["gz"] = sampled_stream_import("gz", src.with_suffix(".jsonl.gz"))
    out["jobs2"] = sampled_stream_import("jobs2", *halves, jobs=2)
    return out


# --- 6. the vault's copies ------------------------------------------------------------------

# Run as a process of its own (measured like the rest): every built hour of the vault copied to
# one replica as the workflow's replicate jobs copy them, or (--pending) what a run with nothing
# new decides for every replica (receipts against the vault's files) before it copies nothing.
_REPLICATE = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from ingest.hours.plan import built_hours
from ingest.config import load_config
from ingest.vault import replicate as r

config = load_config(sys.argv[1])
hours = built_hours(Path(config["vault_dir"]))
now = datetime.now(UTC)
if sys.argv[2] == "--pending":
    plan = SimpleNamespace(reports=[], build=[])
    left = r.workflow_targets(config, plan, r.pending_copies(config, plan, hours, now), "bench")
    if left:
        sys.exit(f"expected nothing to copy, got {left}")
else:
    name = sys.argv[2]
    for h in hours:
        r.replicate_hour(config, name, h, now, r.hour_receipt(config["work_dir"], name, h))
"""


def write_record(vault: Path, hour: layout.Hour) -> None:
    """The hour's record (generation 1) of its files as they are, as a build would write."""
    from ingest.vault import records
    from ingest.vault.manifest import sha256_file

    files = {
        p.name: records.FileEntry(sha256_file(p), p.stat().st_size)
        for p in layout.vault_paths(vault, hour).values()
    }
    records.write_record(records.record_path(vault, hour), records.HourRecord(hour.label, 1, files))


def derive_manifest(day_dir: Path, lock: Path) -> None:
    from ingest.vault.day import derive_manifest as derive

    derive(day_dir, lock)


def make_vault(vault: Path, built: dict[str, Path], n_hours: int, lock: Path) -> list[str]:
    """``n_hours`` consecutive hours from 1 February on, each a copy of the ``built`` hour's
    files under its own names with its record, and each day's SHA256SUMS; returns the days."""
    hours: list[layout.Hour] = []
    day = datetime.fromisoformat("2026-02-01").date()
    while len(hours) < n_hours:
        hours += layout.day_hours(day.isoformat(), TZ)
        day += timedelta(days=1)
    days: list[str] = []
    for h in hours[:n_hours]:
        for kind, path in layout.vault_paths(vault, h).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(built[kind], path)
        write_record(vault, h)
        days += [h.day] if h.day not in days else []
    for d in days:
        derive_manifest(vault / d, lock)
    return days


def run_replicas(scale_dir: Path, built: dict[str, Path], target_mb: float) -> dict:
    """Replication of a vault of about ``target_mb`` MB (the built hour under many hour names)
    to an empty local replica, again with nothing new, to an empty replica over ssh (the
    loopback sshd of ingest.devtools.sshd), then ``sampled-stream scrub`` of the vault and the
    local replica, each step with the project's own code."""
    from ingest.devtools.sshd import SshdUnavailable, start_sshd

    run = Path(tempfile.mkdtemp(prefix="replicas-", dir=scale_dir / "runs"))
    hour_bytes = sum(p.stat().st_size for p in built.values())
    n_hours = max(2, round(target_mb * 1e6 / hour_bytes))
    vault = run / "vault"
    days = make_vault(vault, built, n_hours, run / "manifest.lock")
    vault_bytes = sum(p.stat().st_size for p in vault.rglob("*") if p.is_file())
    log(f"replicas: a vault of {n_hours} hours, {vault_bytes / 1e6:.0f} MB")
    local = {"name": "local", "target": str(run / "replica-local")}
    (run / "replica-local").mkdir()
    env = sm_env()

    def step(label: str, *cmd: str) -> measure.Result:
        subprocess.run(["sync"], check=False)  # the vault's writes are not the copy's to flush
        with open(run / "replicas.log", "a") as f:
            res = measure.run(label, cmd, cwd=CODE, env=env, stdout=f, stderr=f, sample=None)
        log(f"{label}: {res.wall:.1f} s")
        return res

    out = {"hours": n_hours, "days": len(days), "hour_bytes": hour_bytes, "bytes": vault_bytes}
    try:
        sshd = start_sshd(run / "sshd")
    except SshdUnavailable as e:
        log(f"replicas: no replica over ssh: {e}")
        sshd = None
    try:
        remote = sshd and {
            "name": "ssh",
            "target": f"{sshd.target}:{run / 'replica-ssh'}",
            "ssh_key_file": str(sshd.key_file),
            "ssh_port": sshd.port,
            "known_hosts_file": str(sshd.known_hosts),
        }
        extra = {"vault_replicas": [local, *([remote] if remote else [])]}
        cfg = write_config(run, run / "raw", vault=vault, extra=extra)
        copy = [PYTHON, "-c", _REPLICATE, str(cfg)]
        out["local"] = step("replicate to an empty local replica", *copy, "local")
        out["ssh"] = remote and step("replicate to an empty replica over ssh", *copy, "ssh")
        out["steady"] = step("replicate, nothing new", *copy, "--pending")
    finally:
        if sshd:
            sshd.stop()
    # The scrub of the vault and the local replica only, as `sampled-stream scrub` runs.
    (run / "scrub").mkdir()
    scrub_cfg = write_config(
        run / "scrub", run / "raw", vault=vault, extra={"vault_replicas": [local]}
    )
    out["scrub"] = step(
        "scrub: vault + local replica",
        PYTHON,
        "-m",
        "ingest.cli",
        "scrub",
        "--config",
        str(scrub_cfg),
    )
    return out


_REWRITE = """
import sys
from pathlib import Path
from ingest.complied import Complied
from ingest.comply.rewrite import rewrite_hour
from ingest.hours.vault_source import xz_lines
from ingest.layout import Hour, vault_paths
vault, label, every = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
hour = Hour.parse(label)
ids = [int(x) for x in xz_lines(vault_paths(vault, hour)["ids"])]
done = rewrite_hour(vault, hour, Complied(posts={i: "deleted" for i in ids[::every]}))
print(done.tweets_left)
"""


def run_comply(scale_dir: Path, built: dict[str, Path], n_hours: int) -> dict:
    """Issue 24: the rewrite of the built hour without 5 % of its posts (MB/s of its tweets
    CSV, next to the build run), then ``sampled-stream comply`` over ``n_hours`` copies of it
    (a day of 1 % data at 24) against the stream stand-in's compliance endpoints in this
    process (its default shares: some 5 % of posts, 3.5 % of accounts)."""
    from ingest.devtools.emulator import Emulator

    run = Path(tempfile.mkdtemp(prefix="comply-", dir=scale_dir / "runs"))
    env = sm_env()
    one = run / "one"
    make_vault(one / "vault", built, 1, one / "manifest.lock")
    hour = layout.day_hours("2026-02-01", TZ)[0]
    csv_mb = (
        int(
            subprocess.run(
                ["xz", "--robot", "--list", str(built["tweets"])], capture_output=True, text=True
            )
            .stdout.split("totals")[1]
            .split()[3]
        )
        / 1e6
    )
    rewrite = measure.run(
        "rewrite of the hour, 5 % complied",
        [PYTHON, "-c", _REWRITE, str(one / "vault"), hour.label, "20"],
        cwd=CODE,
        env=env,
        sample=None,
    )
    log(f"comply: rewrite of the hour ({csv_mb:.0f} MB of CSV): {rewrite.wall:.1f} s")
    day = run / "day"
    make_vault(day / "vault", built, n_hours, day / "manifest.lock")
    em = Emulator(rate=0.001, token="bench-token-0123456789").start()
    try:
        token = day / "token"
        token.write_text("bench-token-0123456789")
        token.chmod(0o600)
        cfg = write_config(
            day,
            day / "raw",
            vault=day / "vault",
            extra={
                "stream": {"url": em.url, "bearer_token_file": str(token)},
                "comply": {"poll_seconds": 1},
            },
        )
        with open(run / "comply.log", "a") as f:
            passed = measure.run(
                f"comply over {n_hours} hours",
                [PYTHON, "-m", "ingest.cli", "comply", "--config", str(cfg), "--json"],
                cwd=CODE,
                env=env,
                stdout=f,
                stderr=f,
                sample=0.5,
            )
    finally:
        em.stop()
    log(f"comply: a pass over {n_hours} hours: {passed.wall:.1f} s")
    return {"csv_mb": csv_mb, "rewrite": rewrite, "hours": n_hours, "pass": passed}


# --- report ---------------------------------------------------------------------------------


def write_results(folder: Path, name: str, results: dict, md: str) -> None:
    """``folder/name.json`` (every figure) and ``name.md`` (the tables, also printed)."""
    (folder / f"{name}.json").write_text(json.dumps(results, indent=1, default=str))
    print()
    print(md)
    (folder / f"{name}.md").write_text(md)
    log(f"wrote {folder / name}.md and {name}.json")


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def fmt(r):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(header), sep, *(fmt(r) for r in rows)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Benchmark the hourly build (issue 5).")
    ap.add_argument("--scale", type=float, default=1, help="1 = 1 %% rate, 10 = 10 %% rate")
    ap.add_argument("--cache", type=Path, default=ROOT / "bench-cache")
    ap.add_argument(
        "--skip",
        action="append",
        default=[],
        help="parts to skip: hourly, cold, baseline, parts, merge, import, history, dry,"
        " replicas, comply (repeatable)",
    )
    ap.add_argument(
        "--replica-mb",
        type=float,
        default=400,
        help="size of the vault the replicas part copies and scrubs, MB (the built hour repeated)",
    )
    ap.add_argument(
        "--comply-hours",
        type=int,
        default=24,
        help="hours (copies of the built one) the compliance pass goes over: 24, a day",
    )
    ap.add_argument("--keep", action="store_true", help="keep the run directories")
    ap.add_argument(
        "--cron-minutes", type=int, default=10, help="interval of the simulated cron runs"
    )
    ap.add_argument(
        "--code",
        type=Path,
        default=ROOT,
        help="a copy of the project whose workflow/ and ingest/ are measured (default: this one)",
    )
    ap.add_argument(
        "--sample",
        type=float,
        default=0.1,
        help="process sampler interval in seconds (per-kind RSS), 0 = off",
    )
    ap.add_argument(
        "--dry-only",
        action="store_true",
        help="only the dry runs (a year built, empty vault, nothing to do): Snakemake's start-up",
    )
    ap.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (shown on stderr only when it is a terminal)",
    )
    ap.add_argument(
        "--paths-only",
        action="store_true",
        help="only the paths (one hour, a day, the cold cron run, an imported day), each against"
        " its hours' floor; --skip path-hour|path-day|path-cron|path-imported leaves one out",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run each path and its floor this many times; the best of each counts (default 1)",
    )
    args = ap.parse_args(argv)

    global CODE, PROGRESS
    CODE = args.code.resolve()
    PROGRESS = not args.no_progress
    scale = args.scale
    tag = f"{scale:g}"
    cache = args.cache.resolve()
    scale_dir = cache / f"scale-{tag}"
    scale_dir.mkdir(parents=True, exist_ok=True)
    runs = scale_dir / "runs"
    if runs.exists():
        shutil.rmtree(runs)
    runs.mkdir()
    sample = args.sample or None
    info = machine()
    log(f"machine: {info['nproc']} x {info['cpu']}, {info['mem_gb']} GB")
    if info["slurm_plugin_wait"]:
        log(
            "WARNING: snakemake-executor-plugin-slurm is installed and scontrol is on PATH: every"
            " snakemake start may wait ~9 s for it; bench from a venv without the plugin"
        )
    if args.dry_only:
        return dry_only(cache, scale_dir, info)

    data = ensure_data(scale_dir, scale)
    data_raw = scale_dir / "raw"
    results: dict = {"machine": info, "scale": scale, "hour": HOUR.label, "data": data["summary"]}
    if args.paths_only:
        return paths_main(scale_dir, data_raw, results, args)

    def brief(r: measure.Result) -> str:
        return (
            f"{r.wall:.1f} s wall, {r.cpu:.1f} s CPU, {r.peak_rss_mb:.0f} MB,"
            f" other load {r.other_cpu:.0f} s"
        )

    builds: dict[str, dict] = {}
    builds["cron"] = run_build(scale_dir, data_raw, "cron", sample, args.cron_minutes)
    log(f"cron: the build run: {brief(builds['cron']['last'])}")
    log(f"cron: the hour's runs: {brief(builds['cron']['result'])}")
    if "hourly" not in args.skip and args.cron_minutes != 60:
        builds["hourly"] = run_build(scale_dir, data_raw, "cron", sample, 60)
        log(f"hourly cron: {brief(builds['hourly']['last'])}")
    if "cold" not in args.skip:
        builds["cold"] = run_build(scale_dir, data_raw, "cold", sample)
        log(f"cold: {brief(builds['cold']['last'])}")

    main_out = builds["cron"]["outputs"]
    floor = run_floor(main_out["tweets"], Path(tempfile.mkdtemp(dir=runs)))
    log(f"floor: {brief(floor['result'])}")
    floor["csv"].unlink()

    baseline = None
    if "baseline" not in args.skip:
        baseline = run_baseline(scale_dir, data_raw)
        log(f"baseline: {brief(baseline['result'])}")

    parts = None
    if "parts" not in args.skip:
        parts = run_parts(scale_dir, data_raw)
        log(f"parse, a process per file: {brief(parts['per_file'])}")
        log(f"parse, one process: {brief(parts['one_process'])}")
    merge = None
    if parts and "merge" not in args.skip:
        merge = run_merge_alone(parts, scale_dir)
        log(f"merge alone: {brief(merge['result'])}")
    imported = None
    if "import" not in args.skip:
        imported = run_import(scale_dir, data_raw)
        log(f"import, plain: {brief(imported['plain'])}; gz: {brief(imported['gz'])}")
    history = None
    if "history" not in args.skip:
        history = import_history.measure(cache)
        log(import_history.line(history))
    dry = None
    if "dry" not in args.skip:
        dry = run_dry_year(cache, scale_dir)
        log(
            f"dry run: {dry['year']['result'].wall:.2f} s"
            f" (empty vault {dry['empty']['result'].wall:.2f} s)"
        )
    replicas = None
    if "replicas" not in args.skip:
        replicas = run_replicas(scale_dir, main_out, args.replica_mb)
    complying = None
    if "comply" not in args.skip:
        complying = run_comply(scale_dir, main_out, args.comply_hours)

    def build_json(b: dict) -> dict:
        return {
            "total": b["result"].to_json(),
            "last": b["last"].to_json(),
            "jobs": b["jobs"],
            "runs": [
                {"at": r["at"], "jobs": r["jobs"], **r["result"].to_json()} for r in b["runs"]
            ],
        }

    results.update(
        {
            "cron_minutes": args.cron_minutes,
            "builds": {k: build_json(v) for k, v in builds.items()},
            "floor": {
                **floor["result"].to_json(),
                "csv_bytes": floor["csv_bytes"],
                "xz_T1_bytes": floor["xz_T1_bytes"],
                "xz_T2_bytes": floor["xz_T2_bytes"],
                "xz_T1": floor["result_t1"].to_json(),
            },
            "outputs_bytes": {k: p.stat().st_size for k, p in main_out.items()},
            "baseline": baseline
            and {
                **baseline["result"].to_json(),
                "report": baseline["report"],
                "sizes": baseline["sizes"],
            },
            "parts": parts
            and {
                k: v.to_json() if isinstance(v, measure.Result) else v
                for k, v in parts.items()
                if k != "intermediates"
            },
            "merge": merge and {"result": merge["result"].to_json(), "inner": merge["inner"]},
            "import_history": history,
            "import": imported
            and {
                k: v.to_json() if isinstance(v, measure.Result) else v for k, v in imported.items()
            },
            "dry": dry
            and {
                "hours": dry["hours"],
                "dashboard_s": dry["dashboard_s"],
                "stale_check_s": dry["stale_check_s"],
                **{
                    k: {
                        **dry[k]["result"].to_json(),
                        "walls": dry[k]["walls"],
                        "cpus": dry[k]["cpus"],
                        "jobs": dry[k]["jobs"],
                    }
                    for k in ("year", "empty", "idle")
                },
            },
            "replicas": replicas
            and {
                k: v.to_json() if isinstance(v, measure.Result) else v for k, v in replicas.items()
            },
            "comply": complying
            and {
                k: v.to_json() if isinstance(v, measure.Result) else v for k, v in complying.items()
            },
        }
    )
    results["paths"] = run_paths(scale_dir, data_raw, sample, args.skip, args.rounds)
    md = render(results, args.sample) + "\n" + render_paths(results["paths"], scale)
    write_results(scale_dir, "results", results, md)
    if not args.keep:
        shutil.rmtree(runs, ignore_errors=True)
    return 0


def dry_only(cache: Path, scale_dir: Path, info: dict) -> int:
    """``--dry-only``: the three dry runs alone, a table of their own (``dry.md``)."""
    dry = run_dry_year(cache, scale_dir)
    labels = {
        "year": f"dry run (-n), {dry['hours']} built hours in the vault",
        "empty": "dry run (-n), empty vault",
        "idle": IDLE_LABEL,
    }
    rows = [
        (label, f"{dry[k]['result'].wall:.2f}", f"{dry[k]['result'].cpu:.2f}")
        for k, label in labels.items()
    ]
    md = table(rows, ("run (best of 3)", "wall s", "CPU s"))
    results = {"machine": info, **{k: dry[k]["result"].to_json() for k in labels}}
    write_results(scale_dir, "dry", results, md)
    shutil.rmtree(scale_dir / "runs", ignore_errors=True)
    return 0


def paths_main(scale_dir: Path, data_raw: Path, results: dict, args) -> int:
    """``--paths-only``: the paths' lines alone, into ``results-paths.md`` and ``.json``."""
    results["code"] = str(CODE)
    results["paths"] = run_paths(scale_dir, data_raw, args.sample or None, args.skip, args.rounds)
    write_results(scale_dir, "results-paths", results, render_paths(results["paths"], args.scale))
    if not args.keep:
        shutil.rmtree(scale_dir / "runs", ignore_errors=True)
    return 0


def render(res: dict, sample: float) -> str:
    """The markdown the README carries (from results.json's dict)."""
    scale = res["scale"]
    tag = f"{scale:g}"
    info = res["machine"]
    f = res["floor"]
    builds = res["builds"]
    cron = builds["cron"]
    every = res["cron_minutes"]
    b = cron["last"]
    hour_total = cron["total"]

    def row(label, r, digits=1):
        return (
            label,
            f"{r['wall_s']:.{digits}f}",
            f"{r['cpu_s']:.1f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['other_cpu_s']:.1f}",
        )

    n_runs = len(cron["runs"])
    rows = [
        row(f"build: the cron run that builds the hour (cron every {every} min)", b),
        row(f"build: all {n_runs} cron runs of the hour (parsing spread over them)", hour_total),
    ]
    if "hourly" in builds:
        rows.append(
            row(
                "build with an hourly cron (all parsing in the build run)", builds["hourly"]["last"]
            )
        )
    if "cold" in builds:
        rows.append(
            row("build, cold: the hour alone, its whole window parsed", builds["cold"]["last"])
        )
    rows.append(row("floor: xz -6 -T2 of the hour's tweets CSV", f))
    if res["baseline"]:
        rows.append(row("baseline: the seed's way (jq per file + pandas)", res["baseline"]))
    if res["dry"]:
        d = res["dry"]
        rows.append(row(f"dry run (-n), {d['hours']} built hours in the vault", d["year"], 2))
        rows.append(row("dry run (-n), empty vault", d["empty"], 2))
        rows.append(row(IDLE_LABEL, d["idle"], 2))
    main_table = table(rows, ("run", "wall s", "CPU s", "peak RSS MB", "other load CPU s"))

    ratios = [
        ("build run / floor, wall", f"{b['wall_s'] / f['wall_s']:.2f}", "<= 1.5"),
        ("all the hour's runs / floor, wall", f"{hour_total['wall_s'] / f['wall_s']:.2f}", ""),
        ("all the hour's runs / floor, CPU", f"{hour_total['cpu_s'] / f['cpu_s']:.2f}", ""),
    ]
    if "hourly" in builds:
        h = builds["hourly"]["last"]
        ratios.append(("hourly-cron build / floor, wall", f"{h['wall_s'] / f['wall_s']:.2f}", ""))
    if "cold" in builds:
        c = builds["cold"]["last"]
        ratios.append(("cold build / floor, wall", f"{c['wall_s'] / f['wall_s']:.2f}", ""))
    if res["baseline"]:
        bl = res["baseline"]
        ratios.append(("baseline / build run, wall", f"{bl['wall_s'] / b['wall_s']:.2f}", ""))
        ratios.append(
            ("baseline / all the hour's runs, CPU", f"{bl['cpu_s'] / hour_total['cpu_s']:.2f}", "")
        )
    rss_goal = 300 if scale <= 1 else 600
    peak = max(x["last"]["peak_rss_mb"] for x in builds.values())
    ratios.append(
        ("build peak RSS MB (biggest process, any build)", f"{peak:.0f}", f"<= {rss_goal}")
    )
    # The goal (issue 25): no larger than the floor's own output, xz -6 on every core.
    size = res["outputs_bytes"]["tweets"] / f["xz_T2_bytes"]
    ratios.append(("tweets.csv.xz size / the floor's (xz -6 -T2)", f"{size:.4f}", "<= 1.00"))
    if res["dry"]:
        ratios.append(
            ("dry run with a year built, wall s", f"{res['dry']['year']['wall_s']:.2f}", "< 5")
        )
        ratios.append(
            (
                "a run's end after one hour built, a year on disk (health, metrics, dashboard), s",
                f"{res['dry']['dashboard_s']:.2f}",
                "< 1",
            )
        )
        ratios.append(
            (
                "a run's check for stale day manifests, a year of days, s",
                f"{res['dry']['stale_check_s']:.3f}",
                "<= 0.2",
            )
        )
    ratio_table = table(ratios, ("figure", "value", "goal"))

    ds = res["data"]
    mib = 2**20
    o = res["outputs_bytes"]
    start, end = window()
    notes = [
        f"Data: scale {tag} ({RATE * scale:.0f} tweets/min generated, {DISAGREEMENT:.1%} "
        f"disagreement), hour {res['hour']} {TZ_NAME}: its window's minute files "
        f"({start:%H:%M}-{end:%H:%M} UTC) of 2 servers hold "
        f"{ds.get('window_bytes', ds['raw_bytes']) / mib:.0f} MiB of JSON lines.",
        f"Output: tweets CSV {f['csv_bytes'] / mib:.1f} MiB -> tweets.csv.xz "
        f"{o['tweets'] / mib:.2f} MiB (xz -6 -T1: {f['xz_T1_bytes'] / mib:.2f} MiB, -T2: "
        f"{f['xz_T2_bytes'] / mib:.2f} MiB); users.csv.xz {o['users'] / mib:.2f} MiB; "
        f"IDs.txt.xz {o['ids'] / mib:.2f} MiB.",
        f"Cron every {every} min: the minute files appear as a collector finishes them and each "
        f"run sees those complete at its time; the {n_runs} runs up to the one that builds the "
        f"hour are timed (jobs: {cron['jobs']}; in the build run: {cron['runs'][-1]['jobs']}).",
        "CPU s: user+sys of every process of the run (RUSAGE_CHILDREN of a wrapper). Peak RSS: "
        "the biggest single process (ru_maxrss). Other load: CPU the rest of the machine used "
        "meanwhile (/proc/stat); if it is not near 0, wall times are inflated.",
    ]
    if res["baseline"]:
        rep = res["baseline"]["report"]
        notes.append(
            f"Baseline: the hour's own 60 files per server, as the seed read them; jq "
            f"{rep['jq_s']:.0f} s, pandas {rep['pandas_s']:.0f} s; {rep['total']} tweets, "
            f"diff {rep['diff_pct']} %."
        )

    kinds_rows = []
    for label, r in [("cron build run", b)] + [
        (f"{k} build", builds[k]["last"]) for k in ("hourly", "cold") if k in builds
    ]:
        for k, v in r["kinds"].items():
            seen = f"{v['first_s']:.1f}-{v['last_s']:.1f}" if v["first_s"] is not None else ""
            kinds_rows.append(
                (
                    label,
                    k,
                    v["processes"],
                    f"{v['peak_rss_mb']:.0f}",
                    f"{v['cpu_s_sampled']:.1f}",
                    seen,
                )
            )
    kinds_table = ""
    if kinds_rows:
        kinds_table = (
            f"Per process kind (sampled every {sample:g} s; short jobs' CPU is undercounted):\n\n"
            + table(
                kinds_rows,
                ("run", "process kind", "processes", "peak RSS MB", "CPU s (sampled)", "seen at s"),
            )
        )

    parts_rows = []
    p = res.get("parts")
    if p:
        pf, op = p["per_file"], p["one_process"]
        parts_rows += [
            (
                f"parse {p['files']} minute files, a process each",
                f"{pf['wall_s']:.1f}",
                f"{pf['cpu_s']:.1f}",
                f"{pf['peak_rss_mb']:.0f}",
            ),
            (
                f"parse {p['files']} minute files in one process",
                f"{op['wall_s']:.1f}",
                f"{op['cpu_s']:.1f}",
                f"{op['peak_rss_mb']:.0f}",
            ),
            (
                "parse start-up, per job (empty file)",
                f"{p['startup_per_job_s']:.3f}",
                f"{p['startup_cpu_per_job_s']:.3f}",
                "",
            ),
        ]
    m = res.get("merge")
    if m:
        r, inner = m["result"], m["inner"]
        parts_rows += [
            (
                "hourly merge alone (python + xz)",
                f"{r['wall_s']:.1f}",
                f"{r['cpu_s']:.1f}",
                f"{r['peak_rss_mb']:.0f}",
            ),
            (
                "  of which the python process",
                "",
                f"{inner['self_cpu']:.1f}",
                f"{inner['self_rss_mb']:.0f}",
            ),
            (
                "  of which xz subprocesses",
                "",
                f"{inner['children_cpu']:.1f}",
                f"{inner['children_rss_mb']:.0f}",
            ),
        ]
    parts_table = ""
    if parts_rows:
        parts_table = "Parts, run outside Snakemake, one after the other:\n\n" + table(
            parts_rows, ("part", "wall s", "CPU s", "peak RSS MB")
        )

    import_table = ""
    imp = res.get("import")
    if imp:
        mb = imp["jsonl_bytes"] / 1e6

        def speed(r: dict, reader: dict | None = None) -> tuple[str, ...]:
            share = f"{reader['wall_s'] / r['wall_s']:.1%}" if reader else ""
            mb_s = f"{mb / r['wall_s']:.0f}"
            return (
                r["label"],
                f"{r['wall_s']:.1f}",
                f"{r['cpu_s']:.1f}",
                mb_s,
                f"{mb / max(r['cpu_s'], 0.01):.0f}",
                share,
                f"{r['peak_rss_mb']:.0f}",
            )

        import_table = (
            f"Import (`sampled-stream import`, one job = one core) of the hour's twarc2 JSONL, "
            f"server1: {mb:,.0f} MB ({imp['gz_bytes'] / 1e6:,.0f} MB as .gz, gzip -6); "
            f"MB/s of JSONL; share: the speed of cat (plain) / zcat (.gz) of the same file, "
            f"warm cache, that the import reaches:\n\n"
            + table(
                [
                    speed(imp["plain"], imp["cat"]),
                    speed(imp["gz"], imp["zcat"]),
                    speed(imp["jobs2"]),
                    speed(imp["cat"]),
                    speed(imp["zcat"]),
                ],
                (
                    "run",
                    "wall s",
                    "CPU s",
                    "MB/s",
                    "MB per CPU s",
                    "share of cat/zcat",
                    "peak RSS MB",
                ),
            )
        )
    if res.get("import_history"):
        paid = import_history.line(res["import_history"])
        import_table += f"\n\nWhat a cron run pays for past imports: {paid}."

    copies_table = ""
    rep = res.get("replicas")
    if rep:
        mb = rep["bytes"] / 1e6

        def copy_row(label: str, r: dict, mb_read: float) -> tuple[str, ...]:
            return (
                label,
                f"{r['wall_s']:.1f}",
                f"{r['wall_s'] / rep['hours']:.2f}",
                f"{r['cpu_s']:.1f}",
                f"{mb_read / r['wall_s']:.0f}" if mb_read else "",
                f"{r['other_cpu_s']:.1f}",
            )

        rows = [copy_row("replicate to an empty local replica", rep["local"], mb)]
        if rep["ssh"]:
            rows.append(copy_row("replicate to an empty replica over ssh", rep["ssh"], mb))
        rows.append(copy_row("replicate again, nothing new (a run's check)", rep["steady"], 0))
        rows.append(copy_row("scrub: the vault and the local replica", rep["scrub"], 2 * mb))
        copies_table = (
            f"Vault copies: a vault of {rep['hours']} hours in {rep['days']} day folders "
            f"({mb:,.0f} MB; the cron build's hour, {rep['hour_bytes'] / 1e6:.1f} MB, under "
            f"{rep['hours']} hour names, with each day's SHA256SUMS), warm page cache. Each step "
            "is one process: replicate_hour for every hour (the workflow's replicate jobs, "
            "without their start-up), workflow_targets with every hour copied (2 replicas), "
            "`sampled-stream scrub` (its defaults: 2 jobs, 100 MB/s cap; MB/s counts both "
            "copies). Over ssh (sshd on 127.0.0.1), the replica side's CPU (sshd, rsync, "
            "sha256sum) is other load:\n\n"
            + table(rows, ("step", "wall s", "s per hour", "CPU s", "MB/s", "other load CPU s"))
        )

    comply_table = ""
    cp = res.get("comply")
    if cp:
        build = res["builds"]["cron"]["last"]
        rw, ps = cp["rewrite"], cp["pass"]

        def comply_row(label: str, r: dict, mb: float) -> tuple[str, ...]:
            return (
                label,
                f"{r['wall_s']:.1f}",
                f"{r['cpu_s']:.1f}",
                f"{mb / r['wall_s']:.1f}",
                f"{r['cpu_s'] / build['cpu_s']:.2f}" if r is not build else "1",
                f"{r['other_cpu_s']:.0f}",
            )

        comply_table = (
            "Deletion compliance (issue 24): the built hour rewritten without 5 % of its posts "
            "(`rewrite_hour`: its tweets read twice, the tweets and users written again), next "
            f"to the build run of the same hour; then `sampled-stream comply` over {cp['hours']} "
            "copies of the hour against the stream stand-in (jobs polled every second), every "
            "hour rewritten. MB/s: of the hours' tweets CSV:\n\n"
            + table(
                [
                    comply_row("rewrite of the hour", rw, cp["csv_mb"]),
                    comply_row("the build run of the hour", build, cp["csv_mb"]),
                    comply_row(f"comply over {cp['hours']} hours", ps, cp["csv_mb"] * cp["hours"]),
                ],
                ("step", "wall s", "CPU s", "MB/s", "CPU / build run", "other load CPU s"),
            )
        )

    return (
        "\n\n".join(
            x
            for x in [
                f"### Hourly build benchmark, scale {tag}",
                f"Machine: {info['nproc']} cores ({info['cpu']}), {info['mem_gb']} GB RAM; Python "
                f"{info['python']}, Snakemake {info['snakemake']}, {info['xz']}, {info['jq']}.",
                f"Command: `make bench SCALE={tag}` (`.venv/bin/python tests/bench/bench.py "
                f"--scale {tag} --cache bench-cache`).",
                main_table,
                ratio_table,
                "\n".join(f"- {n}" for n in notes),
                kinds_table,
                parts_table,
                import_table,
                copies_table,
                comply_table,
            ]
            if x
        )
        + "\n"
    )


if __name__ == "__main__":
    sys.exit(main())
