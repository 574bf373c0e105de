"""Atomic writes and the xz pipe: a final name only ever holds a complete file."""

from __future__ import annotations

import fcntl
import hashlib
import lzma
import os
import subprocess
import sys

import pytest

from ingest.atomic import (
    XzError,
    XzWriter,
    atomic_file,
    atomic_write,
    remove_stale_temps,
    temp_name,
)


def listing(d) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_atomic_write_creates_parents_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "b" / "file.json"
    atomic_write(target, '{"x": "é"}')
    assert target.read_text(encoding="utf-8") == '{"x": "é"}'
    assert listing(target.parent) == ["file.json"]
    atomic_write(target, b"second")
    assert target.read_bytes() == b"second"
    assert listing(target.parent) == ["file.json"]


def test_atomic_write_not_durable_still_renames(tmp_path):
    target = tmp_path / "f.tsv"
    atomic_write(target, b"x", durable=False)
    assert target.read_bytes() == b"x"
    assert listing(tmp_path) == ["f.tsv"]


def test_temp_name_is_hidden_and_does_not_end_in_the_suffix(tmp_path):
    t = temp_name(tmp_path / "2026-01-14T1106+0100.jsonl")
    assert t.parent == tmp_path
    assert t.name.startswith(".2026-01-14T1106+0100.jsonl.tmp-")
    assert not t.name.endswith(".jsonl")
    assert temp_name(tmp_path / "x") != temp_name(tmp_path / "x")


def test_atomic_file_exception_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target, "w") as f:
        f.write("half a new fi")
        seen = listing(tmp_path)
        assert len(seen) == 2  # the old file and the temp
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert listing(tmp_path) == ["report.txt"]


def test_atomic_file_refuses_read_modes(tmp_path):
    with pytest.raises(ValueError), atomic_file(tmp_path / "x", "rb"):
        pass


def test_xz_writer_round_trip(tmp_path):
    target = tmp_path / "out" / "t.csv.xz"
    payload = b"".join(b"%d,\xc3\xa9 row\n" % i for i in range(50_000))
    with XzWriter(target, preset=1, threads=2) as w:
        for i in range(0, len(payload), 1000):
            w.write(payload[i : i + 1000])
        assert not target.exists()  # only under a temporary name while writing
    assert lzma.decompress(target.read_bytes()) == payload
    assert listing(target.parent) == ["t.csv.xz"]


def test_xz_output_decompresses_the_same_whatever_the_thread_count(tmp_path):
    payload = os.urandom(200_000) + b"abc" * 300_000
    outs = []
    for threads in (1, 2):
        p = tmp_path / f"{threads}.xz"
        with XzWriter(p, preset=1, threads=threads) as w:
            w.write(payload)
        outs.append(lzma.decompress(p.read_bytes()))
    assert outs[0] == outs[1] == payload


def test_xz_writer_end_input_lets_xz_finish_before_finish(tmp_path):
    target = tmp_path / "t.csv.xz"
    w = XzWriter(target, preset=1, threads=2)
    w.write(b"row\n" * 100_000)
    w.end_input()
    assert w._proc.wait(timeout=30) == 0  # compressed without anyone waiting for it
    with pytest.raises(ValueError):
        w.write(b"too late\n")
    w.finish()
    w.commit()
    assert lzma.decompress(target.read_bytes()) == b"row\n" * 100_000


def test_xz_writer_exception_leaves_nothing_and_kills_xz(tmp_path):
    target = tmp_path / "t.csv.xz"
    target.write_bytes(b"previous build")
    writer = None
    with pytest.raises(KeyError), XzWriter(target, preset=1) as w:
        writer = w
        w.write(b"some rows\n" * 1000)
        raise KeyError("boom")
    assert target.read_bytes() == b"previous build"
    assert listing(tmp_path) == ["t.csv.xz"]
    assert writer._proc.poll() is not None  # xz is gone


def test_xz_dying_is_an_error_and_leaves_no_file(tmp_path):
    target = tmp_path / "bad.xz"
    with pytest.raises((XzError, BrokenPipeError)):
        with XzWriter(target, preset=1) as w:
            w.write(b"x" * 1000)
            w._proc.kill()  # as if xz crashed or was OOM-killed
            w._proc.wait(timeout=30)
            w.write(b"x" * (4 << 20))
    assert listing(tmp_path) == []


@pytest.mark.parametrize("end_input_first", [False, True])
def test_xz_dying_after_the_last_write_is_caught_by_the_exit_code(tmp_path, end_input_first):
    target = tmp_path / "bad.xz"
    w = XzWriter(target, preset=1)
    w.write(b"x" * 10)
    w._proc.kill()
    w._proc.wait(timeout=30)
    if end_input_first:
        w.end_input()  # the broken pipe is left for finish() to report
    with pytest.raises(XzError, match=r"xz exited with -9 writing .*bad\.xz"):
        w.finish()
    assert listing(tmp_path) == []


@pytest.mark.parametrize(("preset", "threads"), [(42, 2), (-1, 2), (6, -1)])
def test_xz_writer_refuses_bad_settings(tmp_path, preset, threads):
    with pytest.raises(ValueError):
        XzWriter(tmp_path / "a.xz", preset, threads)
    assert listing(tmp_path) == []


def test_xz_writer_finish_then_abort_removes_the_finished_temp(tmp_path):
    w = XzWriter(tmp_path / "a.xz", preset=0, threads=1)
    w.write(b"hello\n")
    w.finish()
    assert len(listing(tmp_path)) == 1 and not (tmp_path / "a.xz").exists()
    w.abort()
    w.abort()  # idempotent
    assert listing(tmp_path) == []
    with pytest.raises(XzError):
        w.commit()


def test_xz_writer_commit_needs_finish(tmp_path):
    w = XzWriter(tmp_path / "a.xz", preset=0, threads=1)
    try:
        with pytest.raises(XzError):
            w.commit()
    finally:
        w.abort()
    assert listing(tmp_path) == []


def test_xz_cli_reads_what_we_write(tmp_path):
    target = tmp_path / "ids.txt.xz"
    with XzWriter(target) as w:
        w.write(b"1\n2\n3\n")
    out = subprocess.run(["xz", "-dc", str(target)], capture_output=True, check=True).stdout
    assert out == b"1\n2\n3\n"


def hold_lock(path) -> subprocess.Popen:
    """Another process that opens ``path`` and holds an exclusive flock on it, as a writer."""
    code = (
        "import fcntl, sys, time\n"
        "f = open(sys.argv[1], 'ab')\n"
        "fcntl.flock(f, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline() == "locked\n"
    return holder


def test_remove_stale_temps_removes_unlocked_temps_whatever_pid_they_name(tmp_path):
    target = tmp_path / "2026-01-14_11_tweets.csv.xz"
    dead = subprocess.Popen(["true"])
    dead.wait()
    unrelated = subprocess.Popen(["sleep", "60"])  # a live process that got a dead writer's PID
    try:
        stale = [
            tmp_path / f".{target.name}.tmp-{dead.pid}-abcd",
            tmp_path / f".{target.name}.tmp-{unrelated.pid}-abcd",
            tmp_path / f".{target.name}.tmp-1-abcd",  # PID 1 always runs
            tmp_path / f".{target.name}.tmp-{os.getpid()}-abcd",  # this process, not writing it
            temp_name(target),
        ]
        other = tmp_path / f".other.tmp-{dead.pid}-abcd"
        for p in [*stale, other]:
            p.write_bytes(b"x")
        assert sorted(remove_stale_temps(target)) == sorted(stale)
        assert listing(tmp_path) == [other.name]
    finally:
        unrelated.kill()
        unrelated.wait()


@pytest.mark.integration
def test_remove_stale_temps_spares_a_temp_locked_by_a_live_writer_until_it_dies(tmp_path):
    target = tmp_path / "2026-01-14_11_tweets.csv.xz"
    tmp = temp_name(target)
    holder = hold_lock(tmp)
    try:
        assert remove_stale_temps(target) == []
        assert tmp.exists()
        holder.kill()
        # Dead but not reaped, as under an init that does not reap orphans: a zombie.
        os.waitid(os.P_PID, holder.pid, os.WEXITED | os.WNOWAIT)
        assert remove_stale_temps(target) == [tmp]
    finally:
        holder.kill()
        holder.wait()
    assert listing(tmp_path) == []


def test_remove_stale_temps_spares_this_processs_open_writers(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.xz"
    with atomic_file(a, "w") as f:
        f.write("{}")
        assert remove_stale_temps(a) == []
    assert a.read_text() == "{}"
    w = XzWriter(b, preset=0, threads=1)
    w.write(b"row\n")
    assert remove_stale_temps(b) == []
    w.finish()  # finished, not yet renamed: the writer still holds its temp
    assert remove_stale_temps(b) == []
    w.commit()
    assert lzma.decompress(b.read_bytes()) == b"row\n"
    assert listing(tmp_path) == ["a.json", "b.xz"]


def test_xz_output_is_hashed_as_it_is_written_and_the_temp_stays_locked(tmp_path):
    target = tmp_path / "t.xz"
    w = XzWriter(target, preset=0, threads=1)
    w.write(b"row\n" * 1000)
    assert remove_stale_temps(target) == []  # the writer holds its temp's lock
    w.finish()
    w.commit()
    data = target.read_bytes()
    assert (w.sha256, w.size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert lzma.decompress(data) == b"row\n" * 1000


def test_a_temp_removed_before_its_writer_locked_it_is_replaced(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    flock, removed = fcntl.flock, []

    def remover_first(fd, operation):
        if not removed:  # a remove_stale_temps gets between the writer's open and its lock
            monkeypatch.setattr(fcntl, "flock", flock)
            removed.extend(remove_stale_temps(target))
        flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", remover_first)
    with atomic_file(target, "w") as f:
        f.write("{}")
    assert len(removed) == 1
    assert target.read_text() == "{}"
    assert listing(tmp_path) == ["a.json"]


def test_a_write_clears_the_temps_killed_writers_of_the_same_file_left(tmp_path):
    # A collector killed while writing its status file (every few seconds) left a temp that
    # nothing else would ever remove.
    target = tmp_path / "server1.json"
    stale = temp_name(target)
    stale.write_text('{"half": ')
    other = temp_name(tmp_path / "other.json")
    other.write_text("{}")
    atomic_write(target, "{}")
    assert not stale.exists()
    assert other.exists()  # another file's temps are that file's writer's business


def test_an_abort_on_a_full_disk_still_removes_the_temp(tmp_path, monkeypatch):
    """Closing flushes, and on a full disk the flush fails again: the temp goes anyway."""
    w = XzWriter(tmp_path / "t.xz", preset=0, threads=1)
    real = w._out.close

    def full(*a):
        real()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(w._out, "close", full)
    w.abort()
    assert listing(tmp_path) == []
