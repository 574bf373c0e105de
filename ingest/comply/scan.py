"""What a comply pass asks X about, and where the answers land in the vault.

The vault's tweet IDs come from the hours' IDs files, the author IDs from their users files
(one row per author of the hour); IDs a day's compliance log already holds are not asked
again (a deleted post stays deleted). The answers are then located: each complied post in the
hours whose IDs file holds it, each complied account in the hours whose users file lists it
(and that account's posts in those hours, logged as posts with the account's action); that
gives each day's new log entries and the hours to rewrite.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ingest import complied
from ingest.complied import Entry
from ingest.comply.rewrite import csv_rows, id_author
from ingest.hours.vault_source import VaultError, xz_lines
from ingest.layout import Hour, vault_paths
from ingest.vault import records
from ingest.vault.manifest import is_day
from ingest.vault.records import HourRecord


def vault_days(vault_dir: Path, newest: int | None = None) -> list[str]:
    """The vault's day folders, all or the newest ``newest``."""
    try:
        days = sorted(p.name for p in Path(vault_dir).iterdir() if is_day(p.name) and p.is_dir())
    except FileNotFoundError:
        return []
    return days[-newest:] if newest else days


def day_hours(vault_dir: Path, day: str) -> list[Hour]:
    """The day's hours with an intact record (the others are scrub's to repair first)."""
    found = records.day_records(Path(vault_dir) / day)
    return [Hour.parse(label) for label, r in sorted(found.items()) if isinstance(r, HourRecord)]


def _ids(path: Path) -> Iterator[int]:
    for line in xz_lines(path):
        line = line.strip()
        if line.isdigit():
            yield int(line)


def _authors(path: Path) -> Iterator[int]:
    lines = xz_lines(path)
    next(lines, None)  # the header
    for row in lines:
        head = row.split(b",", 1)[0].strip(b'"')
        if head.isdigit():
            yield int(head)


def tweet_ids(vault_dir: Path, days: Iterable[str]) -> Iterator[int]:
    """Every tweet ID of the days' hours not yet in their compliance logs."""
    for day in days:
        done = complied.for_day(vault_dir, day)
        for hour in day_hours(vault_dir, day):
            yield from (i for i in _ids(vault_paths(vault_dir, hour)["ids"]) if i not in done.posts)


def author_ids(vault_dir: Path, days: Iterable[str]) -> Iterator[int]:
    """Every author ID of the days' hours not yet in their compliance logs (repeats: the
    chunking sorts them out)."""
    for day in days:
        done = complied.for_day(vault_dir, day)
        for hour in day_hours(vault_dir, day):
            yield from (
                i for i in _authors(vault_paths(vault_dir, hour)["users"]) if i not in done.accounts
            )


def _posts_of(
    tweets: Path,
    users: set[int],
    posts: dict[int, tuple[str, str]],
    accounts: dict[int, tuple[str, str]],
) -> list[Entry]:
    """The complied accounts' posts in an hour's tweets file, with the account's action (as
    X's tweets jobs name a suspended author's posts): each post's log line tells every later
    build why its row is gone. A damaged file gives none: the rewrite refuses the hour, and
    the pass, kept open, lists them once the hour is repaired."""
    found = []
    try:
        for row in csv_rows(tweets):
            tid, author = id_author(row)
            if author in users and tid not in posts:
                found.append(Entry(tid, "tweets", *accounts[author]))
    except (VaultError, ValueError, IndexError):
        return []
    return found


@dataclass
class Located:
    """Per day: the log entries found, and the hours that hold a complied post or account."""

    entries: dict[str, list[Entry]] = field(default_factory=dict)
    hours: dict[str, list[Hour]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # hours whose files could not be read


def locate(
    vault_dir: Path,
    days: Iterable[str],
    posts: dict[int, tuple[str, str]],
    accounts: dict[int, tuple[str, str]],
) -> Located:
    """Where the complied ``posts`` and ``accounts`` ({ID: (action, job date)}) are."""
    out = Located()
    for day in days:
        entries: list[Entry] = []
        hours: list[Hour] = []
        for hour in day_hours(vault_dir, day):
            paths = vault_paths(vault_dir, hour)
            try:
                found = [Entry(i, "tweets", *posts[i]) for i in _ids(paths["ids"]) if i in posts]
                users = [i for i in _authors(paths["users"]) if i in accounts] if accounts else []
            except VaultError as e:
                out.errors.append(f"{e} (repair it: sampled-stream scrub)")
                continue
            found += [Entry(i, "users", *accounts[i]) for i in users]
            if users:
                found += _posts_of(paths["tweets"], set(users), posts, accounts)
            if found:
                entries += found
                hours.append(hour)
        if entries:
            out.entries[day] = entries
        # An hour already rewritten still holds its complied IDs: it is found again (and then
        # left as it is). Hours of a day whose log already lists an account still need it.
        if hours:
            out.hours[day] = hours
    return out
