"""What one collector is told: its server's settings, read from the loaded config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ingest.collect.status import status_path
from ingest.config import server as server_config
from ingest.config import timezone


@dataclass(frozen=True)
class CollectorSettings:
    """What one collector is told. ``from_config`` reads the loaded config (its defaults are the
    schema's); the last four are not in the config: tests and the demo shorten them."""

    server: str
    raw_dir: Path
    tz: ZoneInfo
    stream_url: str
    backfill_minutes: int
    expansions: str
    tweet_fields: str
    user_fields: str
    stall_seconds: float
    alert_after_minutes: float
    status_file: Path | None
    keep_raw_days: float
    connect_timeout: float = 10.0
    backoff_scale: float = 1.0
    recovered_after_seconds: float = 120.0
    fsync: bool = True

    @classmethod
    def from_config(
        cls, config: dict[str, Any], server_name: str, **overrides: Any
    ) -> CollectorSettings:
        """``server_name``'s settings, ``overrides`` replacing any of them. Raises ConfigError."""
        srv = server_config(config, server_name)
        stream = config["stream"]
        chosen: dict[str, Any] = {
            "server": server_name,
            "raw_dir": Path(srv["raw_dir"]),
            "tz": timezone(config),
            "stream_url": stream["url"],
            "backfill_minutes": stream["backfill_minutes"],
            "expansions": stream["expansions"],
            "tweet_fields": stream["tweet_fields"],
            "user_fields": stream["user_fields"],
            "stall_seconds": float(stream["stall_seconds"]),
            "alert_after_minutes": config["email"]["alert_after_minutes"],
            "status_file": status_path(config, server_name),
            # Only a pulled server prunes itself: on the primary the workflow's retention deletes
            # a raw file once its tweets are in the vault, and age alone must not.
            "keep_raw_days": float(stream["keep_raw_days"]) if srv.get("rsync_from") else 0.0,
        }
        return cls(**{**chosen, **overrides})
