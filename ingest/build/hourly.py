"""The hourly merge: every server's per-minute intermediates -> the hour's vault files.

Streaming: the sorted intermediates are merged line by line (``heapq.merge`` on bytes), so the
memory used is a line per input file plus small per-group state, whatever the hour's size.
Rows go straight into three ``xz`` subprocesses (ids, tweets, users) that compress while the
merge runs. Outputs are renamed into place together, and the stats JSON is written last: its
existence means the hour is complete.

Rules (see issue 2):
- a copy counts for this hour when its label (``ingest.build.assign``) is this hour;
- a tweet's row comes from its copy with the earliest retrieved_at (ties: the first server in
  config order), rows in ascending numeric ID order;
- a user's row comes from the author's latest tweet of the hour (created_at, then ID; among
  copies of that tweet the earliest retrieved_at), rows in ascending numeric author ID order;
- per-server count: unique IDs of that server counted for this hour; diff: IDs not seen by
  every server (with two servers, the symmetric difference); 0 with one server.
"""

from __future__ import annotations

import heapq
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from ingest.atomic import XzWriter, atomic_write, fsync_dir, remove_stale_temps
from ingest.build.minutes import T_KEY_END, T_LABEL, T_ROW, U_KEY_END, U_LABEL, U_ROW, U_TWEET_END
from ingest.build.parse import TWEET_COLUMNS, USER_COLUMNS, format_row
from ingest.layout import Hour, hour_bounds

ID_END = 20  # the zero-padded ID at the start of every intermediate line


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
    files: Sequence[tuple[int, str | Path]], key_end: int, label_at: slice, label: bytes
) -> Iterator[tuple]:
    """All servers' lines for ``label`` in (key, server rank, line) order."""
    streams = []
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


def _bump(paths: Iterable[Path]) -> None:
    for p in paths:
        os.utime(p)


MIB = 1 << 20


def tweets_block_size(csv_bytes: int, threads: int) -> int:
    """xz block size that cuts the hour's tweets CSV (about ``csv_bytes``) into a block a thread.

    xz -T compresses blocks independently, each block in one thread. Its default (24 MiB at -6)
    cut a 1 % hour into 24 + 24 + 14 MiB: each cut costs dictionary context (3.7 % larger than
    one block, measured) and the short last block leaves a core idle. Equal blocks, one per
    thread, keep every core busy to the end with the fewest cuts; 2 % extra so that the
    estimate's error makes no tiny last block. 64 MiB at most bounds xz's memory at the 10 %
    rate.
    """
    threads = threads or os.cpu_count() or 1  # 0: xz's one thread per core
    if threads == 1:
        return 0  # one thread: xz writes a single block anyway
    return int(min(64 * MIB, max(MIB, csv_bytes * 1.02 / threads)))


def _row_bytes(meta: dict, label: str, tweets_tsv: Path) -> int:
    """CSV bytes of the tweet rows of ``label`` in an intermediate (per its metadata)."""
    if "row_bytes" in meta:
        return meta["row_bytes"].get(label, 0)
    return tweets_tsv.stat().st_size  # made by an older version: an upper bound


def build_hour(
    hour: Hour | str,
    tz: ZoneInfo | str,
    inputs: Mapping[str, Sequence[tuple[str | Path, str | Path]]],
    outputs: Mapping[str, str | Path],
    *,
    xz_preset: int = 6,
    xz_threads: int = 2,
    server_names: Sequence[str],
    expected_minutes: Iterable[datetime] | None = None,
    log=None,
) -> dict:
    """Merge an hour's intermediates into its ids/tweets/users .xz files and stats JSON.

    ``inputs``: server name -> [(tweets_tsv, users_tsv), ...] of that server's minute files in
    the hour's read window, any order. ``outputs``: ``layout.vault_paths(vault, hour)``.
    ``expected_minutes``: the UTC minutes shown in the stats (default: every minute of the
    hour). ``log``: a ``logging.Logger`` or a file object.

    An hour is never replaced by a build with fewer tweets: if ``outputs["stats"]`` exists with
    a larger total (and its files are there), the old files are kept, their mtimes bumped, and
    the old stats returned (their ``inputs`` extended by this build's, so the new files count
    as seen).
    """
    hour = Hour.parse(hour) if isinstance(hour, str) else hour
    tz = ZoneInfo(tz) if isinstance(tz, str) else tz
    names = list(server_names)
    unknown = sorted(set(inputs) - set(names))
    if unknown:
        raise InputError(f"inputs for servers not in server_names: {', '.join(unknown)}")
    bounds = hour_bounds(hour, tz)
    if bounds is None:
        raise ValueError(f"hour {hour} does not exist in {tz.key}")
    start, end = bounds
    out = {k: Path(outputs[k]) for k in ("ids", "tweets", "users", "stats")}
    label = hour.label.encode()
    for p in out.values():
        for tmp in remove_stale_temps(p):
            _emit(log, logging.INFO, f"removed {tmp}, left by an interrupted build")

    # --- metadata of every input: tweets per minute, skipped lines, raw file names ----------
    if expected_minutes is None:
        minutes = []
        t = start
        while t < end:
            minutes.append(t)
            t += timedelta(minutes=1)
    else:
        minutes = sorted(m.astimezone(UTC) for m in expected_minutes)
    minute_keys = {m: _minute_key(m, tz) for m in minutes}
    per_minute: dict[str, dict[str, int | None]] = {}
    skipped: dict[str, dict[str, int]] = {}
    raw_names: dict[str, list[str]] = {}
    tweet_files: list[tuple[int, Path]] = []
    user_files: list[tuple[int, Path]] = []
    # The tweets CSV's size, for xz's block size: per minute file, the biggest server's rows
    # (servers see nearly the same tweets; one with an outage adds nothing to the other's).
    csv_by_minute: dict[datetime, int] = {}
    for rank, server in enumerate(names):
        counts: dict[str, int | None] = {minute_keys[m]: None for m in minutes}
        skips: dict[str, int] = {}
        found = []
        for tweets_tsv, users_tsv in inputs.get(server, ()):
            f, meta = _open_intermediate(tweets_tsv)
            f.close()
            if meta.get("server") not in (None, server):
                raise InputError(
                    f"{tweets_tsv}: made for server {meta['server']!r}, not {server!r}"
                )
            minute = datetime.fromisoformat(meta["minute"]).astimezone(UTC)
            found.append((minute, Path(meta["file"]).name))
            n_bytes = _row_bytes(meta, hour.label, Path(tweets_tsv))
            csv_by_minute[minute] = max(csv_by_minute.get(minute, 0), n_bytes)
            if start <= minute < end:
                key = minute_keys.get(minute) or _minute_key(minute, tz)
                counts[key] = (counts.get(key) or 0) + meta["tweets"]
                for reason, n in meta.get("skipped", {}).items():
                    skips[reason] = skips.get(reason, 0) + n
            tweet_files.append((rank, Path(tweets_tsv)))
            user_files.append((rank, Path(users_tsv)))
        per_minute[server] = counts
        skipped[server] = dict(sorted(skips.items()))
        raw_names[server] = [name for _, name in sorted(found)]
    missing = [s for s in names if not raw_names[s]]

    # --- merge into three xz pipes ------------------------------------------------------------
    writers: list[XzWriter] = []
    try:
        w_ids = XzWriter(out["ids"], xz_preset, xz_threads)
        writers.append(w_ids)
        block = tweets_block_size(sum(csv_by_minute.values()), xz_threads)
        w_tweets = XzWriter(out["tweets"], xz_preset, xz_threads, block)
        writers.append(w_tweets)
        w_users = XzWriter(out["users"], xz_preset, xz_threads)
        writers.append(w_users)
        # Users are merged in a second thread at the same time: each xz reads only a block or
        # two ahead, so merged one after the other the users' xz would start only once the
        # tweets' xz was nearly done, leaving a core idle (the GIL is free while a write waits).
        # Each input is ended as soon as its rows are written: xz compresses its last block
        # (for the users and IDs, often their only one) only once its input ends.
        with ThreadPoolExecutor(1) as pool:
            users_done = pool.submit(_merge_users, user_files, label, w_users)
            try:
                mask_counts = _merge_tweets(tweet_files, label, w_tweets, w_ids)
            except BaseException:
                w_users.abort()  # unblocks the users thread
                raise
            n_users = users_done.result()
        for w in writers:
            w.finish()
    except BaseException:
        for w in writers:
            w.abort()
        raise

    n = len(names)
    all_seen = (1 << n) - 1
    per_server = {s: 0 for s in names}
    total = diff = 0
    for mask, k in mask_counts.items():
        total += k
        if mask != all_seen:
            diff += k
        for rank, s in enumerate(names):
            if mask >> rank & 1:
                per_server[s] += k
    if n == 1:
        diff = 0
    stats = {
        "hour": hour.label,
        "servers": names,
        "counts": per_server,
        "total": total,
        "diff": diff,
        "diff_pct": round(100 * diff / total, 2) if total else 0.0,
        "users": n_users,
        "minutes": per_minute,
        "skipped": skipped,
        "missing_servers": missing,
        "inputs": raw_names,
    }

    # --- never replace an hour by one with fewer tweets ------------------------------------
    old = _read_stats(out["stats"])
    kept = [out[k] for k in ("ids", "tweets", "users", "stats")]
    if old is not None and old.get("total", 0) > total and all(p.exists() for p in kept):
        for w in writers:
            w.abort()
        # The old stats learn of the new inputs: they have been considered, so a planner
        # that rebuilds hours with unseen inputs does not try again on every run.
        old_inputs = old.get("inputs", {})
        merged = {
            s: sorted(set(old_inputs.get(s, [])) | set(raw_names.get(s, [])))
            for s in dict.fromkeys([*old_inputs, *names])
        }
        if merged != old_inputs:
            old["inputs"] = merged
            atomic_write(out["stats"], orjson.dumps(old, option=orjson.OPT_INDENT_2) + b"\n")
        _bump(kept)
        _emit(
            log,
            logging.WARNING,
            f"{hour}: new build has {total} tweets, the existing one {old['total']}: "
            "kept the existing files",
        )
        return old

    # Stats go first so that, until the new ones are written, the hour reads as incomplete.
    try:
        os.unlink(out["stats"])
    except FileNotFoundError:
        pass
    try:
        for w in writers:
            w.commit(sync_dir=False)
    except BaseException:
        for w in writers:
            w.abort()
        raise
    for d in {p.parent for p in out.values()}:
        fsync_dir(d)
    atomic_write(out["stats"], orjson.dumps(stats, option=orjson.OPT_INDENT_2) + b"\n")
    _emit(
        log,
        logging.INFO,
        f"{hour}: {total} tweets ({', '.join(f'{s} {c}' for s, c in per_server.items())}), "
        f"diff {diff} ({stats['diff_pct']}%), {n_users} users"
        + (f", missing servers: {', '.join(missing)}" if missing else ""),
    )
    return stats


def _read_stats(path: Path) -> dict | None:
    try:
        return orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None


def _merge_tweets(files, label: bytes, tweets: XzWriter, ids: XzWriter) -> dict[int, int]:
    """Write the hour's tweet rows and IDs; return {bitmask of servers that saw it: n IDs}."""
    write_tweet = tweets.write
    write_id = ids.write
    write_tweet(format_row(TWEET_COLUMNS).encode() + b"\n")
    masks: dict[int, int] = {}
    cur = None
    mask = 0
    for key, rank, line in _merged(files, T_KEY_END, T_LABEL, label):
        tid = key[:ID_END]
        if tid != cur:
            if cur is not None:
                masks[mask] = masks.get(mask, 0) + 1
            cur = tid
            mask = 1 << rank
            # First copy of the ID in (ID, retrieved_at, server) order: the one that counts.
            write_tweet(line[T_ROW:])
            write_id((tid.lstrip(b"0") or b"0") + b"\n")
        else:
            mask |= 1 << rank
    if cur is not None:
        masks[mask] = masks.get(mask, 0) + 1
    tweets.end_input()
    ids.end_input()
    return masks


def _merge_users(files, label: bytes, users: XzWriter) -> int:
    """Write one row per author from their latest tweet of the hour; return the row count."""
    write_user = users.write
    write_user(format_row(USER_COLUMNS).encode() + b"\n")
    n = 0
    cur = None
    best_tweet = None
    best_line = b""
    for key, _rank, line in _merged(files, U_KEY_END, U_LABEL, label):
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
