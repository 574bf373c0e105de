"""What successive pulls of one secondary remember: ``{state_dir}/rsync_{name}.json``.

Written by the pull (``ingest.pull.rsync``), read by the plan (``ingest.hours.plan``): how
long a secondary has been unreachable decides whether its hours wait for it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from ingest.atomic import atomic_write_json

_log = logging.getLogger(__name__)


@dataclass
class PullState:
    """What successive pulls of one server remember (persisted as JSON)."""

    first_failure: str | None = None  # ISO instant; start of the current failing streak
    last_success: str | None = None
    last_error: str | None = None
    alerted_at: str | None = None  # when an "unreachable" mail went out for this streak

    @property
    def unreachable_since(self) -> datetime | None:
        return _parse(self.first_failure)

    @property
    def last_success_at(self) -> datetime | None:
        return _parse(self.last_success)


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def state_path(state_dir: Path, server_name: str) -> Path:
    return Path(state_dir) / f"rsync_{server_name}.json"


def load_state(state_dir: Path, server_name: str) -> PullState:
    path = state_path(state_dir, server_name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return PullState()
    except (OSError, ValueError) as e:
        _log.warning("ignoring unreadable pull state %s: %s", path, e)
        return PullState()
    known = PullState.__dataclass_fields__
    return PullState(**{k: v for k, v in data.items() if k in known})


def save_state(state_dir: Path, server_name: str, state: PullState) -> None:
    atomic_write_json(state_path(state_dir, server_name), asdict(state))
