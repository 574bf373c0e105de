"""A built hour's tweets file as one more source of the hourly merge (issue 10).

When minute files arrive late for an hour already in the vault (the secondary back after the
primary's raw files of the hour were deleted), ``ingest.hours.hourly.build_hour`` merges them
into it: the old ``{hour}_tweets.csv.xz`` is read like one more server, ranked after every
real one, its rows turned into the intermediate lines of ``ingest.hours.minutes`` (see its
docstring), so the merge and its rules stay as they are:

- tweets: ``{id:020d}\\t{retrieved key}\\t{label}\\t{row}``, the row exactly as in the file
  (already one row per ID in ascending ID order: streamed, one line in memory);
- users: ``{author_id:020d}\\t{created key}\\t{id:020d}\\t{retrieved key}\\t{label}\\t{users row}``
  with the users row made of the tweet row's ``author_id``, ``lang`` and author columns
  (``ingest.hours.parse.USER_COLUMNS``), for rows that have an author.

The CSV holds retrieved_at and created_at to the second. A vault row's retrieved key is the
last microsecond of its second: a current copy retrieved in the same second sorts before it
(and at the very same key the vault's rank is last), so a current input's copy wins a tie and
a rebuild while the old build's inputs are all there gives the same bytes as one without the
vault. Its created key is the second's start (the API's created_at has no fraction).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ingest.hours.minutes import ID_W, T_KEY_END, U_KEY_END
from ingest.hours.parse import AUTHOR_START, TWEET_COLUMNS, format_row

HEADER = format_row(TWEET_COLUMNS).encode() + b"\n"
# An unreadable retrieved_at (not written by this project): after every real copy.
LAST_KEY = "9999-12-31T23:59:59.999999+00:00"
N_COLUMNS = len(TWEET_COLUMNS)
CREATED = TWEET_COLUMNS.index("created_at")
RETRIEVED = TWEET_COLUMNS.index("retrieved_at")
LANG = TWEET_COLUMNS.index("lang")
AUTHOR_ID = TWEET_COLUMNS.index("author_id")


class VaultError(ValueError):
    """A built hour's file that cannot be read as its tweets: nothing is written."""


def _xz() -> str:
    xz = shutil.which("xz")
    if xz is None:
        raise VaultError("the xz program is not installed (apt-get install xz-utils)")
    return xz


def xz_lines(path: Path) -> Iterator[bytes]:
    """The lines of an .xz file, streamed from ``xz -dc``; ``VaultError`` naming it if broken.

    The error comes after the lines xz could decompress: a caller that writes as it reads
    must not keep what it wrote (the hourly merge aborts its temporary files).
    """
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [_xz(), "-dc", "--", str(path)], stdout=subprocess.PIPE, stderr=err, bufsize=1 << 20
        )
        try:
            yield from proc.stdout
            code = proc.wait()
        finally:
            if proc.poll() is None:  # the reader stopped early (an error elsewhere)
                proc.kill()
                proc.wait()
            proc.stdout.close()
        if code != 0:
            err.seek(0)
            msg = err.read().decode("utf-8", "replace").strip()
            raise VaultError(f"{path}: cannot read the built hour's tweets (xz: {msg})")


def xz_uncompressed_size(path: Path) -> int | None:
    """The uncompressed size of an .xz file from its index (no decompression); None if unknown."""
    try:
        out = subprocess.run(
            [_xz(), "--robot", "--list", "--", str(path)], capture_output=True, check=True
        ).stdout
    except (subprocess.CalledProcessError, OSError):
        return None
    for line in out.decode("utf-8", "replace").splitlines():
        fields = line.split("\t")
        if fields[0] == "totals" and len(fields) > 4 and fields[4].isdigit():
            return int(fields[4])
    return None


def xz_readable(path: Path) -> bool:
    """Whether ``xz -t`` reads the whole file without error."""
    return subprocess.run([_xz(), "-tq", "--", str(path)], capture_output=True).returncode == 0


def csv_time_key(value: str, fraction: str) -> str | None:
    """The CSV's ``YYYY-mm-dd HH:MM:SS+00:00`` -> fixed-width key with ``fraction``; None if not."""
    if len(value) == 25 and value[10] == " " and value.endswith("+00:00"):
        return f"{value[:10]}T{value[11:19]}{fraction}+00:00"
    return None


def _fields(row: bytes, where: str) -> list[str]:
    # Free text (text, names, location) may hold quoted commas and "": a real CSV parser.
    fields = next(csv.reader([row.decode("utf-8", "surrogateescape")]), [])
    if len(fields) != N_COLUMNS:
        raise VaultError(f"{where}: {len(fields)} fields, not {N_COLUMNS}")
    return fields


def _id_and_retrieved(row: bytes, where: str) -> tuple[bytes, str]:
    """The row's ID and retrieved_at. The first five columns are IDs and timestamps that the
    parser quotes only if the data held something odd: split on commas when none is quoted."""
    parts = row.split(b",", RETRIEVED + 1)
    if len(parts) == RETRIEVED + 2 and not any(b'"' in p for p in parts[: RETRIEVED + 1]):
        return parts[0], parts[RETRIEVED].decode("ascii", "replace")
    fields = _fields(row, where)
    return fields[0].encode("utf-8", "surrogateescape"), fields[RETRIEVED]


class VaultSource:
    """The old tweets file of ``label`` as a merge source of rank ``rank`` (after the servers).

    ``mask``: the servers (bits by config order) its rows count for, OR-ed with the bits of
    the servers whose current copies the merge finds (see ``ingest.hours.hourly.build_hour``).
    """

    def __init__(self, tweets: Path, label: str, rank: int, mask: int = 0) -> None:
        self.path = Path(tweets)
        self.label = label
        self.rank = rank
        self.mask = mask

    def _rows(self) -> Iterator[tuple[int, bytes]]:
        """(line number, row) of the file's rows after the header, checked for ascending IDs."""
        lines = xz_lines(self.path)
        try:
            header = next(lines, b"")
            if header != HEADER:
                raise VaultError(f"{self.path}: not an hour's tweets CSV (header {header[:80]!r})")
            for n, row in enumerate(lines, 2):
                yield n, row if row.endswith(b"\n") else row + b"\n"
        finally:
            lines.close()

    def tweet_lines(self) -> Iterator[tuple[bytes, int, bytes]]:
        """(sort key, rank, intermediate line) of every row, in the merge's order."""
        label = self.label.encode()
        prev = -1
        for n, row in self._rows():
            where = f"{self.path}:{n}"
            tid, retrieved = _id_and_retrieved(row, where)
            if not (tid.isdigit() and len(tid) <= ID_W) or int(tid) <= prev:
                raise VaultError(f"{where}: ID {tid[:40]!r} not a number above the row before's")
            prev = int(tid)
            rkey = csv_time_key(retrieved, ".999999") or LAST_KEY
            line = b"%b\t%b\t%b\t%b" % (tid.zfill(ID_W), rkey.encode(), label, row)
            yield line[:T_KEY_END], self.rank, line

    def user_lines(self) -> Iterator[tuple[bytes, int, bytes]]:
        """(sort key, rank, intermediate line) of a users line per row with an author.

        Sorted in memory: an hour's rows at the 1 % rate are some 60 MB (ten times that at
        10 %). Runs on the first ``next``, so in the users merge's thread.
        """
        lines = []
        for n, row in self._rows():
            fields = _fields(row, f"{self.path}:{n}")
            aid, author = fields[AUTHOR_ID], fields[AUTHOR_START:]
            created = csv_time_key(fields[CREATED], ".000000")
            # As ingest.hours.minutes: no users line without an author (all its columns
            # empty) or a numeric author ID.
            if not any(author) or not (aid.isdigit() and aid.isascii() and len(aid) <= ID_W):
                continue
            if created is None:
                continue
            aid = str(int(aid))
            rkey = csv_time_key(fields[RETRIEVED], ".999999") or LAST_KEY
            user_row = format_row([aid, fields[LANG], *author])
            text = (
                f"{aid.zfill(ID_W)}\t{created}\t{fields[0].zfill(ID_W)}\t{rkey}\t"
                f"{self.label}\t{user_row}\n"
            )
            lines.append(text.encode("utf-8", "surrogateescape"))
        lines.sort()
        for line in lines:
            yield line[:U_KEY_END], self.rank, line
