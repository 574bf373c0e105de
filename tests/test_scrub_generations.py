"""Scrub and restore decide by the hours' records and generations (issue 21).

Real builds (tests/test_hourly.World) with records, the workflow's manifest and replicate jobs,
a replica in a local folder: an older copy is brought forward, never used to "repair" a newer
one; a damaged record, on either side, is repaired from a copy whose record is intact; a
damaged record claiming a newer generation stops every change to its hour; a flipped byte in a
stats file and a malformed replica manifest are found and repaired.
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

from ingest.vault.records import read_record
from ingest.vault.replicate import loose_generation
from ingest.vault.restore import restore
from ingest.vault.scrub import scrub
from tests.test_hourly import H11, World, on_time
from tests.test_replicate import flip_byte, local, tree
from tests.test_vault_generations import (
    DAY,
    T,
    manifest_of,
    replicate,
    tweet_ids,
    world_config,
    write_manifest,
)

RECORD = f"{H11.label}_record.json"


def two_builds(tmp_path: Path) -> tuple[World, dict, dict, dict[str, bytes]]:
    """H11 built (generation 1), its manifest derived, copied to disk2; then s2's late minutes
    and a rebuild (generation 2) whose manifest is derived too. Returns the world, its config,
    the hour's paths and the primary's day folder as it was at generation 1."""
    w = World(tmp_path)
    w.add(*(on_time("s1", i, T, text=f"s1 {i}") for i in (1, 2, 3)))
    _, out = w.build(H11)
    config = world_config(w, local(tmp_path))
    write_manifest(config, H11)
    replicate(config, "disk2", H11)
    first = tree(tmp_path / "vault" / DAY)
    w.add(*(on_time("s2", i, T + timedelta(minutes=1), text=f"s2 {i}") for i in (3, 4, 5)))
    w.build(H11)
    write_manifest(config, H11)
    return w, config, out, first


def put_back(day_dir: Path, files: dict[str, bytes]) -> None:
    """The day folder as ``files`` (an old backup put back)."""
    shutil.rmtree(day_dir)
    day_dir.mkdir()
    for name, data in files.items():
        (day_dir / name).write_bytes(data)


def damage_record(path: Path) -> None:
    """One hex digit of a file's hash in the record changed: its own hash no longer matches
    (the generation line still reads)."""
    data = path.read_bytes()
    i = data.index(b'"sha256": "') + len(b'"sha256": "')
    path.write_bytes(data[:i] + (b"0" if data[i : i + 1] != b"0" else b"1") + data[i + 1 :])


def generation(path: Path) -> int | None:
    record = read_record(path)
    return record.generation if record else None


def test_scrub_brings_an_older_replica_forward(tmp_path: Path) -> None:
    _, config, out, _ = two_builds(tmp_path)
    primary = tree(tmp_path / "vault" / DAY)
    replica = tmp_path / "disk2" / DAY
    assert generation(replica / RECORD) == 1

    report = scrub(config)
    assert tree(tmp_path / "vault" / DAY) == primary  # the newer primary is left alone
    assert generation(replica / RECORD) == 2
    assert tweet_ids(replica / out["tweets"].name) == {1, 2, 3, 4, 5}
    assert tree(replica) == primary  # the manifest too
    assert [(f.location, f.name, f.status, f.repair) for f in report.findings] == [
        ("disk2", RECORD, "older", "brought forward from the primary (generation 2)")
    ]
    assert scrub(config).findings == []


def test_scrub_takes_a_newer_replica_and_never_overwrites_it(tmp_path: Path) -> None:
    """The primary lost its last build (an old backup put back): the replica's newer hour is
    what the primary gets, never the other way round."""
    _, config, out, first = two_builds(tmp_path)
    replicate(config, "disk2", H11)
    newer = tree(tmp_path / "vault" / DAY)
    put_back(tmp_path / "vault" / DAY, first)
    replica = tree(tmp_path / "disk2" / DAY)

    report = scrub(config)
    assert tree(tmp_path / "disk2" / DAY) == replica
    assert tree(tmp_path / "vault" / DAY) == newer
    assert tweet_ids(out["tweets"]) == {1, 2, 3, 4, 5}
    [finding] = report.findings
    assert finding.line() == (
        f"primary: {DAY}/{RECORD} older (generation 1; disk2 holds 2) -> brought forward "
        "from disk2 (generation 2)"
    )


def test_restore_installs_the_newer_generation_and_never_an_older_one(tmp_path: Path) -> None:
    _, config, out, first = two_builds(tmp_path)
    vault = tmp_path / "vault" / DAY
    replicate(config, "disk2", H11)
    newer = tree(vault)
    put_back(vault, first)  # the primary at generation 1, the replica at 2

    [result] = restore(config, "disk2")
    assert tree(vault) == newer and tweet_ids(out["tweets"]) == {1, 2, 3, 4, 5}
    assert RECORD in result.restored and not result.failed
    # The replica at generation 1 now, the primary at 2: restore changes nothing.
    put_back(tmp_path / "disk2" / DAY, first)
    [result] = restore(config, "disk2")
    assert tree(vault) == newer
    assert result.restored == [] and not result.failed and RECORD in result.intact


def test_a_damaged_record_on_the_primary_is_repaired_from_a_replica(tmp_path: Path) -> None:
    _, config, _, _ = two_builds(tmp_path)
    replicate(config, "disk2", H11)
    record = tmp_path / "vault" / DAY / RECORD
    good = record.read_bytes()
    damage_record(record)

    report = scrub(config)
    assert record.read_bytes() == good
    assert [(f.location, f.name, f.status, f.repair) for f in report.findings] == [
        ("primary", RECORD, "damaged", "repaired from disk2")
    ]
    assert tree(tmp_path / "vault" / DAY) == tree(tmp_path / "disk2" / DAY)


def test_a_damaged_record_on_a_replica_is_repaired_from_the_primary(tmp_path: Path) -> None:
    _, config, _, _ = two_builds(tmp_path)
    replicate(config, "disk2", H11)
    record = tmp_path / "disk2" / DAY / RECORD
    good = record.read_bytes()
    damage_record(record)

    report = scrub(config)
    assert record.read_bytes() == good
    assert [(f.location, f.name, f.status, f.repair) for f in report.findings] == [
        ("disk2", RECORD, "damaged", "copied again from the primary")
    ]


def test_a_damaged_newer_record_stops_every_change_to_its_hour(tmp_path: Path) -> None:
    """The replica's record of generation 2 is damaged, the primary holds generation 1: the
    replica's files may be the newest build; nothing of the hour is replaced, it is named."""
    _, config, _, first = two_builds(tmp_path)
    replicate(config, "disk2", H11)
    put_back(tmp_path / "vault" / DAY, first)
    damage_record(tmp_path / "disk2" / DAY / RECORD)
    assert loose_generation((tmp_path / "disk2" / DAY / RECORD).read_bytes()) == 2
    before = {d: tree(tmp_path / d / DAY) for d in ("vault", "disk2")}

    report = scrub(config)
    assert {d: tree(tmp_path / d / DAY) for d in ("vault", "disk2")} == before
    [finding] = report.unrepaired
    assert (finding.location, finding.name, finding.status) == ("disk2", RECORD, "damaged")
    assert "no good copy of generation 2; generations: primary 1, disk2 2 (bad)" in finding.detail


def test_a_flipped_byte_in_a_stats_file_is_found_and_repaired(tmp_path: Path) -> None:
    _, config, out, _ = two_builds(tmp_path)
    replicate(config, "disk2", H11)
    good = out["stats"].read_bytes()
    flip_byte(out["stats"], 10)

    report = scrub(config)
    assert out["stats"].read_bytes() == good
    assert [(f.location, f.name, f.status, f.repair) for f in report.findings] == [
        ("primary", out["stats"].name, "mismatch", "repaired from disk2")
    ]
    assert (tmp_path / "disk2" / DAY / out["stats"].name).read_bytes() == good


def test_a_malformed_replica_manifest_is_named_and_repaired(tmp_path: Path) -> None:
    _, config, _, _ = two_builds(tmp_path)
    replicate(config, "disk2", H11)
    manifest = manifest_of(tmp_path / "disk2", DAY)
    with manifest.open("a") as f:
        f.write("garbage\n")

    report = scrub(config)
    [finding] = report.findings
    assert (finding.location, finding.status, finding.repair) == (
        "disk2",
        "manifest",
        "copied again from the primary",
    )
    assert "line" in finding.detail and "garbage" in finding.detail
    assert manifest.read_bytes() == manifest_of(tmp_path / "vault", DAY).read_bytes()


def test_a_wrong_replica_manifest_is_named_by_restore_and_repaired_by_scrub(
    tmp_path: Path,
) -> None:
    _, config, out, _ = two_builds(tmp_path)
    replicate(config, "disk2", H11)
    manifest = manifest_of(tmp_path / "disk2", DAY)
    name = out["tweets"].name
    wrong = "".join(
        ("0" * 64 + line[64:]) if line.endswith(f"  {name}\n") else line
        for line in manifest.read_text().splitlines(keepends=True)
    )
    manifest.write_text(wrong)
    good = tree(tmp_path / "vault" / DAY)
    shutil.rmtree(tmp_path / "vault" / DAY)

    [result] = restore(config, "disk2")
    assert tree(tmp_path / "vault" / DAY) == good and not result.failed
    [(what, why)] = result.notes.items()
    assert what == manifest.name and name in why and "scrub repairs it" in why

    report = scrub(config)
    assert [(f.location, f.name, f.status, f.repair) for f in report.findings] == [
        ("disk2", manifest.name, "mismatch", "copied again from the primary")
    ]
    assert manifest.read_bytes() == manifest_of(tmp_path / "vault", DAY).read_bytes()


def rot(path: Path, offset: int) -> None:
    """One bit of ``path`` flipped in place, its time stamps kept (as bit rot does)."""
    st = path.stat()
    flip_byte(path, offset)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_rot_in_the_primary_manifest_is_found_and_derived_again(tmp_path: Path) -> None:
    """A flipped bit in a file name or a hash of the primary's manifest (which still parses)
    is named, not silently overwritten: the manifest was derived after the day's last change,
    so differing from its records is rot, not staleness. The report's line too: the report is
    not taken for damaged when a replica's manifest vouches for it."""
    _, config, out, _ = two_builds(tmp_path)
    report_name = f"{DAY}_report.txt"
    (tmp_path / "vault" / DAY / report_name).write_text("the day's report\n")
    write_manifest(config, H11)
    replicate(config, "disk2", H11)
    manifest = manifest_of(tmp_path / "vault", DAY)
    good = manifest.read_bytes()
    for name in (out["tweets"].name, report_name):
        line = next(x for x in good.decode().splitlines(keepends=True) if x.endswith(f"  {name}\n"))
        digit = next(i for i, c in enumerate(line) if c.isdigit())  # stays a hex digit
        rot(manifest, good.index(line.encode()) + digit)

        report = scrub(config)
        assert [(f.location, f.name, f.status, f.repair) for f in report.findings] == [
            ("primary", manifest.name, "mismatch", "derived again from the records")
        ], name
        assert manifest.read_bytes() == good


def test_a_full_disk_during_repairs_is_a_finding_not_a_traceback(
    tmp_path: Path, monkeypatch
) -> None:
    """The full soak's finding: a scrub whose repair hit a full vault disk ended in a traceback.
    The day is named, not repaired, and the scrub ends with its report (exit 1)."""
    import errno

    from ingest.vault import scrub as scrub_module

    _, config, out, _ = two_builds(tmp_path)
    replicate(config, "disk2", H11)
    flip_byte(out["stats"], 10)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(scrub_module, "derive_manifest", full)  # the disk fills mid-repair
    report = scrub(config)
    assert ("primary", DAY, "*", "not repaired") in [
        (f.location, f.day, f.name, f.status) for f in report.findings
    ]
    assert "No space left" in report.findings[-1].detail
