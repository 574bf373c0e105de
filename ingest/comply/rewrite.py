"""A complied hour's next generation: its tweets and users without the complied posts and
accounts, its IDs file as it was (issue 24).

The rewrite reads the hour's files as its record names them (a file that differs from its
record is refused: scrub or restore it first), streams the tweets through ``xz -dc`` twice
(first the rows to remove and their authors, then the rows to keep) and writes the new tweets
and users files and stats through the vault's commit (``records.commit_hour``: journalled,
the record last, one generation up). A user row is dropped for a complied account; for an
author who lost a post but not the account, it is made again from their latest remaining
tweet of the hour, exactly as the hourly merge would (``hours.vault_source``'s users lines),
or dropped when none remains. The IDs file is not touched: the terms allow sharing IDs, and
OSF keeps its copy. The stats gain ``complied`` (action -> rows removed) and their ``users``
follow the new users file; everything else stays.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from ingest.atomic import StagedFile, XzWriter, remove_stale_temps
from ingest.complied import Complied
from ingest.hours.compression import tweets_writer, users_writer
from ingest.hours.parse import AUTHOR_START, TWEET_COLUMNS, USER_COLUMNS, format_row
from ingest.hours.stats import read_stats
from ingest.hours.vault_source import xz_lines, xz_uncompressed_size
from ingest.layout import Hour, vault_paths
from ingest.vault import records
from ingest.vault.records import FileEntry, HourRecord

_log = logging.getLogger(__name__)

TWEETS_HEADER = format_row(TWEET_COLUMNS).encode() + b"\n"
USERS_HEADER = format_row(USER_COLUMNS).encode() + b"\n"
CREATED = TWEET_COLUMNS.index("created_at")
LANG = TWEET_COLUMNS.index("lang")


class RewriteError(ValueError):
    """An hour that cannot be rewritten (no record, files that differ from it); names it."""


@dataclass
class Rewritten:
    hour: str
    generation: int
    removed: dict[str, int]  # action -> tweets rows removed
    users_removed: int
    tweets_left: int


def _fields(row: bytes) -> list[str]:
    return next(csv.reader([row.decode("utf-8", "surrogateescape")]), [])


def id_author(row: bytes) -> tuple[int, int | None]:
    """A tweets row's ID and author_id (the first three columns are IDs, rarely quoted)."""
    parts = row.split(b",", 3)
    if len(parts) == 4 and b'"' not in parts[0] + parts[2]:
        head = parts
    else:
        head = [f.encode("utf-8", "surrogateescape") for f in _fields(row)[:3]]
    try:
        author = int(head[2]) if head[2] else None
    except ValueError:
        author = None
    return int(head[0]), author


def csv_rows(path: Path, header: bytes = TWEETS_HEADER) -> Iterator[bytes]:
    lines = xz_lines(path)
    try:
        first = next(lines, b"")
        if first != header:
            raise RewriteError(f"{path}: unexpected header {first[:80]!r}")
        for row in lines:
            yield row if row.endswith(b"\n") else row + b"\n"
    finally:
        lines.close()


def _user_row(fields: list[str]) -> bytes:
    """The users row the hourly merge makes from a tweets row (``hours.vault_source``)."""
    aid = str(int(fields[2]))
    return (format_row([aid, fields[LANG], *fields[AUTHOR_START:]]) + "\n").encode(
        "utf-8", "surrogateescape"
    )


def _checked_record(day_dir: Path, hour: Hour, names: list[str]) -> HourRecord:
    records.settle(day_dir, hour.label)
    record = records.read_record(day_dir / records.record_name(hour.label))
    if record is None:
        raise RewriteError(f"{hour}: no record; not rewritten (build it first)")
    for name in names:
        entry = record.files.get(name)
        if entry is None or not records.matches(day_dir / name, entry):
            raise RewriteError(
                f"{day_dir / name}: differs from its record (generation {record.generation}); "
                "not rewritten: repair it first (sampled-stream scrub)"
            )
    return record


def rewrite_hour(
    vault_dir: Path,
    hour: Hour,
    complied: Complied,
    *,
    xz_preset: int = 6,
    xz_threads: int = 2,
    log: logging.Logger | None = None,
) -> Rewritten | None:
    """Write the hour's next generation without what ``complied`` removes; None when it holds
    nothing to remove (nothing written)."""
    log = log or _log
    out = vault_paths(Path(vault_dir), hour)
    day_dir = out["stats"].parent
    record = _checked_record(day_dir, hour, [out[k].name for k in ("tweets", "users", "stats")])
    for path in out.values():  # a rewrite or build killed before its journal left them
        remove_stale_temps(path)

    # Pass 1: which rows go, and whose user rows must be made again.
    removed: Counter[str] = Counter()
    authors: set[int] = set()  # authors who lost a post but keep their account
    for row in csv_rows(out["tweets"]):
        tid, author = id_author(row)
        action = complied.action(tid, author)
        if action is not None:
            removed[action] += 1
            if author is not None and author not in complied.accounts:
                authors.add(author)
    if not removed:
        return None

    csv_bytes = xz_uncompressed_size(out["tweets"]) or 0
    tweets = tweets_writer(out["tweets"], xz_preset, xz_threads, csv_bytes)
    staged = [tweets]
    try:
        # Pass 2: the rows kept, and each affected author's latest remaining tweet.
        best: dict[int, tuple[str, int, bytes]] = {}
        kept = 0
        tweets.write(TWEETS_HEADER)
        for row in csv_rows(out["tweets"]):
            tid, author = id_author(row)
            if complied.action(tid, author) is not None:
                continue
            tweets.write(row)
            kept += 1
            if author in authors:
                fields = _fields(row)
                key = (fields[CREATED], tid)
                if author not in best or key > best[author][:2]:
                    best[author] = (*key, _user_row(fields))
        tweets.end_input()

        users = users_writer(out["users"], xz_preset)
        staged.append(users)
        n_users, users_removed = _write_users(out["users"], users, complied, authors, best)
        tweets.finish()
        users.finish()

        stats = read_stats(out["stats"])
        stats["complied"] = dict(sorted((Counter(stats.get("complied") or {}) + removed).items()))
        stats["users"] = n_users
        stats_file = StagedFile(
            out["stats"], orjson.dumps(stats, option=orjson.OPT_INDENT_2) + b"\n"
        )
        staged.append(stats_file)
        files = dict(record.files)
        files[out["tweets"].name] = FileEntry(tweets.sha256, tweets.size, kept)
        files[out["users"].name] = FileEntry(users.sha256, users.size, n_users)
        files[out["stats"].name] = FileEntry(stats_file.sha256, stats_file.size)
        new = HourRecord(hour.label, record.generation + 1, dict(sorted(files.items())))
    except BaseException:
        for s in staged:
            s.abort()
        raise
    # Killed from here on, the journal names the temps: the next settle finishes the commit.
    records.commit_hour(day_dir, new, staged)
    log.info(
        "%s: generation %d without %d complied tweet(s) (%s) and %d user row(s)",
        hour,
        new.generation,
        sum(removed.values()),
        ", ".join(f"{a} {n}" for a, n in sorted(removed.items())),
        users_removed,
    )
    return Rewritten(hour.label, new.generation, dict(removed), users_removed, kept)


def _write_users(
    path: Path,
    users: XzWriter,
    complied: Complied,
    authors: set[int],
    best: dict[int, tuple[str, int, bytes]],
) -> tuple[int, int]:
    """The users file again: complied accounts' rows dropped, affected authors' rows made
    again from ``best`` (or dropped); (rows written, rows dropped)."""
    users.write(USERS_HEADER)
    n = dropped = 0
    for row in csv_rows(path, USERS_HEADER):
        head = row.split(b",", 1)[0].strip(b'"')
        author = int(head) if head.isdigit() else None
        if author in complied.accounts:
            dropped += 1
            continue
        if author in authors:
            if author not in best:
                dropped += 1
                continue
            row = best[author][2]
        users.write(row)
        n += 1
    users.end_input()
    return n, dropped
