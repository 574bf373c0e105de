"""One exclusive lock across processes: an ``flock`` on a lock file.

Used wherever two processes must not work on the same thing at once: one collector per raw_dir,
one pull per secondary, one writer of the alert state. The lock is the kernel's, so it goes
away with the process, however it ends; the lock file itself stays (empty) and is reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class LockBusy(RuntimeError):
    """A non-blocking lock that another process (or open file) holds."""


@contextlib.contextmanager
def exclusive_lock(path: str | Path, blocking: bool = True) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` (created, with its folder, if missing) for the block.

    ``blocking`` True waits for the holder to let go; False raises ``LockBusy`` at once if the
    lock is held. Other failures (an unwritable folder) raise OSError. Yields the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockBusy(f"{path} is locked by another process") from None
        yield path
    finally:
        os.close(fd)  # closing the only descriptor releases the lock
