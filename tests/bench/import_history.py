"""What a cron run pays for the imports ever made (issue 22 I): a year of imported minute files.

A server with ``imported: true`` keeps its raw files for good. This builds (once, cached) a
year of its minute files (525,600, empty: the plan and retention only list and stat them) and
a vault in which every hour is built from them, then measures in this process, CPU seconds:
- before: the plan and retention as they were, walking the whole raw_dir (what a raw_dir
  imported before the changed-hours marks still gets, once);
- after: the same with the marks (``ingest.changed_hours``), all settled.

    python tests/bench/import_history.py --cache bench-cache [--days 365]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ingest import changed_hours, layout  # noqa: E402
from ingest.config import validate_config  # noqa: E402
from ingest.hours import plan, retention  # noqa: E402
from ingest.vault.manifest import manifest_path  # noqa: E402

TZ = ZoneInfo("Europe/Berlin")
SERVER = "archive"
VERSION = 1


def ensure_archive(cache: Path, days: int) -> tuple[dict, datetime]:
    """The cached year: raw minute files of an imported server, every hour built from them."""
    root = cache / f"import-history-{days}d"
    c = validate_config(
        {
            "timezone": TZ.key,
            "vault_dir": str(root / "vault"),
            "work_dir": str(root / "work"),
            "servers": [{"name": SERVER, "raw_dir": str(root / "raw"), "imported": True}],
        }
    )
    start = datetime(2023, 1, 1, tzinfo=UTC)
    now = start + timedelta(days=days + 1)
    done = root / "complete.json"
    if done.exists() and json.loads(done.read_text()).get("version") == VERSION:
        return c, now
    shutil.rmtree(root, ignore_errors=True)
    raw = Path(c["servers"][0]["raw_dir"])
    t, end = start, start + timedelta(days=days)
    while t < end:
        p = layout.minute_path(raw, t, TZ)
        if t.minute == 0 or t == start:
            p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
        t += layout.MINUTE
    for day in sorted({h.day for h in layout.raw_hours(raw)}):
        for hour in layout.day_hours(day, TZ):
            files = plan.window_files(c, hour)
            if not any(files.values()):
                continue
            stats = layout.vault_paths(c["vault_dir"], hour)["stats"]
            stats.parent.mkdir(parents=True, exist_ok=True)
            inputs = {s: {f.path.name: 0 for f in fs} for s, fs in files.items()}
            stats.write_text(json.dumps({"hour": hour.label, "inputs": inputs}))
        day_dir = Path(c["vault_dir"]) / day
        manifest = manifest_path(day_dir)
        manifest.write_text("")
        st = day_dir.stat()  # derive_manifest gives the manifest its folder's mtime
        os.utime(manifest, ns=(st.st_atime_ns, st.st_mtime_ns))
    done.write_text(json.dumps({"version": VERSION, "minute_files": days * 1440}))
    return c, now


def cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def measure(cache: Path, days: int = 365) -> dict:
    c, now = ensure_archive(cache, days)
    shutil.rmtree(changed_hours.changed_dir(c["work_dir"], SERVER), ignore_errors=True)
    before_plan = cpu(lambda: plan.make_plan(c, now))
    before_clean = cpu(lambda: retention.clean(c, now))  # the walk; it settles the marks
    assert changed_hours.changed(c["work_dir"], SERVER) == set(), "every hour is built"
    after_plan = min(cpu(lambda: plan.make_plan(c, now)) for _ in range(3))
    after_clean = min(cpu(lambda: retention.clean(c, now)) for _ in range(3))
    return {
        "minute_files": days * 1440,
        "before": {"plan_s": before_plan, "retention_s": before_clean},
        "after": {"plan_s": after_plan, "retention_s": after_clean},
        # A run plans three times (the Snakefile's targets, the dry-run summary, the jobs'
        # inputs) and cleans once.
        "run_before_s": 3 * before_plan + before_clean,
        "run_after_s": 3 * after_plan + after_clean,
    }


def line(r: dict) -> str:
    return (
        f"a run with {r['minute_files']:,} imported minute files: "
        f"{r['run_before_s']:.2f} CPU s walking them (plan {r['before']['plan_s']:.2f} s x3, "
        f"retention {r['before']['retention_s']:.2f} s), {r['run_after_s']:.3f} CPU s with the "
        f"changed-hours marks (plan {r['after']['plan_s']:.3f} s x3, retention "
        f"{r['after']['retention_s']:.3f} s)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=ROOT / "bench-cache")
    ap.add_argument("--days", type=int, default=365)
    args = ap.parse_args()
    print(line(measure(args.cache.resolve(), args.days)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
