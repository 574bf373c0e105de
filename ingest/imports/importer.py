"""``sampled-stream import``: existing archives into a server's raw layout, as minute files.

What it reads (one JSON object a line; plain, gzip, bzip2, xz or zstd, told by the file's first
bytes whatever its name ends in):
- twarc2 ``sample``/``stream`` output: one stream response a line, ``{"data": {tweet},
  "includes": ..., "__twarc": {"retrieved_at": ...}}``;
- twarc2 response pages (``search``, ``timelines``, ``hydrate``): ``data`` a list of tweets,
  with ``includes``, ``meta``, ``errors``;
- the seed's raw files (stream lines) and flattened tweets (tweet fields at the top level).

Each such line goes, byte for byte, into the minute file of its ``__twarc.retrieved_at``, the
arrival a collector would have filed it under; a line without one goes by its tweet's
``created_at`` (a page by its newest tweet's: it was fetched after that), and is counted as
such. Every other line is counted by kind (``SKIPPED``) and left out, never silently.

How an input lands (flat memory, resumable, idempotent, never overwriting):
1. Read: the input is streamed once, decompressed and hashed (SHA-256 of its bytes as stored);
   its lines go to per-minute buffers that are appended to staging files
   ``{work_dir}/import/{server}/staging/{input id}/{day}/{HH}/{minute}.jsonl`` whenever they
   hold ``FLUSH_BYTES``, so memory stays at the buffers and one line (at most ``MAX_LINE``)
   whatever the input's size. At the end the staged files are fsynced and ``.staged.json``
   (what was read) is written: from then on the read never needs doing again.
2. Place: under the server's place lock, each staged minute goes into raw_dir with
   ``ingest.minutefiles.place_minute``: renamed when raw_dir lacks that minute, else replaced
   by the union of both files' lines, so another input of the same minute (or an earlier import
   of this one) keeps every line.
3. Receipt: ``{work_dir}/import/{server}/receipts/{sha256}.json`` (size, checksum, lines by
   kind, minutes written) is written last, then the staging folder goes.

A killed import, run again, first finishes the placements of inputs whose read was complete
(placing a minute again changes nothing: a file's union with itself) and throws away reads that
were cut short; those inputs are read again from their start when given again. An input with a
receipt (same path, size and mtime; or, once read, the same checksum) is not imported again.
One import per server at a time (``import.lock``); its ``--jobs`` inputs are read in parallel.
"""

from __future__ import annotations

import bz2
import concurrent.futures as cf
import contextlib
import gzip
import hashlib
import io
import json
import logging
import lzma
import multiprocessing
import os
import shutil
import sys
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import orjson

from ingest.atomic import BUFFER, atomic_write_json, fsync_dir
from ingest.clock import Clock, SystemClock
from ingest.complied import DayCache
from ingest.layout import minute_path
from ingest.locks import LockBusy, exclusive_lock
from ingest.minutefiles import fsync_file, place_minute

log = logging.getLogger(__name__)

WRITTEN = {
    "stream": "stream response (twarc2 sample/stream, the seed's raw files)",
    "page": "response page (data is a list of tweets)",
    "flat": "flattened tweet (tweet fields at the top level)",
}
SKIPPED = {
    "blank": "empty or whitespace-only line (a keep-alive)",
    "error": "API error or disconnect message, no tweet",
    "v1_tweet": "v1.1 tweet (id_str, user): not the v2 format this archive keeps",
    "no_tweet": "JSON object without a tweet (no data, no id)",
    "no_time": "no __twarc.retrieved_at and no readable created_at",
    "not_object": "JSON that is not an object",
    "invalid_json": "not valid JSON",
    "invalid_utf8": "not valid UTF-8",
    "truncated": "last line cut short (no newline, not valid JSON)",
    "too_long": "line longer than MAX_LINE (64 MiB)",
}
MAX_LINE = 64 << 20  # a line longer than this is skipped in pieces, never held whole
FLUSH_BYTES = 16 << 20  # per input: buffered lines go to their staging files beyond this
REPORT_BYTES = 4 << 20  # progress reports from a reader: every 4 MiB of input
EXAMPLES = 5  # line numbers kept per skipped kind, for the operator to look at
MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
MARKER = ".staged.json"


class ImportSetupError(ValueError):
    """The import cannot start: a server that is not ``imported``, a missing input, a busy lock."""


def import_root(config: dict[str, Any], server: str) -> Path:
    return Path(config["work_dir"]) / "import" / server


# --- reading --------------------------------------------------------------------------------


def detect_compression(head: bytes) -> str:
    """``gzip``, ``bzip2``, ``xz``, ``zstd`` by the magic bytes at the start, else ``plain``."""
    for magic, name in MAGIC:
        if head.startswith(magic):
            return name
    return "plain"


def _zstd():
    try:
        from compression import zstd  # Python 3.14+
    except ImportError:
        from backports import zstd  # the same module, for Python < 3.14
    return zstd


def open_decompressed(raw: IO[bytes], compression: str) -> IO[bytes]:
    """A readable binary stream of ``raw``'s content (concatenated members/frames included)."""
    if compression == "plain":
        return raw
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == "bzip2":
        return bz2.BZ2File(raw)
    if compression == "xz":
        return lzma.LZMAFile(raw)
    if compression == "zstd":
        return _zstd().ZstdFile(raw)
    raise ValueError(f"unknown compression {compression!r}")


def _damage_errors() -> tuple[type[BaseException], ...]:
    """What a damaged or cut compressed input raises while it is read (and a failing disk)."""
    return (OSError, EOFError, zlib.error, lzma.LZMAError, _zstd().ZstdError)


class _Hashing(io.RawIOBase):
    """The input file as read: every byte goes through the checksum and is counted."""

    def __init__(self, f: IO[bytes], sha) -> None:
        self._f = f
        self._sha = sha
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self._f.readinto(b)
        if n:
            self._sha.update(memoryview(b)[:n])
            self.count += n
        return n


_MINUTES: dict[str, datetime | None] = {}  # twarc stamps are per second: many lines share one


def utc_minute(value: object) -> datetime | None:
    """The UTC minute of an ISO 8601 instant (naive means UTC), None if it is not one."""
    if type(value) is not str:
        return None
    try:
        return _MINUTES[value]
    except KeyError:
        pass
    if len(_MINUTES) > 100_000:
        _MINUTES.clear()
    try:
        dt = datetime.fromisoformat(value)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        minute: datetime | None = dt.astimezone(UTC).replace(second=0, microsecond=0)
    except (ValueError, OverflowError):
        minute = None
    _MINUTES[value] = minute
    return minute


def classify(raw: bytes, unterminated: bool = False) -> tuple[str, datetime | None, bool]:
    """(kind, UTC minute to file it under, filed by created_at) of one line (its newline, if
    any, is JSON whitespace).

    The kinds of ``WRITTEN`` come with a minute; ``SKIPPED`` kinds with None. The shapes are
    those ``ingest.hours.parse.parse_line`` reads; ``unterminated`` marks a last line that had
    no newline, so invalid JSON there is a cut line (``truncated``).
    """
    if not raw or raw.isspace():
        return "blank", None, False
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # orjson refuses some JSON that the build's parser reads (lone surrogates, big ints).
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return "invalid_utf8", None, False
        except (ValueError, RecursionError):
            return ("truncated" if unterminated else "invalid_json"), None, False
    if type(obj) is not dict:
        return "not_object", None, False
    data = obj.get("data")
    if type(data) is dict and "id" in data:
        kind, created = "stream", [data.get("created_at")]
    elif type(data) is list and any(type(t) is dict for t in data):
        kind, created = "page", [t.get("created_at") for t in data if type(t) is dict]
    elif data is None and "id" in obj:
        if "id_str" in obj or type(obj.get("user")) is dict:
            return "v1_tweet", None, False
        kind, created = "flat", [obj.get("created_at")]
    elif data is None and "errors" in obj:
        return "error", None, False
    else:
        return "no_tweet", None, False
    meta = obj.get("__twarc")
    minute = utc_minute(meta.get("retrieved_at")) if type(meta) is dict else None
    if minute is not None:
        return kind, minute, False
    minutes = [m for m in map(utc_minute, created) if m is not None]
    if not minutes:
        return "no_time", None, False
    return kind, max(minutes), True


class _Stager:
    """Per-minute buffers of one input, appended to its staging files beyond FLUSH_BYTES."""

    def __init__(self, root: Path, tz: ZoneInfo) -> None:
        self.root = root
        self.tz = tz
        self.minutes: dict[str, int] = {}  # relative path -> lines
        self._buffers: dict[str, list[bytes]] = {}
        self._size = 0
        self._rel: dict[datetime, str] = {}
        self._dirs: set[Path] = set()

    def add(self, minute: datetime, line: bytes) -> None:
        rel = self._rel.get(minute)
        if rel is None:
            if len(self._rel) > 100_000:
                self._rel.clear()
            rel = self._rel[minute] = str(minute_path(Path(), minute, self.tz))
        buf = self._buffers.get(rel)
        if buf is None:
            buf = self._buffers[rel] = []
            self.minutes.setdefault(rel, 0)
        buf.append(line)
        self.minutes[rel] += 1
        self._size += len(line)
        if self._size >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        for rel, lines in self._buffers.items():
            path = self.root / rel
            if path.parent not in self._dirs:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._dirs.add(path.parent)
            with open(path, "ab") as f:
                f.write(b"".join(lines))  # one write: writelines writes line by line
        self._buffers.clear()
        self._size = 0

    def sync(self) -> None:
        """Everything staged is on disk (files, then the folders holding them)."""
        self.flush()
        for rel in self.minutes:
            fsync_file(self.root / rel)
        for d in sorted(self._dirs, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(d)
            fsync_dir(d.parent)
        fsync_dir(self.root)


def read_input(
    path: Path, stage: Path, tz: ZoneInfo, report: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Stream ``path`` into staged minute files under ``stage``; return what was read.

    A decompression error (a cut or damaged .gz, .xz...) or a read error ends the input: what
    was read up to there is kept, ``damaged`` says what happened and where.
    """
    sha = hashlib.sha256()
    lines: dict[str, int] = {}
    examples: dict[str, list[int]] = {}
    by_created = 0
    damaged = None
    stager = _Stager(stage, tz)
    started = time.monotonic()
    with open(path, "rb", buffering=0) as f:
        counted = _Hashing(f, sha)
        buffered = io.BufferedReader(counted, BUFFER)
        compression = detect_compression(buffered.peek(6)[:6])
        stream = open_decompressed(buffered, compression)
        readline = stream.readline
        damage = _damage_errors()
        n = reported_bytes = reported_lines = 0
        while True:
            try:
                raw = readline(MAX_LINE)
                if len(raw) == MAX_LINE and raw[-1:] != b"\n":
                    while (rest := readline(MAX_LINE)) and rest[-1:] != b"\n":
                        pass
                    raw = None  # too long
            except damage as e:
                damaged = f"{type(e).__name__}: {e} (after {counted.count:,} bytes, line {n:,})"
                break
            if raw == b"":
                break
            n += 1
            if raw is None:
                kind, minute = "too_long", None
            else:
                unterminated = raw[-1:] != b"\n"
                kind, minute, created = classify(raw, unterminated)  # a newline is whitespace
                if minute is not None:
                    stager.add(minute, raw + b"\n" if unterminated else raw)
                    by_created += created
            lines[kind] = lines.get(kind, 0) + 1
            if minute is None and len(ex := examples.setdefault(kind, [])) < EXAMPLES:
                ex.append(n)
            if report is not None and counted.count - reported_bytes >= REPORT_BYTES:
                report(counted.count - reported_bytes, n - reported_lines)
                reported_bytes, reported_lines = counted.count, n
        with contextlib.suppress(*damage):
            while buffered.read(BUFFER):  # the checksum covers the whole file, read or not
                pass
        if report is not None:
            report(counted.count - reported_bytes, n - reported_lines)
    stager.sync()
    return {
        "compression": compression,
        "size": counted.count,
        "sha256": sha.hexdigest(),
        "lines": dict(sorted(lines.items())),
        "lines_total": n,
        "by_created_at": by_created,
        "skipped_examples": examples,
        "damaged": damaged,
        "minutes": dict(sorted(stager.minutes.items())),
        "read_seconds": round(time.monotonic() - started, 3),
    }


# --- placing and receipts -------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where one server's import goes (picklable: it travels to worker processes)."""

    server: str
    raw_dir: Path
    root: Path  # {work_dir}/import/{server}
    tz: str
    vault_dir: Path | None = None  # its compliance logs apply to every minute placed

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def receipts(self) -> Path:
        return self.root / "receipts"

    def receipt_path(self, sha256: str) -> Path:
        return self.receipts / f"{sha256}.json"


def place_staged(target: Target, stage: Path, read: dict[str, Any]) -> dict[str, int]:
    """Place every staged minute of one input into raw_dir (union where it exists)."""
    placed = {"new": 0, "merged": 0, "same": 0, "lines_added": 0}
    dirs: set[Path] = set()
    complied = DayCache(target.vault_dir)
    for rel in read["minutes"]:
        staged = stage / rel
        if not staged.exists():
            continue  # placed by an earlier run that was killed before its receipt
        final = target.raw_dir / rel
        outcome, added = place_minute(staged, final, complied)
        placed[outcome] += 1
        placed["lines_added"] += added
        if outcome != "same":
            dirs.update((final.parent, final.parent.parent))
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(d)
    fsync_dir(target.raw_dir)
    return placed


def finish_staged(target: Target, stage: Path, now: datetime) -> dict[str, Any]:
    """Place a completely read input (its ``.staged.json``), write its receipt, drop staging.

    Under the place lock: two inputs of one import place their minutes one after the other,
    so a union never misses the other's lines. An input whose checksum already has a receipt
    (a copy of an imported file) places nothing; its path is added to that receipt.
    """
    read = json.loads((stage / MARKER).read_text())
    with exclusive_lock(target.root / "place.lock"):
        receipt_path = target.receipt_path(read["sha256"])
        if receipt_path.exists():
            receipt = json.loads(receipt_path.read_text())
            if read["seen_as"][0] not in receipt["seen_as"]:
                receipt["seen_as"].append(read["seen_as"][0])
                atomic_write_json(receipt_path, receipt)
            shutil.rmtree(stage)
            return {**receipt, "source": read["source"], "status": "same_content"}
        placed = place_staged(target, stage, read)
        receipt = {
            **read,
            "server": target.server,
            "placed": placed,
            "imported_at": now.isoformat(),
        }
        atomic_write_json(receipt_path, receipt)
    shutil.rmtree(stage)
    return {**receipt, "status": "imported"}


def input_id(path: Path, st: os.stat_result) -> str:
    """The staging folder of an input: its path, size, mtime and inode (a changed file is a
    new input; its checksum is known only once it is read)."""
    key = f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}".encode()
    return hashlib.sha256(key).hexdigest()[:24]


def seen_as(path: Path, st: os.stat_result) -> list[Any]:
    return [str(path), st.st_size, st.st_mtime_ns]


@dataclass(frozen=True)
class Job:
    target: Target
    path: Path
    seen: list[Any]
    stage: Path


def run_job(
    job: Job, now: datetime, report: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Read, place and receipt one input; a dict with ``status`` (``imported``,
    ``same_content``, ``failed``) and, unless failed, the receipt."""
    stage = job.stage
    try:
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        read = read_input(job.path, stage, ZoneInfo(job.target.tz), report)
        read = {"source": str(job.path), "seen_as": [job.seen], **read}
        atomic_write_json(stage / MARKER, read)
    except Exception as e:  # noqa: BLE001 - one input's failure costs only that input
        shutil.rmtree(stage, ignore_errors=True)
        return {"status": "failed", "source": str(job.path), "error": f"reading: {e}"}
    try:
        return finish_staged(job.target, stage, now)
    except Exception as e:  # noqa: BLE001
        return {
            "status": "failed",
            "source": str(job.path),
            "error": f"placing: {e} (read and staged: the next import places it)",
        }


# --- progress ---------------------------------------------------------------------------------


class Progress:
    """Bytes read, lines per second and the time left: a tqdm bar on a terminal, else a log
    line every ``every`` seconds."""

    def __init__(
        self, total_bytes: int, label: str, *, bar: bool, every: float = 60.0, stream=None
    ) -> None:
        self.total = total_bytes
        self.label = label
        self.every = every
        self.bytes = 0
        self.lines = 0
        self.started = self._last_log = time.monotonic()
        self._bar = None
        if bar:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total_bytes,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=label,
                file=stream or sys.stderr,
                dynamic_ncols=True,
                smoothing=0.05,
            )

    def update(self, nbytes: int, nlines: int) -> None:
        self.bytes += nbytes
        self.lines += nlines
        now = time.monotonic()
        rate = self.lines / max(now - self.started, 1e-9)
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self.lines:,} lines, {rate:,.0f} lines/s", refresh=False)
            self._bar.update(nbytes)
        elif now - self._last_log >= self.every:
            self._last_log = now
            log.info("%s", self.line(now))

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        share = self.bytes / self.total if self.total else 1.0
        left = elapsed * (1 - share) / share if share > 0 else float("nan")
        return (
            f"{self.label}: {self.bytes / 1e6:,.0f} of {self.total / 1e6:,.0f} MB "
            f"({100 * share:.0f} %), {self.lines:,} lines, {self.lines / elapsed:,.0f} lines/s, "
            f"{self.bytes / 1e6 / elapsed:,.1f} MB/s, about {_duration(left)} left"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _duration(seconds: float) -> str:
    if seconds != seconds:  # nan: nothing read yet
        return "? min"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


_QUEUE = None  # a worker process's progress queue


def _init_worker(queue) -> None:
    global _QUEUE
    _QUEUE = queue


def _report_to_queue(nbytes: int, nlines: int) -> None:
    _QUEUE.put((nbytes, nlines))


def _run_in_worker(job: Job, now: datetime) -> dict[str, Any]:
    return run_job(job, now, _report_to_queue)


# --- the command ----------------------------------------------------------------------------


def expand_sources(sources: Iterable[str | Path]) -> list[Path]:
    """Input files: each source a file, or a folder whose files (not hidden, recursively, in
    name order) are inputs. ImportSetupError names a source that is missing or unreadable."""
    out: list[Path] = []
    for source in sources:
        p = Path(source)
        if p.is_dir():
            files = sorted(
                q
                for q in p.rglob("*")
                if q.is_file() and not any(part.startswith(".") for part in q.relative_to(p).parts)
            )
        elif p.is_file():
            files = [p]
        else:
            raise ImportSetupError(f"{source}: no such file or folder (or not a regular file)")
        for q in files:
            if not os.access(q, os.R_OK):
                raise ImportSetupError(f"{q}: not readable")
        out += files
    seen: set[Path] = set()
    unique = []
    for q in out:
        r = q.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(r)
    return unique


@dataclass
class ImportReport:
    server: str
    results: list[dict[str, Any]] = field(default_factory=list)  # one per input, in order
    resumed: list[dict[str, Any]] = field(default_factory=list)  # staged by a killed import
    discarded_reads: int = 0  # staging folders of reads cut short, thrown away
    seconds: float = 0.0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results + self.resumed if r["status"] == "failed"]

    @property
    def damaged(self) -> list[dict[str, Any]]:
        return [r for r in self.results + self.resumed if r.get("damaged")]


def import_target(config: dict[str, Any], server: str) -> Target:
    for s in config["servers"]:
        if s["name"] == server:
            if not s["imported"]:
                raise ImportSetupError(
                    f"servers: {server!r} is not marked `imported: true`; retention deletes "
                    "the raw files of other servers once their hours are built. Import into a "
                    "server entry of its own with `imported: true` (its raw_dir not a "
                    "collector's)"
                )
            return Target(
                server,
                Path(s["raw_dir"]),
                import_root(config, server),
                config["timezone"],
                Path(config["vault_dir"]),
            )
    known = ", ".join(s["name"] for s in config["servers"])
    raise ImportSetupError(f"servers: no server named {server!r} (known: {known})")


def load_receipts(target: Target) -> dict[tuple[str, int, int], dict[str, Any]]:
    """Receipts by every (path, size, mtime) their input was seen as."""
    index = {}
    if target.receipts.is_dir():
        for p in target.receipts.glob("*.json"):
            receipt = json.loads(p.read_text())
            for path, size, mtime in receipt["seen_as"]:
                index[(path, size, mtime)] = receipt
    return index


def import_sources(
    config: dict[str, Any],
    server: str,
    sources: Iterable[str | Path],
    *,
    jobs: int = 1,
    clock: Clock | None = None,
    progress: Callable[[int], Progress] | None = None,
) -> ImportReport:
    """Import ``sources`` into ``server``'s raw_dir (see the module docstring).

    ``progress(total_bytes)`` makes the progress display; none by default.
    """
    clock = clock or SystemClock()
    target = import_target(config, server)
    paths = expand_sources(sources)
    report = ImportReport(server)
    started = time.monotonic()
    try:
        with exclusive_lock(target.root / "import.lock", blocking=False):
            _resume(target, clock, report)
            receipts = load_receipts(target)
            todo = []
            for path in paths:
                st = path.stat()
                done = receipts.get((str(path), st.st_size, st.st_mtime_ns))
                if done is not None:
                    report.results.append({**done, "source": str(path), "status": "already"})
                    continue
                stage = target.staging / input_id(path, st)
                todo.append((len(report.results), Job(target, path, seen_as(path, st), stage)))
                report.results.append({"source": str(path), "status": "pending"})
            total = sum(job.path.stat().st_size for _, job in todo)
            bar = progress(total) if progress is not None and todo else None
            try:
                for i, result in _run(todo, jobs, clock.now(), bar):
                    report.results[i] = result
            finally:
                if bar is not None:
                    bar.close()
    except LockBusy:
        raise ImportSetupError(
            f"another import into server {server!r} is running ({target.root / 'import.lock'})"
        ) from None
    report.seconds = time.monotonic() - started
    return report


def _resume(target: Target, clock: Clock, report: ImportReport) -> None:
    """Finish what a killed import left: complete reads are placed, cut reads thrown away."""
    if not target.staging.is_dir():
        return
    for stage in sorted(target.staging.iterdir()):
        if (stage / MARKER).is_file():
            log.info("%s: placing the staged minutes of a killed import", stage.name)
            try:
                report.resumed.append(finish_staged(target, stage, clock.now()))
            except Exception as e:  # noqa: BLE001 - reported, retried by the next import
                report.resumed.append(
                    {"status": "failed", "source": str(stage), "error": f"placing: {e}"}
                )
        else:
            shutil.rmtree(stage, ignore_errors=True)
            report.discarded_reads += 1


def _run(
    todo: list[tuple[int, Job]], jobs: int, now: datetime, bar: Progress | None
) -> Iterable[tuple[int, dict[str, Any]]]:
    """(index, result) of each job as it ends: in this process for one job at a time, else in
    ``jobs`` worker processes that report their progress through a queue."""
    update = bar.update if bar is not None else None
    if jobs <= 1 or len(todo) <= 1:
        for i, job in todo:
            yield i, run_job(job, now, update)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    queue = ctx.Queue()
    with cf.ProcessPoolExecutor(
        max_workers=min(jobs, len(todo)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(queue,),
    ) as pool:
        futures = {pool.submit(_run_in_worker, job, now): (i, job) for i, job in todo}
        pending = set(futures)
        while pending:
            done, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
            _drain(queue, update)
            for fut in done:
                i, job = futures[fut]
                try:
                    yield i, fut.result()
                except Exception as e:  # noqa: BLE001 - a worker died (killed, out of memory)
                    yield i, {"status": "failed", "source": str(job.path), "error": repr(e)}
        _drain(queue, update)


def _drain(queue, update: Callable[[int, int], None] | None) -> None:
    while True:
        try:
            nbytes, nlines = queue.get_nowait()
        except Exception:  # noqa: BLE001 - queue.Empty
            return
        if update is not None:
            update(nbytes, nlines)


def describe(result: dict[str, Any]) -> str:
    """One input's outcome, for the command's output."""
    source = result["source"]
    status = result["status"]
    if status == "failed":
        return f"{source}: FAILED {result['error']}"
    lines = result["lines"]
    written = sum(lines.get(k, 0) for k in WRITTEN)
    kinds = ", ".join(f"{lines[k]:,} {k}" for k in WRITTEN if lines.get(k))
    skipped = ", ".join(f"{v:,} {k}" for k, v in lines.items() if k in SKIPPED)
    head = {
        "imported": "imported",
        "already": "already imported, nothing to do",
        "same_content": "same content as an imported input, nothing placed",
    }[status]
    text = (
        f"{source}: {head} ({result['compression']}, {result['size']:,} bytes, "
        f"sha256 {result['sha256'][:16]}...): {written:,} lines written ({kinds or 'none'})"
    )
    if result["by_created_at"]:
        text += f", {result['by_created_at']:,} of them by created_at (no retrieved_at)"
    text += f"; skipped: {skipped or 'none'}; {len(result['minutes']):,} minute files"
    if status == "imported":
        p = result["placed"]
        text += f" ({p['new']:,} new, {p['merged']:,} merged, {p['same']:,} unchanged)"
    if result.get("damaged"):
        text += f"; DAMAGED input, read up to: {result['damaged']}"
    return text
