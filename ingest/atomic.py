"""Write files so that a final name only ever holds a complete file.

Everything goes to a temporary name in the target's directory (same file system, so the
rename is atomic), is flushed and fsynced, then renamed over the final name; the directory is
fsynced so the rename survives a power loss. The temporary name never ends in the final suffix,
so globs such as ``*.jsonl`` or Snakemake's output patterns never see a half-written file.
Files are created 0640 (``FILE_MODE``), never readable by others, whatever the umask.

A writer holds an exclusive ``flock`` on its temporary file from creating it until the rename,
so ``remove_stale_temps`` knows a dead writer's temp by its lock being free. A PID cannot tell:
a killed writer whose parent never reaps it (an init that does not reap orphans) is a zombie
whose PID still answers, and after a reboot a new process may get the dead writer's PID.

``XzWriter`` pipes bytes into the ``xz`` program: it compresses with several threads, where
Python's ``lzma`` module uses one and is about twice as slow on the hourly files.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

BUFFER = 1 << 20  # 1 MiB: few, large writes into the xz pipe keep Python off the critical path
FILE_MODE = 0o640  # every file written here: owner rw, group r (see ingest.perms), others nothing


def temp_name(path: Path) -> Path:
    """A unique temporary sibling of ``path``: ``.{name}.tmp-<random>``."""
    return path.with_name(f".{path.name}.tmp-{os.urandom(6).hex()}")


def _open_temp(path: Path, mode: str, **open_kwargs) -> tuple[Path, IO]:
    """Create a temporary sibling of ``path`` and lock it; the lock lasts while it is open.

    Between the creation and the lock a ``remove_stale_temps`` may take the free lock and
    remove the new file; then the name no longer leads to it, and another name is tried.
    """
    while True:
        tmp = temp_name(path)
        # returned, or closed below
        f = open(tmp, mode, opener=_create_private, **open_kwargs)  # noqa: SIM115
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # waits out a remover holding it
            if _same_file(tmp, f.fileno()):
                return tmp, f
        except BaseException:
            f.close()
            _remove(tmp)
            raise
        f.close()


def _create_private(name: str, flags: int) -> int:
    """Open a new temp file as FILE_MODE (0640; a stricter umask narrows it further): the final
    name gets the temp's mode, so archive files are never world-readable, whatever the umask."""
    return os.open(name, flags | os.O_EXCL, FILE_MODE)


def _same_file(path: Path, fd: int) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove temporary siblings of ``path`` left by a writer that died (killed, power loss).

    A temp whose lock is held is being written (by this process or another) and is left
    alone; one whose lock is free is stale, also one named with a PID by an earlier version.
    Returns what was removed.
    """
    path = Path(path)
    removed = []
    try:
        candidates = list(path.parent.glob(f".{glob_escape(path.name)}.tmp-*"))
    except OSError:
        return removed
    for tmp in candidates:
        if _remove_if_stale(tmp):
            removed.append(tmp)
    return removed


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _remove_if_stale(tmp: Path) -> bool:
    """Remove ``tmp`` if no writer holds its lock. The kernel drops a lock when the last
    process that has the file open ends, so a killed writer (zombie or not) holds none."""
    try:
        fd = os.open(tmp, os.O_RDWR)  # write access: NFS emulates flock by fcntl locks
    except OSError:
        return False  # renamed by its writer meanwhile, or not ours to judge
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer
        if not _same_file(tmp, fd):
            return False  # the name no longer leads to the file we locked
        os.unlink(tmp)  # under the lock: a writer that just created it sees it gone
        return True
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (not every file system allows this)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@contextlib.contextmanager
def atomic_file(
    path: str | Path, mode: str = "wb", *, durable: bool = True, **open_kwargs
) -> Iterator[IO]:
    """Open a temporary sibling of ``path``; on success fsync it, rename it to ``path`` and
    remove temps of ``path`` that killed writers left (``remove_stale_temps``).

    On an exception the temporary file is removed and ``path`` is left as it was.
    ``durable=False`` skips the fsyncs (still atomic for readers, not across a power loss).
    """
    if not mode.startswith("w"):
        raise ValueError(f"atomic_file writes whole files; mode {mode!r} is not a write mode")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, f = _open_temp(path, mode, **open_kwargs)
    try:
        yield f
        f.flush()
        if durable:
            os.fsync(f.fileno())
        os.replace(tmp, path)  # then close: the lock guards the temp until it is renamed
        f.close()
    except BaseException:
        f.close()
        _remove(tmp)
        raise
    if durable:
        fsync_dir(path.parent)
    # A writer of this file killed earlier (status files, dashboard pages, receipts) left its
    # temp behind; the next write of the same file clears it, so no writer needs its own sweep.
    remove_stale_temps(path)


def atomic_write(path: str | Path, data: bytes | str, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (str is written as UTF-8)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_file(path, "wb", durable=durable) as f:
        f.write(data)


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Small state and receipt files: JSON, indented, keys sorted, written atomically."""
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True))


def _close_and_remove(f: IO, tmp: Path) -> None:
    """Close a temp being given up and remove it: closing flushes, which fails again on a
    full disk, and the temp must go all the same (the soak found one left in the vault)."""
    with contextlib.suppress(OSError):
        f.close()
    _remove(tmp)


class StagedFile:
    """``data`` written to a locked, fsynced temporary sibling of ``path``, renamed only by
    ``commit()`` (``abort()`` removes it): with ``XzWriter``, one of the files an hour's
    commit renames together (``sha256`` and ``size`` as XzWriter's)."""

    def __init__(self, path: str | Path, data: bytes) -> None:
        self.path = Path(path)
        self.tmp, self._out = _open_temp(self.path, "wb")
        try:
            self._out.write(data)
            self._out.flush()
            os.fsync(self._out.fileno())
        except BaseException:
            self.abort()
            raise
        self.sha256, self.size = hashlib.sha256(data).hexdigest(), len(data)

    def commit(self, *, sync_dir: bool = True) -> None:
        os.replace(self.tmp, self.path)
        self._out.close()
        if sync_dir:
            fsync_dir(self.path.parent)

    def abort(self) -> None:
        if not self._out.closed:
            _close_and_remove(self._out, self.tmp)


class XzError(RuntimeError):
    """xz failed (exit code, or it could not be started)."""


def _lzma2_option(preset: int, options: Mapping[str, int]) -> str:
    return ",".join([f"--lzma2=preset={preset}", *(f"{k}={int(v)}" for k, v in options.items())])


class XzWriter:
    """Compress bytes written to it with an ``xz`` subprocess into a temporary file.

    ``write`` what belongs in the file, optionally ``end_input()`` to let xz finish while the
    caller does other work, then ``finish()`` (waits for xz, checks its exit code,
    fsyncs) and ``commit()`` (renames to the final name). ``abort()`` kills xz and removes the
    temporary file; it is safe to call at any point, also after ``finish``. Splitting
    ``finish`` from ``commit`` lets a caller decide after compressing whether to keep the result
    and rename several files together.

    xz's output comes back through a pipe and a thread that writes it to the temporary file
    and hashes it: after ``finish``, ``sha256`` and ``size`` describe the file. The temporary
    file's lock is held until the rename; killed, Python takes xz's pipe with it.

    ``lzma2``: options over the preset's, as ``xz --lzma2`` takes them (``dict``, ``nice``,
    ``depth``...).
    """

    def __init__(
        self,
        path: str | Path,
        preset: int = 6,
        threads: int = 2,
        block_size: int | None = None,
        lzma2: Mapping[str, int] | None = None,
    ) -> None:
        if not (0 <= int(preset) <= 9) or int(threads) < 0:
            raise ValueError(f"xz preset must be 0-9 and threads >= 0 (got {preset}, {threads})")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._state = "aborted"  # until xz runs
        # Imported here: the per-minute command line never compresses, and starts faster.
        import shutil
        import subprocess
        import tempfile

        xz = shutil.which("xz")
        if xz is None:
            raise XzError("the xz program is not installed (apt-get install xz-utils)")
        self.tmp, self._out = _open_temp(self.path, "wb")  # closed in commit/abort
        self._err = tempfile.TemporaryFile()  # never a pipe: a chatty xz cannot block on it
        self.sha256 = ""  # of the compressed file, once finished: hashed as it is written
        self.size = 0
        try:
            self._proc = subprocess.Popen(
                # With a block size, xz's multi-threaded encoder even for one thread (-T+1):
                # the same bytes whatever the thread count.
                [
                    xz,
                    f"-{int(preset)}",
                    f"-T{'+' if block_size and threads == 1 else ''}{int(threads)}",
                    "-c",
                    "-q",
                ]
                + ([f"--block-size={int(block_size)}"] if block_size else [])
                + ([_lzma2_option(int(preset), lzma2)] if lzma2 else []),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._err,
                bufsize=BUFFER,
            )
        except BaseException:
            self._out.close()
            self._err.close()
            _remove(self.tmp)
            raise
        # xz's output passes through this thread into the temporary file, so the file's hash
        # is known when it is complete, without reading it again (the hour's record needs it).
        self._pump_error: BaseException | None = None
        self._pump = threading.Thread(target=self._copy_output, daemon=True)
        self._pump.start()
        self._state = "open"
        self.write = self._proc.stdin.write  # the hot path: a bound method of the 1 MiB buffer

    def _copy_output(self) -> None:
        digest, size, fd = hashlib.sha256(), 0, self._proc.stdout.fileno()
        try:
            while chunk := os.read(fd, BUFFER):
                digest.update(chunk)
                self._out.write(chunk)
                size += len(chunk)
        except BaseException as e:  # noqa: BLE001 - reported by finish(); xz must not block
            self._pump_error = e
            with contextlib.suppress(OSError):
                self._proc.kill()
            return
        self.sha256, self.size = digest.hexdigest(), size

    def end_input(self) -> None:
        """Everything is written: xz may compress its last block now (``finish`` waits for it)."""
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass  # xz is gone: finish() reports it with xz's exit code and message

    def finish(self) -> None:
        """End xz's input, wait for it and check it; the temporary file is then complete."""
        if self._state != "open":
            raise XzError(f"{self.path}: finish() after {self._state}")
        try:
            self.end_input()  # a no-op when already ended
            code = self._proc.wait()
            self._pump.join()
            if self._pump_error is not None:
                raise XzError(f"writing {self.tmp}: {self._pump_error}") from self._pump_error
            if code != 0:
                self._err.seek(0)
                msg = self._err.read().decode("utf-8", "replace").strip()
                raise XzError(f"xz exited with {code} writing {self.path}: {msg}")
            self._out.flush()
            os.fsync(self._out.fileno())  # kept open until commit: its lock guards the temp
            self._err.close()
        except BaseException:
            self.abort()
            raise
        self._state = "finished"

    def commit(self, *, sync_dir: bool = True) -> None:
        """Rename the finished temporary file to its final name."""
        if self._state != "finished":
            raise XzError(f"{self.path}: commit() before finish() (state {self._state})")
        os.replace(self.tmp, self.path)
        self._out.close()
        self._proc.stdout.close()
        self._state = "committed"
        if sync_dir:
            fsync_dir(self.path.parent)

    def abort(self) -> None:
        """Stop xz (if running) and remove the temporary file. Idempotent."""
        if self._state in ("aborted", "committed"):
            return
        self._state = "aborted"
        proc = self._proc
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.close()
        proc.wait()
        self._pump.join()
        self._proc.stdout.close()
        _close_and_remove(self._out, self.tmp)
        self._err.close()

    def __enter__(self) -> XzWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
            return
        self.finish()
        self.commit()
