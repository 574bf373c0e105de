"""The workflow's receipts (issue 10, item 2) and what the plan notices (item 5), end to end.

build_hour and day_report write their vault files themselves (temp and rename); Snakemake's
outputs are receipts in work_dir named after the run. With update() outputs, a failed rebuild
had Snakemake copy its backups back over the vault files in place (truncate and write, no
fsync: a full disk left a truncated .xz whose stats said complete), and every rebuild first
copied every output.

One server, local hour 11 (10:00-11:00 UTC) and the last minutes of hour 10; late and grace 1
minute, so both hours are complete at 11:02 UTC.
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest import layout
from ingest.devtools.generate import TweetFactory, generate_raw_tree, stream_line
from ingest.hours import plan
from ingest.layout import Hour
from tests.workflow_runs import ok, snakemake, write_fast_config

pytestmark = pytest.mark.integration  # Snakemake runs

TZ = ZoneInfo("Europe/Berlin")
DAY = "2026-01-14"
H10, H11 = Hour(DAY, 10), Hour(DAY, 11)
NOW = "2026-01-14T11:03:00+00:00"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def receipts(root: Path, kind: str) -> list[Path]:
    folder = layout.work_paths(root / "work")[kind]
    return sorted(folder.rglob("*.json")) if folder.exists() else []


def file_state(paths) -> dict[Path, tuple[int, int, bytes]]:
    """Inode, mtime and bytes of each file: an in-place write changes the mtime at least."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in paths}


def ids_of(path: Path) -> set[int]:
    return {int(x) for x in lzma.decompress(path.read_bytes()).split()}


@pytest.fixture(scope="module")
def built_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("receipts")
    write_fast_config(root)
    generate_raw_tree(
        [("server1", root / "raw" / "server1")],
        utc(2026, 1, 14, 9, 58),
        utc(2026, 1, 14, 11, 1),
        TZ,
        rate_per_minute=20,
        late_fraction=0,
        seed=5,
    )
    first = ok(snakemake(root, now=NOW))
    snapshot = tmp_path_factory.mktemp("receipts-snapshot") / "world"
    shutil.copytree(root, snapshot, symlinks=True)
    return {"root": root, "snapshot": snapshot, "first": first}


@pytest.fixture
def world(built_world) -> Path:
    """The world as the first run left it (same path, file times kept), for this test alone."""
    root = built_world["root"]
    shutil.rmtree(root)
    shutil.copytree(built_world["snapshot"], root, symlinks=True)
    return root


def test_each_built_hour_and_report_has_one_receipt_of_its_run(world):
    built = receipts(world, "built")
    assert [p.name.split(".")[0] for p in built] == [H10.label, H11.label]
    runs = {p.name.split(".")[1] for p in built}
    assert len(runs) == 1  # both hours built in the first run, named after it
    for p, hour in zip(built, (H10, H11), strict=True):
        vault_stats = json.loads(layout.vault_paths(world / "vault", hour)["stats"].read_text())
        assert json.loads(p.read_text()) == vault_stats
    (report,) = receipts(world, "reported")
    assert report.name == f"{DAY}.{runs.pop()}.json"
    assert layout.report_path(world / "vault", DAY).exists()
    assert not (world / ".snakemake" / "backups").exists()
    # No record per receipt piles up (drop-metadata: only mtime decides reruns).
    metadata = world / ".snakemake" / "metadata"
    assert not metadata.is_dir() or not any(metadata.iterdir())


@pytest.mark.parametrize("forcerun", [(), ("--forcerun", "build_hour")])
def test_requested_hours_are_rebuilt_and_their_older_receipts_go(world, forcerun):
    """`--config hours=...` rebuilds, with or without --forcerun (the Snakefile's documented
    command); the run's receipt replaces the hour's older one, other hours keep theirs."""
    paths = layout.vault_paths(world / "vault", H11)
    before = file_state(paths.values())
    h10_receipt = receipts(world, "built")[0]
    dry = ok(snakemake(world, "-n", "--config", f"hours={H11.label}", *forcerun, now=NOW))
    assert dry.count("rule build_hour:") == 1 and "rule day_report:" in dry
    assert receipts(world, "built")[1].name.startswith(H11.label)  # -n wrote nothing

    said = ok(snakemake(world, "--config", f"hours={H11.label}", *forcerun, now=NOW))
    assert said.count("rule build_hour:") == 1
    built = receipts(world, "built")
    assert built[0] == h10_receipt and len(built) == 2
    assert built[1].name.split(".")[1] != h10_receipt.name.split(".")[1]  # this run's name
    after = file_state(paths.values())
    for p in paths.values():  # replaced by rename: a new inode, the same content
        assert after[p][0] != before[p][0] and after[p][2] == before[p][2], p
    assert len(receipts(world, "reported")) == 1


def test_a_failed_rebuild_leaves_the_vault_files_as_they_were(world):
    """A rebuild that fails (here: an intermediate made for another server) leaves every vault
    file byte-identical, with its inode and mtime: nothing is written in place, and Snakemake
    made no backup copy. (With update() outputs, Snakemake copied each output to
    .snakemake/backups before the job and back over the vault file when it failed.)"""

    def vault_data():  # the dashboard (vault/dashboard) shows every run's health: left out
        return sorted(p for p in (world / "vault").rglob("*") if "dashboard" not in p.parts)

    vault_files = vault_data()
    before = file_state(p for p in vault_files if p.is_file())
    receipts_before = receipts(world, "built")
    # A late minute file for hour 11, and an intermediate of it that fails the merge.
    minute = utc(2026, 1, 14, 10, 30)
    raw = layout.minute_path(world / "raw" / "server1", minute, TZ)
    late = raw.with_name("sampled_stream_2026-01-14_11:30:00_to_2026-01-14_11:31:00.jsonl")
    late.write_bytes(b"{}\n")
    f = layout.MinuteFile("server1", minute, late)
    meta = {"server": "server9", "file": late.name, "minute": minute.isoformat(), "size": 3}
    for kind in ("tweets", "users"):
        p = plan.intermediate(world / "work", f, kind)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("#" + json.dumps(meta) + "\n")

    run = snakemake(world, now=NOW)
    said = run.stdout + run.stderr
    assert run.returncode != 0 and "made for server 'server9'" in said
    assert vault_data() == vault_files  # no temp left behind
    after = file_state(before)
    for p, (inode, mtime, data) in before.items():
        assert after[p][0] == inode and after[p][2] == data, f"{p.name} replaced"
        assert after[p][1] == mtime, f"{p.name} written in place (same inode, new mtime)"
    assert not (world / ".snakemake" / "backups").exists()
    assert receipts(world, "built") == receipts_before  # no receipt for the failed build


def test_a_minute_file_that_grew_rebuilds_its_hour(world):
    """Issue 10, item 5: a restarted collector completes a minute file already built (same
    name, more content): the hour is rebuilt and holds the new tweet."""
    created = utc(2026, 1, 14, 10, 20, 30)
    tweet = TweetFactory(seed=42).make(created)
    path = layout.minute_path(world / "raw" / "server1", utc(2026, 1, 14, 10, 20), TZ)
    mtime = path.stat().st_mtime
    with path.open("ab") as out:
        out.write(stream_line(tweet, created + timedelta(seconds=1)))
    os.utime(path, (mtime, mtime))  # e.g. a pull keeping the source's time
    said = ok(snakemake(world, now=NOW))
    assert said.count("rule build_hour:") == 1
    ids = ids_of(layout.vault_paths(world / "vault", H11)["ids"])
    assert int(tweet["data"]["id"]) in ids


def test_a_damaged_stats_file_rebuilds_its_hour_and_the_run_goes_on(world):
    """Issue 10, item 6: a truncated stats file raised while the Snakefile was read, so no
    hour was built. Now the plan says so and the hour is rebuilt, keeping its tweets."""
    paths = layout.vault_paths(world / "vault", H11)
    ids = ids_of(paths["ids"])
    stats = json.loads(paths["stats"].read_text())
    paths["stats"].write_text(paths["stats"].read_text()[:40])
    said = ok(snakemake(world, now=NOW))
    assert f"warning: {paths['stats']}" in said and f"rebuilding hour {H11}" in said
    assert said.count("rule build_hour:") == 1
    assert ids_of(paths["ids"]) == ids
    assert json.loads(paths["stats"].read_text())["total"] == stats["total"] == len(ids)
