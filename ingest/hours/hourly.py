"""The hourly merge: every server's per-minute intermediates -> the hour's vault files.

Streaming: the sorted intermediates are merged line by line (``heapq.merge`` on bytes), so the
memory used is a line per input file plus small per-group state, whatever the hour's size.
Rows go straight into three ``xz`` subprocesses (ids, tweets, users) that compress while the
merge runs. Outputs are renamed into place together, and the stats JSON is written last: its
existence means the hour is built.

``build_hour`` runs the phases in order: ``read_inputs`` (the intermediates' metadata lines),
for an hour already built ``with_previous`` (the old build's inputs that are gone) and a
``VaultSource`` (its tweets file), ``HourWriters`` (the xz pipes, the tweets' block size from
the metadata), ``merge_hour`` (tweets and users at once, progress logged by
``MergeProgress``), ``hour_stats``, then ``commit_hour``.

Rules (see issue 2):
- a copy counts for this hour when its label (``ingest.hours.assign``) is this hour;
- a tweet's row comes from its copy with the earliest retrieved_at (ties: the first server in
  config order), rows in ascending numeric ID order;
- a user's row comes from the author's latest tweet of the hour (created_at, then ID; among
  copies of that tweet the earliest retrieved_at), rows in ascending numeric author ID order;
- per-server count: unique IDs of that server counted for this hour; diff: IDs not seen by
  every server (with two servers, the symmetric difference); 0 with one server.

Never drop a tweet that is in the vault (issue 10): late minute files for a built hour are
merged into it, the old tweets file being one more source after every server (see
``build_hour``); only ``from_scratch`` rebuilds from the raw files alone, and only while
every raw file the hour was built from is still there.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from ingest import complied as complied_ids
from ingest.atomic import StagedFile, XzWriter, remove_stale_temps
from ingest.hours.compression import MIB, ids_writer, tweets_writer, users_writer
from ingest.hours.minutes import T_KEY_END, T_LABEL, T_ROW, U_KEY_END, U_LABEL, U_ROW, U_TWEET_END
from ingest.hours.parse import TWEET_COLUMNS, USER_COLUMNS, format_row
from ingest.hours.stats import HourStats, StatsError, input_sizes, read_stats_if_built
from ingest.hours.vault_source import (
    LAST_KEY,
    VaultError,
    VaultSource,
    xz_lines,
    xz_readable,
    xz_uncompressed_size,
)
from ingest.layout import Hour, hour_bounds, parse_minute_name
from ingest.vault import records
from ingest.vault.records import FileEntry, HourRecord, RecordError

ID_END = 20  # the zero-padded ID at the start of every intermediate line
OUTPUTS = ("ids", "tweets", "users", "stats")  # the keys of layout.vault_paths
UNKNOWN = "taken as built from unknown inputs: its tweets file is merged in if readable"
PROGRESS_SECONDS = 30.0  # how often a long merge logs how far it got


class InputError(ValueError):
    """An intermediate file that cannot be used (no metadata line, wrong server)."""


def _emit(log, level: int, msg: str) -> None:
    if log is None:
        return
    if isinstance(log, logging.Logger):
        log.log(level, msg)
    else:
        log.write(msg + "\n")


def _open_intermediate(path: str | Path) -> tuple[object, dict]:
    f = open(path, "rb", buffering=1 << 16)  # noqa: SIM115 - closed by the caller
    first = f.readline()
    if not first.startswith(b"#"):
        f.close()
        raise InputError(f"{path}: not a per-minute intermediate (no '#' metadata line)")
    try:
        meta = orjson.loads(first[1:])
    except orjson.JSONDecodeError as e:
        f.close()
        raise InputError(f"{path}: unreadable metadata line: {e}") from None
    return f, meta


def _labelled(f, rank: int, key_end: int, label_at: slice, label: bytes) -> Iterator[tuple]:
    """(sort key, server rank, line) for the lines of one open file that count for ``label``."""
    with f:
        for line in f:
            if line[label_at] == label:
                yield line[:key_end], rank, line


def _merged(
    files: Sequence[tuple[int, str | Path]],
    key_end: int,
    label_at: slice,
    label: bytes,
    extra: Iterator[tuple] | None = None,
) -> Iterator[tuple]:
    """All servers' lines for ``label`` in (key, server rank, line) order, and ``extra``'s
    (the built hour's: already (key, rank, line) tuples of this label, in that order)."""
    streams = [] if extra is None else [extra]
    try:
        for rank, path in files:
            f, _ = _open_intermediate(path)
            streams.append(_labelled(f, rank, key_end, label_at, label))
    except BaseException:
        for s in streams:
            s.close()
        raise
    return heapq.merge(*streams)


def _minute_key(minute: datetime, tz: ZoneInfo) -> str:
    """A minute of the stats: local time with its offset, unique also when DST repeats a hour."""
    return minute.astimezone(tz).isoformat(timespec="minutes")


def _row_bytes(meta: dict, label: str, tweets_tsv: Path) -> int:
    """CSV bytes of the tweet rows of ``label`` in an intermediate (per its metadata)."""
    if "row_bytes" in meta:
        return meta["row_bytes"].get(label, 0)
    return tweets_tsv.stat().st_size  # made by an older version: an upper bound


def stats_minutes(
    start: datetime, end: datetime, expected_minutes: Iterable[datetime] | None
) -> list[datetime]:
    """The UTC minutes the stats show: ``expected_minutes``, by default every one in the hour."""
    if expected_minutes is not None:
        return sorted(m.astimezone(UTC) for m in expected_minutes)
    minutes = []
    t = start
    while t < end:
        minutes.append(t)
        t += timedelta(minutes=1)
    return minutes


@dataclass
class HourInputs:
    """What the intermediates' metadata lines tell about an hour, before a row is merged."""

    tweet_files: list[tuple[int, Path]] = field(default_factory=list)  # (server rank, path)
    user_files: list[tuple[int, Path]] = field(default_factory=list)
    per_minute: dict[str, dict[str, int | None]] = field(default_factory=dict)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    # Per server, in minute order: raw file name -> its size as parsed (None: not recorded).
    inputs: dict[str, dict[str, int | None]] = field(default_factory=dict)
    # Per server and raw file name: its skipped lines by reason (of the hour's own minutes).
    file_skipped: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    csv_bytes: int = 0  # the tweets CSV's size, estimated (for xz's block size and progress)

    @property
    def raw_names(self) -> dict[str, list[str]]:
        """Per server, the raw files' names in minute order."""
        return {s: list(names) for s, names in self.inputs.items()}

    @property
    def missing(self) -> list[str]:
        """Servers without a single minute file for the hour."""
        return [s for s, found in self.inputs.items() if not found]


def read_inputs(
    hour: Hour,
    tz: ZoneInfo,
    inputs: Mapping[str, Sequence[tuple[str | Path, str | Path]]],
    names: Sequence[str],
    minutes: Sequence[datetime],
) -> HourInputs:
    """Read every intermediate's metadata line: tweets per minute, skipped lines, raw files."""
    start, end = hour_bounds(hour, tz)
    minute_keys = {m: _minute_key(m, tz) for m in minutes}
    sources = HourInputs()
    # The tweets CSV's size: per minute file, the biggest server's rows (servers see nearly
    # the same tweets; one with an outage adds nothing to the other's).
    csv_by_minute: dict[datetime, int] = {}
    for rank, server in enumerate(names):
        counts: dict[str, int | None] = {minute_keys[m]: None for m in minutes}
        skips: Counter[str] = Counter()
        file_skips: dict[str, dict[str, int]] = {}
        found = []
        for tweets_tsv, users_tsv in inputs.get(server, ()):
            f, meta = _open_intermediate(tweets_tsv)
            f.close()
            if meta.get("server") not in (None, server):
                raise InputError(
                    f"{tweets_tsv}: made for server {meta['server']!r}, not {server!r}"
                )
            minute = datetime.fromisoformat(meta["minute"]).astimezone(UTC)
            name = Path(meta["file"]).name
            found.append((minute, name, meta.get("size")))
            n_bytes = _row_bytes(meta, hour.label, Path(tweets_tsv))
            csv_by_minute[minute] = max(csv_by_minute.get(minute, 0), n_bytes)
            if start <= minute < end:
                key = minute_keys.get(minute) or _minute_key(minute, tz)
                counts[key] = (counts.get(key) or 0) + meta["tweets"]
                file_skips[name] = dict(meta.get("skipped", {}))
                skips.update(file_skips[name])
            sources.tweet_files.append((rank, Path(tweets_tsv)))
            sources.user_files.append((rank, Path(users_tsv)))
        sources.per_minute[server] = counts
        sources.skipped[server] = dict(sorted(skips.items()))
        sources.file_skipped[server] = file_skips
        sources.inputs[server] = {name: size for _, name, size in sorted(found, key=_by_minute)}
    sources.csv_bytes = sum(csv_by_minute.values())
    return sources


def _by_minute(item: tuple) -> tuple:
    """Sort key of (minute or None, name, ...): minute order, names not understood last."""
    minute, name = item[0], item[1]
    return (minute is None, minute or datetime.min.replace(tzinfo=UTC), name)


def gone_inputs(old: HourStats, sources: HourInputs) -> dict[str, list[str]]:
    """Per server, the raw files the built hour was made from that are not among the inputs."""
    current = sources.inputs
    gone = {}
    for server, sizes in input_sizes(old).items():
        names = [n for n in sizes if n not in current.get(server, {})]
        if names:
            gone[server] = names
    return gone


def with_previous(sources: HourInputs, old: HourStats, tz: ZoneInfo) -> HourInputs:
    """The inputs of a merge into a built hour, for its stats: this build's and the old one's.

    ``inputs``: the old build's files (with their recorded sizes) and the current ones (their
    current sizes); ``minutes``: a current file's count where one covers the minute, else the
    old value; ``skipped``: the old build's, less what the files still here skip now (so: the
    gone files' share, exact while a file's content is unchanged), plus the current files'.
    """
    old_inputs = input_sizes(old)
    old_minutes = old.get("minutes") or {}
    old_skipped = old.get("skipped") or {}
    merged = replace(sources, per_minute={}, skipped={}, inputs={})
    for server, current in sources.inputs.items():
        previous = old_inputs.get(server, {})
        files = [(parse_minute_name(n, tz), n) for n in [*current, *previous]]
        union: dict[str, int | None] = {}
        for _, name in sorted(files, key=_by_minute):
            union.setdefault(name, current[name] if name in current else previous[name])
        merged.inputs[server] = union

        minutes = dict(sources.per_minute[server])
        for key, n in (old_minutes.get(server) or {}).items():
            if key in minutes and minutes[key] is None:
                minutes[key] = n
        merged.per_minute[server] = minutes

        still_here = Counter()
        for name in previous:
            still_here.update(sources.file_skipped.get(server, {}).get(name, {}))
        skipped = Counter(
            {r: n - still_here[r] for r, n in (old_skipped.get(server) or {}).items()}
        )
        skipped = +skipped  # drop counts of zero and below
        skipped.update(sources.skipped[server])
        merged.skipped[server] = dict(sorted(skipped.items()))
    return merged


class Withheld:
    """The complied posts and accounts (``ingest.complied``) an hour's merge leaves out (issue
    24): their IDs stay in the IDs file (sharing IDs is allowed; the hour's IDs file is as
    the comply pass left it), their rows leave the tweets and the users.

    ``old_ids``: the built hour's IDs file as ID-only merge lines (after every copy of an ID:
    a real copy's row comes first), so an ID whose row the vault no longer holds, and whose
    raw lines the comply pass removed, stays in the IDs file. ``counts``: the rows left out,
    by action.
    """

    def __init__(self, complied: complied_ids.Complied, old_ids=None) -> None:
        self.complied = complied
        self.old_ids = old_ids
        self.counts: Counter[str] = Counter()

    def withholds(self, tid: bytes, row: bytes) -> bool:
        """Is the tweet ``tid`` (zero-padded) with CSV ``row`` left out? Counted if so."""
        if not row:  # an ID only the old IDs file holds: its row was withheld before
            action = self.complied.action(int(tid), None) or "complied before"
        else:
            action = self.complied.action(
                int(tid), _author(row) if self.complied.accounts else None
            )
        if action is None:
            return False
        self.counts[action] += 1
        return True

    def hides_user_line(self, key: bytes) -> bool:
        """Is a users line (sort key: author, created, tweet ID) of a complied post or account?"""
        author, tweet = int(key[:ID_END]), int(key[U_TWEET_END - ID_END : U_TWEET_END])
        return self.complied.action(tweet, author) is not None


def _author(row: bytes) -> int | None:
    """A tweets row's author_id (its third column: an ID, never quoted unless odd)."""
    parts = row.split(b",", 3)
    try:
        return int(parts[2].strip(b'"')) if len(parts) > 3 else None
    except ValueError:
        return None


def _id_lines(ids: Path, label: str, rank: int) -> Iterator[tuple]:
    """(key, rank, ID-only line) of each ID of an hour's IDs file, in the merge's order."""
    tail = b"\t%b\t%b\t" % (LAST_KEY.encode(), label.encode())
    for line in xz_lines(ids):
        tid = line.strip().zfill(ID_END)
        if tid:
            out = tid + tail
            yield out[:T_KEY_END], rank, out


def _withheld(hour: Hour, out: Mapping[str, Path], vault: VaultSource | None) -> Withheld | None:
    """What the hour's merge must leave out: its day's complied IDs (None: nothing)."""
    complied = complied_ids.for_day(out["stats"].parent.parent, hour.day)
    if not complied:
        return None
    old = None
    if vault is not None and out["ids"].is_file():
        old = _id_lines(out["ids"], hour.label, vault.rank)
    return Withheld(complied, old)


class MergeProgress:
    """Logs the tweets merge's progress every ``interval`` seconds: a 10 % hour takes minutes.

    The share done is the CSV bytes written over the estimate from the intermediates'
    ``row_bytes`` metadata. ``monotonic`` is the time source (injectable for tests).
    """

    def __init__(
        self,
        hour: Hour,
        expected_bytes: int,
        log,
        monotonic: Callable[[], float] = time.monotonic,
        interval: float = PROGRESS_SECONDS,
    ) -> None:
        self.hour = hour
        self.expected_bytes = expected_bytes
        self.log = log
        self.monotonic = monotonic
        self.interval = interval
        self.start = monotonic()
        self.next_at = self.start + interval  # read by the merge loop between reports

    def report(self, rows: int, n_bytes: int) -> float:
        """Log the progress so far; return when the next report is due."""
        now = self.monotonic()
        share = ""
        if self.expected_bytes:
            # The estimate can fall short (an older intermediate's size is an upper bound).
            share = f" of about {self.expected_bytes / MIB:.0f} MiB"
            share += f" ({min(99, 100 * n_bytes // self.expected_bytes)}%)"
        _emit(
            self.log,
            logging.INFO,
            f"{self.hour}: merged {rows} tweets, {n_bytes / MIB:.0f} MiB{share}, "
            f"{now - self.start:.0f} s",
        )
        self.next_at = now + self.interval
        return self.next_at


class HourWriters:
    """The hour's three xz pipes (ids, tweets, users): they compress while the merge runs."""

    def __init__(
        self,
        out: Mapping[str, Path],
        preset: int,
        threads: int,
        blocks: int | None,
        csv_bytes: int,
    ) -> None:
        self.all: list[XzWriter] = []
        try:
            self.ids = self._add(ids_writer(out["ids"], preset))
            self.tweets = self._add(
                tweets_writer(out["tweets"], preset, threads, csv_bytes, blocks)
            )
            self.users = self._add(users_writer(out["users"], preset))
        except BaseException:
            self.abort()
            raise

    def _add(self, w: XzWriter) -> XzWriter:
        self.all.append(w)
        return w

    def finish(self) -> None:
        for w in self.all:
            w.finish()

    def commit(self) -> None:
        """Rename all three into place (their directories are fsynced once, by the caller)."""
        try:
            for w in self.all:
                w.commit(sync_dir=False)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        for w in self.all:
            w.abort()


def merge_hour(
    sources: HourInputs,
    label: bytes,
    writers: HourWriters,
    progress: MergeProgress | None = None,
    vault: VaultSource | None = None,
    hide: Withheld | None = None,
) -> tuple[dict[int, int], int]:
    """Merge the tweets and users into their xz pipes and wait for xz to finish compressing.

    ``vault``: the built hour's tweets as one more source, ranked after the servers.
    ``hide``: the complied posts and accounts: their IDs stay in the IDs file, their rows
    are left out of the tweets and users (counted in ``hide.counts``).
    Returns ({bitmask of servers that saw an ID: n IDs}, n users); on any error the three
    temporary files are removed.
    """
    try:
        # Users are merged in a second thread at the same time: each xz reads only a block or
        # two ahead, so merged one after the other the users' xz would start only once the
        # tweets' xz was nearly done, leaving a core idle (the GIL is free while a write waits).
        # Each input is ended as soon as its rows are written: xz compresses its last block
        # (for the users and IDs, often their only one) only once its input ends.
        with ThreadPoolExecutor(1) as pool:
            users_done = pool.submit(
                _merge_users, sources.user_files, label, writers.users, vault, hide
            )
            try:
                masks = _merge_tweets(
                    sources.tweet_files, label, writers.tweets, writers.ids, progress, vault, hide
                )
            except BaseException:
                writers.users.abort()  # unblocks the users thread
                raise
            n_users = users_done.result()
        writers.finish()
    except BaseException:
        writers.abort()
        raise
    return masks, n_users


def count_servers(
    masks: Mapping[int, int], names: Sequence[str]
) -> tuple[dict[str, int], int, int]:
    """(per-server unique IDs, total, diff) from {bitmask of servers that saw an ID: n IDs}.

    diff: IDs not seen by every server; 0 with one server.
    """
    all_seen = (1 << len(names)) - 1
    per_server = {s: 0 for s in names}
    total = diff = 0
    for mask, k in masks.items():
        total += k
        if mask != all_seen:
            diff += k
        for rank, s in enumerate(names):
            if mask >> rank & 1:
                per_server[s] += k
    if len(names) == 1:
        diff = 0
    return per_server, total, diff


def hour_stats(
    hour: Hour, names: Sequence[str], masks: Mapping[int, int], n_users: int, sources: HourInputs
) -> HourStats:
    """The hour's stats, as written to its stats file (key order is the file's)."""
    per_server, total, diff = count_servers(masks, names)
    return {
        "hour": hour.label,
        "servers": list(names),
        "counts": per_server,
        "total": total,
        "diff": diff,
        "diff_pct": round(100 * diff / total, 2) if total else 0.0,
        "users": n_users,
        "minutes": sources.per_minute,
        "skipped": sources.skipped,
        "missing_servers": sources.missing,
        "inputs": sources.inputs,
    }


def commit_hour(
    writers: HourWriters, out: Mapping[str, Path], stats: HourStats, generation: int
) -> HourRecord:
    """Rename the three .xz files and the stats into place, then write the hour's record: the
    hour's new generation (``records.commit_hour``: journalled, the record last).

    The old files and record stay until the renames. Killed between them, the next run
    finishes the commit from the journal (``records.settle``); and the tweets file, old or
    new, holds every tweet the old one did.
    """
    hour = Hour.parse(stats["hour"])
    staged = StagedFile(out["stats"], orjson.dumps(stats, option=orjson.OPT_INDENT_2) + b"\n")
    withheld = sum((stats.get("complied") or {}).values())  # IDs kept, rows removed
    rows = {"ids": stats["total"], "tweets": stats["total"] - withheld, "users": stats["users"]}
    files = {
        w.path.name: FileEntry(w.sha256, w.size, rows[kind])
        for kind, w in (("ids", writers.ids), ("tweets", writers.tweets), ("users", writers.users))
    }
    files[out["stats"].name] = FileEntry(staged.sha256, staged.size)
    record = HourRecord(hour.label, generation, dict(sorted(files.items())))
    # On an error the temps stay (the journal may name them): the next build removes them.
    records.commit_hour(out["stats"].parent, record, [*writers.all, staged])
    return record


def _summary(stats: HourStats) -> str:
    counts = ", ".join(f"{s} {c}" for s, c in stats["counts"].items())
    missing = stats["missing_servers"]
    return (
        f"{stats['hour']}: {stats['total']} tweets ({counts}), "
        f"diff {stats['diff']} ({stats['diff_pct']}%), {stats['users']} users"
        + (f", missing servers: {', '.join(missing)}" if missing else "")
    )


def build_hour(
    hour: Hour | str,
    tz: ZoneInfo | str,
    inputs: Mapping[str, Sequence[tuple[str | Path, str | Path]]],
    outputs: Mapping[str, str | Path],
    *,
    xz_preset: int,
    xz_threads: int,
    server_names: Sequence[str],
    xz_blocks: int | None = None,
    expected_minutes: Iterable[datetime] | None = None,
    log=None,
    monotonic: Callable[[], float] = time.monotonic,
    from_scratch: bool = False,
) -> HourStats:
    """Merge an hour's intermediates into its ids/tweets/users .xz files and stats JSON.

    ``inputs``: server name -> [(tweets_tsv, users_tsv), ...] of that server's minute files in
    the hour's read window, any order. ``outputs``: ``layout.vault_paths(vault, hour)``.
    ``expected_minutes``: the UTC minutes shown in the stats (default: every minute of the
    hour). ``log``: a ``logging.Logger`` or a file object; the merge's progress goes there
    every ``PROGRESS_SECONDS`` of ``monotonic``.

    An hour already built (its stats file exists) is merged into, never replaced: its tweets
    file is one more source, after every server, so the hour keeps every tweet it held and
    gains the new ones, one row per ID by the same rule (the earliest retrieved copy; the CSV
    keeps retrieved_at to the second, and within the same second a current copy wins).
    Per-server counts: an ID counts for every server whose current copies hold it, and a
    vault row for the servers present in the old build some of whose raw files are no longer
    among the inputs (the vault holds their copies now). An ID only the vault holds while the
    files of the servers that saw it are all still here (an older build's) counts in the
    total and the diff, for no server. The vault does not say which server saw a row, so
    the attribution is exact only when every vault row was seen by every server whose files
    are gone: the old build had one server present (the secondary missing, then late), or
    those servers saw the same IDs. Otherwise a row counts for a gone server that never saw
    it: with two present servers' files gone, their vault rows count for both; with one
    gone, the other's own IDs count for it too (the diff shrinks accordingly). The stats'
    inputs, minutes and skipped lines join the old build's and this one's
    (``with_previous``). A merge with fewer tweets than the built hour's stats is a
    ``VaultError``, nothing written.

    ``xz_blocks``: the tweets file is cut into this many xz blocks (``compression``;
    default one per thread). The bytes depend on the blocks, not on the threads: a backfill
    job of one thread, given the cron mode's count, writes what the cron build wrote.

    ``from_scratch``: the vault is not read; tweets that only it holds are dropped. Refused
    (an ``InputError`` naming the files, before any work) when a raw file the hour was built
    from is no longer among the inputs.

    A stats file that cannot be read: a warning, and the hour counts as built from unknown
    inputs (its tweets file is merged in if it reads, its rows for no server). A tweets file
    that cannot be read while the stats can: a ``VaultError`` naming it, nothing written.
    """
    hour = Hour.parse(hour) if isinstance(hour, str) else hour
    tz = ZoneInfo(tz) if isinstance(tz, str) else tz
    names = list(server_names)
    _check_servers(inputs, names)
    bounds = hour_bounds(hour, tz)
    if bounds is None:
        raise ValueError(f"hour {hour} does not exist in {tz.key}")
    out = {k: Path(outputs[k]) for k in OUTPUTS}
    record = _settled_record(hour, out, log)
    built, old = _old_stats(out["stats"], log)
    built = built or record is not None
    if old is not None and record is not None and not _as_recorded(out["stats"], record):
        # Rot in the stats must not pass into the next generation (its inputs, its counts).
        _emit(log, logging.WARNING, f"{out['stats']}: differs from its record; {UNKNOWN}")
        old = None
    _remove_interrupted_temps(out, log)
    if record is not None and not from_scratch:
        _check_vault_tweets(hour, out, record)

    sources = read_inputs(hour, tz, inputs, names, stats_minutes(*bounds, expected_minutes))
    gone = gone_inputs(old, sources) if old is not None else {}
    sources, vault = _with_vault(hour, tz, sources, out, built, old, gone, names, from_scratch, log)
    csv_bytes = _csv_bytes(sources, vault, gone, old)
    writers = HourWriters(out, xz_preset, xz_threads, xz_blocks, csv_bytes)
    progress = MergeProgress(hour, csv_bytes, log, monotonic)
    hide = _withheld(hour, out, vault)
    masks, n_users = merge_hour(sources, hour.label.encode(), writers, progress, vault, hide)
    stats = hour_stats(hour, names, masks, n_users, sources)
    if hide is not None and hide.counts:
        stats["complied"] = dict(sorted(hide.counts.items()))

    _refuse_fewer_tweets(hour, stats, old, record, vault, writers, out)
    _commit(hour, writers, out, stats, record, from_scratch, log)
    return stats


def _commit(
    hour: Hour,
    writers: HourWriters,
    out: Mapping[str, Path],
    stats: HourStats,
    record: HourRecord | None,
    from_scratch: bool,
    log,
) -> None:
    """The hour's next generation, said in the log (with what a from-scratch build drops)."""
    if from_scratch and record is not None:
        _emit(
            log,
            logging.WARNING,
            f"{hour}: rebuilt from scratch with {stats['total']} tweets; the vault held "
            f"{record.tweets} (those only it held are dropped)",
        )
    new = commit_hour(writers, out, stats, (record.generation if record else 0) + 1)
    _emit(log, logging.INFO, f"{_summary(stats)}, generation {new.generation}")


def _settled_record(hour: Hour, out: Mapping[str, Path], log) -> HourRecord | None:
    """The hour's record, once a commit a crash interrupted is finished; a ``VaultError`` when
    it is damaged (the hour's newest generation is then unknown: nothing is rebuilt)."""
    day_dir = out["stats"].parent
    outcome = records.settle(day_dir, hour.label)
    if outcome == "committed":
        _emit(log, logging.INFO, f"{hour}: finished the commit an interrupted build left")
    elif outcome is not None:
        _emit(log, logging.WARNING, f"{hour}: {outcome}; the hour is rebuilt")
    try:
        return records.read_record(day_dir / records.record_name(hour.label))
    except RecordError as e:
        raise VaultError(
            f"{e}: hour {hour} is not rebuilt while its newest generation is unknown; "
            "sampled-stream scrub repairs the record from a replica (or restore the day: "
            f"sampled-stream restore --days {hour.day})"
        ) from None


def _as_recorded(path: Path, record: HourRecord) -> bool:
    entry = record.files.get(path.name)
    return entry is None or records.matches(path, entry)


def _check_vault_tweets(hour: Hour, out: Mapping[str, Path], record: HourRecord) -> None:
    """A ``VaultError`` unless the hour's tweets file is the one its record names: a rebuild
    without it would drop the tweets only the vault holds."""
    entry = record.files.get(out["tweets"].name)
    if entry is not None and not records.matches(out["tweets"], entry):
        raise VaultError(
            f"{out['tweets']}: missing or damaged (it does not match its record, generation "
            f"{record.generation}), and it held {entry.rows} tweets of hour {hour}: nothing "
            "rebuilt, so none is dropped. Repair it from a replica (sampled-stream scrub) or "
            f"restore the day (sampled-stream restore --days {hour.day}); to build the hour "
            "from its raw files alone and drop the tweets only the vault held, build it with "
            "--config from_scratch=true"
        )


def _check_servers(inputs: Mapping[str, object], names: Sequence[str]) -> None:
    """An ``InputError`` for inputs of servers not in ``names``."""
    unknown = sorted(set(inputs) - set(names))
    if unknown:
        raise InputError(f"inputs for servers not in server_names: {', '.join(unknown)}")


def _remove_interrupted_temps(out: Mapping[str, Path], log) -> None:
    """Remove the outputs' temporary files an interrupted build left, logging each."""
    for p in out.values():
        for tmp in remove_stale_temps(p):
            _emit(log, logging.INFO, f"removed {tmp}, left by an interrupted build")


def _with_vault(
    hour: Hour,
    tz: ZoneInfo,
    sources: HourInputs,
    out: Mapping[str, Path],
    built: bool,
    old: HourStats | None,
    gone: Mapping[str, Sequence[str]],
    names: Sequence[str],
    from_scratch: bool,
    log,
) -> tuple[HourInputs, VaultSource | None]:
    """(the sources, the built hour's tweets file as one more or None): for an hour already
    built, the sources join the old build's (``with_previous``) unless ``from_scratch``,
    which is refused while raw files the hour was built from are gone."""
    if from_scratch:
        if gone:
            raise InputError(
                f"{hour}: from_scratch refused: raw files it was built from are gone "
                f"({_listing(gone)}); their tweets are only in the vault"
            )
        if built:
            _emit(log, logging.WARNING, f"{hour}: rebuilt from scratch, the vault not read")
        return sources, None
    if not built:
        return sources, None
    vault = _vault_source(hour, out, old, gone, names, log)
    if old is not None:
        sources = with_previous(sources, old, tz)
    return sources, vault


def _csv_bytes(
    sources: HourInputs,
    vault: VaultSource | None,
    gone: Mapping[str, Sequence[str]],
    old: HourStats | None,
) -> int:
    """The tweets CSV's estimated size (xz's block size, the progress)."""
    csv_bytes = sources.csv_bytes
    if vault is not None and (gone or old is None):
        # Tweets only the vault holds: the estimate from the inputs alone may fall short.
        csv_bytes = max(csv_bytes, xz_uncompressed_size(vault.path) or 0)
    return csv_bytes


def _refuse_fewer_tweets(
    hour: Hour,
    stats: HourStats,
    old: HourStats | None,
    record: HourRecord | None,
    vault: VaultSource | None,
    writers: HourWriters,
    out: Mapping[str, Path],
) -> None:
    """A merge into the built hour (``vault``) with fewer tweets than its stats (``old``) or
    its record had: the new files removed, a ``VaultError``."""
    if vault is None:
        return
    held = [old.get("total") if old is not None else None, record.tweets if record else None]
    old_total = max((n for n in held if isinstance(n, int)), default=None)
    if old_total is not None and stats["total"] < old_total:
        writers.abort()
        raise VaultError(
            f"{hour}: the merge has {stats['total']} tweets, fewer than the {old_total} the "
            f"built hour held (its stats, its record): nothing written, the old files kept (a "
            f"bug, or {out['tweets']} was replaced by a smaller file)"
        )


def _old_stats(path: Path, log) -> tuple[bool, HourStats | None]:
    """(built, its stats): a damaged stats file is a built hour whose inputs are unknown."""
    try:
        old = read_stats_if_built(path)
    except StatsError as e:
        _emit(log, logging.WARNING, f"{e}; {UNKNOWN}")
        return True, None
    return old is not None, old


def _listing(files: Mapping[str, Sequence[str]], most: int = 5) -> str:
    """``server: a, b, c and 7 more; server2: ...`` for a message."""
    parts = []
    for server, names in files.items():
        more = f" and {len(names) - most} more" if len(names) > most else ""
        parts.append(f"{server}: {', '.join(names[:most])}{more}")
    return "; ".join(parts)


def _vault_source(
    hour: Hour,
    out: Mapping[str, Path],
    old: HourStats | None,
    gone: Mapping[str, Sequence[str]],
    names: Sequence[str],
    log,
) -> VaultSource | None:
    """The built hour's tweets file as a merge source, its rows counting for the servers
    present in the old build whose raw files are gone in part (``old`` None: damaged stats)."""
    tweets = out["tweets"]
    if old is None:
        if tweets.is_file() and xz_readable(tweets):
            return VaultSource(tweets, hour.label, len(names))
        _emit(
            log,
            logging.WARNING,
            f"{tweets}: missing or unreadable, its stats damaged: built from the raw files only",
        )
        return None
    if not tweets.is_file():
        raise VaultError(
            f"{tweets}: missing, though {out['stats']} says the hour is built; restore it, or "
            "delete the stats file to build the hour from its raw files alone"
        )
    missing = set(old.get("missing_servers") or ())
    mask = 0
    for rank, server in enumerate(names):
        if gone.get(server) and server not in missing:
            mask |= 1 << rank
    counted = [s for rank, s in enumerate(names) if mask >> rank & 1]
    _emit(
        log,
        logging.INFO,
        f"{hour}: merging into the built hour ({tweets.name})"
        + (
            f"; raw files gone ({_listing(gone)}): its rows count for {', '.join(counted)}"
            if counted
            else ""
        ),
    )
    return VaultSource(tweets, hour.label, len(names), mask)


def _merge_tweets(
    files,
    label: bytes,
    tweets: XzWriter,
    ids: XzWriter,
    progress: MergeProgress | None = None,
    vault: VaultSource | None = None,
    hide: Withheld | None = None,
) -> dict[int, int]:
    """Write the hour's tweet rows and IDs; return {bitmask of servers that saw it: n IDs}."""
    # A copy's bits by its source's rank: a server's own bit; the vault's, its mask.
    bits = {rank: 1 << rank for rank, _ in files}
    extra = None
    if vault is not None:
        bits[vault.rank] = vault.mask
        extra = vault.tweet_lines()
        if hide is not None and hide.old_ids is not None:
            extra = heapq.merge(extra, hide.old_ids)
    write_tweet = tweets.write
    write_id = ids.write
    write_tweet(format_row(TWEET_COLUMNS).encode() + b"\n")
    # The clock is read once a row (~50 ns, next to the row's ~1 µs); the report is rare.
    monotonic = progress.monotonic if progress else lambda: 0.0
    next_at = progress.next_at if progress else float("inf")
    rows = n_bytes = 0
    masks: dict[int, int] = {}
    cur = None
    mask = 0
    for key, rank, line in _merged(files, T_KEY_END, T_LABEL, label, extra):
        tid = key[:ID_END]
        if tid != cur:
            if cur is not None:
                masks[mask] = masks.get(mask, 0) + 1
            cur = tid
            mask = bits[rank]
            # First copy of the ID in (ID, retrieved_at, server) order: the one that counts.
            row = line[T_ROW:]
            write_id((tid.lstrip(b"0") or b"0") + b"\n")
            if hide is not None and hide.withholds(tid, row):
                continue
            write_tweet(row)
            rows += 1
            n_bytes += len(row)
            if monotonic() >= next_at:
                next_at = progress.report(rows, n_bytes)
        else:
            mask |= bits[rank]
    if cur is not None:
        masks[mask] = masks.get(mask, 0) + 1
    tweets.end_input()
    ids.end_input()
    return masks


def _merge_users(
    files,
    label: bytes,
    users: XzWriter,
    vault: VaultSource | None = None,
    hide: Withheld | None = None,
) -> int:
    """Write one row per author from their latest tweet of the hour (of those ``hide`` lets
    through); return the row count."""
    extra = vault.user_lines() if vault is not None else None
    write_user = users.write
    write_user(format_row(USER_COLUMNS).encode() + b"\n")
    n = 0
    cur = None
    best_tweet = None
    best_line = b""
    merged = _merged(files, U_KEY_END, U_LABEL, label, extra)
    if hide is not None:
        merged = (m for m in merged if not hide.hides_user_line(m[0]))
    for key, _rank, line in merged:
        author = key[:ID_END]
        if author != cur:
            if cur is not None:
                write_user(best_line[U_ROW:])
                n += 1
            cur = author
            best_tweet = key[:U_TWEET_END]
            best_line = line
        else:
            tweet = key[:U_TWEET_END]  # (author, created_at, id): ascending, so later is newer
            if tweet != best_tweet:
                best_tweet = tweet
                best_line = line  # first copy of this tweet: earliest retrieved_at
    if cur is not None:
        write_user(best_line[U_ROW:])
        n += 1
    users.end_input()
    return n
