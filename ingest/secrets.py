"""Read secrets (bearer token, OSF token, SMTP password) from a file or an environment variable.

A secret file must be private to its owner: readable by group or others is refused, since a
leaked bearer token lets anyone use the account's stream.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class SecretError(ValueError):
    pass


def read_secret(file: str | Path | None, env_var: str, what: str) -> str:
    """The secret from ``file`` (checked) if given, else from ``env_var``; never logged."""
    if file:
        path = Path(file)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise SecretError(f"{what}: file {path} does not exist") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretError(
                f"{what}: file {path} is accessible by group or others "
                f"(mode {stat.filemode(mode)}); run: chmod 600 {path}"
            )
        value = path.read_text(encoding="utf-8").strip()
        if not value:
            raise SecretError(f"{what}: file {path} is empty")
        return value
    value = os.environ.get(env_var, "").strip()
    if not value:
        raise SecretError(
            f"{what}: set the config's file key or the environment variable {env_var}"
        )
    return value
