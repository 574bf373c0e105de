"""The complied IDs: posts and accounts removed for X's compliance, which nothing may bring back.

``sampled-stream comply`` (``ingest.comply``) writes each day's ``{day}/{day}_compliance.tsv``
in the vault: one line per affected ID, ``id  type  action  job_date`` (``type``: ``tweets``
for a post, ``users`` for an account; ``action``: the compliance result's reason, e.g.
``deleted``, ``protected``, ``suspended``, ``deactivated``; ``job_date``: the day the job ran).
IDs only, no content. The log is the state: every later build of an hour, pull of a
secondary's minute file and import consults the log of the day concerned (``for_day``, a set
loaded per day: a day at 1 % with a few % complied is some 10**5 IDs), so nothing removed
comes back. Days without a log cost one failed ``open``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

SUFFIX = "_compliance.tsv"
HEADER = "id\ttype\taction\tjob_date\n"
TYPES = ("tweets", "users")


class ComplianceLogError(ValueError):
    """A compliance log that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Entry:
    id: int
    type: str  # tweets or users
    action: str
    job_date: str

    def line(self) -> str:
        return f"{self.id}\t{self.type}\t{self.action}\t{self.job_date}\n"


@dataclass
class Complied:
    """The complied posts and accounts of some days: ID -> action."""

    posts: dict[int, str] = field(default_factory=dict)
    accounts: dict[int, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.posts or self.accounts)

    def action(self, tweet_id: int, author_id: int | None) -> str | None:
        """Why the post ``tweet_id`` by ``author_id`` must not be kept; None: keep it."""
        found = self.posts.get(tweet_id)
        if found is None and author_id is not None:
            found = self.accounts.get(author_id)
        return found

    def update(self, other: Complied) -> None:
        self.posts.update(other.posts)
        self.accounts.update(other.accounts)


def log_path(vault_dir: str | Path, day: str) -> Path:
    return Path(vault_dir) / day / f"{day}{SUFFIX}"


def read_log(path: str | Path) -> list[Entry]:
    """The entries of a compliance log; [] when there is none."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except UnicodeDecodeError:
        raise ComplianceLogError(f"{path}: not UTF-8 text") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if number == 1 and line + "\n" == HEADER or not line:
            continue
        parts = line.split("\t")
        if len(parts) != 4 or not parts[0].isdigit() or parts[1] not in TYPES:
            raise ComplianceLogError(f"{path}: line {number} is not 'id type action job_date'")
        out.append(Entry(int(parts[0]), parts[1], parts[2], parts[3]))
    return out


def format_log(entries: Iterable[Entry]) -> str:
    """The log's text: each (ID, type) once (the first entry wins), in ID order."""
    unique: dict[tuple[int, str], Entry] = {}
    for e in entries:
        unique.setdefault((e.id, e.type), e)
    return HEADER + "".join(unique[k].line() for k in sorted(unique))


def from_entries(entries: Iterable[Entry]) -> Complied:
    out = Complied()
    for e in entries:
        (out.posts if e.type == "tweets" else out.accounts).setdefault(e.id, e.action)
    return out


def for_day(vault_dir: str | Path, day: str) -> Complied:
    """The complied IDs of ``day``'s log (empty without one)."""
    return from_entries(read_log(log_path(vault_dir, day)))


def for_days(vault_dir: str | Path, days: Iterable[str]) -> Complied:
    out = Complied()
    for day in days:
        out.update(for_day(vault_dir, day))
    return out


def around(vault_dir: str | Path, day: str) -> Complied:
    """The complied IDs a minute file of ``day`` may hold: its day's and the day before's (a
    minute just after midnight holds tweets of the day before's last hour)."""
    before = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    return for_days(vault_dir, [before, day])


def counts(entries: Iterable[Entry]) -> dict[str, int]:
    """{action: IDs} of a log's entries."""
    return dict(sorted(Counter(e.action for e in entries).items()))


# --- raw lines -------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _hidden(tweet: Any, c: Complied) -> bool:
    return (
        isinstance(tweet, dict)
        and c.action(_int(tweet.get("id")) or -1, _int(tweet.get("author_id"))) is not None
    )


def scrub_line(line: bytes, c: Complied) -> bytes | None:
    """``line`` (a raw minute file's line) without what ``c`` removes: None when the line's
    own post is complied (a stream line, a flattened tweet); a response page or a line whose
    ``includes`` hold complied posts or accounts is written again without them. Every other
    line, and any line that is not JSON, is returned as it is (the same object)."""
    if not c or not line.strip():
        return line
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    if not isinstance(obj, dict):
        return line
    data = obj.get("data") if "data" in obj else (obj if "id" in obj else None)
    if isinstance(data, dict) and _hidden(data, c):
        return None
    changed = False
    if isinstance(data, list):
        kept = [t for t in data if not _hidden(t, c)]
        if not kept:
            return None
        if len(kept) != len(data):
            obj["data"], changed = kept, True
    includes = obj.get("includes")
    if isinstance(includes, dict):
        for key, hidden in (
            ("tweets", lambda t: _hidden(t, c)),
            ("users", lambda u: isinstance(u, dict) and _int(u.get("id")) in c.accounts),
        ):
            items = includes.get(key)
            if isinstance(items, list):
                kept = [x for x in items if not hidden(x)]
                if len(kept) != len(items):
                    includes[key], changed = kept, True
    if not changed:
        return line
    return orjson.dumps(obj) + (b"\n" if line.endswith(b"\n") else b"")


def scrub_bytes(data: bytes, c: Complied) -> tuple[bytes, int]:
    """A minute file's content without what ``c`` removes: (new content, lines dropped or
    rewritten). The content itself (the same object) when nothing changes."""
    if not c:
        return data, 0
    out, changed = [], 0
    for line in data.splitlines(keepends=True):
        new = scrub_line(line, c)
        if new is not line:
            changed += 1
        if new is not None:
            out.append(new)
    return (b"".join(out), changed) if changed else (data, 0)


class DayCache:
    """The complied IDs for minute files, a day's logs read once (a pull or an import places
    many minute files of the same days)."""

    def __init__(self, vault_dir: str | Path | None) -> None:
        self.vault_dir = Path(vault_dir) if vault_dir else None
        self._days: dict[str, Complied] = {}

    def for_minute_file(self, path: Path) -> Complied:
        """The complied IDs a minute file ``{raw_dir}/{day}/{HH}/…`` may hold (``around``)."""
        day = path.parent.parent.name
        if self.vault_dir is None or not _is_day(day):
            return Complied()
        if day not in self._days:
            self._days[day] = around(self.vault_dir, day)
        return self._days[day]


def _is_day(name: str) -> bool:
    try:
        return len(name) == 10 and date.fromisoformat(name).isoformat() == name
    except ValueError:
        return False
