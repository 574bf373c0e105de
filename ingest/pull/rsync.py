"""Pull a secondary server's complete minute files into the primary's raw_dir with rsync.

A server entry with ``rsync_from`` (``user@host:/path/`` over ssh, or a local path) is pulled
before its hours are built. Only complete minute files (``*.jsonl``) move; the collector's
in-progress files keep other names and stay where they are. The ``{day}/{HH}/`` tree is kept.

What arrives, and from whom:
- ssh checks the secondary's host key strictly against the server's ``known_hosts_file`` (or
  the system's known_hosts when it is not set); an unknown or changed key is a failed pull,
  never learned (no trust on first use).
- Regular files only: no ``-a``; ``--no-links --no-specials --no-devices`` come after the
  operator's ``rsync_options``, and options that would turn a link or a device into a file
  (``-L``, ``--copy-devices``...) or replace the ssh command are refused.

How it lands (never less than the primary holds, nothing removed before it is on disk):
1. Fetch: rsync copies into a staging folder (``{state_dir}/pull_staging/{name}``) with
   ``--compare-dest=<raw_dir>``, so only files that are new or differ from the primary's copy
   are transferred (by size and mtime; by full checksum when the source copies are removed).
   ``--fsync`` when the installed rsync has it.
2. Place (``place_minute``, shared with the import in ``ingest.minutefiles``): each staged
   file is fsynced, then moved into raw_dir. A name the primary does not have is renamed into
   place; one it has with the same content is dropped;
   one that differs (a minute written in two parts by a collector restarted after a pull took
   the first part, or a primary copy cut short by a power loss) becomes the UNION: the
   primary's lines, then the staged lines not among them (exact line match), written to a
   temporary name, fsynced and renamed. Merges are counted and logged. The files' folders are
   fsynced before the next step.
3. Remove (``remove_source_files``, the default): the same rsync with ``--checksum
   --remove-source-files``. rsync removes a source copy only when its full checksum equals
   the primary's durable copy (compare-dest), or after transferring it. What it transfers
   is placed as in step 2 at once: a merged file's source (already contained in the
   union, so nothing changes) and a file the collector rewrote between the two passes. Only
   for that last case does content ride in staging (fsynced by rsync's ``--fsync``) for the
   moment between rsync's rename and the placement; a pull killed in between leaves it in
   staging, and the next pull places leftovers before anything else. rsync itself refuses to
   remove a source file that changed while it was being sent.

With ``remove_source_files: false`` the quick check (size and mtime) decides what is fetched:
a primary copy that lost its tail is fetched again and completed, a copy of the same size with
other bytes is not (add ``--checksum`` to ``rsync_options`` for that, at the cost of reading
every retained file on both sides at each pull).

Files land atomically: rsync writes under temporary dot-names in staging, and raw_dir only
ever receives complete files by rename. Options that would leave partial files under final
names (``--inplace``, ``--partial``, ``--append``) are refused.

Reachability is tracked per server (``ingest.pull.state``: first failure of the current outage,
last success), so successive cron runs know how long a secondary has been gone.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.atomic import fsync_dir
from ingest.complied import DayCache
from ingest.layout import Hour
from ingest.locks import exclusive_lock
from ingest.minutefiles import place_minute
from ingest.pull.state import load_state, save_state
from ingest.remote import IO_TIMEOUT_S, RsyncConfigError, split_source, ssh_command

if TYPE_CHECKING:
    from ingest.notify import Alerts

_log = logging.getLogger(__name__)

# A partial transfer under the final name would be read as a complete minute by the build.
UNSAFE_OPTIONS = ("--inplace", "--partial", "--append", "--append-verify", "-P")
# Options that would undo what the pull promises (rsync_options cannot override it):
# a link or device arriving as a regular file, another ssh command (no pinned host key),
# source copies removed before the primary's copy is placed and on disk.
REFUSED_OPTIONS = {
    "-L": "turns links into files",
    "--copy-links": "turns links into files",
    "--copy-unsafe-links": "turns links into files",
    "-k": "turns links into folders",
    "--copy-dirlinks": "turns links into folders",
    "--copy-devices": "reads devices as files",
    "--write-devices": "writes to devices",
    "-e": "replaces the pinned ssh command",
    "--rsh": "replaces the pinned ssh command",
    "--remove-source-files": "removes source copies itself, after they are safe",
    "--remove-sent-files": "removes source copies itself, after they are safe",
}
# After the operator's options, so that an -a among them brings no link, FIFO or device.
REGULAR_FILES_ONLY = ("--no-links", "--no-specials", "--no-devices")
# rsync exit 24: "some files vanished before they could be transferred" - harmless here (a
# concurrent cleanup); everything else non-zero is a failed pull.
OK_EXIT_CODES = (0, 24)
STDERR_TAIL_CHARS = 2000


@dataclass
class PullResult:
    server: str
    ok: bool
    error: str = ""  # rsync/ssh stderr tail when not ok
    files_pulled: int = 0  # minute files created or completed in raw_dir by this pull
    files: list[str] = field(default_factory=list)  # their paths relative to raw_dir
    merged: int = 0  # of them, existing files completed with lines they lacked
    removed: int = 0  # source copies removed after verification
    unreachable_since: datetime | None = None  # first failure of the current streak
    last_success: datetime | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (ISO instants), e.g. for the pull checkpoint's receipt."""
        out = asdict(self)
        for k in ("unreachable_since", "last_success"):
            out[k] = out[k].isoformat() if out[k] else None
        return out


def _pull_lock(state_dir: Path, name: str) -> Path:
    """One pull per server at a time, across processes (overlapping cron runs, parallel jobs)."""
    return Path(state_dir) / f"rsync_{name}.lock"


def staging_dir(state_dir: Path, name: str) -> Path:
    """Where rsync writes a server's files before they are placed into its raw_dir."""
    return Path(state_dir) / "pull_staging" / name


# --- command line ---------------------------------------------------------------------------


def filter_args(hours: Iterable[Hour] | None) -> list[str]:
    """Only ``*.jsonl`` minute files, in every hour directory or only in ``hours``."""
    if hours is None:
        return ["--include=*/", "--include=*.jsonl", "--exclude=*"]
    args = []
    days = set()
    for h in sorted(set(hours)):
        if h.day not in days:
            days.add(h.day)
            args.append(f"--include=/{h.day}/")
        args += [f"--include=/{h.day}/{h.hh:02d}/", f"--include=/{h.day}/{h.hh:02d}/*.jsonl"]
    return [*args, "--exclude=*"]


def _option_names(option: str) -> list[str]:
    """``--name=value`` -> ``--name``; a cluster of short options ``-rtL`` -> each letter."""
    if option.startswith("--"):
        return [option.split("=", 1)[0]]
    if re.fullmatch(r"-[A-Za-z]+", option):
        return [f"-{c}" for c in option[1:]]
    return [option]


def check_options(server_cfg: dict[str, Any]) -> list[str]:
    """The server's ``rsync_options``; RsyncConfigError naming any the pull cannot allow."""
    extra = list(server_cfg["rsync_options"])
    names = [n for o in extra for n in _option_names(o)]
    partial = [n for n in names if n in UNSAFE_OPTIONS]
    if partial:
        raise RsyncConfigError(
            f"server {server_cfg['name']!r}: rsync_options {partial} would leave partial files "
            "under their final .jsonl names; remove them"
        )
    refused = [f"{n} ({REFUSED_OPTIONS[n]})" for n in names if n in REFUSED_OPTIONS]
    if refused:
        raise RsyncConfigError(
            f"server {server_cfg['name']!r}: rsync_options {', '.join(refused)} not allowed; "
            "remove them"
        )
    return extra


@functools.cache
def rsync_has_fsync() -> bool:
    """Whether the installed rsync knows ``--fsync`` (fsync each file it writes)."""
    try:
        proc = subprocess.run(
            ["rsync", "--help"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--fsync" in proc.stdout


def rsync_commands(
    server_cfg: dict[str, Any], staging: Path, hours: Iterable[Hour] | None = None
) -> list[list[str]]:
    """The fetch and, with ``remove_source_files``, the remove invocation of a pull, both into
    ``staging`` (see the module docstring)."""
    rsync_from = server_cfg.get("rsync_from")
    if not rsync_from:
        raise RsyncConfigError(f"server {server_cfg.get('name')!r} has no rsync_from")
    extra = check_options(server_cfg)
    host, _path = split_source(rsync_from)
    source = rsync_from if rsync_from.endswith("/") else rsync_from + "/"
    remove = server_cfg["remove_source_files"]
    base = [
        "rsync",
        # Recursive, keep mtimes (the quick check against raw_dir); regular files only.
        "-rt",
        # No empty day/hour directories for hours that have no complete minute yet.
        "--prune-empty-dirs",
        f"--timeout={IO_TIMEOUT_S}",
        # One line per received file and per removed source file, for the log.
        "--out-format=%i %n",
        "--info=remove1",
    ]
    if host is not None:
        base += ["-e", ssh_command(server_cfg)]
    base += [*extra, *REGULAR_FILES_ONLY]
    if rsync_has_fsync():
        base.append("--fsync")
    # Absolute: rsync reads a relative compare-dest relative to the destination.
    base.append(f"--compare-dest={os.path.abspath(server_cfg['raw_dir'])}")
    if remove:
        # The source copies go away: compare every byte (few files: only what is not pulled).
        base.append("--checksum")
    tail = [*filter_args(None if hours is None else list(hours)), "--", source, f"{staging}/"]
    fetch = [*base, *tail]
    if not remove:
        return [fetch]
    return [fetch, [*base, "--remove-source-files", *tail]]


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= STDERR_TAIL_CHARS else "..." + text[-STDERR_TAIL_CHARS:]


HOST_KEY_HINT = (
    "\n(the secondary's host key is not the pinned one: check known_hosts_file of this server; "
    "if the key was changed on purpose, put the new one there, e.g. from ssh-keyscan run on "
    "the secondary itself)"
)
NON_REGULAR = re.compile(r'^skipping non-regular file "(?P<name>.*)"$')


def _explain(stderr: str) -> str:
    text = _tail(stderr) or "no error output"
    return text + HOST_KEY_HINT if "Host key verification failed" in stderr else text


def _parse_output(stdout: str) -> tuple[set[str], list[str]]:
    """(source files removed, non-regular files skipped) from rsync's output."""
    removed, skipped = set(), []
    for line in stdout.splitlines():
        if line.startswith("sender removed "):
            removed.add(line.removeprefix("sender removed "))
        elif m := NON_REGULAR.match(line):
            skipped.append(m["name"])
    return removed, skipped


# --- placing --------------------------------------------------------------------------------


@dataclass
class Placed:
    """What the placements of one pull did to the raw_dir (paths relative to it)."""

    new: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)


def place_staged(
    staging: Path,
    raw_dir: Path,
    placed: Placed,
    log: logging.Logger,
    name: str,
    complied: DayCache | None = None,
) -> None:
    """Place every complete file rsync left in ``staging`` (``place_minute``), then fsync the
    folders they went into, so that they are on disk before any source copy is removed.
    rsync's own temporary files (dot-names, not ``*.jsonl``) are left for the cleanup."""
    if not staging.is_dir():
        return
    dirs: set[Path] = set()
    for staged in sorted(staging.rglob("*.jsonl")):
        if staged.is_symlink() or not staged.is_file():
            continue  # rsync brings none (regular files only); never follow one
        rel = staged.relative_to(staging)
        final = raw_dir / rel
        outcome, added = place_minute(staged, final, complied)
        if outcome == "new":
            placed.new.append(str(rel))
        elif outcome == "merged":
            placed.merged.append(str(rel))
            log.warning(
                "pull %s: %s differed from the primary's copy; merged (%d line(s) added)",
                name,
                rel,
                added,
            )
        if outcome != "same":
            dirs.update(p for p in final.parents if p == raw_dir or raw_dir in p.parents)
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(d)


# --- pulling --------------------------------------------------------------------------------


def pull_server(
    server_cfg: dict[str, Any],
    now: datetime,
    state_dir: Path,
    log: logging.Logger | None = None,
    hours: Iterable[Hour] | None = None,
    timeout_s: float = 3600,
    vault_dir: Path | None = None,
) -> PullResult:
    """Pull a server's complete minute files from ``rsync_from`` into its ``raw_dir``.

    ``hours`` restricts the pull to those hour directories (needed with
    ``remove_source_files: false``, or files already removed locally by retention come back).
    Never raises for a failed transfer: the result says ok=False with rsync's error text.
    ``vault_dir``: its compliance logs (``ingest.complied``) are applied to every file placed.
    """
    log = log or _log
    name = server_cfg["name"]
    state_dir = Path(state_dir)
    staging = staging_dir(state_dir, name)
    commands = rsync_commands(server_cfg, staging, hours)
    raw_dir = Path(os.path.abspath(server_cfg["raw_dir"]))
    raw_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with exclusive_lock(_pull_lock(state_dir, name)):
        state = load_state(state_dir, name)
        placed = Placed()
        removed: set[str] = set()
        complied = DayCache(vault_dir)
        error = _prepare(server_cfg, staging, raw_dir, placed, log, complied)
        if not error:
            error = _transfer(
                commands, staging, raw_dir, placed, removed, log, name, timeout_s, complied
            )
        if not error:
            shutil.rmtree(staging, ignore_errors=True)  # rsync's temp files of a killed pull

        if error:
            state.first_failure = state.first_failure or now.isoformat()
            state.last_error = error
        else:
            state.first_failure = None
            state.last_error = None
            state.last_success = now.isoformat()
        save_state(state_dir, name, state)

    changed = placed.new + placed.merged
    result = PullResult(
        server=name,
        ok=not error,
        error=error,
        files_pulled=len(changed),
        files=sorted(changed),
        merged=len(placed.merged),
        removed=len(removed),
        unreachable_since=state.unreachable_since,
        last_success=state.last_success_at,
        seconds=time.monotonic() - start,
    )
    _log_result(result, state.first_failure, log)
    return result


def _prepare(
    server_cfg: dict[str, Any],
    staging: Path,
    raw_dir: Path,
    placed: Placed,
    log: logging.Logger,
    complied: DayCache,
) -> str:
    """Check that a pull can run and place what a pull killed after its rsync left in
    ``staging``; an error text, or ""."""
    name = server_cfg["name"]
    known_hosts = server_cfg.get("known_hosts_file")
    if shutil.which("rsync") is None:
        return "rsync is not installed (apt-get install rsync)"
    if known_hosts and not Path(known_hosts).is_file():
        return f"known_hosts_file {known_hosts} of server {name} is not a file"
    # What a pull killed after its rsync left behind, before anything is removed.
    error = _place(staging, raw_dir, placed, log, name, complied)
    staging.mkdir(parents=True, exist_ok=True)
    return error


def _transfer(
    commands: list[list[str]],
    staging: Path,
    raw_dir: Path,
    placed: Placed,
    removed: set[str],
    log: logging.Logger,
    name: str,
    timeout_s: float,
    complied: DayCache,
) -> str:
    """Run the rsync passes, placing what each brought before the next; the source copies
    removed go into ``removed``. The first error text ends it; "" when all went well."""
    error = ""
    for cmd in commands:
        log.debug("pull %s: %s", name, shlex.join(cmd))
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout_s,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "LC_ALL": "C"},
            )
        except subprocess.TimeoutExpired:
            return f"rsync did not finish within {timeout_s:.0f} s"
        gone, skipped = _parse_output(proc.stdout)
        removed |= gone
        if skipped:
            log.warning(
                "pull %s: not links, FIFOs or devices, left on the secondary: %s",
                name,
                ", ".join(skipped),
            )
        # Even after an rsync error: what it completed is placed before the next pass.
        failed = [_place(staging, raw_dir, placed, log, name, complied)]
        if proc.returncode not in OK_EXIT_CODES:
            failed.insert(0, f"rsync exit {proc.returncode}: {_explain(proc.stderr)}")
        error = "\n".join(e for e in failed if e)
        if error:
            return error
        if proc.returncode == 24:
            log.warning("pull %s: some source files vanished during transfer", name)
    return error


def _log_result(result: PullResult, failing_since: str | None, log: logging.Logger) -> None:
    """One line: what the pull brought, or why it failed and since when."""
    if result.ok:
        log.info(
            "pull %s: %d minute file(s) pulled (%d merged into the primary's copy), "
            "%d source copies removed in %.1f s",
            result.server,
            result.files_pulled,
            result.merged,
            result.removed,
            result.seconds,
        )
    else:
        log.warning(
            "pull %s failed (failing since %s): %s",
            result.server,
            failing_since,
            result.error,
        )


def _place(
    staging: Path,
    raw_dir: Path,
    placed: Placed,
    log: logging.Logger,
    name: str,
    complied: DayCache,
) -> str:
    """``place_staged``; an error text (disk full, ...) instead of raising: the pull fails and
    no source copy is removed; the staged files wait for the next pull."""
    try:
        place_staged(staging, raw_dir, placed, log, name, complied)
    except OSError as e:
        return f"could not place pulled files into {raw_dir}: {e}"
    return ""


def alert_unreachable(
    result: PullResult,
    state_dir: Path,
    alerts: Alerts,
    now: datetime,
    alert_after_minutes: int,
) -> str | None:
    """Mail once a secondary has been unreachable for ``alert_after_minutes``, and again when a
    pull succeeds after such an alert. Returns the kind of mail sent ("unreachable",
    "reachable") or None. Sending failures are logged by ``alerts`` and never raise.
    """
    name = result.server
    state = load_state(state_dir, name)
    kind = None
    if not result.ok and result.unreachable_since is not None:
        since = result.unreachable_since
        if state.alerted_at is None and now - since >= timedelta(minutes=alert_after_minutes):
            minutes = int((now - since).total_seconds() // 60)
            last = result.last_success.isoformat() if result.last_success else "never"
            sent = alerts.alert(
                f"rsync-unreachable-{name}",
                f"{name}: cannot pull minute files for {minutes} min",
                f"Pulling {name}'s minute files has failed since {since.isoformat()}.\n"
                f"Last successful pull: {last}.\n"
                "Hours are built without this server after secondary_wait_minutes and rebuilt "
                "when its files arrive.\n\n"
                f"Error:\n{result.error}\n",
            )
            # Not sent (rate limit, SMTP down): try again at the next pull.
            if sent:
                state.alerted_at = now.isoformat()
                kind = "unreachable"
    elif result.ok and state.alerted_at is not None:
        alerts.alert(
            f"rsync-reachable-{name}",
            f"{name}: minute files pulled again",
            f"Pulling {name}'s minute files works again ({result.files_pulled} file(s) pulled; "
            f"the alert went out at {state.alerted_at}).\n",
        )
        state.alerted_at = None
        kind = "reachable"
    if kind:
        with exclusive_lock(_pull_lock(state_dir, name)):
            fresh = load_state(state_dir, name)
            fresh.alerted_at = state.alerted_at
            save_state(state_dir, name, fresh)
    return kind
