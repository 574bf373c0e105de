"""Bring vault files back from a replica, verified against the day's manifest.

``restore`` is for a lost or damaged vault (the primary's disk died, an ``rm`` went wrong):
each day's files that are missing on the primary or do not match the manifest are fetched from
the replica into a temporary folder inside the day folder, checked (SHA-256 against the
manifest, ``xz -t``), fsynced and renamed into place. A file that does not verify is never
installed. ``install_verified`` is also how ``scrub`` repairs a damaged file.

The manifest trusted is the primary's, when it is there and readable; otherwise the replica's.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.atomic import atomic_write, fsync_dir
from ingest.vault.manifest import (
    ManifestError,
    manifest_name,
    manifest_path,
    parse_manifest,
    read_manifest,
)
from ingest.vault.replicate import (
    Check,
    Replica,
    ReplicaError,
    check_file,
    replicas,
    wait_for_run_lock,
)

_log = logging.getLogger(__name__)


def install_verified(replica: Replica, day_dir: Path, expected: dict[str, str]) -> dict[str, Check]:
    """Fetch ``expected``'s files ({name: sha256}) of ``day_dir``'s day from ``replica`` and
    rename each into ``day_dir`` if it verifies; returns each file's check (status ok: installed).
    Raises ReplicaError when the replica cannot be read at all."""
    day_dir.mkdir(parents=True, exist_ok=True)
    staging = day_dir / f".restoring-{os.urandom(6).hex()}"
    staging.mkdir()
    try:
        replica.fetch(day_dir.name, sorted(expected), staging)
        checks = {}
        for name, digest in sorted(expected.items()):
            check = check_file(staging / name, digest)
            if check.status == "ok":
                with open(staging / name, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(staging / name, day_dir / name)
            checks[name] = check
        fsync_dir(day_dir)
        return checks
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass
class DayRestore:
    day: str
    restored: list[str] = field(default_factory=list)
    intact: list[str] = field(default_factory=list)  # already on the primary, verified
    failed: dict[str, str] = field(default_factory=dict)  # name -> why


def _manifest_for(replica: Replica, day_dir: Path) -> tuple[dict[str, str], str | None]:
    """(entries, the replica's manifest text to install, or None when the primary's is used)."""
    try:
        entries = read_manifest(manifest_path(day_dir))
    except ManifestError as e:
        _log.warning("%s; using the replica's", e)
        entries = {}
    if entries:
        return entries, None
    name = manifest_name(day_dir.name)
    day_dir.mkdir(parents=True, exist_ok=True)
    staging = day_dir / f".restoring-{os.urandom(6).hex()}"
    staging.mkdir()
    try:
        replica.fetch(day_dir.name, [name], staging)
        try:
            text = (staging / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ReplicaError(f"replica {replica.name} has no {name}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return parse_manifest(text, f"{replica.name}:{day_dir.name}/{name}"), text


def restore_day(replica: Replica, vault_dir: Path, day: str) -> DayRestore:
    day_dir = Path(vault_dir) / day
    result = DayRestore(day)
    entries, manifest_text = _manifest_for(replica, day_dir)
    wanted = {}
    for name, digest in sorted(entries.items()):
        if check_file(day_dir / name, digest).status == "ok":
            result.intact.append(name)
        else:
            wanted[name] = digest
    if wanted:
        for name, check in install_verified(replica, day_dir, wanted).items():
            if check.status == "ok":
                result.restored.append(name)
            else:
                result.failed[name] = f"{check.status} on {replica.name} {check.detail}".strip()
    if manifest_text is not None:
        atomic_write(manifest_path(day_dir), manifest_text)
        result.restored.append(manifest_name(day))
    return result


def restore(
    config: dict[str, Any],
    source: str | None = None,
    days: Iterable[str] | None = None,
    log: logging.Logger | None = None,
    lock_wait_s: float = 600,
) -> list[DayRestore]:
    """Restore ``days`` (default: every day the replica holds) from replica ``source`` (default:
    the first configured one that answers), holding the workflow's run lock (LockBusy when a
    run holds it longer than ``lock_wait_s``). Raises ReplicaError when no replica can be
    read."""
    log = log or _log
    candidates = replicas(config)
    if source is not None:
        candidates = [r for r in candidates if r.name == source]
        if not candidates:
            known = ", ".join(r.name for r in replicas(config)) or "none configured"
            raise ReplicaError(f"vault_replicas: no replica named {source!r} (known: {known})")
    if not candidates:
        raise ReplicaError("no vault_replicas configured: nothing to restore from")
    # No workflow run at the same time (it could rebuild a day being restored); cron runs
    # meanwhile find the lock held and do nothing.
    lock = wait_for_run_lock(config, lock_wait_s)
    try:
        return _restore(config, candidates, days, log)
    finally:
        lock.release()


def _restore(config, candidates, days, log) -> list[DayRestore]:
    errors = []
    for replica in candidates:
        try:
            held = replica.days()
        except ReplicaError as e:
            errors.append(str(e))
            log.warning("%s", e)
            continue
        wanted = sorted(days) if days is not None else held
        results = []
        for day in wanted:
            if day not in held:
                results.append(DayRestore(day, failed={"*": f"not on replica {replica.name}"}))
                continue
            r = restore_day(replica, Path(config["vault_dir"]), day)
            log.info(
                "restore %s from %s: %d restored, %d intact, %d failed",
                day,
                replica.name,
                len(r.restored),
                len(r.intact),
                len(r.failed),
            )
            for name, why in r.failed.items():
                log.error("restore %s/%s: %s", day, name, why)
            results.append(r)
        return results
    raise ReplicaError("no replica could be read: " + "; ".join(errors))
