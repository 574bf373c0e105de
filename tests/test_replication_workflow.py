"""Replication as a rule, end to end: snakemake builds, writes the day manifests and copies each
built hour to a local replica and to one over rsync+ssh (the loopback sshd); a replica that is
down fails only its own jobs, the build goes on, and a later run catches up after back-off.

One server, local hours 09 and 10 (CET); late and grace 1 minute, so both are complete at
10:03 UTC.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest import layout
from ingest.devtools.generate import generate_raw_tree
from ingest.layout import Hour
from tests.sshd import Sshd
from tests.workflow_runs import snakemake, write_fast_config

pytestmark = pytest.mark.integration  # Snakemake runs, sshd

TZ = ZoneInfo("Europe/Berlin")
DAY = "2026-01-14"
HOURS = [Hour(DAY, 9), Hour(DAY, 10)]


def jobs(proc: subprocess.CompletedProcess, rule: str) -> int:
    return sum(
        line in (f"rule {rule}:", f"localrule {rule}:")
        for line in (proc.stdout + proc.stderr).splitlines()
    )


def tree(root: Path) -> dict[str, bytes]:
    """The files under ``root``; the vault's dashboard/ (pages made from the day folders, not
    replicated) left out."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != "dashboard"
    }


def test_built_hours_are_replicated_verified_and_a_down_replica_catches_up(
    tmp_path: Path, sshd: Sshd
) -> None:
    root = tmp_path
    (root / "remote").mkdir()
    write_fast_config(
        root,
        vault_replicas=[
            {
                "name": "server2",
                "target": f"{sshd.target}:{root / 'remote'}",
                "ssh_key_file": str(sshd.key_file),
                "ssh_port": sshd.port,
                "known_hosts_file": str(sshd.known_hosts),
            },
            # Not mounted yet: its root does not exist.
            {"name": "usb", "target": str(root / "usb")},
        ],
    )
    generate_raw_tree(
        [("server1", root / "raw" / "server1")],
        datetime(2026, 1, 14, 8, 58, tzinfo=UTC),
        datetime(2026, 1, 14, 10, 1, tzinfo=UTC),
        TZ,
        rate_per_minute=20,
        late_fraction=0,
        seed=5,
    )
    first = snakemake(root, now="2026-01-14T10:03:00+00:00")
    said = first.stdout + first.stderr
    # The usb replica's jobs failed, and only they: the hours are built and on server2.
    assert first.returncode != 0, said[-3000:]
    assert jobs(first, "replicate") == 4 and "Error in rule replicate:" in said
    vault = root / "vault"
    for h in HOURS:
        assert layout.vault_paths(vault, h)["stats"].exists()
    ok = subprocess.run(
        ["sha256sum", "-c", "--strict", f"{DAY}_SHA256SUMS"], cwd=vault / DAY, capture_output=True
    )
    assert ok.returncode == 0, ok.stdout
    assert len(ok.stdout.splitlines()) == 11  # 2 hours x (4 files and their record), the report
    assert tree(root / "remote") == tree(vault)
    receipts = root / "work" / "replicas"
    assert sorted(p.name for p in (receipts / "server2").rglob("*.json")) == [
        f"{h.label}.json" for h in HOURS
    ]
    assert not (receipts / "usb").exists() and not (root / "usb").exists()
    state = json.loads((root / "work" / "state" / "replica_usb.json").read_text())
    assert state["failures"] == 1 and "not a folder" in state["last_error"]

    # Mounted, but the next run comes within the back-off: nothing to do for it, and the
    # run succeeds.
    (root / "usb").mkdir()
    again = snakemake(root, now="2026-01-14T10:08:00+00:00")
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert jobs(again, "replicate") == 0
    # After it: the usb replica catches up; server2 has nothing left to do.
    later = snakemake(root, now="2026-01-14T10:20:00+00:00")
    said = later.stdout + later.stderr
    assert later.returncode == 0, said[-3000:]
    assert jobs(later, "replicate") == 2
    assert tree(root / "usb") == tree(vault)
    assert json.loads((root / "work" / "state" / "replica_usb.json").read_text())["failures"] == 0
