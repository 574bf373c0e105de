"""``sampled-stream import``: existing archives into a server's raw layout, as minute files.

What it reads (one JSON object a line; plain, gzip, bzip2, xz or zstd, told by the file's first
bytes whatever its name ends in):
- twarc2 ``sample``/``stream`` output: one stream response a line, ``{"data": {tweet},
  "includes": ..., "__twarc": {"retrieved_at": ...}}``;
- twarc2 response pages (``search``, ``timelines``, ``hydrate``): ``data`` a list of tweets,
  with ``includes``, ``meta``, ``errors``;
- the seed's raw files (stream lines) and flattened tweets (tweet fields at the top level).

Where each line's tweets go is ``ingest.imports.lines``: a stream line byte for byte into the
minute of its ``__twarc.retrieved_at``; a page's or flattened tweet fetched after its created
hour's read window into the minute of its ``created_at``, so that every fetch of a tweet meets
in one hour. Every other line is counted by kind (``SKIPPED``) and left out, never silently.
Only verified bytes are read (``ingest.imports.decompress``): a compressed unit that fails its
check ends the input, and nothing that came out of it is placed. An input without a single
tweet line fails and says what it holds.

How an input lands (flat memory, resumable, idempotent, never overwriting):
1. Read: the input is streamed once, decompressed and hashed (SHA-256 of its bytes as stored);
   its lines go to per-minute buffers that are appended to staging files
   ``{work_dir}/import/{server}/staging/{input id}/{day}/{HH}/{minute}.jsonl`` whenever they
   hold ``FLUSH_BYTES``, so memory stays at the buffers and one line (at most ``MAX_LINE``)
   whatever the input's size. At the end the staged files are fsynced and ``.staged.json``
   (what was read) is written: from then on the read never needs doing again.
2. Place: under the workflow's run lock (no run plans, builds or cleans meanwhile; held only
   while placing, so a long read never stops the cron runs) and the server's place lock,
   each staged minute goes into raw_dir with
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

import concurrent.futures as cf
import contextlib
import hashlib
import io
import json
import logging
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from ingest import changed_hours
from ingest.atomic import BUFFER, atomic_write_json, fsync_dir
from ingest.clock import Clock, SystemClock
from ingest.complied import DayCache
from ingest.imports.decompress import Damaged, chunks, detect_compression
from ingest.imports.lines import SKIPPED, WRITTEN, place_line
from ingest.layout import Hour, minute_path, raw_hours, work_paths
from ingest.locks import LockBusy, exclusive_lock
from ingest.minutefiles import fsync_file, place_minute
from ingest.workflow_run import wait_for_run_lock

log = logging.getLogger(__name__)

MAX_LINE = 64 << 20  # a line longer than this is skipped in pieces, never held whole
FLUSH_BYTES = 16 << 20  # per input: buffered lines go to their staging files beyond this
REPORT_BYTES = 4 << 20  # progress reports from a reader: every 4 MiB of input
EXAMPLES = 5  # line numbers kept per skipped kind, for the operator to look at
MARKER = ".staged.json"


class ImportSetupError(ValueError):
    """The import cannot start: a server that is not ``imported``, a missing input, a busy lock."""


class ImportBusy(ImportSetupError):
    """The workflow's run lock is held and the import was told not to wait."""


def import_root(config: dict[str, Any], server: str) -> Path:
    return work_paths(config["work_dir"])["imports"] / server


# --- reading --------------------------------------------------------------------------------


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


class _Stager:
    """Per-minute buffers of one input, appended to its staging files beyond FLUSH_BYTES.

    ``checkpoint`` marks what is verified; ``rollback`` drops what was staged since (files
    truncated back), when the compressed unit it came from fails its check.
    """

    def __init__(self, root: Path, tz: ZoneInfo) -> None:
        self.root = root
        self.tz = tz
        self.minutes: dict[str, int] = {}  # relative path -> lines
        self._bytes: dict[str, int] = {}  # relative path -> bytes staged (on disk + buffered)
        self._verified: dict[str, tuple[int, int]] = {}  # (lines, bytes) at the checkpoint
        self._since: set[str] = set()  # paths added to since the checkpoint
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
            self._bytes.setdefault(rel, 0)
        buf.append(line)
        self._since.add(rel)
        self.minutes[rel] += 1
        self._bytes[rel] += len(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES:
            self.flush()

    def checkpoint(self) -> None:
        for rel in self._since:
            self._verified[rel] = (self.minutes[rel], self._bytes[rel])
        self._since.clear()

    def rollback(self) -> None:
        self.flush()
        for rel in self._since:
            lines, size = self._verified.get(rel, (0, 0))
            path = self.root / rel
            if size:
                os.truncate(path, size)
                self.minutes[rel], self._bytes[rel] = lines, size
            else:
                path.unlink()
                del self.minutes[rel], self._bytes[rel]
        self._since.clear()

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


@dataclass
class _Tally:
    """What the lines of an input were, up to a point (copied at each verified mark)."""

    lines: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[int]] = field(default_factory=dict)
    by_created: int = 0
    n: int = 0
    first_line: str | None = None

    def copy(self) -> _Tally:
        examples = {k: list(v) for k, v in self.examples.items()}
        return _Tally(dict(self.lines), examples, self.by_created, self.n, self.first_line)


class _Reader:
    """Lines out of decompressed chunks into the stager, at most MAX_LINE held at once."""

    def __init__(self, stager: _Stager, tz: ZoneInfo, late: int) -> None:
        self.stager, self.tz, self.late = stager, tz, late
        self.tally = _Tally()
        self._partial = bytearray()  # the line the last chunk ended inside
        self._too_long = False  # inside a line longer than MAX_LINE: dropped to its end

    def feed(self, data: bytes) -> None:
        parts = data.split(b"\n")
        if len(parts) > 1:
            first = parts[0]
            if self._too_long or len(self._partial) + len(first) > MAX_LINE:
                self._line(None)
            elif self._partial:
                self._line(bytes(self._partial) + first)
            else:
                self._line(first)
            self._partial.clear()
            self._too_long = False
            line, most = self._line, MAX_LINE
            for part in parts[1:-1]:  # the hot loop: a line a pass
                line(part if len(part) <= most else None)
        if not self._too_long:
            self._partial += parts[-1]
            if len(self._partial) > MAX_LINE:
                self._partial.clear()
                self._too_long = True

    def end(self) -> None:
        """The input ended: a last line without a newline is a line too (maybe cut)."""
        if self._too_long:
            self._line(None)
        elif self._partial:
            self._line(bytes(self._partial), unterminated=True)
        self._partial.clear()
        self._too_long = False

    def _line(self, raw: bytes | None, unterminated: bool = False) -> None:
        t = self.tally
        t.n += 1
        if raw is None:
            kind, pieces = "too_long", ()
        else:
            kind, pieces, by_created = place_line(raw, self.tz, self.late, unterminated)
            for minute, piece in pieces:
                self.stager.add(minute, piece)
            if by_created:
                t.by_created += by_created
            if t.first_line is None:
                t.first_line = raw[:60].decode("utf-8", "replace").strip()
        t.lines[kind] = t.lines.get(kind, 0) + 1
        if not pieces and len(ex := t.examples.setdefault(kind, [])) < EXAMPLES:
            ex.append(t.n)


def read_input(
    path: Path,
    stage: Path,
    tz: ZoneInfo,
    late: int,
    report: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Stream ``path`` into staged minute files under ``stage``; return what was read.

    Only what verified is staged: a compressed unit (gzip member, xz or bzip2 stream, zstd
    frame) that fails its check or is cut short ends the input, and the lines that came out
    of it are taken back; ``damaged`` says where. A read error ends it too.
    """
    sha = hashlib.sha256()
    stager = _Stager(stage, tz)
    reader = _Reader(stager, tz, late)
    verified = reader.tally.copy()
    damaged = None
    started = time.monotonic()
    with open(path, "rb", buffering=0) as f:
        counted = _Hashing(f, sha)
        buffered = io.BufferedReader(counted, BUFFER)
        compression = detect_compression(buffered.peek(6)[:6])
        reported = (0, 0)
        try:
            for data, ok in chunks(buffered, compression):
                if data:
                    reader.feed(data)
                if ok:
                    stager.checkpoint()
                    verified = reader.tally.copy()
                if report is not None and counted.count - reported[0] >= REPORT_BYTES:
                    report(counted.count - reported[0], reader.tally.n - reported[1])
                    reported = (counted.count, reader.tally.n)
            reader.end()
            stager.checkpoint()
            verified = reader.tally.copy()
        except (Damaged, OSError) as e:
            stager.rollback()
            damaged = f"{e}; imported only the {verified.n:,} lines before it"
        with contextlib.suppress(OSError):
            while buffered.read(BUFFER):  # the checksum covers the whole file, read or not
                pass
        if report is not None:
            report(counted.count - reported[0], verified.n - reported[1])
    stager.sync()
    return {
        "compression": compression,
        "size": counted.count,
        "sha256": sha.hexdigest(),
        "lines": dict(sorted(verified.lines.items())),
        "lines_total": verified.n,
        "by_created_at": verified.by_created,
        "skipped_examples": verified.examples,
        "first_line": verified.first_line,
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
    late: int  # late_minutes: a page's tweet retrieved past its hour's window goes by created_at
    work_dir: Path
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
    """Place every staged minute of one input into raw_dir (union where it exists), its
    hours marked changed first (``ingest.changed_hours``: the plan finds them there)."""
    hours = {Hour(day, int(hh)) for day, hh, _ in (rel.split("/") for rel in read["minutes"])}
    first = changed_hours.changed(target.work_dir, target.server) is None and not raw_hours(
        target.raw_dir
    )
    changed_hours.mark(target.work_dir, target.server, hours)
    if first:  # nothing imported before: the marks cover the raw_dir from the start
        changed_hours.mark_complete(target.work_dir, target.server)
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


def read_job(job: Job, report: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Read one input into its staging folder (``.staged.json`` written last): a dict with
    ``status`` ``read`` (and ``stage``) or ``failed``. An input without a single tweet line
    (empty, garbage, a CSV) fails, saying what it holds; nothing of it is kept."""
    stage = job.stage
    source = str(job.path)
    try:
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        read = read_input(job.path, stage, ZoneInfo(job.target.tz), job.target.late, report)
        if not read["damaged"] and not any(read["lines"].get(k) for k in WRITTEN):
            shutil.rmtree(stage, ignore_errors=True)
            return {"status": "failed", "source": source, "error": no_tweets(read)}
        atomic_write_json(stage / MARKER, {"source": source, "seen_as": [job.seen], **read})
    except Exception as e:  # noqa: BLE001 - one input's failure costs only that input
        shutil.rmtree(stage, ignore_errors=True)
        return {"status": "failed", "source": source, "error": f"reading: {e}"}
    return {"status": "read", "source": source, "stage": str(stage)}


def no_tweets(read: dict[str, Any]) -> str:
    """What an input without a tweet line holds, in one line."""
    if read["size"] == 0:
        return "holds no tweet: the file is empty"
    kinds = ", ".join(f"{n:,} {k}" for k, n in read["lines"].items())
    n = read["lines_total"]
    text = f"holds no tweet: {n:,} line{'' if n == 1 else 's'}, none a tweet ({kinds})"
    if read["first_line"]:
        text += f"; first line: {read['first_line']}"
    return text + " (twarc2 JSON lines expected)"


def place_read(
    target: Target, stage: Path, now: datetime, run_lock: Callable[[], Any]
) -> dict[str, Any]:
    """Place a read input under the workflow's run lock (``run_lock()`` takes it): no run
    plans, builds or cleans the raw_dir while its minute files change."""
    try:
        source = json.loads((stage / MARKER).read_text())["source"]
        lock = run_lock()
    except LockBusy as busy:
        return {
            "status": "failed",
            "source": source,
            "error": f"placing: {busy}; staged: the next import places it",
        }
    except (OSError, ValueError, KeyError) as e:
        return {"status": "failed", "source": str(stage), "error": f"staged read: {e}"}
    try:
        return finish_staged(target, stage, now)
    except Exception as e:  # noqa: BLE001 - reported, retried by the next import
        return {
            "status": "failed",
            "source": source,
            "error": f"placing: {e} (read and staged: the next import places it)",
        }
    finally:
        lock.release()


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


def _read_in_worker(job: Job) -> dict[str, Any]:
    return read_job(job, _report_to_queue)


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
                config["late_minutes"],
                Path(config["work_dir"]),
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
    lock_wait_s: float = 3600,
    on_wait: Callable[[LockBusy], None] | None = None,
) -> ImportReport:
    """Import ``sources`` into ``server``'s raw_dir (see the module docstring).

    ``progress(total_bytes)`` makes the progress display; none by default. Placing waits up
    to ``lock_wait_s`` for a workflow run to release the run lock (``on_wait`` hears that it
    waits); with 0 a held lock fails the import at once (ImportSetupError), before reading.
    """
    clock = clock or SystemClock()
    target = import_target(config, server)
    paths = expand_sources(sources)
    report = ImportReport(server)
    started = time.monotonic()

    def run_lock():
        return wait_for_run_lock(config, lock_wait_s, poll_s=1, on_wait=on_wait, what="import")

    if lock_wait_s <= 0:
        try:
            run_lock().release()
        except LockBusy as busy:
            raise ImportBusy(f"the workflow's run lock is held: {busy}; nothing imported") from None
    try:
        with exclusive_lock(target.root / "import.lock", blocking=False):
            _resume(target, clock, report, run_lock)
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
                for i, result in _run(todo, jobs, bar):
                    if result["status"] == "read":
                        result = place_read(target, Path(result["stage"]), clock.now(), run_lock)
                    report.results[i] = result
            finally:
                if bar is not None:
                    bar.close()
                write_summary(target)
    except LockBusy:
        raise ImportSetupError(
            f"another import into server {server!r} is running ({target.root / 'import.lock'})"
        ) from None
    report.seconds = time.monotonic() - started
    return report


def write_summary(target: Target) -> None:
    """``summary.json`` beside the receipts, derived from them: what the health shows of an
    archive (inputs, lines, the minutes it spans, the last import), read without a walk."""
    receipts = [json.loads(p.read_text()) for p in sorted(target.receipts.glob("*.json"))]
    minutes = sorted(m for r in receipts for m in r["minutes"])
    atomic_write_json(
        target.root / "summary.json",
        {
            "inputs": len(receipts),
            "lines": sum(r["lines"].get(k, 0) for r in receipts for k in WRITTEN),
            "first_minute": Path(minutes[0]).stem if minutes else None,
            "last_minute": Path(minutes[-1]).stem if minutes else None,
            "last_import": max((r["imported_at"] for r in receipts), default=None),
        },
    )


def _resume(
    target: Target, clock: Clock, report: ImportReport, run_lock: Callable[[], Any]
) -> None:
    """Finish what a killed import left: complete reads are placed, cut reads thrown away."""
    if not target.staging.is_dir():
        return
    for stage in sorted(target.staging.iterdir()):
        if (stage / MARKER).is_file():
            log.info("%s: placing the staged minutes of a killed import", stage.name)
            report.resumed.append(place_read(target, stage, clock.now(), run_lock))
        else:
            shutil.rmtree(stage, ignore_errors=True)
            report.discarded_reads += 1


def _run(
    todo: list[tuple[int, Job]], jobs: int, bar: Progress | None
) -> Iterable[tuple[int, dict[str, Any]]]:
    """(index, read result) of each job as it ends: in this process for one job at a time,
    else in ``jobs`` worker processes that report their progress through a queue."""
    update = bar.update if bar is not None else None
    if jobs <= 1 or len(todo) <= 1:
        for i, job in todo:
            yield i, read_job(job, update)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    queue = ctx.Queue()
    with cf.ProcessPoolExecutor(
        max_workers=min(jobs, len(todo)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(queue,),
    ) as pool:
        futures = {pool.submit(_read_in_worker, job): (i, job) for i, job in todo}
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
        text += f", {result['by_created_at']:,} tweets by created_at (fetched late or no time)"
    text += f"; skipped: {skipped or 'none'}; {len(result['minutes']):,} minute files"
    if status == "imported":
        p = result["placed"]
        text += f" ({p['new']:,} new, {p['merged']:,} merged, {p['same']:,} unchanged)"
    if result.get("damaged"):
        text += f"; DAMAGED: {result['damaged']}"
    return text
