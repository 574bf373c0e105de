"""Pull a secondary server's complete minute files into the primary's raw_dir with rsync.

A server entry with ``rsync_from`` (``user@host:/path/`` over ssh, or a local path) is pulled
before its hours are built. Only complete minute files (``*.jsonl``) move; the collector's
in-progress files keep other names and stay where they are. The ``{day}/{HH}/`` tree is kept.

Two passes when ``remove_source_files`` is true (the default, as the seed):
1. ``rsync -a`` copies what is new.
2. ``rsync -a --checksum --remove-source-files`` compares every file by full checksum and lets
   rsync delete a source copy only when the receiver's copy is identical (or was just re-sent and
   verified), so a secondary's minute goes away only once the primary holds exactly its bytes.

Files land atomically: rsync writes each file under a temporary dot-name (``.name.XXXXXX``, not
ending in ``.jsonl``) and renames it when complete; an interrupted transfer leaves at most such
a dot-file, which the build ignores. Options that would break this (``--inplace``, ``--partial``,
``--append``) are refused.

Reachability is tracked per server (``ingest.pull_state``: first failure of the current outage,
last success), so successive cron runs know how long a secondary has been gone.
"""

from __future__ import annotations

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

from ingest.layout import Hour
from ingest.locks import exclusive_lock
from ingest.pull_state import load_state, save_state

if TYPE_CHECKING:
    from ingest.notify import Alerts

_log = logging.getLogger(__name__)

# A partial transfer under the final name would be read as a complete minute by the build.
UNSAFE_OPTIONS = ("--inplace", "--partial", "--append", "--append-verify", "-P")
# rsync exit 24: "some files vanished before they could be transferred" - harmless here (a
# concurrent cleanup); everything else non-zero is a failed pull.
OK_EXIT_CODES = (0, 24)
CONNECT_TIMEOUT_S = 10
IO_TIMEOUT_S = 120
STDERR_TAIL_CHARS = 2000

# rsync's own rule: a colon before any slash means a remote-shell source (host:path).
_REMOTE = re.compile(r"^(?P<host>(?:[^@/:]+@)?(?:\[[^\]]+\]|[^/:]+)):(?P<path>.*)$")


class RsyncConfigError(ValueError):
    pass


@dataclass
class PullResult:
    server: str
    ok: bool
    error: str = ""  # rsync/ssh stderr tail when not ok
    files_pulled: int = 0  # minute files written into raw_dir by this pull
    files: list[str] = field(default_factory=list)  # their paths relative to raw_dir
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


# --- command line ---------------------------------------------------------------------------


def split_source(rsync_from: str) -> tuple[str | None, str]:
    """(``user@host`` or None for a local path, path) of an ``rsync_from`` value."""
    if rsync_from.startswith("rsync://") or "::" in rsync_from.split("/", 1)[0]:
        raise RsyncConfigError(
            f"rsync_from {rsync_from!r}: rsync daemon sources are not supported; "
            "use user@host:/path/"
        )
    m = _REMOTE.match(rsync_from)
    if m:
        return m["host"], m["path"]
    return None, rsync_from


def ssh_command(server_cfg: dict[str, Any], state_dir: Path) -> str:
    """The ``-e`` value: batch mode (never a password prompt), our own known_hosts file."""
    parts = ["ssh"]
    key = server_cfg.get("ssh_key_file")
    if key:
        parts += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
    if server_cfg.get("ssh_port"):
        parts += ["-p", str(server_cfg["ssh_port"])]
    parts += [
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        f"UserKnownHostsFile={Path(state_dir).resolve() / 'known_hosts'}",
        "-o",
        f"ConnectTimeout={CONNECT_TIMEOUT_S}",
        # A dead peer on an established connection is noticed in ~30 s instead of never.
        "-o",
        "ServerAliveInterval=10",
        "-o",
        "ServerAliveCountMax=3",
    ]
    return shlex.join(parts)


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


def rsync_commands(
    server_cfg: dict[str, Any], state_dir: Path, hours: Iterable[Hour] | None = None
) -> list[list[str]]:
    """The one or two rsync invocations of a pull (see the module docstring)."""
    rsync_from = server_cfg.get("rsync_from")
    if not rsync_from:
        raise RsyncConfigError(f"server {server_cfg.get('name')!r} has no rsync_from")
    extra = list(server_cfg["rsync_options"])
    bad = [o for o in extra if o.split("=", 1)[0] in UNSAFE_OPTIONS]
    if bad:
        raise RsyncConfigError(
            f"server {server_cfg['name']!r}: rsync_options {bad} would leave partial files under "
            "their final .jsonl names; remove them"
        )
    host, path = split_source(rsync_from)
    source = rsync_from if rsync_from.endswith("/") else rsync_from + "/"
    dest = str(Path(server_cfg["raw_dir"])) + "/"
    base = [
        "rsync",
        "-a",
        # No empty day/hour directories for hours that have no complete minute yet.
        "--prune-empty-dirs",
        f"--timeout={IO_TIMEOUT_S}",
        # One line per received file and per removed source file, parsed for the counts.
        "--out-format=%i %n",
        "--info=remove1",
    ]
    if host is not None:
        base += ["-e", ssh_command(server_cfg, state_dir)]
    filters = filter_args(None if hours is None else list(hours))
    first = [*base, *extra, *filters, "--", source, dest]
    if not server_cfg["remove_source_files"]:
        return [first]
    second = [*base, "--checksum", "--remove-source-files", *extra, *filters, "--", source, dest]
    return [first, second]


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= STDERR_TAIL_CHARS else "..." + text[-STDERR_TAIL_CHARS:]


def _parse_output(stdout: str) -> tuple[set[str], set[str]]:
    """(files received, source files removed) from ``%i %n`` and ``--info=remove1`` lines."""
    received, removed = set(), set()
    for line in stdout.splitlines():
        if line.startswith("sender removed "):
            removed.add(line.removeprefix("sender removed "))
            continue
        item, _, name = line.partition(" ")
        # %i: update type ('>' received, 'c' created locally), then file type ('f' regular).
        if len(item) == 11 and item[0] in ">c" and item[1] == "f" and name.endswith(".jsonl"):
            received.add(name)
    return received, removed


# --- pulling --------------------------------------------------------------------------------


def pull_server(
    server_cfg: dict[str, Any],
    now: datetime,
    state_dir: Path,
    log: logging.Logger | None = None,
    hours: Iterable[Hour] | None = None,
    timeout_s: float = 3600,
) -> PullResult:
    """Pull a server's complete minute files from ``rsync_from`` into its ``raw_dir``.

    ``hours`` restricts the pull to those hour directories (needed with
    ``remove_source_files: false``, or files already removed locally by retention come back).
    Never raises for a failed transfer: the result says ok=False with rsync's error text.
    """
    log = log or _log
    name = server_cfg["name"]
    state_dir = Path(state_dir)
    commands = rsync_commands(server_cfg, state_dir, hours)
    Path(server_cfg["raw_dir"]).mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with exclusive_lock(_pull_lock(state_dir, name)):
        state = load_state(state_dir, name)
        received: set[str] = set()
        removed: set[str] = set()
        error = ""
        if shutil.which("rsync") is None:
            error = "rsync is not installed (apt-get install rsync)"
        for cmd in [] if error else commands:
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
                error = f"rsync did not finish within {timeout_s:.0f} s"
                break
            got, gone = _parse_output(proc.stdout)
            received |= got
            removed |= gone
            if proc.returncode not in OK_EXIT_CODES:
                error = f"rsync exit {proc.returncode}: {_tail(proc.stderr) or 'no error output'}"
                break
            if proc.returncode == 24:
                log.warning("pull %s: some source files vanished during transfer", name)

        if error:
            state.first_failure = state.first_failure or now.isoformat()
            state.last_error = error
        else:
            state.first_failure = None
            state.last_error = None
            state.last_success = now.isoformat()
        save_state(state_dir, name, state)

    result = PullResult(
        server=name,
        ok=not error,
        error=error,
        files_pulled=len(received),
        files=sorted(received),
        removed=len(removed),
        unreachable_since=state.unreachable_since,
        last_success=state.last_success_at,
        seconds=time.monotonic() - start,
    )
    if result.ok:
        log.info(
            "pull %s: %d minute file(s) pulled, %d source copies removed in %.1f s",
            name,
            result.files_pulled,
            result.removed,
            result.seconds,
        )
    else:
        log.warning(
            "pull %s failed (failing since %s): %s", name, state.first_failure, result.error
        )
    return result


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
