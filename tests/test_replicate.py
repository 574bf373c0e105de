"""Vault replicas: manifests, replication (local folder, rsync over the loopback sshd), back-off
and alerts, scrub (bit rot found, alerted, repaired) and restore, on real files and tools."""

from __future__ import annotations

import lzma
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.clock import FixedClock
from ingest.layout import Hour, report_path, vault_paths
from ingest.notify import Alerts, Mailer
from ingest.vault import replicate as rep
from ingest.vault.manifest import (
    ManifestError,
    manifest_path,
    parse_manifest,
    read_manifest,
    update_manifest,
)
from ingest.vault.restore import restore
from ingest.vault.scrub import scrub
from tests.configs import loaded_config
from tests.sshd import Sshd
from tests.workflow_runs import smtp_email

NOW = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)
DAY = "2026-01-14"
HOURS = [Hour(DAY, 9), Hour(DAY, 10)]


def build_hour(vault: Path, hour: Hour, seed: int = 0) -> list[str]:
    """An hour's vault files as the build leaves them (real xz), the day's report rewritten."""
    paths = vault_paths(vault, hour)
    paths["ids"].parent.mkdir(parents=True, exist_ok=True)
    ids = "".join(f"{1000 + seed + i * 7}\n" for i in range(2000))
    rows = "".join(f'{i},"tweet {i} of {hour.label}, {seed}"\n' for i in range(3000))
    paths["ids"].write_bytes(lzma.compress(ids.encode()))
    paths["tweets"].write_bytes(lzma.compress(("id,text\n" + rows).encode() + os.urandom(20000)))
    paths["users"].write_bytes(lzma.compress(f"author_id\n{seed}\n".encode()))
    paths["stats"].write_text(f'{{"hour": "{hour.label}", "seed": {seed}}}')
    report_path(vault, hour.day).write_text(f"hour\tserv 1\n{hour.hh}\t{seed}\n")
    names = [p.name for p in paths.values()] + [report_path(vault, hour.day).name]
    update_manifest(vault / hour.day, names, vault.parent / "manifest.lock")
    return names


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def built(files: dict[str, bytes]) -> dict[str, bytes]:
    """A ``tree`` without the hours' records and the day manifests: what a build of hours from
    before records wrote (scrub and restore give such hours their record, and derive the
    manifest again from the records)."""
    return {k: v for k, v in files.items() if not k.endswith(("_record.json", "_SHA256SUMS"))}


def config_with(tmp_path: Path, *replicas: dict, **sections) -> dict:
    return loaded_config(tmp_path, vault_replicas=list(replicas), **sections)


def local(tmp_path: Path, name: str = "disk2") -> dict:
    root = tmp_path / name
    root.mkdir(exist_ok=True)
    return {"name": name, "target": str(root)}


def remote(sshd: Sshd, root: Path, name: str = "server2") -> dict:
    root.mkdir(parents=True, exist_ok=True)
    return {
        "name": name,
        "target": f"{sshd.target}:{root}",
        "ssh_key_file": str(sshd.key_file),
        "ssh_port": sshd.port,
        "known_hosts_file": str(sshd.known_hosts),  # the sshd's host key, pinned
    }


def flip_byte(path: Path, offset: int = 200) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def replicate_all(config: dict, name: str) -> None:
    for h in HOURS:
        rep.replicate_hour(config, name, h, NOW, rep.hour_receipt(config["work_dir"], name, h))


# --- manifests ----------------------------------------------------------------------------


def test_manifest_is_sha256sum_format_and_keeps_other_entries(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    build_hour(vault, HOURS[0])
    first = read_manifest(manifest_path(vault / DAY))
    build_hour(vault, HOURS[1], seed=1)
    second = read_manifest(manifest_path(vault / DAY))
    # The 09 files keep their entries; the report's changed with the rebuild of the day.
    assert {k: v for k, v in second.items() if "_09_" in k} == {
        k: v for k, v in first.items() if "_09_" in k
    }
    assert second[f"{DAY}_report.txt"] != first[f"{DAY}_report.txt"]
    assert len(second) == 9
    # GNU sha256sum accepts it as it is: anyone with the files can check them.
    ok = subprocess.run(
        ["sha256sum", "-c", "--strict", manifest_path(vault / DAY).name],
        cwd=vault / DAY,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    flip_byte(vault / DAY / f"{DAY}_10_tweets.csv.xz")
    bad = subprocess.run(
        ["sha256sum", "-c", manifest_path(vault / DAY).name], cwd=vault / DAY, capture_output=True
    )
    assert bad.returncode == 1 and b"10_tweets.csv.xz: FAILED" in bad.stdout


def test_manifest_update_never_blesses_a_file_the_build_left_alone(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    names = build_hour(vault, HOURS[0])
    before = read_manifest(manifest_path(vault / DAY))
    ids = vault_paths(vault, HOURS[0])["ids"]
    stamp = ids.stat().st_mtime_ns
    flip_byte(ids, 30)
    os.utime(ids, ns=(stamp, stamp))  # rot: same time stamp, other bytes
    report = report_path(vault, DAY)
    report.write_text("hour\tserv 1\n09\t7\n")  # what the build rewrote
    update_manifest(vault / DAY, names, tmp_path / "lock")
    after = read_manifest(manifest_path(vault / DAY))
    assert after[ids.name] == before[ids.name]
    assert after[report.name] != before[report.name]


def test_manifest_damaged_line_is_named() -> None:
    with pytest.raises(ManifestError, match="m: line 2 is not"):
        parse_manifest("0" * 64 + "  a\nnot a line\n", "m")


# --- replication to a local folder ----------------------------------------------------------


def test_local_replica_gets_verified_copies_and_receipts(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    for i, h in enumerate(HOURS):
        build_hour(vault, h, i)
    config = config_with(tmp_path, local(tmp_path))
    replicate_all(config, "disk2")
    assert tree(tmp_path / "disk2") == tree(vault)  # no temporary names left either
    receipt = rep.hour_receipt(config["work_dir"], "disk2", HOURS[1])
    assert receipt.exists()
    # Receipts there and nothing changed: nothing pending; a rebuild makes its hour pending.
    replica = rep.replica_named(config, "disk2")
    assert rep.pending_hours(config, replica, HOURS, NOW) == []
    later = receipt.stat().st_mtime + 5
    os.utime(vault_paths(vault, HOURS[0])["ids"], (later, later))
    assert rep.pending_hours(config, replica, HOURS, NOW) == [HOURS[0]]


def test_a_damaged_vault_file_is_not_spread(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    build_hour(vault, HOURS[0])
    flip_byte(vault_paths(vault, HOURS[0])["tweets"])
    config = config_with(tmp_path, local(tmp_path))
    receipt = rep.hour_receipt(config["work_dir"], "disk2", HOURS[0])
    with pytest.raises(rep.ReplicaError, match="09_tweets.csv.xz: sha256 .* differs"):
        rep.replicate_hour(config, "disk2", HOURS[0], NOW, receipt)
    assert not receipt.exists()
    assert not (tmp_path / "disk2" / DAY / f"{DAY}_09_tweets.csv.xz").exists()


@pytest.mark.integration  # the SMTP sink
def test_unmounted_replica_fails_its_job_backs_off_alerts_then_catches_up(
    tmp_path: Path, smtp
) -> None:
    sink, port = smtp
    vault = tmp_path / "vault"
    build_hour(vault, HOURS[0])
    entry = {"name": "usb", "target": str(tmp_path / "usb"), "alert_after_minutes": 30}
    config = config_with(tmp_path, entry)
    replica = rep.replica_named(config, "usb")
    mailer = Mailer("127.0.0.1", port, "a@example.org", ["b@example.org"], "none")
    receipt = rep.hour_receipt(config["work_dir"], "usb", HOURS[0])

    def attempt(now: datetime) -> None:
        alerts = Alerts(mailer, tmp_path / "alerts.json", FixedClock(now), 6)
        rep.replicate_hour(config, "usb", HOURS[0], now, receipt, alerts=alerts)

    # The volume is not mounted: its job fails, nothing is written to the empty mount point.
    with pytest.raises(rep.ReplicaError, match="not a folder"):
        attempt(NOW)
    assert not (tmp_path / "usb").exists() and not receipt.exists()
    # Back-off across runs: 10 min, then 20, ... (the plan leaves it alone meanwhile).
    assert rep.pending_hours(config, replica, HOURS[:1], NOW + timedelta(minutes=9)) == []
    assert rep.pending_hours(config, replica, HOURS[:1], NOW + timedelta(minutes=10)) == HOURS[:1]
    with pytest.raises(rep.ReplicaError):
        attempt(NOW + timedelta(minutes=10))
    assert rep.pending_hours(config, replica, HOURS[:1], NOW + timedelta(minutes=29)) == []
    assert sink.messages == []  # not yet failing for alert_after_minutes
    with pytest.raises(rep.ReplicaError):
        attempt(NOW + timedelta(minutes=30))
    sink.wait_for(1)
    assert sink.subjects() == ["[sampled-stream] replica usb: failing for 30 min"]
    assert "not a folder (not mounted?)" in sink.messages[0].get_content()
    # Mounted again: the next due attempt copies, says so once, and the streak is over.
    (tmp_path / "usb").mkdir()
    attempt(NOW + timedelta(minutes=70))
    sink.wait_for(2)
    assert sink.subjects()[1] == "[sampled-stream] replica usb: copying again"
    assert receipt.exists()
    assert rep.load_state(replica.state_dir, "usb").failures == 0


# --- rsync over ssh -------------------------------------------------------------------------


@pytest.mark.integration
def test_ssh_replica_down_then_back(tmp_path: Path, sshd: Sshd) -> None:
    vault = tmp_path / "vault"
    for i, h in enumerate(HOURS):
        build_hour(vault, h, i)
    config = config_with(tmp_path, remote(sshd, tmp_path / "remote"), local(tmp_path))
    receipt = rep.hour_receipt(config["work_dir"], "server2", HOURS[0])
    sshd.stop()
    try:
        with pytest.raises(rep.ReplicaError, match="server2: rsync to 2026-01-14 failed"):
            rep.replicate_hour(config, "server2", HOURS[0], NOW, receipt)
        # Only its own job: the other replica takes the hour meanwhile.
        rep.replicate_hour(
            config, "disk2", HOURS[0], NOW, rep.hour_receipt(config["work_dir"], "disk2", HOURS[0])
        )
    finally:
        sshd.restart()
    assert not receipt.exists()
    later = NOW + timedelta(minutes=10)
    replica = rep.replica_named(config, "server2")
    assert rep.pending_hours(config, replica, HOURS, later) == HOURS
    for h in HOURS:
        rep.replicate_hour(
            config, "server2", h, later, rep.hour_receipt(config["work_dir"], "server2", h)
        )
    assert tree(tmp_path / "remote") == tree(vault)  # identical, no temporary folder left
    assert rep.load_state(replica.state_dir, "server2").failures == 0


# --- scrub and restore ------------------------------------------------------------------------


@pytest.mark.integration
def test_scrub_finds_alerts_and_repairs_rot_on_primary_and_replicas(
    tmp_path: Path, sshd: Sshd, smtp
) -> None:
    sink, port = smtp
    vault = tmp_path / "vault"
    for i, h in enumerate(HOURS):
        build_hour(vault, h, i)
    email = smtp_email(port)
    config = config_with(tmp_path, remote(sshd, tmp_path / "remote"), local(tmp_path), email=email)
    replicate_all(config, "server2")
    replicate_all(config, "disk2")
    alerts = Alerts.from_config(config["email"], tmp_path / "alerts.json", FixedClock(NOW))

    clean = scrub(config, alerts=alerts)
    assert clean.findings == [] and clean.files == 3 * 9
    assert sink.messages == []
    # Hours built before records get theirs, on every copy, and the manifest lists them.
    assert clean.adopted == [h.label for h in HOURS]
    good = tree(vault)
    assert tree(tmp_path / "remote") == good and tree(tmp_path / "disk2") == good

    flip_byte(vault / DAY / f"{DAY}_09_tweets.csv.xz")  # bit rot on the primary
    flip_byte(tmp_path / "remote" / DAY / f"{DAY}_10_IDs.txt.xz", 40)  # and on each replica
    (tmp_path / "disk2" / DAY / f"{DAY}_report.txt").unlink()
    found = scrub(config, alerts=alerts, mb_per_s=50)
    lines = sorted(f.line() for f in found.findings)
    assert lines == [
        f"disk2: {DAY}/{DAY}_report.txt missing -> copied again from the primary",
        f"primary: {DAY}/{DAY}_09_tweets.csv.xz mismatch (sha256 "
        + lines[1].split("(sha256 ")[1].split(")")[0]
        + ") -> repaired from server2",
        f"server2: {DAY}/{DAY}_10_IDs.txt.xz mismatch (sha256 "
        + lines[2].split("(sha256 ")[1].split(")")[0]
        + ") -> copied again from the primary",
    ]
    assert found.unrepaired == []
    assert tree(vault) == good
    assert tree(tmp_path / "remote") == good and tree(tmp_path / "disk2") == good
    sink.wait_for(1)
    assert sink.subjects() == [
        "[sampled-stream] scrub: 3 damaged or missing file(s), 0 not repaired"
    ]
    body = sink.messages[0].get_content()
    assert f"{DAY}_09_tweets.csv.xz" in body and "repaired from server2" in body
    assert scrub(config).findings == []


def test_scrub_without_a_good_copy_reports_not_repaired(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    build_hour(vault, HOURS[0])
    config = config_with(tmp_path, local(tmp_path))
    flip_byte(vault / DAY / f"{DAY}_09_IDs.txt.xz", 30)
    report = scrub(config)  # the replica never got a copy
    assert [(f.location, f.name, f.status) for f in report.unrepaired] == [
        ("primary", f"{DAY}_09_IDs.txt.xz", "mismatch"),
        ("disk2", f"{DAY}_09_IDs.txt.xz", "missing"),
    ]
    # The rest of the day did reach the replica from the verified primary.
    assert len(list((tmp_path / "disk2" / DAY).iterdir())) == 4


def test_scrub_makes_a_manifest_for_an_old_day_and_checks_xz(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    build_hour(vault, HOURS[0])
    manifest_path(vault / DAY).unlink()  # a day built before manifests
    config = config_with(tmp_path, local(tmp_path))
    rep.replicate_hour(
        config, "disk2", HOURS[0], NOW, rep.hour_receipt(config["work_dir"], "disk2", HOURS[0])
    )
    report = scrub(config)
    assert report.created_manifests == [DAY] and report.findings == []
    assert report.adopted == [HOURS[0].label]  # the replica's copies agree: verified
    assert len(read_manifest(manifest_path(vault / DAY))) == 6  # with the hour's record
    # The replica gets it too, so a restore from it can verify the day.
    assert tree(tmp_path / "disk2") == tree(vault)
    config = config_with(tmp_path)
    # xz -t catches damage the manifest cannot: a day without manifest (nor record) and a cut
    # .xz file. The stats and the report, one copy each, cannot be checked: never blessed.
    manifest_path(vault / DAY).unlink()
    (vault / DAY / f"{DAY}_09_record.json").unlink()
    p = vault / DAY / f"{DAY}_09_users.csv.xz"
    p.write_bytes(p.read_bytes()[:-8])
    report = scrub(config)
    assert report.created_manifests == [] and not manifest_path(vault / DAY).exists()
    assert [(f.name, f.status) for f in report.unrepaired] == [
        (p.name, "damaged"),
        (f"{DAY}_09_stats.json", "unverifiable"),
        (f"{DAY}_report.txt", "unverifiable"),
    ]


@pytest.mark.integration
def test_deleted_day_restored_identical_from_ssh_replica(tmp_path: Path, sshd: Sshd) -> None:
    vault = tmp_path / "vault"
    other = "2026-01-13"
    build_hour(vault, Hour(other, 23), 5)
    for i, h in enumerate(HOURS):
        build_hour(vault, h, i)
    config = config_with(tmp_path, remote(sshd, tmp_path / "remote"))
    replicate_all(config, "server2")
    rep.replicate_hour(
        config,
        "server2",
        Hour(other, 23),
        NOW,
        rep.hour_receipt(config["work_dir"], "server2", Hour(other, 23)),
    )
    good = tree(vault)
    subprocess.run(["rm", "-rf", str(vault / DAY)], check=True)  # the mistaken rm
    (vault / other / f"{other}_23_stats.json").write_text("{}")  # and a damaged file
    results = restore(config, "server2")
    # The files as built; the hours got their records, the manifests list them.
    assert built(tree(vault)) == built(good)
    assert all(
        (vault / h.day / f"{h.label}_record.json").exists() for h in [*HOURS, Hour(other, 23)]
    )
    assert {r.day: len(r.restored) for r in results} == {other: 1, DAY: 10}
    assert all(not r.failed for r in results)
    ok = subprocess.run(
        ["sha256sum", "-c", f"{DAY}_SHA256SUMS"], cwd=vault / DAY, capture_output=True
    )
    assert ok.returncode == 0


def test_restore_never_installs_a_copy_that_does_not_verify(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    build_hour(vault, HOURS[0])
    config = config_with(tmp_path, local(tmp_path))
    rep.replicate_hour(
        config, "disk2", HOURS[0], NOW, rep.hour_receipt(config["work_dir"], "disk2", HOURS[0])
    )
    ids = vault_paths(vault, HOURS[0])["ids"]
    ids.unlink()
    flip_byte(tmp_path / "disk2" / DAY / ids.name, 30)
    [result] = restore(config, days=[DAY])
    assert list(result.failed) == [ids.name] and "mismatch on disk2" in result.failed[ids.name]
    assert not ids.exists()
    assert [p.name for p in (vault / DAY).iterdir() if p.name.startswith(".")] == []


def test_cli_scrub_and_restore(tmp_path: Path, capsys, restore_logging) -> None:
    from ingest.cli import main
    from tests.configs import config_file

    vault = tmp_path / "vault"
    build_hour(vault, HOURS[0])
    config = config_file(tmp_path, vault_replicas=[local(tmp_path)])
    loaded = config_with(tmp_path, local(tmp_path))
    rep.replicate_hour(
        loaded, "disk2", HOURS[0], NOW, rep.hour_receipt(loaded["work_dir"], "disk2", HOURS[0])
    )
    good = tree(vault)
    flip_byte(vault / DAY / f"{DAY}_09_tweets.csv.xz")
    assert main(["scrub", "--config", str(config), "--days", "1"]) == 0
    out = capsys.readouterr().out
    assert f"primary: {DAY}/{DAY}_09_tweets.csv.xz mismatch" in out and "repaired from disk2" in out
    assert built(tree(vault)) == built(good)  # and the hour has its record now, everywhere
    good = tree(vault)
    assert tree(tmp_path / "disk2") == good
    subprocess.run(["rm", "-rf", str(vault)], check=True)
    assert main(["restore", "--config", str(config), "--from", "disk2"]) == 0
    assert f"{DAY}: 7 restored, 0 intact, 0 failed" in capsys.readouterr().out
    assert tree(vault) == good
    # Left damaged (no copy verifies) or a bad argument: non-zero, with the reason.
    flip_byte(vault / DAY / f"{DAY}_09_users.csv.xz", 20)
    flip_byte(tmp_path / "disk2" / DAY / f"{DAY}_09_users.csv.xz", 20)
    assert main(["scrub", "--config", str(config)]) == 1
    assert "NOT repaired" in capsys.readouterr().out
    assert main(["restore", "--config", str(config), "--from", "nope"]) == 1
    assert "no replica named 'nope'" in capsys.readouterr().err
    assert main(["restore", "--config", str(config), "--days", "14.1.2026"]) == 2


@pytest.mark.integration
def test_ssh_replica_checks_before_rename_and_pins_the_host_key(tmp_path: Path, sshd: Sshd) -> None:
    vault = tmp_path / "vault"
    build_hour(vault, HOURS[0])
    entry = remote(sshd, tmp_path / "remote")
    replica = rep.replica_named(config_with(tmp_path, entry), "server2")
    ids = vault_paths(vault, HOURS[0])["ids"]
    # A copy whose SHA-256 is not the expected one never gets its final name on the replica.
    with pytest.raises(rep.ReplicaError, match="verify and rename in 2026-01-14 failed"):
        replica.put(DAY, {ids: "0" * 64})
    assert list((tmp_path / "remote" / DAY).iterdir()) == []  # temporary folder gone too
    replica.put(DAY, {ids: read_manifest(manifest_path(vault / DAY))[ids.name]})
    assert (tmp_path / "remote" / DAY / ids.name).read_bytes() == ids.read_bytes()
    # A host whose key is not the pinned one is refused, never learned.
    unknown = tmp_path / "other_known_hosts"
    unknown.write_text("")
    stranger = rep.replica_named(
        config_with(tmp_path, {**entry, "known_hosts_file": str(unknown)}), "server2"
    )
    with pytest.raises(rep.ReplicaError, match="Host key verification failed"):
        stranger.put(DAY, {ids: "0" * 64})
    assert unknown.read_text() == ""


@pytest.mark.integration
def test_a_copy_killed_mid_transfer_leaves_nothing_once_the_next_one_is_done(
    tmp_path: Path, sshd: Sshd
) -> None:
    """The soak's finding: a replicate job killed with kill -9 during its rsync left the
    replica's staging folder for good. Puts to a replica hold its lock, so a staging folder
    found by the next put of that day is a dead one's: it goes."""
    vault = tmp_path / "vault"
    build_hour(vault, HOURS[0])
    entry = remote(sshd, tmp_path / "remote")
    replica = rep.replica_named(config_with(tmp_path, entry), "server2")
    ids = vault_paths(vault, HOURS[0])["ids"]
    dead = tmp_path / "remote" / DAY / ".replicating-0123456789ab"
    dead.mkdir(parents=True)
    (dead / ids.name).write_bytes(ids.read_bytes()[:100])  # what the killed rsync got across
    replica.put(DAY, {ids: read_manifest(manifest_path(vault / DAY))[ids.name]})
    assert sorted(p.name for p in (tmp_path / "remote" / DAY).iterdir()) == [ids.name]


@pytest.mark.parametrize("kind", ["local", "ssh"])
def test_a_newer_generation_on_a_replica_is_never_overwritten(tmp_path, sshd, kind) -> None:
    """The guard: a first copy of a recorded hour goes through; a replica whose record
    claims a newer generation (damaged or not) keeps it, checked before any rename."""
    from ingest.vault import records

    vault = tmp_path / "vault"
    build_hour(vault, HOURS[0])
    entry = local(tmp_path) if kind == "local" else remote(sshd, tmp_path / "disk2")
    (tmp_path / "disk2").mkdir(exist_ok=True)
    replica = rep.replica_named(config_with(tmp_path, entry), entry["name"])
    record = records.record_path(vault, HOURS[0])
    files = {p: rep.sha256_file(p) for p in [*vault_paths(vault, HOURS[0]).values()]}
    replica.put(DAY, files, rep.Guard(record.name, 3))  # no record there yet
    held = tmp_path / "disk2" / DAY / record.name
    held.write_bytes(b'{\n  "generation": 4,\n  damaged\n}\n')
    ids = vault_paths(vault, HOURS[0])["ids"]
    ids.write_bytes(b"a newer primary file that must not land")
    with pytest.raises(rep.NewerOnReplica, match="generation 4 .* newer than the primary's 3"):
        replica.put(DAY, {ids: rep.sha256_file(ids)}, rep.Guard(record.name, 3))
    assert (tmp_path / "disk2" / DAY / ids.name).read_bytes() != ids.read_bytes()
    replica.put(DAY, {ids: rep.sha256_file(ids)}, rep.Guard(record.name, 4))  # not older
    # The same generation with another record: a primary that lost the day and built its
    # hours again from the raw files left (generation 1 again) must not replace the replica's.
    held.write_bytes(b'{\n  "generation": 1,\n  "hour": "the replica\'s build"\n}\n')
    mine = b'{\n  "generation": 1,\n  "hour": "a smaller build"\n}\n'
    record.write_bytes(mine)
    sha = rep.sha256_file(record)
    with pytest.raises(rep.NewerOnReplica, match="another generation 1"):
        replica.put(DAY, {record: sha}, rep.Guard(record.name, 1, sha))
    assert held.read_bytes() != mine
    held.write_bytes(mine)  # the very same record: a copy made again goes through
    replica.put(DAY, {record: sha}, rep.Guard(record.name, 1, sha))


def test_osf_takes_a_manifest_but_nothing_named_like_one(tmp_path: Path) -> None:
    from ingest.publish.osf import check_publishable

    vault = tmp_path / "vault"
    build_hour(vault, HOURS[0])
    assert check_publishable(manifest_path(vault / DAY)) == "manifest"
    fake = tmp_path / f"{DAY}_SHA256SUMS"
    fake.write_bytes(vault_paths(vault, HOURS[0])["tweets"].read_bytes())
    with pytest.raises(ValueError, match=f"refusing to publish {DAY}_SHA256SUMS"):
        check_publishable(fake)
    with pytest.raises(ValueError, match="only tweet IDs files"):
        check_publishable(vault_paths(vault, HOURS[0])["tweets"], f"{DAY}_SHA256SUMS")


def test_no_repair_or_restore_while_a_workflow_run_holds_the_run_lock(tmp_path: Path) -> None:
    """A run renames a rebuilt hour's files before it updates the manifest: a scrub repairing
    in between would put the old copy back. Repairs and restores wait for the run lock."""
    from ingest.layout import work_paths
    from ingest.locks import LockBusy, RunLock

    vault = tmp_path / "vault"
    build_hour(vault, HOURS[0])
    config = config_with(tmp_path, local(tmp_path))
    rep.replicate_hour(
        config, "disk2", HOURS[0], NOW, rep.hour_receipt(config["work_dir"], "disk2", HOURS[0])
    )
    tweets = vault_paths(vault, HOURS[0])["tweets"]
    flip_byte(tweets)
    changed = tweets.read_bytes()
    run = RunLock(work_paths(config["work_dir"])["run_lock"], NOW)
    try:
        report = scrub(config, lock_wait_s=0)
        assert [(f.name, f.status) for f in report.unrepaired] == [
            (tweets.name, "mismatch"),
            ("*", "not repaired"),
        ]
        assert tweets.read_bytes() == changed
        with pytest.raises(LockBusy, match="run.lock is held by workflow run pid"):
            restore(config, lock_wait_s=0)
        flip_byte(tweets)  # back as it was: nothing to repair, nothing to wait for
        assert scrub(config, lock_wait_s=0).findings == []
        flip_byte(tweets)
    finally:
        run.release()
    assert scrub(config).unrepaired == []
    assert tweets.read_bytes() != changed
