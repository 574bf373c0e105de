"""Copies of the vault on other disks and machines (``vault_replicas:`` in the config).

A replica is a folder laid out like the vault (``{day}/{day}_HH_...``): a local path (a second
disk, a mounted backup volume) or ``user@host:/path`` reached with rsync over ssh, with the
pull's ssh options and pinned host keys (``ingest.remote.ssh_command``).

Every file lands as the vault's does: under a temporary name in a temporary folder next to its
place, fsynced, its SHA-256 compared with the vault's, then renamed, and the folder fsynced. A
copy that does not verify is removed and never gets the final name. Remotely, a small ``sh``
script does the fsync (``sync``), the check (``sha256sum -c``) and the renames on the replica.

What successive runs remember per replica is ``{work_dir}/state/replica_{name}.json``: the
current failing streak (for back-off across runs and the "unreachable" alert) and the last
success. The workflow's rule (workflow/rules/replicate.smk) replicates each built hour with
``replicate_hour``; ``scrub`` and ``restore`` use the same ``Replica`` methods.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest import backoff, complied, layout
from ingest.atomic import atomic_write_json, fsync_dir
from ingest.layout import Hour
from ingest.locks import exclusive_lock
from ingest.remote import IO_TIMEOUT_S, split_source, ssh_command
from ingest.vault import records
from ingest.vault.manifest import (
    CHUNK,
    is_day,
    manifest_name,
    manifest_path,
    read_manifest,
    sha256_file,
)
from ingest.vault.records import RecordError

if TYPE_CHECKING:
    from ingest.notify import Alerts

_log = logging.getLogger(__name__)
# A record's generation line as records.HourRecord.to_bytes writes it (also read by sed).
_GENERATION = re.compile(rb'^ *"generation": ([0-9]+),?$', re.M)
_SED_GENERATION = r"""sed -n 's/^ *"generation": \([0-9][0-9]*\),\{0,1\}$/\1/p'"""

TIMEOUT_S = 3600  # one hour's files over a slow link; a dead link is cut by ssh's keep-alive


class ReplicaError(RuntimeError):
    """A replica could not be reached, written or read; the message says which and why."""


class ReplicaConfigError(ValueError):
    pass


class NewerOnReplica(ReplicaError):
    """The replica holds a newer generation of the hour than the primary: not replaced."""


@dataclass(frozen=True)
class Guard:
    """A copy's condition: the replica's record ``record`` claims no generation above
    ``generation`` (a damaged record's claim counts too: its files may be newer), and, with
    ``sha256`` (the new record's), none of the same generation with other content: a primary
    that lost a day and built its hours again from what raw files were left starts again at
    generation 1, and must not replace the replicas' whole generation 1."""

    record: str
    generation: int
    sha256: str | None = None
    EXIT = 3  # the remote script's exit status when the guard stops it

    def message(self, held: int) -> str:
        return (
            f"holds generation {held} of {self.record}, newer than the primary's "
            f"{self.generation}: not replaced"
        )

    def other(self) -> str:
        return f"holds another generation {self.generation} of {self.record}: not replaced"

    def check(self, replica: str, data: bytes | None) -> None:
        held = loose_generation(data) if data is not None else None
        if held is not None and held > self.generation:
            raise NewerOnReplica(f"replica {replica}: {self.message(held)}")
        if (
            held == self.generation
            and self.sha256
            and hashlib.sha256(data).hexdigest() != (self.sha256)
        ):
            raise NewerOnReplica(f"replica {replica}: {self.other()}")

    def shell(self) -> list[str]:
        """The same check in sh on the replica, before any rename."""
        rec = shlex.quote(self.record)
        lines = [
            f"g=$({_SED_GENERATION} {rec} 2>/dev/null || true)",
            f'if [ -n "$g" ] && [ "$g" -gt {self.generation} ]; then',
            f'  echo "{self.message(0).replace(" 0 ", " $g ")}" >&2; exit {self.EXIT}',
            "fi",
        ]
        if self.sha256:
            same = shlex.quote(f"{self.sha256}  {self.record}")
            lines += [
                f'if [ "$g" = {self.generation} ] && ! echo {same} | sha256sum -c --status; then',
                f'  echo "{self.other()}" >&2; exit {self.EXIT}',
                "fi",
            ]
        return lines


@dataclass(frozen=True)
class Check:
    """One file's state on one copy: ok, missing, mismatch (SHA-256) or damaged (xz -t)."""

    name: str
    status: str
    detail: str = ""


# --- the two kinds of replica ---------------------------------------------------------------


class Replica(ABC):
    def __init__(self, entry: dict[str, Any], state_dir: Path) -> None:
        self.entry = entry
        self.name: str = entry["name"]
        self.target: str = entry["target"]
        self.state_dir = Path(state_dir)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.target!r})"

    @abstractmethod
    def put(self, day: str, files: dict[Path, str], guard: Guard | None = None) -> None:
        """Copy local ``files`` ({path: expected sha256}) into the replica's ``day`` folder,
        each under a temporary name, fsynced, verified, then renamed in order. With ``guard``
        nothing is renamed if the replica's record claims a newer generation (NewerOnReplica).
        Raises ReplicaError."""

    @abstractmethod
    def check(
        self, day: str, expected: dict[str, str], throttle: Callable[[int], None] | None = None
    ) -> list[Check]:
        """Check the replica's copies of a day's files against ``expected`` ({name: sha256})
        and, for ``.xz`` files, with ``xz -t``. Raises ReplicaError when it cannot look."""

    @abstractmethod
    def fetch(self, day: str, names: Iterable[str], dest: Path) -> None:
        """Copy the replica's ``names`` of ``day`` into the local folder ``dest`` (unverified:
        the caller verifies). A name the replica lacks is simply not there afterwards."""

    @abstractmethod
    def days(self) -> list[str]:
        """The day folders the replica holds, oldest first. Raises ReplicaError."""

    @abstractmethod
    def read(self, day: str, name: str) -> bytes | None:
        """A small file of the replica's ``day`` (a record), or None if it has none."""


class LocalReplica(Replica):
    """A folder on this machine (a second disk, a mounted backup volume)."""

    @property
    def root(self) -> Path:
        return Path(self.target)

    def _require_root(self) -> None:
        # A backup volume that is not mounted leaves an empty mount point: writing there would
        # fill the root disk and "replicate" nothing. The replica's root must already exist.
        if not self.root.is_dir():
            raise ReplicaError(f"replica {self.name}: {self.root} is not a folder (not mounted?)")

    def put(self, day: str, files: dict[Path, str], guard: Guard | None = None) -> None:
        self._require_root()
        dest = self.root / day
        if guard is not None:
            guard.check(self.name, self.read(day, guard.record))
        try:
            dest.mkdir(exist_ok=True)
            for src, expected in files.items():
                copy_verified(src, dest / src.name, expected)
        except OSError as e:
            raise ReplicaError(f"replica {self.name}: writing {dest}: {e}") from None
        fsync_dir(dest)

    def check(
        self, day: str, expected: dict[str, str], throttle: Callable[[int], None] | None = None
    ) -> list[Check]:
        self._require_root()
        return [
            check_file(self.root / day / name, digest, throttle)
            for name, digest in sorted(expected.items())
        ]

    def fetch(self, day: str, names: Iterable[str], dest: Path) -> None:
        self._require_root()
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                shutil.copyfile(self.root / day / name, dest / name)

    def days(self) -> list[str]:
        self._require_root()
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and is_day(p.name))

    def read(self, day: str, name: str) -> bytes | None:
        self._require_root()
        try:
            return (self.root / day / name).read_bytes()
        except FileNotFoundError:
            return None


class SshReplica(Replica):
    """``user@host:/path`` with rsync over ssh; the remote needs rsync, sha256sum, xz and sh."""

    def __init__(self, entry: dict[str, Any], state_dir: Path) -> None:
        super().__init__(entry, state_dir)
        host, root = split_source(self.target)
        if host is None:
            raise ReplicaConfigError(f"vault_replicas {self.name}: {self.target} is not remote")
        self.host, self.root = host, root.rstrip("/") or "/"
        self.ssh = ssh_command(entry)

    def _run(self, cmd: list[str], what: str, stdin: str | None = None) -> str:
        _log.debug("replica %s: %s", self.name, shlex.join(cmd))
        try:
            proc = subprocess.run(
                cmd,
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=TIMEOUT_S,
                env={**os.environ, "LC_ALL": "C"},
            )
        except subprocess.TimeoutExpired:
            raise ReplicaError(f"replica {self.name}: {what} took over {TIMEOUT_S} s") from None
        except FileNotFoundError as e:
            raise ReplicaError(
                f"replica {self.name}: {what}: {e.filename} is not installed"
            ) from None
        if proc.returncode != 0:
            err = (proc.stderr.strip() or proc.stdout.strip() or "no error output")[-2000:]
            raise ReplicaError(
                f"replica {self.name}: {what} failed (exit {proc.returncode}): {err}"
            )
        return proc.stdout

    def _script(self, script: str, what: str) -> str:
        """Run ``script`` with ``sh`` on the replica host (the script on stdin)."""
        return self._run([*shlex.split(self.ssh), self.host, "sh -s"], what, stdin=script)

    def _rsync(self, src: str, dest: str, names: Iterable[str], what: str) -> None:
        self._run(
            [
                "rsync",
                "--times",
                "--mkpath",
                f"--timeout={IO_TIMEOUT_S}",
                "--files-from=-",
                "-e",
                self.ssh,
                "--",
                src,
                dest,
            ],
            what,
            stdin="".join(f"{n}\n" for n in names),
        )

    def put(self, day: str, files: dict[Path, str], guard: Guard | None = None) -> None:
        # One put to this replica at a time (a run's parallel jobs, a scrub's repairs): any
        # staging folder another put left in the day is then a killed one's, and goes.
        with exclusive_lock(self.state_dir / f"replica_{self.name}.put.lock"):
            self._put(day, files, guard)

    def _put(self, day: str, files: dict[Path, str], guard: Guard | None) -> None:
        by_dir: dict[Path, dict[str, str]] = {}
        for path, digest in files.items():
            by_dir.setdefault(path.parent, {})[path.name] = digest
        tmp = f".replicating-{os.urandom(6).hex()}"
        day_dir = f"{self.root}/{day}"
        for src_dir, entries in by_dir.items():
            # rsync writes each file under its own temporary name and renames it into tmp/.
            self._rsync(f"{src_dir}/", f"{self.host}:{day_dir}/{tmp}/", entries, f"rsync to {day}")
        q = shlex.quote
        sums = "".join(
            f"{digest}  {tmp}/{name}\n" for e in by_dir.values() for name, digest in e.items()
        )
        names = [n for e in by_dir.values() for n in e]
        script = "\n".join(
            [
                "set -eu",
                f"cd {q(day_dir)}",
                f"trap 'rm -rf -- {q(tmp)}' EXIT",
                "for d in .replicating-*; do",
                f'  if [ "$d" != {q(tmp)} ] && [ -d "$d" ]; then rm -rf -- "$d"; fi',
                "done",
                f"sync -- {' '.join(q(f'{tmp}/{n}') for n in names)}",
                f"sha256sum --check --strict --quiet <<'EOF'\n{sums}EOF",
                *(guard.shell() if guard is not None else []),
                *(f"mv -f -- {q(f'{tmp}/{n}')} {q(n)}" for n in names),
                f"sync -- {' '.join(q(n) for n in names)} .",
                "",
            ]
        )
        try:
            self._script(script, f"verify and rename in {day}")
        except ReplicaError as e:
            stopped = f"(exit {Guard.EXIT}): "
            if guard is not None and stopped in str(e):
                why = str(e).split(stopped, 1)[1]
                raise NewerOnReplica(f"replica {self.name}: {why}") from None
            raise

    def check(
        self, day: str, expected: dict[str, str], throttle: Callable[[int], None] | None = None
    ) -> list[Check]:
        # One line per file: name, then its sha256 or "missing", then xz -t's verdict. ionice
        # and nice (when there) keep the replica host's own work first.
        q = shlex.quote
        lines = [
            "cd " + q(f"{self.root}/{day}") + " 2>/dev/null || exit 0",
            "low=''; command -v ionice >/dev/null && low='ionice -c3'",
            "for f in " + " ".join(q(n) for n in sorted(expected)) + "; do",
            '  if [ ! -f "$f" ]; then echo "missing - $f"; continue; fi',
            '  h=$($low nice sha256sum -- "$f" | cut -d" " -f1) || h=unreadable',
            '  x=ok; case "$f" in *.xz) $low nice xz -t -- "$f" 2>/dev/null || x=damaged;; esac',
            '  echo "$h $x $f"',
            "done",
            "",
        ]
        out = self._script("\n".join(lines) if expected else "true\n", f"check {day}")
        seen: dict[str, tuple[str, str]] = {}
        for line in out.splitlines():
            digest, xz, name = (line.split(" ", 2) + ["", ""])[:3]
            seen[name] = (digest, xz)
        return [
            _verdict(name, expected[name], *seen.get(name, ("missing", "-")))
            for name in sorted(expected)
        ]

    def fetch(self, day: str, names: Iterable[str], dest: Path) -> None:
        names = list(names)
        try:
            self._rsync(f"{self.host}:{self.root}/{day}/", f"{dest}/", names, f"fetch from {day}")
        except ReplicaError as e:
            if "(exit 23)" not in str(e):  # 23: some files missing there; the caller sees which
                raise

    def days(self) -> list[str]:
        out = self._script(f"ls -1 -- {shlex.quote(self.root)}\n", "list days")
        return sorted(n for n in out.split() if is_day(n))

    def read(self, day: str, name: str) -> bytes | None:
        path = shlex.quote(f"{self.root}/{day}/{name}")
        out = self._script(f"if [ -f {path} ]; then echo y; cat -- {path}; fi\n", f"read {name}")
        return out.split("\n", 1)[1].encode() if out.startswith("y\n") else None


def _verdict(name: str, expected: str, digest: str, xz: str) -> Check:
    if digest == "missing":
        return Check(name, "missing")
    if digest != expected:
        return Check(name, "mismatch", f"sha256 {digest}, expected {expected}")
    if xz == "damaged":
        return Check(name, "damaged", "xz -t failed")
    return Check(name, "ok")


def check_file(path: Path, expected: str, throttle: Callable[[int], None] | None = None) -> Check:
    """A local copy against its manifest hash, and ``xz -t`` for .xz files, in one read: the
    bytes go to the hash and to xz's stdin."""
    name = path.name
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return Check(name, "missing")
    except OSError as e:
        return Check(name, "mismatch", f"unreadable: {e}")
    h = hashlib.sha256()
    xz, xz_ok = None, True
    if name.endswith(".xz"):
        xz = subprocess.Popen(
            ["xz", "-t", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        with f:
            while chunk := f.read(CHUNK):
                if throttle:
                    throttle(len(chunk))
                h.update(chunk)
                if xz is not None and xz.poll() is None:
                    with contextlib.suppress(BrokenPipeError):
                        xz.stdin.write(chunk)
    except OSError as e:
        return Check(name, "mismatch", f"unreadable: {e}")
    finally:
        if xz is not None:
            with contextlib.suppress(BrokenPipeError):
                xz.stdin.close()
            xz_ok = xz.wait() == 0
    return _verdict(name, expected, h.hexdigest(), "ok" if xz_ok else "damaged")


def copy_verified(src: Path, dest: Path, expected: str) -> None:
    """Copy ``src`` to ``dest`` through a fsynced temporary sibling whose SHA-256 (read back from
    the disk's copy) must equal ``expected``; then rename. Raises ReplicaError otherwise."""
    from ingest.atomic import atomic_file

    with atomic_file(dest, "wb") as out:
        with open(src, "rb") as f:
            shutil.copyfileobj(f, out, CHUNK)
        out.flush()
        os.fsync(out.fileno())
        got = sha256_file(out.name)
        if got != expected:
            raise ReplicaError(f"{dest}: copy has sha256 {got}, expected {expected}")


def replicas(config: dict[str, Any]) -> list[Replica]:
    """The configured replicas, in config order."""
    state_dir = layout.work_paths(config["work_dir"])["state"]
    out: list[Replica] = []
    names = set()
    vault = Path(config["vault_dir"]).resolve()
    for entry in config.get("vault_replicas", []):
        if entry["name"] in names:
            raise ReplicaConfigError(f"vault_replicas: duplicate name {entry['name']!r}")
        names.add(entry["name"])
        host, path = split_source(entry["target"])
        if host is None:
            root = Path(path).resolve()
            if root == vault or vault in root.parents or root in vault.parents:
                raise ReplicaConfigError(
                    f"vault_replicas {entry['name']}: {path} overlaps vault_dir {vault}"
                )
            out.append(LocalReplica(entry, state_dir))
        else:
            out.append(SshReplica(entry, state_dir))
    return out


def replica_named(config: dict[str, Any], name: str) -> Replica:
    for r in replicas(config):
        if r.name == name:
            return r
    known = ", ".join(r.name for r in replicas(config)) or "none configured"
    raise ReplicaConfigError(f"vault_replicas: no replica named {name!r} (known: {known})")


# --- state across runs: back-off and alerts -------------------------------------------------


@dataclass
class ReplicaState:
    first_failure: str | None = None  # ISO instant: start of the current failing streak
    failures: int = 0  # consecutive failed jobs
    last_attempt: str | None = None
    last_success: str | None = None
    last_error: str | None = None
    alerted_at: str | None = None  # when the "unreachable" mail of this streak went out

    def next_attempt(self) -> datetime | None:
        """When a failing replica is tried again: 10 min after the first failure, doubling up
        to 6 h (as OSF uploads); None when it is not failing."""
        if not self.failures or not self.last_attempt:
            return None
        return datetime.fromisoformat(self.last_attempt) + backoff.wait_after(self.failures)


def state_path(state_dir: Path, name: str) -> Path:
    return Path(state_dir) / f"replica_{name}.json"


def load_state(state_dir: Path, name: str) -> ReplicaState:
    try:
        data = json.loads(state_path(state_dir, name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ReplicaState()
    except (OSError, ValueError) as e:
        _log.warning("ignoring unreadable replica state of %s: %s", name, e)
        return ReplicaState()
    known = ReplicaState.__dataclass_fields__
    return ReplicaState(**{k: v for k, v in data.items() if k in known})


@contextlib.contextmanager
def _updating_state(state_dir: Path, name: str):
    with exclusive_lock(Path(state_dir) / f"replica_{name}.lock"):
        state = load_state(state_dir, name)
        yield state
        atomic_write_json(state_path(state_dir, name), asdict(state))


def record(
    replica: Replica, now: datetime, error: str | None, alerts: Alerts | None = None
) -> ReplicaState:
    """Record a job's outcome; mail "unreachable" once a streak lasts the replica's
    ``alert_after_minutes`` and "reachable again" after such a mail."""
    after = timedelta(minutes=replica.entry["alert_after_minutes"])
    with _updating_state(replica.state_dir, replica.name) as st:
        same_run = st.last_attempt == now.isoformat()  # a run's jobs share its instant
        st.last_attempt = now.isoformat()
        if error:
            if not (same_run and st.failures):  # back-off counts runs, not a run's jobs
                st.failures += 1
            st.first_failure = st.first_failure or now.isoformat()
            st.last_error = error
            since = datetime.fromisoformat(st.first_failure)
            minutes = int((now - since).total_seconds() // 60)
            if alerts and st.alerted_at is None and now - since >= after:
                last = st.last_success or "never"
                if alerts.alert(
                    f"replica-unreachable-{replica.name}",
                    f"replica {replica.name}: failing for {minutes} min",
                    f"Copying the vault to replica {replica.name} ({replica.target}) has failed "
                    f"since {st.first_failure} ({st.failures} attempts; last success: {last}).\n"
                    "Builds go on; later runs retry with back-off and catch up.\n\n"
                    f"Error:\n{error}\n",
                ):
                    st.alerted_at = now.isoformat()
        else:
            if alerts and st.alerted_at:
                alerts.alert(
                    f"replica-reachable-{replica.name}",
                    f"replica {replica.name}: copying again",
                    f"Replica {replica.name} ({replica.target}) takes copies again (failing since "
                    f"{st.first_failure}; the alert went out at {st.alerted_at}).\n",
                )
            st.first_failure, st.failures, st.last_error, st.alerted_at = None, 0, None, None
            st.last_success = now.isoformat()
        return st


# --- what the workflow does -----------------------------------------------------------------


def receipt_path(work_dir: str | Path, replica: str, day: str, hh: str) -> Path:
    """The receipt of copying hour ``{day}_{hh}`` to ``replica`` (also as a pattern)."""
    return Path(work_dir) / "replicas" / replica / day / f"{day}_{hh}.json"


def hour_receipt(work_dir: str | Path, replica: str, hour: Hour) -> Path:
    return receipt_path(work_dir, replica, hour.day, f"{hour.hh:02d}")


def hour_files(vault_dir: Path, hour: Hour) -> list[Path]:
    """What an hour's replication copies, in the order they are renamed on the replica: its
    vault files, its record (after the files it names), its day's report, compliance log
    and manifest."""
    day_dir = Path(vault_dir) / hour.day
    files = [p for p in layout.vault_paths(vault_dir, hour).values() if p.exists()]
    return [
        *files,
        *(
            p
            for p in (
                records.record_path(vault_dir, hour),
                layout.report_path(vault_dir, hour.day),
                complied.log_path(vault_dir, hour.day),
                manifest_path(day_dir),
            )
            if p.exists()
        ),
    ]


def loose_generation(data: bytes) -> int | None:
    """The generation a record's text states, even if the record is damaged otherwise: what
    a copy claims to hold decides whether it may be replaced (never by an older one)."""
    m = _GENERATION.search(data)
    return int(m[1]) if m else None


def pending_hours(
    config: dict[str, Any],
    replica: Replica,
    hours: Iterable[Hour],
    now: datetime,
    rebuilt: Iterable[Hour] = (),
) -> list[Hour]:
    """The built ``hours`` this run should copy to ``replica``: none while it is backing off;
    else those (re)built in this run (``rebuilt``), then those without a receipt or whose files
    changed since it, newest first (a long backlog never delays a fresh hour), at most
    ``max_hours_per_run``."""
    state = load_state(replica.state_dir, replica.name)
    due = state.next_attempt()
    if due is not None and now < due:
        return []
    rebuilt = sorted(set(rebuilt), reverse=True)
    out = list(rebuilt)
    for h in sorted(set(hours) - set(rebuilt), reverse=True):
        try:
            done = hour_receipt(config["work_dir"], replica.name, h).stat().st_mtime
        except FileNotFoundError:
            out.append(h)
            continue
        record = records.record_path(config["vault_dir"], h)
        paths = [record] if record.exists() else layout.vault_paths(config["vault_dir"], h).values()
        if any(p.exists() and p.stat().st_mtime > done for p in paths):
            out.append(h)
    return sorted(out[: replica.entry["max_hours_per_run"]])


def copied(work_dir: str | Path, vault: Path, replica: str, hour: Hour) -> bool:
    """Does ``replica``'s receipt of ``hour`` postdate the hour's record (or, for an hour
    built before records, its stats)?"""
    try:
        done = hour_receipt(work_dir, replica, hour).stat().st_mtime_ns
    except FileNotFoundError:
        return False
    record = records.record_path(vault, hour)
    latest = record if record.exists() else layout.vault_paths(vault, hour)["stats"]
    try:
        return latest.stat().st_mtime_ns <= done
    except FileNotFoundError:
        return True


def workflow_targets(
    config: dict[str, Any], plan: Any, copies: dict[str, list[Hour]], run: str
) -> list[str]:
    """What a workflow run adds to its targets: the manifests of the days it rebuilds and each
    replica's pending ``copies`` (``pending_copies``)."""
    targets = [str(manifest_receipt(config["work_dir"], d, run)) for d in plan.reports]
    for name, hours in copies.items():
        targets += [str(hour_receipt(config["work_dir"], name, h)) for h in hours]
    return targets


def pending_copies(
    config: dict[str, Any], plan: Any, built: Iterable[Hour], now: datetime
) -> dict[str, list[Hour]]:
    """Each replica's hours a run copies: of the ``built`` hours and those it (re)builds."""
    every = set(built) | set(plan.build)
    return {
        r.name: pending_hours(config, r, every, now, rebuilt=plan.build) for r in replicas(config)
    }


def copy_inputs(config: dict[str, Any], plan: Any, hour: Hour, run: str) -> list[str]:
    """What a copy waits for: this run's manifest of the day when the run rebuilds the day,
    else the hour's files as they are."""
    if hour.day in plan.reports:
        return [str(manifest_receipt(config["work_dir"], hour.day, run))]
    return [str(p) for p in hour_files(Path(config["vault_dir"]), hour)]


def manifest_receipt(work_dir: str | Path, day: str, run: str) -> Path:
    """Run ``run``'s receipt of updating ``day``'s manifest (also as a pattern: "{day}")."""
    return Path(work_dir) / "manifests" / f"{day}.{run}.json"


@dataclass
class Receipt:
    replica: str
    target: str
    hour: str
    generation: int | None = None  # None: an hour built before records
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256
    bytes: int = 0
    seconds: float = 0.0
    at: str = ""


def replicate_hour(
    config: dict[str, Any],
    replica_name: str,
    hour: Hour,
    now: datetime,
    receipt: Path,
    log: logging.Logger | None = None,
    alerts: Alerts | None = None,
) -> Receipt:
    """Copy an hour's files (with its record, the day's report and manifest) to one replica,
    verified, the record after the files it names.

    The expected hashes are the hour's record's (the manifest's for the report, and for an
    hour built before records); a vault file that no longer matches (damaged since the build)
    is not spread: the job fails and names it. A replica holding a newer generation of the
    hour than the primary is never overwritten: the job fails, saying to restore the primary.
    On any other failure the state records it (back-off, alert) and ReplicaError is raised;
    the receipt is written only after every file verified on the replica.
    """
    log = log or _log
    replica = replica_named(config, replica_name)
    vault = Path(config["vault_dir"])
    start = time.monotonic()
    expected, generation = _expected_files(vault, hour, replica, log)
    state = load_state(replica.state_dir, replica.name)
    if state.failures and state.last_attempt == now.isoformat():
        # A replica that failed earlier in this run is not tried again by each of its jobs
        # (an unreachable host costs a connect timeout each).
        raise ReplicaError(f"replica {replica.name} failed earlier in this run: {state.last_error}")
    name = records.record_name(hour.label)
    own = next((d for p, d in expected.items() if p.name == name), None)
    guard = None if generation is None else Guard(name, generation, own)
    sent = _not_on_replica(receipt, expected)
    try:
        replica.put(hour.day, sent, guard)
    except NewerOnReplica as e:
        # The primary's problem, not the replica's: no back-off; the job fails every run.
        log.error("%s", e)
        raise NewerOnReplica(
            f"{e}. The primary lost a build of hour {hour}: restore the day from the replica "
            f"(sampled-stream restore --from {replica.name} --days {hour.day})"
        ) from None
    except (ReplicaError, OSError) as e:
        record(replica, now, str(e), alerts)
        log.error("replica %s, hour %s: %s", replica.name, hour.label, e)
        raise ReplicaError(str(e)) from None
    record(replica, now, None, alerts)
    result = Receipt(
        replica=replica.name,
        target=replica.target,
        hour=hour.label,
        generation=generation,
        files={p.name: d for p, d in expected.items()},
        bytes=sum(p.stat().st_size for p in sent),
        seconds=round(time.monotonic() - start, 3),
        at=now.isoformat(),
    )
    atomic_write_json(receipt, asdict(result))
    log.info(
        "replica %s: hour %s, %d files, %.1f MB in %.1f s, verified",
        replica.name,
        hour.label,
        len(sent),
        result.bytes / 1e6,
        result.seconds,
    )
    return result


def _not_on_replica(receipt: Path, expected: dict[Path, str]) -> dict[Path, str]:
    """The files to send: all but the hour's data files the replica got with these very bytes
    (the last receipt says so). An hour given its first record (a vault built before records)
    sends its record, report and manifest, not its gigabytes again; scrub checks the rest."""
    try:
        had = json.loads(receipt.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return expected
    small = (".json", ".txt", "SHA256SUMS")  # the record, stats, report, manifest: always
    return {p: d for p, d in expected.items() if p.name.endswith(small) or had.get(p.name) != d}


def _expected_files(
    vault: Path, hour: Hour, replica: Replica, log: logging.Logger
) -> tuple[dict[Path, str], int | None]:
    """({file to copy: its SHA-256}, the hour's generation); ReplicaError when a vault file
    does not match its record (or manifest): the vault's problem, no back-off, scrub repairs
    it."""
    try:
        hour_record = records.read_record(records.record_path(vault, hour))
    except RecordError as e:
        raise ReplicaError(f"{e}; not copied (sampled-stream scrub repairs it)") from None
    manifest = read_manifest(manifest_path(vault / hour.day))
    named = {n: e.sha256 for n, e in hour_record.files.items()} if hour_record else {}
    expected: dict[Path, str] = {}
    for p in hour_files(vault, hour):
        digest = sha256_file(p)
        want = named.get(p.name, manifest.get(p.name, digest))
        if p.name != manifest_name(hour.day) and want != digest:
            log.error("replica %s, hour %s: %s differs from its record", replica.name, hour, p)
            raise ReplicaError(
                f"{p}: sha256 {digest} differs from its record's {want}; not copied (run "
                "sampled-stream scrub to repair it from a replica)"
            )
        expected[p] = digest
    return expected, hour_record.generation if hour_record else None
