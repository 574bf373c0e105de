"""ingest.pull.rsync: pulling a secondary's minute files, locally and through a real sshd."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest.devtools.sshd import known_hosts_line
from ingest.layout import Hour, minute_files
from ingest.minutefiles import place_minute, union_lines
from ingest.pull import jobs
from ingest.pull.rsync import (
    RsyncConfigError,
    pull_server,
    rsync_commands,
    rsync_has_fsync,
    split_source,
    staging_dir,
)
from ingest.pull.state import load_state
from tests.configs import loaded_config
from tests.sshd import Sshd

TZ = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 1, 14, 11, 30, tzinfo=UTC)


def make_tree(root: Path) -> dict[str, bytes]:
    """Three complete minute files in two hours plus in-progress files; returns the complete."""
    files = {
        "2026-01-14/09/2026-01-14T0958+0100.jsonl": b'{"data": {"id": "1"}}\n',
        "2026-01-14/09/2026-01-14T0959+0100.jsonl": b"",  # connected, nothing came
        "2026-01-14/10/2026-01-14T1000+0100.jsonl": b'{"data": {"id": "2"}}\n' * 50,
    }
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    # The collector's current minute, under names that do not end in .jsonl.
    (root / "2026-01-14/10/2026-01-14T1001+0100.jsonl.part").write_bytes(b'{"data": {"id"')
    (root / "2026-01-14/10/.2026-01-14T1001+0100.tmp").write_bytes(b"x")
    return files


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def server(src: str, dst: Path, **kw) -> dict:
    """A secondary's entry as the config loader gives it (defaults filled in)."""
    entry = {"name": "server2", "raw_dir": str(dst), "rsync_from": src, **kw}
    return loaded_config(servers=[entry])["servers"][0]


def through(sshd: Sshd, src: Path, dst: Path, **kw) -> dict:
    """``server`` pulling ``src`` through the test sshd, its host key pinned."""
    keys = {
        "ssh_key_file": str(sshd.key_file),
        "ssh_port": sshd.port,
        "known_hosts_file": str(sshd.known_hosts),
        **kw,
    }
    return server(f"{sshd.user}@{sshd.host}:{src}/", dst, **keys)


@pytest.mark.integration
def test_local_pull_moves_complete_files_and_leaves_in_progress(tmp_path: Path) -> None:
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    complete = make_tree(src)
    result = pull_server(server(str(src), dst), NOW, state)
    assert result.ok, result.error
    assert result.files_pulled == 3
    assert result.files == sorted(complete)
    assert result.removed == 3
    assert tree(dst) == complete  # same bytes, same {day}/{HH}/ structure, nothing else
    # Only the in-progress files stay on the source.
    assert sorted(tree(src)) == [
        "2026-01-14/10/.2026-01-14T1001+0100.tmp",
        "2026-01-14/10/2026-01-14T1001+0100.jsonl.part",
    ]
    st = load_state(state, "server2")
    assert st.last_success == NOW.isoformat() and st.first_failure is None
    # The build sees exactly the pulled minutes.
    found = minute_files("server2", dst, NOW - timedelta(hours=3), NOW, TZ)
    assert [f.path.name for f in found] == [Path(p).name for p in sorted(complete)]

    # A second pull finds nothing new.
    again = pull_server(server(str(src), dst), NOW, state)
    assert again.ok and again.files_pulled == 0 and again.removed == 0


@pytest.mark.integration
def test_keep_source_files_when_asked(tmp_path: Path) -> None:
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    complete = make_tree(src)
    before = tree(src)
    cfg = server(str(src) + "/", dst, remove_source_files=False)
    assert len(rsync_commands(cfg, state)) == 1
    result = pull_server(cfg, NOW, state)
    assert result.ok and result.files_pulled == 3 and result.removed == 0
    assert tree(src) == before
    assert tree(dst) == complete
    assert pull_server(cfg, NOW, state).files_pulled == 0


@pytest.mark.integration
def test_source_removed_only_after_checksum_match(tmp_path: Path) -> None:
    """A primary copy with the source's size and mtime but other bytes (zeros, as a power cut
    leaves on some file systems) is fetched again and completed, not trusted."""
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    complete = make_tree(src)
    rel = "2026-01-14/10/2026-01-14T1000+0100.jsonl"
    bad = dst / rel
    bad.parent.mkdir(parents=True)
    good = complete[rel]
    bad.write_bytes(b"\0" * len(good))
    st = (src / rel).stat()
    os.utime(bad, ns=(st.st_atime_ns, st.st_mtime_ns))  # rsync's quick check sees no change

    result = pull_server(server(str(src), dst), NOW, state)
    assert result.ok, result.error
    assert good in (dst / rel).read_bytes()  # every line, after the zeros (a line the parser skips)
    assert rel in result.files and result.merged == 1  # re-sent by the checksum comparison
    assert not (src / rel).exists()


@pytest.mark.integration
def test_hours_window_limits_the_pull(tmp_path: Path) -> None:
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    make_tree(src)
    result = pull_server(server(str(src), dst), NOW, state, hours=[Hour("2026-01-14", 10)])
    assert result.ok, result.error
    assert result.files == ["2026-01-14/10/2026-01-14T1000+0100.jsonl"]
    assert sorted(tree(dst)) == ["2026-01-14/10/2026-01-14T1000+0100.jsonl"]
    assert (src / "2026-01-14/09/2026-01-14T0958+0100.jsonl").exists()


@pytest.mark.integration
def test_killed_transfer_never_leaves_a_partial_jsonl(tmp_path: Path) -> None:
    """rsync's temp names keep a cut transfer out of the build (no --inplace/--partial)."""
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    rel = "2026-01-14/10/2026-01-14T1000+0100.jsonl"
    (src / rel).parent.mkdir(parents=True)
    (src / rel).write_bytes(b'{"data": {"id": "2"}}\n' * 60_000)  # ~1.3 MB
    dst.mkdir()
    staging = staging_dir(state, "server2")
    staging.mkdir(parents=True)
    # Slow the transfer down so it is surely cut in the middle.
    cfg = server(str(src), dst, rsync_options=["--bwlimit=100"])
    cmd = rsync_commands(cfg, staging)[0]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(p.is_file() for p in staging.rglob("*")):
        time.sleep(0.05)
    time.sleep(0.5)
    # A crash or power loss: sender and receiver die at once, nobody cleans up.
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    names = [p.name for p in staging.rglob("*") if p.is_file()]
    assert names, "the transfer had not started; the test proves nothing"
    assert not any(n.endswith(".jsonl") for n in names), names
    assert list(dst.rglob("*")) == []
    # The next pull completes the file and removes the stray temp file.
    result = pull_server(server(str(src), dst), NOW, state)
    assert result.ok and (dst / rel).stat().st_size == 1_320_000
    assert len(minute_files("server2", dst, NOW - timedelta(hours=3), NOW, TZ)) == 1
    assert not staging.exists()


def test_unsafe_options_refused(tmp_path: Path) -> None:
    for opt in ("--inplace", "--partial", "-P", "-vP", "--append-verify"):
        with pytest.raises(RsyncConfigError, match="partial"):
            rsync_commands(server("/x", tmp_path, rsync_options=[opt]), tmp_path)
    # Links or devices read as files, another ssh command, removal before the copy is safe.
    for opt, why in (
        ("-L", "links into files"),
        ("-rL", "links into files"),
        ("--copy-unsafe-links", "links into files"),
        ("--copy-devices", "devices as files"),
        ("-e", "pinned ssh"),
        ("--rsh=ssh -o StrictHostKeyChecking=no", "pinned ssh"),
        ("--remove-source-files", "after they are safe"),
    ):
        with pytest.raises(RsyncConfigError, match=why):
            rsync_commands(server("/x", tmp_path, rsync_options=[opt]), tmp_path)
    # An operator's -a cannot bring links, FIFOs or devices back: the refusals come after it.
    cmd = rsync_commands(server("/x", tmp_path, rsync_options=["-a"]), tmp_path)[0]
    assert cmd.index("--no-links") > cmd.index("-a")
    assert "--no-specials" in cmd and "--no-devices" in cmd


def test_split_source() -> None:
    assert split_source("collector@server2.example.org:/data/raw/server2/") == (
        "collector@server2.example.org",
        "/data/raw/server2/",
    )
    assert split_source("server2:raw") == ("server2", "raw")
    assert split_source("/data/raw/server2/") == (None, "/data/raw/server2/")
    assert split_source("./raw:odd") == (None, "./raw:odd")  # a slash before the colon: local
    with pytest.raises(RsyncConfigError):
        split_source("rsync://host/module/")


def test_ssh_options(tmp_path: Path) -> None:
    """Host keys are checked strictly: the pinned file only, or the system's; never learned."""
    pinned = server(
        "u@h:/p/",
        tmp_path / "raw",
        ssh_key_file="/k/id_ed25519",
        ssh_port=2222,
        known_hosts_file="/etc/sampled-stream/known_hosts",
    )
    cmds = rsync_commands(pinned, tmp_path / "staging")
    assert len(cmds) == 2
    e = cmds[0][cmds[0].index("-e") + 1]
    for part in (
        "-i /k/id_ed25519",
        "-p 2222",
        "BatchMode=yes",
        "StrictHostKeyChecking=yes",
        "UserKnownHostsFile=/etc/sampled-stream/known_hosts",
        "GlobalKnownHostsFile=/dev/null",
        "UpdateHostKeys=no",
    ):
        assert part in e
    assert "accept-new" not in e
    system = rsync_commands(server("u@h:/p/", tmp_path / "raw"), tmp_path / "staging")[0]
    e = system[system.index("-e") + 1]
    assert "StrictHostKeyChecking=yes" in e and "KnownHostsFile" not in e
    # Both passes go to the staging folder and compare against raw_dir; only the second removes.
    for cmd in cmds:
        assert cmd[-1] == f"{tmp_path / 'staging'}/"
        assert f"--compare-dest={tmp_path / 'raw'}" in cmd and "--checksum" in cmd
        assert "-a" not in cmd and "-rt" in cmd
    assert "--remove-source-files" in cmds[1]
    assert "--remove-source-files" not in cmds[0]
    assert ("--fsync" in cmds[0]) == rsync_has_fsync()


@pytest.mark.integration
def test_pull_through_sshd(tmp_path: Path, sshd: Sshd) -> None:
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    complete = make_tree(src)
    pinned = sshd.known_hosts.read_text()
    result = pull_server(through(sshd, src, dst), NOW, state)
    assert result.ok, f"{result.error}\n--- sshd log ---\n{sshd.log()[-3000:]}"
    assert result.files_pulled == 3 and result.removed == 3
    assert tree(dst) == complete
    assert sorted(tree(src)) == [
        "2026-01-14/10/.2026-01-14T1001+0100.tmp",
        "2026-01-14/10/2026-01-14T1001+0100.jsonl.part",
    ]
    # The pinned key was used, not learned anew: nothing written, no known_hosts in work_dir.
    assert sshd.known_hosts.read_text() == pinned
    assert [p for p in state.rglob("*") if "known_hosts" in p.name] == []
    assert "Accepted publickey" in sshd.log()


@pytest.mark.integration
def test_wrong_key_is_a_clear_failure(tmp_path: Path, sshd: Sshd) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other], check=True)
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    make_tree(src)
    result = pull_server(through(sshd, src, dst, ssh_key_file=str(other)), NOW, state)
    assert not result.ok
    assert "Permission denied" in result.error
    assert len(tree(src)) == 5  # nothing removed


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


@pytest.mark.integration
def test_unreachable_host_fails_fast_and_tracks_the_outage(tmp_path: Path) -> None:
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    make_tree(src)
    cfg = server(f"nobody@127.0.0.1:{src}/", dst, ssh_port=_closed_port())
    t0 = time.monotonic()
    first = pull_server(cfg, NOW, state)
    assert time.monotonic() - t0 < 15
    assert not first.ok
    assert first.error.startswith("rsync exit ")
    assert "ssh: connect to host 127.0.0.1" in first.error and "Connection refused" in first.error
    assert first.unreachable_since == NOW and first.files_pulled == 0
    later = pull_server(cfg, NOW + timedelta(hours=1), state)
    assert not later.ok and later.unreachable_since == NOW  # the outage's start is kept
    assert load_state(state, "server2").last_error == later.error

    ok = pull_server(server(str(src), dst), NOW + timedelta(hours=2), state)
    assert ok.ok and ok.unreachable_since is None
    assert ok.last_success == NOW + timedelta(hours=2)
    assert load_state(state, "server2").first_failure is None


# --- issue 10: on disk before removed, never less content, regular files, pinned host keys ---

MINUTE = "2026-01-14/10/2026-01-14T1005+0100.jsonl"


def lines(*ids: int) -> bytes:
    return b"".join(b'{"data": {"id": "%d"}}\n' % i for i in ids)


def put(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.integration
def test_pulled_files_are_on_disk_before_the_source_copies_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each pulled file and every folder it went into are fsynced before the rsync that removes
    the secondary's copies starts, so a power cut on the primary after that loses nothing.
    Watched by wrapping os.fsync and subprocess.run (both still do their real work)."""
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    complete = make_tree(src)
    events: list[tuple[str, str]] = []
    real_fsync, real_run = os.fsync, subprocess.run

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def run(cmd, *args, **kwargs):
        if "--remove-source-files" in cmd:
            events.append(("remove", ""))
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(subprocess, "run", run)
    result = pull_server(server(str(src), dst), NOW, state)
    assert result.ok and result.removed == 3, result.error
    synced = {path for kind, path in events[: events.index(("remove", ""))] if kind == "fsync"}
    staging = staging_dir(state, "server2").resolve()
    for rel in complete:
        assert {str(dst.resolve() / rel), str(staging / rel)} & synced, rel
        for folder in (Path(rel).parent, Path(rel).parent.parent, Path(".")):
            assert str((dst / folder).resolve()) in synced, folder


@pytest.mark.integration
def test_a_minute_written_in_two_parts_is_archived_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A pull took a minute's first part; the collector, restarted within that minute, wrote a
    new file of the same name with the rest. The primary's copy becomes the union, the merge
    is counted and logged, and the source copy goes only once its lines are in the primary's."""
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    put(src, MINUTE, lines(1, 2, 3))
    assert pull_server(server(str(src), dst), NOW, state).files == [MINUTE]
    assert not (src / MINUTE).exists()
    put(src, MINUTE, lines(4, 5))

    result = pull_server(server(str(src), dst), NOW, state)
    assert result.ok, result.error
    assert (dst / MINUTE).read_bytes() == lines(1, 2, 3, 4, 5)
    assert result.files == [MINUTE] and result.merged == 1 and result.removed == 1
    assert not (src / MINUTE).exists()
    assert f"{MINUTE} differed from the primary's copy; merged (2 line(s) added)" in caplog.text
    assert not [p for p in dst.rglob("*") if p.name.startswith(".")]  # no temp left behind


@pytest.mark.integration
@pytest.mark.parametrize("remove", [True, False])
def test_a_shorter_copy_never_replaces_the_primarys(tmp_path: Path, remove: bool) -> None:
    """The secondary's file of a name holds less than the primary's copy (lines the primary
    already has): the primary's copy stays as it is; a removed source lost nothing."""
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    put(dst, MINUTE, lines(1, 2, 3))
    put(src, MINUTE, lines(2))
    result = pull_server(server(str(src), dst, remove_source_files=remove), NOW, state)
    assert result.ok, result.error
    assert (dst / MINUTE).read_bytes() == lines(1, 2, 3)
    assert result.files == [] and result.merged == 0
    assert (src / MINUTE).exists() is not remove


@pytest.mark.integration
@pytest.mark.parametrize("cut", [0, 30])
def test_a_primary_copy_cut_short_is_fetched_again_and_completed(tmp_path: Path, cut: int) -> None:
    """A copy that lost its tail (a power cut before it was on disk: zero-length, or cut in a
    line) while the secondary still has the file is completed, without the cut line."""
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    full = lines(1, 2, 3)
    put(src, MINUTE, full)
    put(dst, MINUTE, full[:cut])
    result = pull_server(server(str(src), dst, remove_source_files=False), NOW, state)
    assert result.ok, result.error
    assert (dst / MINUTE).read_bytes() == full
    assert result.files == [MINUTE] and result.merged == 1


@pytest.mark.integration
def test_only_regular_files_arrive(tmp_path: Path, sshd: Sshd, caplog) -> None:
    """A FIFO, links to a file, to a device and to a folder on the secondary, all under minute
    file names: none arrives (not even with -a among rsync_options), none is removed there."""
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    put(src, MINUTE, lines(1))
    hour = src / "2026-01-14/10"
    os.mkfifo(hour / "2026-01-14T1006+0100.jsonl")
    (hour / "2026-01-14T1007+0100.jsonl").symlink_to("/etc/passwd")
    (hour / "2026-01-14T1008+0100.jsonl").symlink_to("/dev/zero")
    put(tmp_path / "elsewhere", "2026-01-14T1100+0100.jsonl", lines(9))
    (src / "2026-01-14/11").symlink_to(tmp_path / "elsewhere")
    specials = sorted(p.name for p in src.rglob("*") if p.is_symlink() or p.is_fifo())

    result = pull_server(through(sshd, src, dst, rsync_options=["-a"]), NOW, state)
    assert result.ok, result.error
    assert sorted(tree(dst)) == [MINUTE]
    assert all(p.is_dir() or (p.is_file() and not p.is_symlink()) for p in dst.rglob("*"))
    assert sorted(p.name for p in src.rglob("*") if p.is_symlink() or p.is_fifo()) == specials
    assert "not links, FIFOs or devices, left on the secondary" in caplog.text


@pytest.mark.integration
def test_host_key_is_pinned_never_learned_and_a_wrong_one_is_alerted(
    tmp_path: Path, sshd: Sshd, smtp
) -> None:
    """An unknown host key (empty known_hosts_file) and a wrong one (a spoofed secondary) are
    refused: nothing pulled, nothing removed, nothing learned; the failed pull is alerted."""
    sink, smtp_port = smtp
    src, dst = tmp_path / "src", tmp_path / "raw2"
    make_tree(src)
    before = tree(src)
    unknown = tmp_path / "empty_known_hosts"
    unknown.write_text("")
    state = tmp_path / "state"
    result = pull_server(through(sshd, src, dst, known_hosts_file=str(unknown)), NOW, state)
    assert not result.ok and "Host key verification failed" in result.error
    assert unknown.read_text() == ""  # never trust on first use

    spoofed = tmp_path / "spoofed_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", spoofed], check=True)
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(known_hosts_line(sshd.host, sshd.port, spoofed))
    entry = {
        "name": "server2",
        "raw_dir": str(dst),
        "rsync_from": f"{sshd.user}@{sshd.host}:{src}/",
        "ssh_key_file": str(sshd.key_file),
        "ssh_port": sshd.port,
        "known_hosts_file": str(wrong),
    }
    email = {
        "enabled": True,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "security": "none",
        "from": "archive@example.org",
        "to": ["ops@example.org"],
        "alert_after_minutes": 0,
    }
    server1 = {"name": "server1", "raw_dir": str(tmp_path / "raw1")}
    config = loaded_config(tmp_path, servers=[server1, entry], email=email)
    receipt = tmp_path / "work" / "pulls" / "server2" / "run.json"
    jobs.pull_job(config, "server2", NOW, receipt, logging.getLogger("test-pull"))

    assert json.loads(receipt.read_text())["ok"] is False
    (mail,) = sink.wait_for(1)
    assert "server2: cannot pull minute files" in mail["Subject"]
    text = mail.get_body(("plain",)).get_content()
    assert "Host key verification failed" in text and "known_hosts_file" in text
    assert tree(src) == before and list(dst.rglob("*.jsonl")) == []
    assert wrong.read_text() == known_hosts_line(sshd.host, sshd.port, spoofed)


@pytest.mark.integration
def test_staging_on_another_file_system(tmp_path: Path) -> None:
    """work_dir and raw_dir on different disks: files are copied in (fsynced, renamed)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system (/dev/shm) to put the staging folder on")
    src, dst = tmp_path / "src", tmp_path / "dst"
    complete = make_tree(src)
    mtimes = {rel: (src / rel).stat().st_mtime_ns for rel in complete}
    with tempfile.TemporaryDirectory(dir=shm) as state:
        result = pull_server(server(str(src), dst), NOW, Path(state))
    assert result.ok and result.removed == 3, result.error
    assert tree(dst) == complete
    assert {rel: (dst / rel).stat().st_mtime_ns for rel in complete} == mtimes


@pytest.mark.integration
def test_a_file_that_cannot_be_placed_fails_the_pull_and_removes_nothing(tmp_path: Path) -> None:
    """Placing a pulled file fails (here a folder in its way; a full disk or an I/O error
    alike): the pull fails, no source copy is removed, the staged file waits and is placed by
    the next pull before anything else."""
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    complete = make_tree(src)
    before = tree(src)
    rel = "2026-01-14/10/2026-01-14T1000+0100.jsonl"
    (dst / rel).mkdir(parents=True)
    result = pull_server(server(str(src), dst), NOW, state)
    assert not result.ok and "could not place pulled files" in result.error
    assert tree(src) == before
    assert (staging_dir(state, "server2") / rel).read_bytes() == complete[rel]

    (dst / rel).rmdir()
    again = pull_server(server(str(src), dst), NOW, state)
    assert again.ok and again.removed == 3, again.error
    assert tree(dst) == complete
    assert not staging_dir(state, "server2").exists()


def test_union_lines() -> None:
    a, b, c = b'{"id": "a"}\n', b'{"id": "b"}\n', b'{"id": "c"}\n'
    assert union_lines(a + b, b + c) == a + b + c  # the primary's lines first, nothing twice
    assert union_lines(a + b + c, b) == a + b + c  # less never replaces more
    assert union_lines(b"", a + a) == a + a  # the secondary's own repeats are kept
    assert union_lines(a + b[:5], a + b) == a + b  # a line cut short gives way to its whole
    assert union_lines(a + b"garbage", c) == a + b"garbage\n" + c  # else kept, terminated
    assert union_lines(a, b.rstrip(b"\n")) == a + b  # every line ends in a newline


def test_place_minute(tmp_path: Path) -> None:
    staged, final = tmp_path / "staged.jsonl", tmp_path / "raw" / "x.jsonl"
    staged.write_bytes(lines(1))
    assert place_minute(staged, final) == ("new", 0) and final.read_bytes() == lines(1)
    staged.write_bytes(lines(1))
    assert place_minute(staged, final) == ("same", 0)
    staged.write_bytes(lines(2, 3))
    assert place_minute(staged, final) == ("merged", 2)
    assert final.read_bytes() == lines(1, 2, 3) and not staged.exists()
    assert sorted(p.name for p in final.parent.iterdir()) == ["x.jsonl"]  # no temp left
