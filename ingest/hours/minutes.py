"""Per-minute intermediates: one raw minute file -> sorted ``.tweets.tsv`` and ``.users.tsv``.

Both outputs start with one ``#`` line of JSON metadata (server, file, minute, line counts,
skipped lines by reason, CSV bytes of the tweet rows per hour label); every other line is a
tweet copy with fixed-width sort keys in front of its CSV row, sorted as bytes, so the hourly
merge is a plain ``heapq.merge`` of lines:

- tweets: ``{id:020d}\\t{retrieved_at key}\\t{hour label}\\t{20-column tweets CSV row}``
- users:  ``{author_id:020d}\\t{created_at key}\\t{id:020d}\\t{retrieved_at key}\\t{hour label}\\t
  {12-column users CSV row}``

Keys are fixed-width UTC ``YYYY-mm-ddTHH:MM:SS.ffffff+00:00``; labels ``YYYY-mm-dd_HH``.

Command line, for parsing by hand (the workflow's ``script:`` calls ``parse_many`` instead;
imports nothing heavier than orjson)::

    python -m ingest.hours.minutes --server S --timezone TZ --late-minutes N \
        RAW OUT_TWEETS OUT_USERS
    python -m ingest.hours.minutes --server S --timezone TZ --late-minutes N R1 T1 U1 R2 T2 U2 ...
    python -m ingest.hours.minutes --timezone TZ --late-minutes N --batch FILE   # or - for stdin
        (FILE: one "RAW OUT_TWEETS OUT_USERS [SERVER]" per line, tab or space separated)

Options: ``--log FILE`` appends skipped-line messages there (default stderr); ``--no-fsync``
skips the fsyncs (files still appear whole, but a power loss may leave an empty one). The exit
status is 1 when a file was skipped whole (see below), the others parsed all the same.

A raw file that cannot be read at all (not a regular file, a link, unreadable, a bad name) costs
only itself: it is skipped with a message in the log, and ``parse_many`` returns it with the
reason; no intermediates are written for it, so the next run tries it again.
"""

from __future__ import annotations

import argparse
import errno
import gc
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

import orjson

from ingest.atomic import atomic_write, remove_stale_temps
from ingest.hours.assign import HourAssigner
from ingest.hours.parse import DATE_TIME, UTC_TAILS, Copies, iter_lines, parse_line
from ingest.layout import Hour, Rejected, hour_bounds, hour_of, parse_minute_name

MAX_LOGGED = 20  # skipped-line messages per file; the rest are summed up in one line

# Fixed positions in an intermediate line (see the module docstring).
ID_W = 20
KEY_W = 32
LABEL_W = 13
T_KEY_END = ID_W + 1 + KEY_W  # tweets: sort key (id, retrieved) is line[:T_KEY_END]
T_LABEL = slice(T_KEY_END + 1, T_KEY_END + 1 + LABEL_W)
T_ROW = T_KEY_END + 1 + LABEL_W + 1
U_TWEET_END = ID_W + 1 + KEY_W + 1 + ID_W  # users: (author, created, id) is line[:U_TWEET_END]
U_KEY_END = U_TWEET_END + 1 + KEY_W  # ... and with retrieved: line[:U_KEY_END]
U_LABEL = slice(U_KEY_END + 1, U_KEY_END + 1 + LABEL_W)
U_ROW = U_KEY_END + 1 + LABEL_W + 1


@dataclass
class MinuteSummary:
    server: str
    file: str
    minute: datetime  # UTC start
    lines: int = 0
    tweets: int = 0
    users: int = 0
    keepalives: int = 0
    size: int = 0  # of the raw file as parsed: stats record it, a changed size means new data
    skipped: dict[str, int] = field(default_factory=dict)
    # Bytes of the tweets CSV rows by hour label: the hourly build sizes xz's blocks with them.
    row_bytes: dict[str, int] = field(default_factory=dict)
    # Parsed for one hour (a backfill's edge file): the lines passed over (``OtherHours``).
    passed_over: int | None = None

    def meta(self) -> dict:
        extra = {} if self.passed_over is None else {"passed_over": self.passed_over}
        return {
            "server": self.server,
            "file": self.file,
            "minute": self.minute.isoformat(),
            "lines": self.lines,
            "tweets": self.tweets,
            "keepalives": self.keepalives,
            "size": self.size,
            "skipped": dict(sorted(self.skipped.items())),
            "row_bytes": dict(sorted(self.row_bytes.items())),
            **extra,
        }


class SkipLog:
    """Logs ``<file>:<line>: <reason>``, at most ``cap`` per file, then a summary line."""

    def __init__(self, log, file: str, cap: int = MAX_LOGGED) -> None:
        self.log = log
        self.file = file
        self.cap = cap
        self.count = 0

    def __call__(self, lineno: int, reason: str) -> None:
        self.count += 1
        if self.count <= self.cap:
            emit(self.log, f"{self.file}:{lineno}: {reason}")

    def close(self) -> None:
        if self.count > self.cap:
            emit(self.log, f"{self.file}: {self.count - self.cap} more skipped lines not listed")


def emit(log, msg: str) -> None:
    """One message to a file object, a ``logging.Logger`` or nowhere (None)."""
    if log is None:
        return
    if hasattr(log, "warning"):  # a logging.Logger (not imported: start-up time)
        log.warning(msg)
    else:
        log.write(msg + "\n")


class UnusableInput(ValueError):
    """A raw file that is not parsed at all; the message says which and why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.rejected = Rejected(str(path), reason)


NOT_REGULAR = "not a regular file (link, folder or special)"


def open_raw(path: Path) -> BinaryIO:
    """A raw minute file opened for reading: a regular file only, never through a link.

    A FIFO would block the parse forever and a link to /dev/zero fill its memory, so neither is
    opened: lstat first, then O_NOFOLLOW (a link swapped in meanwhile fails with ELOOP) and
    O_NONBLOCK (a FIFO swapped in does not block), and fstat checks what was opened.
    """
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise UnusableInput(path, NOT_REGULAR)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        reason = NOT_REGULAR if e.errno == errno.ELOOP else f"cannot open: {e.strerror or e}"
        raise UnusableInput(path, reason) from e
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnusableInput(path, NOT_REGULAR)
        return os.fdopen(fd, "rb", buffering=1 << 20)
    except BaseException:
        os.close(fd)
        raise


# What follows a "created_at" key when the parser reads its value as it is (time_key's fast
# paths: the API's or twarc's UTC form); the value's first 16 characters are the key's minute.
CREATED_AT = b'"created_at"'
_UTC_VALUE = re.compile(
    rb':"(' + DATE_TIME.encode() + rb")(?:" + "|".join(UTC_TAILS).encode() + rb')"'
).match


class OtherHours:
    """Which lines of a minute file outside ``hour`` hold no copy that counts for it, told
    without parsing them: a backfill job parses the files around its hour (an eighth of its
    files) for the few late copies of its own tweets they hold.

    In a file outside the hour, a copy counts for it only when created in it
    (``ingest.hours.assign``). A line is passed over when each ``"created_at"`` in its bytes
    has a value the parser reads as is, none of them in the hour: a tweet's created_at is one
    of them, whatever the line's shape (a page's tweets too). A line with a created_at in any
    other form, with none, or with a ``\\u`` escape (which can spell the key) is parsed.
    """

    def __init__(self, hour: Hour, tz: ZoneInfo) -> None:
        bounds = hour_bounds(hour, tz)
        if bounds is None:
            raise ValueError(f"hour {hour} does not exist in {tz.key}")
        self.lo, self.hi = (t.strftime("%Y-%m-%dT%H:%M").encode() for t in bounds)

    def holds_none(self, raw: bytes) -> bool:
        if b"\\u" in raw:
            return False
        at = raw.find(CREATED_AT)
        if at < 0:
            return False
        while at >= 0:
            m = _UTC_VALUE(raw, at + len(CREATED_AT))
            if m is None or self.lo <= m[1][:16] < self.hi:
                return False
            at = raw.find(CREATED_AT, m.end())
        return True


def read_meta(path: str | Path) -> dict:
    """The ``#`` metadata line of an intermediate file."""
    with open(path, "rb") as f:
        first = f.readline()
    if not first.startswith(b"#"):
        raise ValueError(f"{path}: no metadata line")
    return orjson.loads(first[1:])


def parse_minute_file(
    raw_path: str | Path,
    out_tweets: str | Path,
    out_users: str | Path,
    server: str,
    tz: ZoneInfo,
    late_minutes: int,
    log=None,
    *,
    durable: bool = True,
    copies: Copies | None = None,
    for_hour: Hour | None = None,
) -> MinuteSummary:
    """Parse one raw minute file into its two sorted intermediates (written atomically).

    ``log``: a file object (``write``) or a ``logging.Logger`` for skipped lines.
    ``durable=False``: skip the fsyncs (the files are still renamed into place whole).
    ``copies``: shared with the files that hold the same tweets (the minute's other servers).
    ``for_hour``: only that hour's copies are wanted (a backfill job's own parse): a file
    outside it passes over the lines ``OtherHours`` finds without any (counted in the meta's
    ``passed_over``; the lines of other hours it parses are written as usual).
    Raises ``UnusableInput`` (nothing written) for a file that cannot be read at all.
    """
    # The parsed objects hold no cycles; the cyclic collector would only rescan the growing
    # lists of lines again and again (a third of the run time when it is left on).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _parse_minute_file(
            Path(raw_path),
            out_tweets,
            out_users,
            server,
            tz,
            late_minutes,
            log,
            durable,
            copies,
            for_hour,
        )
    finally:
        if gc_was_enabled:
            gc.enable()


# The per-line loop is the parser's hot path: it stays whole, its names bound once here.
def _parse_minute_file(
    raw_path: Path,
    out_tweets: str | Path,
    out_users: str | Path,
    server: str,
    tz: ZoneInfo,
    late_minutes: int,
    log,
    durable: bool,
    copies: Copies | None,
    for_hour: Hour | None,
) -> MinuteSummary:
    parse = copies.parse_line if copies is not None else parse_line  # alone: nothing to share
    summary, assigner = _start_minute(raw_path, out_tweets, out_users, server, tz, late_minutes)
    holds_none = None
    if for_hour is not None and hour_of(summary.minute, tz) != for_hour:
        holds_none = OtherHours(for_hour, tz).holds_none
        summary.passed_over = 0
    label_of = assigner.label
    file_key = assigner.file_key
    skip = SkipLog(log, str(raw_path))
    skipped = summary.skipped
    row_bytes = summary.row_bytes
    tweet_lines: list[bytes] = []
    user_lines: list[bytes] = []

    with open_raw(raw_path) as f:
        summary.size = os.fstat(f.fileno()).st_size
        try:
            for lineno, raw, unterminated in iter_lines(f):
                summary.lines += 1
                if holds_none is not None and holds_none(raw):
                    summary.passed_over += 1  # type: ignore[operator]
                    continue
                line = parse(raw, unterminated=unterminated, default_retrieved=file_key)
                kind = line.kind
                if kind != "tweets":
                    if kind == "keepalive":
                        summary.keepalives += 1
                    else:
                        skipped[line.reason] = skipped.get(line.reason, 0) + 1
                        skip(lineno, line.reason)
                    continue
                for reason in line.dropped:
                    skipped[reason] = skipped.get(reason, 0) + 1
                    skip(lineno, f"{reason} (one tweet of a page)")
                for t in line.tweets:
                    rkey = t.retrieved_key
                    try:
                        label = label_of(t.created_key, rkey)
                    # OverflowError: 9999-12-31T23:59:59.000Z, whose read window ends past 9999
                    except (ValueError, OverflowError):
                        skipped["bad_created_at"] = skipped.get("bad_created_at", 0) + 1
                        skip(lineno, "bad_created_at")
                        continue
                    tid = t.id_key
                    # Lines are built as bytes: encoding each piece once is about twice as fast
                    # as encoding the joined text (a single emoji makes a whole str 4 bytes a
                    # character). "replace": a lone surrogate (kept by the json fallback) must not
                    # stop the file.
                    author = t.author.encode("utf-8", "replace")
                    tweet_line = b"%b%b%b%b,%b\n" % (
                        f"{tid}\t{rkey}\t{label}\t".encode(),
                        t.head_pre.encode("utf-8", "replace"),
                        t.retrieved_csv.encode(),
                        t.head_post.encode("utf-8", "replace"),
                        author,
                    )
                    tweet_lines.append(tweet_line)
                    row_bytes[label] = row_bytes.get(label, 0) + len(tweet_line) - T_ROW
                    summary.tweets += 1
                    aid = t.author_id
                    if t.has_author and aid.isdigit() and aid.isascii() and len(aid) <= ID_W:
                        if aid[0] == "0":
                            aid = str(int(aid))
                        # The author columns are shared by the tweet row and the user row.
                        user_lines.append(
                            b"%b%b,%b\n"
                            % (
                                f"{aid.zfill(ID_W)}\t{t.created_key}\t{tid}\t{rkey}\t{label}\t{aid},".encode(),
                                t.lang.encode("utf-8", "replace"),
                                author,
                            )
                        )
        except OSError as e:  # a read error (EIO, ...) is the file's: only it is skipped
            raise UnusableInput(raw_path, f"cannot read: {e.strerror or e}") from e
    skip.close()
    summary.users = len(user_lines)
    _write_intermediates(summary, tweet_lines, user_lines, out_tweets, out_users, durable)
    return summary


def _start_minute(
    raw_path: Path,
    out_tweets: str | Path,
    out_users: str | Path,
    server: str,
    tz: ZoneInfo,
    late_minutes: int,
) -> tuple[MinuteSummary, HourAssigner]:
    """The file's empty summary and its minute's hour assigner; ``UnusableInput`` for a name
    that is not a minute file's."""
    minute = parse_minute_name(raw_path.name, tz)
    if minute is None:
        raise UnusableInput(raw_path, "not a minute file name")
    for out in (out_tweets, out_users):
        remove_stale_temps(out)  # left by a killed run; a running writer's temp is spared
    return MinuteSummary(server, str(raw_path), minute), HourAssigner(tz, late_minutes, minute)


def _write_intermediates(
    summary: MinuteSummary,
    tweet_lines: list[bytes],
    user_lines: list[bytes],
    out_tweets: str | Path,
    out_users: str | Path,
    durable: bool,
) -> None:
    """Sort the lines and write both intermediates, each behind the metadata line."""
    head = b"#" + orjson.dumps(summary.meta()) + b"\n"
    tweet_lines.sort()
    user_lines.sort()
    atomic_write(out_tweets, head + b"".join(tweet_lines), durable=durable)
    atomic_write(out_users, head + b"".join(user_lines), durable=durable)


# --- command line ---------------------------------------------------------------------------


Job = tuple[str, str, str, str]  # raw, out_tweets, out_users, server


@dataclass
class ParseResult:
    metas: list[dict]  # each parsed file's metadata, in the jobs' order
    skipped_files: list[Rejected]  # raw files not parsed at all: nothing was written for them


def _parse_chunk(
    args: tuple[list[Job], str, int, str | None, bool, str | None],
) -> list[dict | Rejected]:
    jobs, tz_name, late_minutes, log_path, durable, for_hour = args
    tz = ZoneInfo(tz_name)
    hour = Hour.parse(for_hour) if for_hour else None
    # O_APPEND: lines from several workers interleave whole, never mixed within a line.
    log = open(log_path, "a", encoding="utf-8") if log_path else sys.stderr  # noqa: SIM115
    out: list[dict | Rejected] = []
    copies = Copies()  # the chunk is one minute's files: the servers' copies of its tweets
    try:
        for raw, out_t, out_u, server in jobs:
            try:
                summary = parse_minute_file(
                    raw,
                    out_t,
                    out_u,
                    server,
                    tz,
                    late_minutes,
                    log,
                    durable=durable,
                    copies=copies,
                    for_hour=hour,
                )
            except UnusableInput as e:  # costs only this file; a failed write still raises
                emit(log, f"{e}: file skipped")
                out.append(e.rejected)
            else:
                out.append(summary.meta())
        return out
    finally:
        if log is not sys.stderr:
            log.close()


def parse_many(
    jobs: list[Job],
    tz_name: str,
    late_minutes: int,
    workers: int = 1,
    log_path: str | None = None,
    durable: bool = True,
    for_hour: str | None = None,
) -> ParseResult:
    """Parse many minute files in ``workers`` processes: each parsed file's meta, in order, and
    the files that could not be read at all (see ``UnusableInput``), each skipped alone.
    ``for_hour``: a label, when only that hour's copies are wanted (``parse_minute_file``).

    One process for many files: Snakemake's cost per job (~0.3 s here) and Python's start-up
    would otherwise exceed the parsing itself (see README, Speed). A minute's files of all
    servers are one task, so that a tweet's second copy is not parsed again (``Copies``).
    """
    # A minute a task: a worker that falls behind (another process took its core for a while)
    # takes fewer minutes, and the workers still end together.
    chunks = [(c, tz_name, late_minutes, log_path, durable, for_hour) for c in by_minute(jobs)]
    if workers <= 1 or len(chunks) < 2:
        results = list(map(_parse_chunk, chunks))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            results = list(pool.map(_parse_chunk, chunks))
    order = {job[0]: i for i, job in enumerate(jobs)}
    done = [m for r in results for m in r]
    return _result(
        sorted(done, key=lambda m: order[m.path if isinstance(m, Rejected) else m["file"]])
    )


def by_minute(jobs: list[Job]) -> list[list[Job]]:
    """The jobs grouped by raw file name (a minute's files of every server), in first order."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(os.path.basename(job[0]), []).append(job)
    return list(groups.values())


def _result(done: list[dict | Rejected]) -> ParseResult:
    return ParseResult(
        [m for m in done if not isinstance(m, Rejected)],
        [m for m in done if isinstance(m, Rejected)],
    )


def _triples(items: list[str]) -> list[tuple[str, str, str]]:
    if len(items) % 3:
        raise SystemExit(
            "give RAW OUT_TWEETS OUT_USERS triples (argument count not a multiple of 3)"
        )
    return [tuple(items[i : i + 3]) for i in range(0, len(items), 3)]  # type: ignore[misc]


def _batch(path: str, default_server: str | None) -> list[tuple[str, str, str, str]]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    jobs = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) == 3 and default_server:
            parts.append(default_server)
        if len(parts) != 4:
            raise SystemExit(f"{path}:{n}: expected RAW OUT_TWEETS OUT_USERS [SERVER]")
        jobs.append(tuple(parts))
    return jobs  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m ingest.hours.minutes",
        description="Parse raw minute files into sorted per-minute intermediates.",
    )
    p.add_argument("--server", help="server name (required unless every --batch line names one)")
    p.add_argument("--timezone", required=True, help="IANA zone of the hour labels, e.g. CET")
    p.add_argument("--late-minutes", type=int, required=True)
    p.add_argument("--batch", help="file of 'RAW OUT_TWEETS OUT_USERS [SERVER]' lines, - = stdin")
    p.add_argument("--log", help="append skipped-line messages here (default: stderr)")
    p.add_argument("--workers", type=int, default=1, help="parse in this many processes")
    p.add_argument(
        "--no-fsync",
        action="store_true",
        help="skip fsync (outputs are still renamed into place whole; not power-loss safe)",
    )
    p.add_argument(
        "files", nargs="*", help="RAW OUT_TWEETS OUT_USERS [RAW OUT_TWEETS OUT_USERS ...]"
    )
    args = p.parse_args(argv)

    jobs: list[tuple[str, str, str, str]] = []
    if args.files:
        if not args.server:
            p.error("--server is required with positional files")
        jobs += [(*t, args.server) for t in _triples(args.files)]
    if args.batch:
        jobs += _batch(args.batch, args.server)
    if not jobs:
        p.error("nothing to do: give RAW OUT_TWEETS OUT_USERS or --batch FILE")

    ZoneInfo(args.timezone)  # fail here, not in a worker
    result = parse_many(
        jobs, args.timezone, args.late_minutes, args.workers, args.log, not args.no_fsync
    )
    return 1 if result.skipped_files else 0  # the others are parsed all the same


if __name__ == "__main__":
    sys.exit(main())
