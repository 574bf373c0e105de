"""What a comply pass asks X about, and where the answers land in the vault.

The vault's tweet IDs come from the hours' IDs files, the author IDs from their tweets files'
``author_id`` column (not the users files: a post that came without its author's user object
has no users row, and its account must be asked about all the same); IDs a day's compliance
log already holds are not asked again (a deleted post stays deleted). The answers are then
located: each complied post in the hours whose IDs file holds it, each complied account in the
hours whose tweets file has its posts (logged as posts with the account's action); that gives
each day's new log entries and the hours to rewrite.
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
    """The day's hours with a record, intact or damaged: a damaged one's IDs are asked about
    all the same, and its rewrite waits until scrub repaired it (the pass stays open)."""
    return [Hour.parse(label) for label in sorted(records.day_records(Path(vault_dir) / day))]


def _ids(path: Path) -> Iterator[int]:
    for line in xz_lines(path):
        line = line.strip()
        if line.isdigit():
            yield int(line)


def _authors(hour_files: dict[str, Path]) -> list[int]:
    """The author_id of every row of an hour's tweets file (repeats included). A damaged
    tweets file (the rewrite refuses its hour until it is repaired) gives its users file's
    authors: a post that came without its user object waits for the next pass."""
    try:
        return [a for a in (id_author(row)[1] for row in csv_rows(hour_files["tweets"])) if a]
    except (VaultError, ValueError, IndexError):
        lines = xz_lines(hour_files["users"])
        next(lines, None)  # the header
        heads = (row.split(b",", 1)[0].strip(b'"') for row in lines)
        return [int(h) for h in heads if h.isdigit()]


def tweet_ids(vault_dir: Path, days: Iterable[str]) -> Iterator[int]:
    """Every tweet ID of the days' hours not yet in their compliance logs."""
    for day in days:
        done = complied.for_day(vault_dir, day)
        for hour in day_hours(vault_dir, day):
            try:
                ids = list(_ids(vault_paths(vault_dir, hour)["ids"]))
            except VaultError:  # damaged: its hour is named by ``locate``; the next pass asks
                continue
            yield from (i for i in ids if i not in done.posts)


def author_ids(vault_dir: Path, days: Iterable[str]) -> Iterator[int]:
    """Every author ID of the days' hours not yet in their compliance logs (repeats: the
    chunking sorts them out)."""
    for day in days:
        done = complied.for_day(vault_dir, day)
        for hour in day_hours(vault_dir, day):
            try:
                authors = _authors(vault_paths(vault_dir, hour))
            except VaultError:  # as in ``tweet_ids``
                continue
            yield from (i for i in authors if i not in done.accounts)


def _posts_of(
    tweets: Path, posts: dict[int, tuple[str, str]], accounts: dict[int, tuple[str, str]]
) -> tuple[list[int], list[Entry]]:
    """The complied accounts with posts in an hour's tweets file, and those posts with the
    account's action (as X's tweets jobs name a suspended author's posts): each post's log
    line tells every later build why its row is gone. A damaged file gives none: the rewrite
    refuses the hour, and the pass, kept open, lists them once the hour is repaired."""
    users: dict[int, None] = {}
    found = []
    try:
        for row in csv_rows(tweets):
            tid, author = id_author(row)
            if author in accounts:
                users[author] = None
                if tid not in posts:
                    found.append(Entry(tid, "tweets", *accounts[author]))
    except (VaultError, ValueError, IndexError):
        return [], []
    return sorted(users), found


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
        found_records = records.day_records(Path(vault_dir) / day)
        for hour in day_hours(vault_dir, day):
            paths = vault_paths(vault_dir, hour)
            if not isinstance(found_records.get(hour.label), HourRecord):
                # Not rewritten until repaired: the pass stays open for it.
                out.errors.append(
                    f"{found_records.get(hour.label)} (repair it: sampled-stream scrub)"
                )
                continue
            try:
                found = [Entry(i, "tweets", *posts[i]) for i in _ids(paths["ids"]) if i in posts]
            except VaultError as e:
                out.errors.append(f"{e} (repair it: sampled-stream scrub)")
                continue
            if accounts:
                users, theirs = _posts_of(paths["tweets"], posts, accounts)
                found += [Entry(i, "users", *accounts[i]) for i in users] + theirs
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
