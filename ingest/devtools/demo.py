"""`make demo`: the whole system on this machine, no credentials, a couple of minutes.

1. A stream stand-in on 127.0.0.1 and two collectors (server1, server2) on a fast clock
   (one minute per second), server2 suffering cut connections, 503s and a stall; a loopback
   SMTP server receives their notices.
2. Meanwhile the project's generator writes the hour before, as if collected earlier.
3. `snakemake -n` shows what is pending, `snakemake` builds it, a second run does nothing.
4. The day report, the files and a few rows are printed.
5. One compliance pass (`sampled-stream comply`) against the stand-in's batch compliance
   endpoints: the complied posts and accounts leave the hours (a new generation each), the
   IDs files stay, each day gets its compliance log; a rebuild brings nothing back.
Everything lands under ./demo-run (removed at the start of the next demo).
"""

from __future__ import annotations

import argparse
import csv
import io
import lzma
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from ingest import layout
from ingest.atomic import atomic_write
from ingest.config import TEST_CLOCK_ENV, load_config
from ingest.devtools.generate import generate_raw_tree
from ingest.devtools.mailsink import Sink, start
from ingest.devtools.stack import (
    REPO,
    FastClock,
    cli,
    env,
    stand_in_fault,
    start_collector,
    start_stand_in,
)
from ingest.observe.health import end_demo

SPEED = 60  # one clock minute per real second
CLOCK_START = datetime(2026, 1, 14, 9, 58, 30, tzinfo=UTC)  # 10:58:30 in Berlin
COLLECT_UNTIL = datetime(2026, 1, 14, 11, 7, 10, tzinfo=UTC)  # past hour 11's late window
NOW = datetime(2026, 1, 14, 11, 12, tzinfo=UTC)  # the workflow's "now": hour 11 is complete
TZ = ZoneInfo("Europe/Berlin")


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def write_config(root: Path, stream_url: str, smtp_port: int) -> Path:
    token = root / "bearer_token"
    token.write_text("demo-token\n")
    token.chmod(0o600)
    config = {
        "timezone": "Europe/Berlin",
        "vault_dir": str(root / "vault"),
        "work_dir": str(root / "work"),
        "servers": [{"name": s, "raw_dir": str(root / "raw" / s)} for s in ("server1", "server2")],
        "stream": {"url": stream_url, "bearer_token_file": str(token), "stall_seconds": 2},
        "comply": {"poll_seconds": 0.5},
        "osf": {"enabled": False},
        "email": {
            "enabled": True,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "security": "none",
            "from": "collector@demo.invalid",
            "to": ["researcher@demo.invalid"],
            "alert_after_minutes": 1,
        },
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def retire_mail(config: Path) -> None:
    """The demo's SMTP sink stops with the demo: its config then mails no more (a later run by
    hand, a rebuilt demo day, would otherwise fail on every mail job)."""
    data = yaml.safe_load(config.read_text())
    data["email"] = {"enabled": False}
    text = yaml.safe_dump(data, sort_keys=False)
    note = "# make demo's SMTP sink stopped with the demo: mail is off from here on.\n"
    atomic_write(config, note + text)


def collect(root: Path, smtp_port: int) -> tuple[Path, subprocess.Popen]:
    clock = FastClock(SPEED, CLOCK_START)  # a shared timeline for the stand-in and collectors
    epoch = clock.epoch
    log_dir = root / "logs"
    log_dir.mkdir(parents=True)
    emulator, url = start_stand_in(log_dir, clock, "demo-token", rate=150, keepalive=0.5)
    config = write_config(root, url, smtp_port)
    say(f"1/5 stream stand-in at {url}; collectors server1 and server2 (1 minute = 1 s)")
    collectors = [
        start_collector(config, name, clock, log_dir / f"collector-{name}.log")
        for name in ("server1", "server2")
    ]
    say("2/5 meanwhile: the hour before, written by the project's generator (as if collected)")
    summary = generate_raw_tree(
        [(s, root / "raw" / s) for s in ("server1", "server2")],
        CLOCK_START - timedelta(minutes=59, seconds=30),
        CLOCK_START + timedelta(seconds=30),
        TZ,
        rate_per_minute=600,
        bad_lines=True,
        seed=1,
    )
    print(f"   {summary.tweets_generated} tweets, {summary.lines_written} lines written")

    faults = {20: ("cut", {}), 30: ("503", {"count": "3"}), 45: ("stall", {"seconds": "4"})}
    real_seconds = (COLLECT_UNTIL - CLOCK_START).total_seconds() / SPEED
    t0 = epoch
    while time.time() < epoch:
        time.sleep(0.1)
    for second in range(1, int(real_seconds) + 2):
        time.sleep(max(0.0, t0 + second - time.time()))
        if second in faults:
            kind, params = faults[second]
            stand_in_fault(url, kind, "server2", **params)
            print(f"   t+{second:>2}s  server2: injected fault '{kind}'", flush=True)
        if second % 15 == 0:
            files = {
                s: len(list((root / "raw" / s).rglob("*.jsonl"))) for s in ("server1", "server2")
            }
            print(f"   t+{second:>2}s  minute files so far: {files}", flush=True)
    for p in collectors:
        p.terminate()
    for p in collectors:
        print(f"   collector exited with {p.wait(timeout=30)} on SIGTERM")
    # Stopped on purpose: the pages and status read "collectors stopped at ...", not an outage.
    end_demo(load_config(config), ["server1", "server2"], clock.now())
    subprocess.run(cli("status", "--config", str(config), *clock.args()), env=env(), check=False)
    return config, emulator  # the stand-in stays up for the compliance pass


def snakemake(config: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile")]
    cmd += ["--directory", str(config.parent), "--configfile", str(config), "--quiet", "rules"]
    cmd += ["--config", f"now={NOW.isoformat()}", *args]
    # The demo's runs write at NOW, a replayed time: allowed only by the test-only switch.
    return subprocess.run(cmd, capture_output=True, text=True, env={**env(), TEST_CLOCK_ENV: "1"})


def show_outputs(root: Path) -> None:
    day = "2026-01-14"
    report = layout.report_path(root / "vault", day)
    print(f"\n{report}:\n")
    print(report.read_text())
    print(
        "   hour 11 was collected live: server2's cut, 503s and stall were made good by\n"
        "   backfill_minutes on reconnect. Hour 10 (generated) shows the ~1.5 % disagreement\n"
        "   of real redundant collectors; hour 09 holds tweets of 09:59 that arrived at 10:00.\n"
    )
    print("files:")
    for p in sorted((root / "vault" / day).iterdir()):
        print(f"   {p.stat().st_size:>9,d}  {p}")
    tweets = layout.vault_paths(root / "vault", layout.Hour(day, 11))["tweets"]
    rows = list(csv.reader(io.StringIO(lzma.decompress(tweets.read_bytes()).decode())))
    print(f"\n{tweets.name}: {len(rows) - 1} rows; a few of them:")
    for r in rows[1:4]:
        print(f"   {r[0]}  {r[3]}  {r[6]:>3}  {r[8]:<10} @{r[13]}: {r[7][:60]}")


def hour_rows(root: Path, hh: int) -> tuple[int, int]:
    """(IDs, tweets rows) of hour ``hh`` of the demo's day."""
    paths = layout.vault_paths(root / "vault", layout.Hour("2026-01-14", hh))
    ids = lzma.decompress(paths["ids"].read_bytes()).count(b"\n")
    return ids, lzma.decompress(paths["tweets"].read_bytes()).count(b"\n") - 1


def comply_pass(root: Path, config: Path) -> bool:
    """One ``sampled-stream comply`` against the stand-in, then a rebuild of the day."""
    say("5/5 sampled-stream comply: X's batch compliance jobs (the stand-in), then the rewrite")
    before = {hh: hour_rows(root, hh) for hh in (10, 11)}
    t = time.monotonic()
    run = subprocess.run(
        cli("comply", "--config", str(config)), capture_output=True, text=True, env=env()
    )
    print("\n".join("   " + line for line in run.stdout.splitlines()))
    if run.returncode != 0:
        print(run.stderr[-3000:])
        return False
    print(f"   in {time.monotonic() - t:.1f} s (jobs polled every comply.poll_seconds)")
    for hh, (ids, rows) in before.items():
        after = hour_rows(root, hh)
        print(f"   hour {hh}: IDs {ids} -> {after[0]}, tweets rows {rows} -> {after[1]}")
    log = root / "vault" / "2026-01-14" / "2026-01-14_compliance.tsv"
    lines = log.read_text().splitlines()
    print(f"\n{log} ({len(lines) - 1} IDs); its first lines:")
    for line in lines[:4]:
        print(f"   {line}")
    run = snakemake(config, "--config", "hours=2026-01-14", f"now={NOW.isoformat()}")
    if run.returncode != 0:
        print(run.stderr[-3000:])
        return False
    again = {hh: hour_rows(root, hh) for hh in (10, 11)}
    print(f"\n   the day rebuilt from its (rewritten) raw files and the vault: {again}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="demo-run", help="where everything goes (recreated)")
    root = Path(parser.parse_args(argv).dir).resolve()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    started = time.monotonic()
    mails = Sink()
    smtp = start(mails)
    emulator = None
    try:
        config, emulator = collect(root, smtp.port)
        say("3/5 snakemake -n: what is pending")
        dry = snakemake(config, "-n")
        print(
            "\n".join(
                line for line in dry.stderr.splitlines() if line.startswith(" ") or "plan" in line
            )
        )
        say("4/5 snakemake: build the hours, then once more (nothing to do)")
        t = time.monotonic()
        run = snakemake(config)
        if run.returncode != 0:
            print(run.stderr[-3000:])
            return 1
        print(f"   built in {time.monotonic() - t:.0f} s")
        again = snakemake(config)
        print(
            "   second run:",
            "Nothing to be done" if "Nothing to be done" in again.stderr else again.stderr[-500:],
        )
        show_outputs(root)
        if not comply_pass(root, config):
            return 1
        print("\nmails the collectors sent to the loopback SMTP server:")
        for s in mails.subjects():
            print(f"   {s}")
    finally:
        smtp.stop()
        if emulator is not None:
            emulator.terminate()
            emulator.wait(timeout=10)
        if (root / "config.yaml").exists():
            retire_mail(root / "config.yaml")
    print(f"\ndemo done in {time.monotonic() - started:.0f} s; everything is under {root}")
    print(
        f"try: .venv/bin/snakemake --snakefile workflow/Snakefile --directory {root} "
        f"--configfile {root}/config.yaml -n --config now={NOW.isoformat()}"
    )
    dashboard = root / "vault" / "dashboard" / "index.html"
    print(
        f"\nthe dashboard (health, tweets per minute, the days): {dashboard}\n"
        f"   open it: xdg-open {dashboard}   (a static folder: or serve it with\n"
        f"   python3 -m http.server -d {root / 'vault'} 8000 and open "
        "http://localhost:8000/dashboard/)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
