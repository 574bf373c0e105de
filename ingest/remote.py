"""rsync over ssh with a pinned host key: what the pull and the vault's replicas share."""

from __future__ import annotations

import os
import re
import shlex
from typing import Any

CONNECT_TIMEOUT_S = 10
IO_TIMEOUT_S = 120


# rsync's own rule: a colon before any slash means a remote-shell source (host:path).
_REMOTE = re.compile(r"^(?P<host>(?:[^@/:]+@)?(?:\[[^\]]+\]|[^/:]+)):(?P<path>.*)$")


class RsyncConfigError(ValueError):
    pass


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


def ssh_command(server_cfg: dict[str, Any]) -> str:
    """The ``-e`` value: batch mode (never a password prompt), host key checked strictly.

    With ``known_hosts_file`` only that file's keys are accepted (the system-wide file is
    ignored); without it, the user's and the system's known_hosts. An unknown key is refused,
    never learned, and ssh never adds keys to the file (``UpdateHostKeys=no``).
    """
    parts = ["ssh"]
    key = server_cfg.get("ssh_key_file")
    if key:
        parts += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
    if server_cfg.get("ssh_port"):
        parts += ["-p", str(server_cfg["ssh_port"])]
    parts += ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no"]
    known_hosts = server_cfg.get("known_hosts_file")
    if known_hosts:
        parts += [
            "-o",
            f"UserKnownHostsFile={os.path.abspath(known_hosts)}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
        ]
    parts += [
        "-o",
        f"ConnectTimeout={CONNECT_TIMEOUT_S}",
        # A dead peer on an established connection is noticed in ~30 s instead of never.
        "-o",
        "ServerAliveInterval=10",
        "-o",
        "ServerAliveCountMax=3",
    ]
    return shlex.join(parts)
