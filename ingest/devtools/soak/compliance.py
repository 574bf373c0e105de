"""The soak's verdict on deletion compliance (issue 24), from records the pass never writes.

The stand-in's answers are fixed by a hash (``ComplianceJobs.verdict`` with the stand-in's
seed) and its ledger names each tweet's author, so the soak knows, for every archived tweet,
whether the compliance passes must remove it: its own answer removes it (every reason but
``scrub_geo``: the hour's files hold no geo data), or its author's account has an answer.
The soak's last pass asked about everything the vault held, so at the end:

- no complied post is in a tweets file, no complied account in a users file, of any copy;
- no complied post is in a raw minute file the primary still holds;
- each day's ``{day}_compliance.tsv`` lists each ID once, only IDs the stand-in answered, and
  names every complied post (itself, or its author's account);
- no pass is left open (a killed pass was finished by a later one).

The other half (every tweet not complied is in the vault once, in its tweets file too) is
``ledger.check``'s, with ``unmatched_tweets`` given the complied posts.
"""

from __future__ import annotations

import csv
import io
import lzma
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ingest.devtools.compliance import ComplianceJobs

KEPT = {"scrub_geo"}  # an answer that removes nothing: the hour's files hold no geo data
LOG_SUFFIX = "_compliance.tsv"
LOG_HEADER = ["id", "type", "action", "job_date"]


@dataclass
class Expected:
    """What the stand-in's answers remove among the tweets it made."""

    posts: dict[str, str] = field(default_factory=dict)  # tweet ID -> reason
    accounts: dict[str, str] = field(default_factory=dict)  # author ID -> reason
    by_account: dict[str, str] = field(default_factory=dict)  # post -> its complied author

    @classmethod
    def of(
        cls, jobs: ComplianceJobs, made: Iterable[str], authors: dict[str, str | None]
    ) -> Expected:
        out = cls()
        for tweet_id in made:
            reason = jobs.verdict("tweets", tweet_id)
            author = authors.get(tweet_id)
            account = jobs.verdict("users", author) if author else None
            if account is not None:
                out.accounts[author] = account  # type: ignore[index]
                out.posts[tweet_id] = account
                out.by_account[tweet_id] = author  # type: ignore[assignment]
            elif reason is not None and reason not in KEPT:
                out.posts[tweet_id] = reason
        return out


@dataclass
class LogEntries:
    """Every day's compliance log on one copy: (day, id, type, action) rows and what is wrong
    with them (unreadable, a row that is no entry)."""

    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, root: Path) -> LogEntries:
        out = cls()
        for path in sorted(Path(root).glob(f"*/*{LOG_SUFFIX}")):
            day = path.name.removesuffix(LOG_SUFFIX)
            try:
                lines = list(csv.reader(io.StringIO(path.read_text()), delimiter="\t"))
            except (OSError, UnicodeDecodeError) as e:
                out.problems.append(f"{path}: unreadable ({e})")
                continue
            if not lines or lines[0] != LOG_HEADER:
                out.problems.append(f"{path}: no header {LOG_HEADER}")
                continue
            for n, row in enumerate(lines[1:], 2):
                if len(row) != 4 or not row[0].isdigit() or row[1] not in ("tweets", "users"):
                    out.problems.append(f"{path}:{n}: not an entry: {row}")
                    continue
                out.rows.append((day, row[0], row[1], row[2]))
        return out

    def ids(self, kind: str) -> set[str]:
        return {i for _, i, t, _ in self.rows if t == kind}


def log_problems(
    logs: LogEntries, expected: Expected, jobs: ComplianceJobs, archived: set[str]
) -> dict[str, list[str]]:
    """The primary's logs against the stand-in's answers (``expected``, over every tweet the
    stand-in made) and the tweets the vault's IDs files list (``archived``)."""
    twice = Counter((day, i, t) for day, i, t, _ in logs.rows)
    users = logs.ids("users")
    unanswered = sorted(
        f"{day}: {t} {i} ({action})"
        for day, i, t, action in logs.rows
        if (t == "tweets" and i not in expected.posts)
        or (t == "users" and jobs.verdict("users", i) is None)
    )
    logged_posts = logs.ids("tweets")
    return {
        "compliance logs unreadable or malformed": logs.problems,
        "IDs listed twice in a compliance log": sorted(
            f"{day}: {t} {i}" for (day, i, t), n in twice.items() if n > 1
        ),
        "compliance log entries the stand-in did not answer": unanswered,
        "complied posts no compliance log names": sorted(
            i
            for i in expected.posts
            if i in archived and i not in logged_posts and expected.by_account.get(i) not in users
        ),
    }


def ids_in_vault_files(root: Path, suffix: str) -> Iterator[tuple[Path, str]]:
    """(file, first column) of every row of every ``*{suffix}`` CSV file on a copy."""
    for path in sorted(Path(root).glob(f"*/*{suffix}")):
        try:
            text = lzma.decompress(path.read_bytes()).decode()
        except (OSError, lzma.LZMAError, UnicodeDecodeError):
            continue  # unreadable: ``read_vault`` and the copies' checks say so
        for row in list(csv.reader(io.StringIO(text)))[1:]:
            if row:
                yield path, row[0]


def copies_problems(copies: dict[str, Path], expected: Expected) -> dict[str, list[str]]:
    """Complied posts in a tweets file, complied accounts in a users file, on any copy."""
    posts, accounts = [], []
    for location, root in copies.items():
        posts += [
            f"{location}: {p.name}: {i}"
            for p, i in ids_in_vault_files(root, "_tweets.csv.xz")
            if i in expected.posts
        ]
        accounts += [
            f"{location}: {p.name}: {i}"
            for p, i in ids_in_vault_files(root, "_users.csv.xz")
            if i in expected.accounts
        ]
    return {
        "complied posts still in a tweets file": posts,
        "complied accounts still in a users file": accounts,
    }


def raw_problems(raw_dirs: Iterable[Path], expected: Expected) -> list[str]:
    """Complied posts in a raw minute file the primary still holds (the pass rewrites them)."""
    out = []
    for root in raw_dirs:
        for dirpath, _dirs, files in os.walk(root):
            for name in (n for n in files if n.endswith(".jsonl")):
                path = os.path.join(dirpath, name)
                try:
                    data = Path(path).read_bytes()
                except OSError:
                    continue
                out += [f"{path}: {i}" for i in _ids(data) if i in expected.posts]
    return sorted(out)


def _ids(data: bytes) -> Iterator[str]:
    for line in data.splitlines():
        try:
            tweet_id = orjson.loads(line)["data"]["id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        if isinstance(tweet_id, str):
            yield tweet_id


def compliance_problems(
    jobs: ComplianceJobs,
    expected: Expected,
    copies: dict[str, Path],
    primary: str,
    raw_dirs: Iterable[Path],
    archived: set[str],
    open_pass: str | None,
) -> dict[str, list[str]]:
    """Every compliance check, problem -> items. ``open_pass``: why a pass is still open (its
    state left at the end, or the last pass failed), or None."""
    out = log_problems(LogEntries.read(copies[primary]), expected, jobs, archived)
    out |= copies_problems(copies, expected)
    out["complied posts in the primary's raw files"] = raw_problems(raw_dirs, expected)
    out["compliance pass left open"] = [open_pass] if open_pass else []
    return out
