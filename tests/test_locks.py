"""ingest.locks: one exclusive lock across processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.locks import LockBusy, exclusive_lock

# A second process that takes the lock, says so, and holds it until its stdin closes.
HOLDER = """
import sys
from ingest.locks import exclusive_lock
with exclusive_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def hold(path: Path) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert p.stdout.readline().strip() == "locked"
    return p


def release(p: subprocess.Popen) -> None:
    p.stdin.close()
    p.wait(10)


@pytest.mark.integration
def test_non_blocking_raises_while_another_process_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x.lock"  # the folder is created
    holder = hold(path)
    try:
        with pytest.raises(LockBusy, match="x.lock"), exclusive_lock(path, blocking=False):
            pytest.fail("entered a lock another process holds")
    finally:
        release(holder)
    with exclusive_lock(path, blocking=False) as got:  # free again once the holder is gone
        assert got == path


@pytest.mark.integration
def test_blocking_waits_for_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = hold(path)
    start = time.monotonic()
    waiter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from ingest.locks import exclusive_lock as L\n"
            "with L(sys.argv[1]): print('got it', flush=True)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        time.sleep(0.5)
        assert waiter.poll() is None  # still waiting
    finally:
        release(holder)
    out, _ = waiter.communicate(timeout=10)
    assert out.strip() == "got it" and time.monotonic() - start >= 0.5


def test_released_on_exception_and_reentrant_after(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with pytest.raises(ValueError), exclusive_lock(path):
        raise ValueError("boom")
    with exclusive_lock(path, blocking=False):
        pass
    assert path.read_bytes() == b""


def test_unusable_folder_is_an_os_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError), exclusive_lock(blocker / "x.lock"):
        pass
