"""Configs for unit tests, made by the same loader as production (every schema default filled)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ingest.config import validate_config


def minimal_config(root: str | Path, server: str = "s1", **sections: Any) -> dict[str, Any]:
    """The smallest valid config, one ``server`` under ``root``, ``sections`` on top; as a user
    writes it (no defaults filled)."""
    root = Path(root)
    return {
        "timezone": "Europe/Berlin",
        "vault_dir": str(root / "vault"),
        "work_dir": str(root / "work"),
        "servers": [{"name": server, "raw_dir": str(root / "raw")}],
        **sections,
    }


def config_file(root: Path, server: str = "s1", **sections: Any) -> Path:
    """``minimal_config`` written to ``root/config.yaml``."""
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(minimal_config(root, server, **sections)))
    return path


def loaded_config(root: str | Path = "/nonexistent", **sections: Any) -> dict[str, Any]:
    """A config with one server ``s1`` under ``root``, ``sections`` on top, through the loader."""
    return validate_config(minimal_config(root, **sections), "test config")


def email_config(**email: Any) -> dict[str, Any]:
    """A loaded ``email:`` section (``enabled`` false unless given)."""
    return loaded_config(email={"enabled": False, **email})["email"]
