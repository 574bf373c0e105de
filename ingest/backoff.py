"""Back-off across runs: a task that failed (an OSF upload) waits before the next run retries it.

The state is one small JSON file per task (attempts, the next attempt's time, the last error),
written by the job that failed and read by the plan, which leaves out tasks not due yet. The
wait starts at ``FIRST`` and doubles with each failure up to ``LONGEST``: an outage of a day
costs a task a handful of attempts, not one every run. Success removes the file.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ingest.atomic import atomic_write_json

FIRST = timedelta(minutes=10)
LONGEST = timedelta(hours=6)


def read(path: Path) -> dict[str, Any]:
    """The task's state; {} when it never failed (or its file is unreadable: then retry)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        datetime.fromisoformat(state["next_attempt"])
        return state
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def is_due(path: Path, now: datetime) -> bool:
    state = read(path)
    return not state or datetime.fromisoformat(state["next_attempt"]) <= now


def wait_after(failures: int) -> timedelta:
    """How long to wait after the ``failures``-th failure in a row (1 or more)."""
    return min(LONGEST, FIRST * 2 ** min(failures - 1, 16))


def record_failure(path: Path, now: datetime, error: str) -> dict[str, Any]:
    """Count a failed attempt and set when the next may be made; returns the new state."""
    attempts = read(path).get("attempts", 0) + 1
    wait = wait_after(attempts)
    state = {
        "attempts": attempts,
        "last_attempt": now.isoformat(),
        "next_attempt": (now + wait).isoformat(),
        "last_error": error[:500],
    }
    atomic_write_json(path, state)
    return state


def clear(path: Path) -> None:
    path.unlink(missing_ok=True)
