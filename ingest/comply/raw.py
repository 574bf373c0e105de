"""The raw minute files still held (retention keeps them until every replica has their hours):
the lines of complied posts and accounts go (``ingest.complied.scrub_bytes``).

Each file that holds one is written again under a temporary name, fsynced and renamed
(``atomic_write``): killed at any point, the file is the old one or the new one, and the next
pass does the rest. Its size changes, so the next workflow run parses it again and rebuilds
its hours, which consult the same logs: the vault keeps what the rewrite gave it (an imported
server's hours are marked changed for that, ``ingest.changed_hours``: its raw_dir is not
walked).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from ingest.atomic import atomic_write
from ingest.complied import DayCache, scrub_bytes
from ingest.layout import Hour

_log = logging.getLogger(__name__)


@dataclass
class RawScrub:
    files: int = 0  # files written again
    lines: int = 0  # lines dropped or written without a complied post or account
    rewritten: list[str] = field(default_factory=list)
    hours: dict[str, set[Hour]] = field(default_factory=dict)  # server -> hours of those files


def _minute_files(raw_dir: Path, day: str) -> list[Path]:
    folder = raw_dir / day
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.glob("[0-2][0-9]/*.jsonl") if p.is_file() and not p.is_symlink()
    )


def scrub_raw(
    raw_dirs: Iterable[tuple[str, Path]],
    vault_dir: Path,
    days: Iterable[str],
    log: logging.Logger | None = None,
) -> RawScrub:
    """Rewrite the minute files of ``days`` (and of the day after each: its first minutes
    hold tweets of the day's last hour) in every (server, raw dir) without the complied
    lines."""
    log = log or _log
    cache = DayCache(vault_dir)
    wanted = set()
    for day in days:
        wanted |= {day, (date.fromisoformat(day) + timedelta(days=1)).isoformat()}
    out = RawScrub()
    for server, raw_dir in raw_dirs:
        for day in sorted(wanted):
            for path in _minute_files(Path(raw_dir), day):
                c = cache.for_minute_file(path)
                if not c:
                    continue
                data = path.read_bytes()
                new, changed = scrub_bytes(data, c)
                if changed:
                    atomic_write(path, new)
                    out.files += 1
                    out.lines += changed
                    out.rewritten.append(str(path))
                    hour = Hour(day, int(path.parent.name))
                    out.hours.setdefault(server, set()).add(hour)
    if out.files:
        log.info("raw minute files: %d rewritten, %d line(s) changed", out.files, out.lines)
    return out
