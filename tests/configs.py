"""Configs for unit tests, made by the same loader as production (every schema default filled)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.config import validate_config


def loaded_config(root: str | Path = "/nonexistent", **sections: Any) -> dict[str, Any]:
    """A config with one server ``s1`` under ``root``, ``sections`` on top, through the loader."""
    root = Path(root)
    config: dict[str, Any] = {
        "timezone": "Europe/Berlin",
        "vault_dir": str(root / "vault"),
        "work_dir": str(root / "work"),
        "servers": [{"name": "s1", "raw_dir": str(root / "raw")}],
    }
    config.update(sections)
    return validate_config(config, "test config")


def email_config(**email: Any) -> dict[str, Any]:
    """A loaded ``email:`` section (``enabled`` false unless given)."""
    return loaded_config(email={"enabled": False, **email})["email"]
