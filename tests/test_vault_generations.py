"""Issue 21: no copy of an older build of an hour ever replaces a newer one, and nothing is
deleted or rewritten with fewer tweets than the vault holds.

Each test reproduces one defect of the vault layer on real builds (``hourly.build_hour`` from
small synthetic minute files, tests/test_hourly.World), the workflow's day manifest job, a
replica in a local folder, ``scrub``, ``restore`` and retention's ``clean``; each checks the
tweet IDs in the .xz files or the bytes on disk:

A. a manifest not updated after a rebuild (``--until build_hour``, a kill between the rename
   and ``day_manifest``): scrub "repaired" the newer primary from the replica's older copy,
   and the late tweets were lost;
B. a missing manifest: scrub wrote one from the primary's files as they were, rot included,
   then copied the rot over the replica's good copy;
C. a replica's manifest is trusted unverified: one malformed line aborted the whole restore,
   a wrong hash kept a good file from being restored;
F. retention deleted raw files whose hour was on no replica yet;
H. a rebuild whose old stats and tweets file were both unreadable, with raw files gone,
   wrote an hour with fewer tweets than the vault held.
"""

from __future__ import annotations

import logging
import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from ingest import layout
from ingest.hours import retention
from ingest.layout import Hour
from ingest.vault.jobs import manifest_job
from ingest.vault.replicate import ReplicaError, hour_receipt, replicate_hour
from ingest.vault.restore import restore
from ingest.vault.scrub import scrub
from tests.test_hourly import CET, H11, World, on_time, read_csv, read_ids, utc
from tests.test_hourly_merge import drop_raw, vault_files
from tests.test_replicate import config_with, local, tree

T = utc(2026, 1, 14, 10, 30)  # 11:30 CET, in H11
DAY = H11.day
NOW = utc(2026, 1, 14, 12)  # the run that replicates
LOG = logging.getLogger("test_vault_generations")


def world_config(w: World, *replicas: dict) -> dict:
    """The loaded config of ``w``'s vault, work dir and servers, with ``replicas``."""
    servers = [{"name": s, "raw_dir": str(w.raw_dir(s))} for s in w.servers]
    return config_with(w.root, *replicas, servers=servers)


def write_manifest(config: dict, *hours: Hour) -> None:
    """The workflow's day_manifest job for the day of ``hours``."""
    vault = Path(config["vault_dir"])
    day = hours[0].day
    receipt = Path(config["work_dir"]) / "manifests" / f"{day}.test.json"
    manifest_job(vault, day, config["work_dir"], receipt, LOG)


def replicate(config: dict, replica: str, hour: Hour, now=NOW) -> None:
    """The workflow's replicate job of ``hour`` to ``replica``."""
    replicate_hour(config, replica, hour, now, hour_receipt(config["work_dir"], replica, hour))


def tweet_ids(path: Path) -> set[int]:
    """The IDs of a tweets .xz file's rows."""
    return {int(row[0]) for row in read_csv(path)[1:]}


def manifest_of(root: Path, day: str) -> Path:
    return root / day / f"{day}_SHA256SUMS"


# --- A: a stale manifest -----------------------------------------------------------------------


def test_scrub_keeps_a_rebuild_its_stale_manifest_does_not_know(tmp_path: Path) -> None:
    """The hour is merged again with late tweets, the run stopped before ``day_manifest``: the
    primary differs from the manifest because it is newer, not because it rotted. Was: scrub
    put the replica's older copy back and the late tweets were gone."""
    w = World(tmp_path)
    w.add(*(on_time("s1", i, T, text=f"s1 {i}") for i in (1, 2, 3, 4)))
    _, out = w.build(H11)  # s2 unreachable
    config = world_config(w, local(tmp_path))
    write_manifest(config, H11)
    replicate(config, "disk2", H11)
    # s2's minutes arrive late; the hour is merged again; no manifest update follows.
    w.add(*(on_time("s2", i, T + timedelta(minutes=1), text=f"s2 {i}") for i in (4, 5, 6, 7)))
    w.build(H11)
    merged = tweet_ids(out["tweets"])
    assert merged == {1, 2, 3, 4, 5, 6, 7}

    scrub(config)
    lost = merged - tweet_ids(out["tweets"])
    assert not lost, f"scrub put an older build back on the primary: tweets {sorted(lost)} lost"
    assert read_ids(out["ids"]) == sorted(merged)
    replica_tweets = tmp_path / "disk2" / DAY / out["tweets"].name
    if tweet_ids(replica_tweets) != merged:  # this scrub did not spread it: the next one does
        write_manifest(config, H11)
        scrub(config)
    assert tweet_ids(replica_tweets) == merged


# --- B: no manifest ----------------------------------------------------------------------------


def test_scrub_without_a_manifest_does_not_spread_rot(tmp_path: Path) -> None:
    """Rot in a file xz -t cannot check (the stats) while the day's manifest is gone. Was:
    scrub hashed the rotted file into a new manifest and copied it over the replica's good
    copy."""
    w = World(tmp_path)
    w.add(*(on_time(s, i, T) for s in ("s1", "s2") for i in (1, 2, 3)))
    _, out = w.build(H11)
    config = world_config(w, local(tmp_path))
    write_manifest(config, H11)
    replicate(config, "disk2", H11)
    stats = out["stats"]
    good = stats.read_bytes()
    manifest_of(tmp_path / "vault", DAY).unlink()
    rotted = good.replace(b'"total": 3', b'"total": 8', 1)
    assert rotted != good
    stats.write_bytes(rotted)

    report = scrub(config)
    replica_stats = tmp_path / "disk2" / DAY / stats.name
    assert replica_stats.read_bytes() == good, (
        f"scrub spread the rotted {stats.name} over the replica's good copy"
    )
    named = [f for f in report.findings if stats.name in f.name]
    assert stats.read_bytes() == good or named, f"{stats.name} neither repaired nor reported"


# --- C: a replica's manifest -------------------------------------------------------------------


def test_a_malformed_replica_manifest_costs_only_its_day(tmp_path: Path) -> None:
    """The primary's disk died; the replica's manifest of one day has a malformed line. Was:
    restore raised ManifestError on that day and restored no other day either."""
    day1, day2 = Hour("2026-01-13", 11), H11
    w = World(tmp_path)
    w.add(*(on_time(s, i, utc(2026, 1, 13, 10, 30)) for s in ("s1", "s2") for i in (1, 2)))
    w.add(*(on_time(s, i, T) for s in ("s1", "s2") for i in (11, 12, 13)))
    w.build(day1)
    w.build(day2)
    config = world_config(w, local(tmp_path))
    for h in (day1, day2):
        write_manifest(config, h)
        replicate(config, "disk2", h)
    vault = tmp_path / "vault"
    good = {h.day: tree(vault / h.day) for h in (day1, day2)}
    with manifest_of(tmp_path / "disk2", day1.day).open("a") as f:
        f.write("garbage\n")
    for h in (day1, day2):
        shutil.rmtree(vault / h.day)

    error = None
    try:
        results = restore(config, "disk2")
    except Exception as e:
        results, error = [], e
    back = tree(vault / day2.day)
    missing = sorted(n for n, data in good[day2.day].items() if back.get(n) != data)
    assert not missing, f"{day2.day}: {missing} not restored (restore raised {error!r})"
    assert error is None
    # Day 1: restored (from its files and what else the replica holds) or named as failed.
    got = {k: v for k, v in tree(vault / day1.day).items() if not k.endswith("_SHA256SUMS")}
    built = {k: v for k, v in good[day1.day].items() if not k.endswith("_SHA256SUMS")}
    failed = [r for r in results if r.day == day1.day and r.failed]
    assert got == built or failed, f"{day1.day} neither restored nor named as failed"


def test_a_wrong_hash_in_a_replica_manifest_does_not_keep_a_good_file_out(
    tmp_path: Path,
) -> None:
    """The replica's manifest has a well-formed line with a wrong hash, its file is good. Was:
    that manifest was installed and the good file reported as damaged, never restored."""
    w = World(tmp_path)
    w.add(*(on_time(s, i, T) for s in ("s1", "s2") for i in (1, 2, 3)))
    _, out = w.build(H11)
    config = world_config(w, local(tmp_path))
    write_manifest(config, H11)
    replicate(config, "disk2", H11)
    vault = tmp_path / "vault"
    good = tree(vault / DAY)
    name = out["tweets"].name
    replica_manifest = manifest_of(tmp_path / "disk2", DAY)
    lines = replica_manifest.read_text().splitlines(keepends=True)
    [i] = [n for n, line in enumerate(lines) if line.rstrip("\n").endswith(f"  {name}")]
    digest = lines[i][:64]
    lines[i] = digest[:-1] + ("0" if digest[-1] != "0" else "1") + lines[i][64:]
    replica_manifest.write_text("".join(lines))
    shutil.rmtree(vault / DAY)

    results = restore(config, "disk2")
    failed = {n: why for r in results for n, why in r.failed.items()}
    restored = vault / DAY / name
    assert restored.exists(), f"the replica's good {name} was not restored: {failed}"
    assert restored.read_bytes() == good[name]
    assert tweet_ids(restored) == {1, 2, 3}


# --- F: retention and replicas -----------------------------------------------------------------


def test_raw_files_stay_until_the_hour_is_on_every_replica(tmp_path: Path) -> None:
    """The only replica is not mounted: the hour's tweets are on the primary's vault disk and
    in the raw files, nowhere else. Was: retention deleted the raw files all the same."""
    w = World(tmp_path, servers=("s1",))
    w.add(*(on_time("s1", i, T + timedelta(minutes=i)) for i in range(3)))
    w.build(H11)
    raw = sorted(w.raw_dir("s1").rglob("*.jsonl"))
    assert len(raw) == 3
    for p in raw:  # closed at the minute's end, as a collector leaves it
        end = (layout.parse_minute_name(p.name, CET) + timedelta(minutes=1)).timestamp()
        os.utime(p, (end, end))
    usb = tmp_path / "usb"
    config = world_config(w, {"name": "usb", "target": str(usb)})
    write_manifest(config, H11)
    with pytest.raises(ReplicaError):
        replicate(config, "usb", H11)  # not mounted
    later = utc(2026, 1, 20)  # far past keep_raw_hours (48) by name and by mtime

    retention.clean(config, later)
    gone = [p.name for p in raw if not p.exists()]
    assert not gone, f"retention deleted {gone} though {H11} is on no replica"
    usb.mkdir()
    replicate(config, "usb", H11, now=NOW + timedelta(hours=1))
    retention.clean(config, later)
    assert [p.name for p in raw if p.exists()] == []


# --- H: a rebuild with less than the vault ------------------------------------------------------


def test_a_rebuild_never_writes_fewer_tweets_than_the_vault_held(tmp_path: Path) -> None:
    """s1's raw files are gone (retention), the hour's stats damaged and its tweets file cut:
    the tweets only s1 saw are in the vault alone, which cannot be read. Was: a warning, and
    the hour rebuilt from s2's files alone, s1's own tweets gone."""
    w = World(tmp_path)
    w.add(*(on_time("s1", i, T) for i in (1, 2, 3, 4)), *(on_time("s2", i, T) for i in (3, 4, 5)))
    _, out = w.build(H11)
    held = read_ids(out["ids"])
    assert held == [1, 2, 3, 4, 5]
    drop_raw(w, "s1")
    out["stats"].write_text("{not json")
    data = out["tweets"].read_bytes()
    out["tweets"].write_bytes(data[: len(data) // 2])
    before = vault_files(out)

    error = None
    try:
        w.build(H11)  # default options: a merge, not from_scratch
    except Exception as e:
        error = e
    changed = sorted(p.name for k, p in out.items() if p.read_bytes() != before[k])
    assert not changed, (
        f"the rebuild rewrote {changed}: IDs {held} -> {read_ids(out['ids'])} "
        f"({sorted(set(held) - set(read_ids(out['ids'])))} lost)"
    )
    assert error is not None and out["tweets"].name in str(error), error
