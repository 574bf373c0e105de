"""ingest.vault.day and records' commit: the manifest is derived from the records, a commit
cut short is finished, and a vault built before records is upgraded from its manifests."""

from __future__ import annotations

import logging
import subprocess

import pytest

from ingest.vault import day, records
from ingest.vault.manifest import manifest_path, read_manifest, sha256_file
from tests.test_hourly import H11, World, on_time, read_ids
from tests.test_hourly_merge import T

LOG = logging.getLogger("test_vault_day")


def built(tmp_path, ids=(1, 2, 3)) -> tuple[World, dict]:
    w = World(tmp_path, servers=["s1"])
    w.add(*(on_time("s1", i, T) for i in ids))
    _, out = w.build(H11)
    return w, out


def derive(out) -> dict[str, str]:
    day_dir = out["stats"].parent
    return read_manifest(day.derive_manifest(day_dir, day_dir.parent / "manifest.lock", LOG))


def test_the_manifest_lists_what_the_record_names_and_sha256sum_checks_it(tmp_path):
    _, out = built(tmp_path)
    entries = derive(out)
    record = records.read_record(out["stats"].parent / records.record_name(H11.label))
    assert record.generation == 1 and record.tweets == 3
    for name, entry in record.files.items():
        assert entries[name] == entry.sha256 == sha256_file(out["stats"].parent / name)
    assert records.record_name(H11.label) in entries
    check = subprocess.run(
        ["sha256sum", "-c", "--strict", manifest_path(out["stats"].parent).name],
        cwd=out["stats"].parent,
        capture_output=True,
    )
    assert check.returncode == 0, check.stdout


def test_a_rebuild_makes_its_day_stale_until_derived_again(tmp_path):
    """A: a run killed before day_manifest (or --until build_hour) leaves the manifest older
    than the record; every later run sees the day and derives it."""
    w, out = built(tmp_path)
    derive(out)
    vault = out["stats"].parent.parent
    assert day.days_to_derive(vault) == []
    w.add(on_time("s1", 4, T))
    w.build(H11)  # generation 2, no manifest update
    assert day.days_to_derive(vault) == [H11.day]
    entries = derive(out)
    assert entries[out["tweets"].name] == sha256_file(out["tweets"])
    assert day.days_to_derive(vault) == []


def test_a_damaged_record_refuses_the_rebuild_and_keeps_its_manifest_lines(tmp_path):
    w, out = built(tmp_path)
    before = derive(out)
    path = out["stats"].parent / records.record_name(H11.label)
    path.write_bytes(path.read_bytes().replace(b'"generation": 1', b'"generation": 7'))
    with pytest.raises(records.RecordError):
        records.read_record(path)
    w.add(on_time("s1", 4, T))
    with pytest.raises(Exception, match="not rebuilt while its newest generation is unknown"):
        w.build(H11)
    assert derive(out) == before  # the damaged hour keeps its lines until it is repaired


def test_a_commit_cut_between_its_renames_is_finished(tmp_path, monkeypatch):
    """Killed after one .xz rename: the journal names the rest, settle renames them and writes
    the record, and the hour is whole (generation 2) without a rebuild."""
    w, out = built(tmp_path)
    w.add(on_time("s1", 4, T))
    from ingest.atomic import XzWriter

    real, calls = XzWriter.commit, []

    def cut(self, *, sync_dir=True):
        calls.append(self.path.name)
        if len(calls) == 2:
            raise KeyboardInterrupt("kill -9")
        real(self, sync_dir=sync_dir)

    monkeypatch.setattr(XzWriter, "commit", cut)
    with pytest.raises(KeyboardInterrupt):
        w.build(H11)
    monkeypatch.undo()
    day_dir = out["stats"].parent
    assert records.journalled(day_dir) == [H11.label]
    assert records.read_record(day_dir / records.record_name(H11.label)).generation == 1
    assert day.settle_vault(day_dir.parent) == []
    record = records.read_record(day_dir / records.record_name(H11.label))
    assert record.generation == 2 and records.journalled(day_dir) == []
    assert all(records.matches(day_dir / n, e) for n, e in record.files.items())
    assert read_ids(out["ids"]) == [1, 2, 3, 4]


def test_an_hour_built_before_records_is_adopted_only_if_it_matches_its_manifest(tmp_path):
    _, out = built(tmp_path)
    day_dir = out["stats"].parent
    derive(out)
    (day_dir / records.record_name(H11.label)).unlink()  # as built before records
    assert day.days_to_derive(day_dir.parent) == [H11.day]
    derive(out)
    assert records.read_record(day_dir / records.record_name(H11.label)).generation == 1
    (day_dir / records.record_name(H11.label)).unlink()
    out["stats"].write_text(out["stats"].read_text().replace('"total": 3', '"total": 8'))
    entries = derive(out)
    assert not (day_dir / records.record_name(H11.label)).exists()  # rot is not blessed
    assert entries[out["stats"].name] != sha256_file(out["stats"])


def test_an_adopted_hour_sends_its_record_not_its_files_again(tmp_path):
    """Upgrading a vault gives every old hour a record newer than its replication receipt:
    the next copy sends the record, stats, report and manifest, not the .xz files again."""
    from ingest.vault.replicate import hour_receipt, replicate_hour
    from tests.test_replicate import NOW, config_with, local

    _, out = built(tmp_path)
    derive(out)
    config = config_with(tmp_path, local(tmp_path), vault_dir=str(out["stats"].parent.parent))
    receipt = hour_receipt(config["work_dir"], "disk2", H11)
    replicate_hour(config, "disk2", H11, NOW, receipt, LOG)
    copies = [tmp_path / "disk2" / H11.day / out[k].name for k in ("ids", "tweets", "users")]
    inodes = [c.stat().st_ino for c in copies]
    (out["stats"].parent / records.record_name(H11.label)).unlink()
    derive(out)  # adopted: generation 1 again, a newer record
    result = replicate_hour(config, "disk2", H11, NOW, receipt, LOG)
    assert [c.stat().st_ino for c in copies] == inodes  # not written again
    day_dir = out["stats"].parent
    sent = [out["stats"], day_dir / records.record_name(H11.label), manifest_path(day_dir)]
    assert result.bytes == sum(p.stat().st_size for p in sent)  # the small files only
    assert (tmp_path / "disk2" / H11.day / records.record_name(H11.label)).exists()


def test_a_killed_writers_temps_are_cleared_at_the_next_run(tmp_path):
    """A repair or build killed before its journal leaves temps that no rebuild may come to
    remove: the run's settle clears them (a live writer's, locked, stay)."""
    from ingest.atomic import XzWriter

    _, out = built(tmp_path)
    day_dir = out["stats"].parent
    derive(out)
    stale = day_dir / f".{out['ids'].name}.tmp-0123456789ab"
    stale.write_bytes(b"left by a killed scrub")
    live = XzWriter(day_dir / out["users"].name, 0, 1)  # a writer still at work
    try:
        assert day.settle_vault(day_dir.parent) == []
        assert not stale.exists() and live.tmp.exists()
    finally:
        live.abort()
