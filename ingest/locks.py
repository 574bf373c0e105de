"""One exclusive lock across processes: an ``flock`` on a lock file.

Used wherever two processes must not work on the same thing at once: one collector per raw_dir,
one pull per secondary, one writer of the alert state, one workflow run per work_dir
(``hold_run_lock``). The lock is the kernel's, so it goes away with the process, however it
ends; the lock file itself stays and is reused.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


class LockBusy(RuntimeError):
    """A non-blocking lock that another process (or open file) holds."""

    def __init__(self, message: str, holder: Holder | None = None) -> None:
        super().__init__(message)
        self.holder = holder  # who holds it, when the lock file says (run locks)


@dataclass(frozen=True)
class Holder:
    """What a run lock's holder wrote into the lock file."""

    pid: int
    host: str
    started: datetime  # aware
    what: str = "workflow run"  # or "import", "scrub", "restore"

    def describe(self, now: datetime) -> str:
        minutes = (now - self.started).total_seconds() / 60
        return (
            f"{self.what} pid {self.pid} on {self.host}, running since "
            f"{self.started.isoformat()} ({minutes:.0f} min)"
        )


@contextlib.contextmanager
def exclusive_lock(path: str | Path, blocking: bool = True) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` (created, with its folder, if missing) for the block.

    ``blocking`` True waits for the holder to let go; False raises ``LockBusy`` at once if the
    lock is held. Other failures (an unwritable folder) raise OSError. Yields the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockBusy(f"{path} is locked by another process") from None
        yield path
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


class RunLock:
    """A lock held for the rest of the process's life (one workflow run per work_dir).

    The holder writes its pid, host and start time into the lock file, so a run that finds the
    lock busy can say who holds it and for how long (a hung run). The descriptor is not
    inherited by child processes (Python opens files non-inheritable): jobs a run starts never
    hold it, and the lock ends with the run, however it ends.

    A process that ends normally (also by an exception or ``sys.exit``) empties the record when
    it exits; a record still there when the next holder takes the lock is that of a run that was
    killed or lost its machine: ``unfinished`` (the kernel released the lock, nobody said so).
    """

    def __init__(self, path: str | Path, now: datetime, what: str = "workflow run") -> None:
        """Take the lock without waiting; LockBusy (with ``holder``) if another run has it.
        ``what`` holds it, as the lock's record names it to whoever finds it held."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            holder = read_holder(self.path)
            who = f" by {holder.describe(now)}" if holder else ""
            raise LockBusy(f"{self.path} is held{who}", holder) from None
        # Records without "open" were written by versions that never emptied them.
        self.unfinished = read_holder(self.path, open_only=True)
        self.holder = Holder(os.getpid(), socket.gethostname(), now, what)
        record = {
            "pid": self.holder.pid,
            "host": self.holder.host,
            "started": now.isoformat(),
            "what": what,
        }
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps({**record, "open": True}).encode() + b"\n", 0)
        os.fsync(self._fd)  # a power loss must leave the record for the next run to find
        atexit.register(self.release)

    def release(self) -> None:
        """Say this run finished (empty the record) and let the lock go."""
        if self._fd >= 0:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = -1


def read_holder(path: str | Path, open_only: bool = False) -> Holder | None:
    """The holder a run lock file names; None if it names none (empty, or not a run lock).
    ``open_only``: only a record its holder never closed (see ``RunLock``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if open_only and not data.get("open"):
            return None
        return Holder(
            int(data["pid"]),
            str(data["host"]),
            datetime.fromisoformat(data["started"]),
            str(data.get("what", "workflow run")),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
