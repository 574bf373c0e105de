"""Who may read what the project writes: files 0640, folders 0750, group configurable.

Raw minutes, intermediates (tweet text, user fields), the vault and the logs are not for other
users of the machine. Every entry point (the Snakefile, the ``sampled-stream`` command) calls
``restrict_umask`` first, so whatever cron's or a shell's umask is, new files are 0640 and new
folders 0750 (``ingest.atomic`` creates its files 0640 explicitly too). ``secure_dirs`` makes
the configured top folders 0750 and, with ``file_group`` set, gives them that group and the
setgid bit, so everything created below inherits the group (a reader group for analysts).
"""

from __future__ import annotations

import grp
import logging
import os
import stat
from pathlib import Path
from typing import Any

UMASK = 0o027  # files 0640, folders 0750
DIR_MODE = 0o750

_log = logging.getLogger(__name__)


def restrict_umask() -> None:
    """Set the process's umask to 027 (inherited by every job and subprocess it starts)."""
    os.umask(UMASK)


def top_dirs(config: dict[str, Any]) -> list[Path]:
    """The folders the project writes below: vault, work and every server's raw_dir."""
    dirs = [config["vault_dir"], config["work_dir"], *(s["raw_dir"] for s in config["servers"])]
    return list(dict.fromkeys(Path(d) for d in dirs))


def secure_dirs(config: dict[str, Any]) -> list[str]:
    """Create the top folders if missing; make them 0750 (2750 with ``file_group``).

    Returns problems (a folder owned by someone else, a group the user is not in) as messages
    for the caller to print: a folder this user cannot change is not a reason to stop a run.
    """
    group = config.get("file_group")
    gid = -1
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid if isinstance(group, str) else int(group)
        except KeyError:
            return [f"file_group: no group named {group!r}; folders left as they are"]
    problems = []
    for d in top_dirs(config):
        try:
            d.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            if gid >= 0 and d.stat().st_gid != gid:
                os.chown(d, -1, gid)
            mode = DIR_MODE | (stat.S_ISGID if gid >= 0 else 0)
            if stat.S_IMODE(d.stat().st_mode) != mode:
                d.chmod(mode)
        except OSError as e:
            problems.append(f"cannot set the group or mode of {d}: {e.strerror}")
    for p in problems:
        _log.warning(p)
    return problems
