"""ingest.publish.rsync: pulling a secondary's minute files, locally and through a real sshd."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest.layout import Hour, minute_files
from ingest.publish.rsync import (
    RsyncConfigError,
    pull_server,
    rsync_commands,
    split_source,
)
from ingest.pull_state import load_state
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
    """A local copy with the same size and mtime but other bytes is re-sent, not trusted."""
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    complete = make_tree(src)
    rel = "2026-01-14/10/2026-01-14T1000+0100.jsonl"
    bad = dst / rel
    bad.parent.mkdir(parents=True)
    good = complete[rel]
    bad.write_bytes(good.replace(b'"2"', b'"3"'))  # same size
    st = (src / rel).stat()
    os.utime(bad, ns=(st.st_atime_ns, st.st_mtime_ns))  # rsync's quick check sees no change

    result = pull_server(server(str(src), dst), NOW, state)
    assert result.ok, result.error
    assert (dst / rel).read_bytes() == good
    assert rel in result.files  # re-sent by the checksum pass
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
    # Slow the transfer down so it is surely cut in the middle.
    cfg = server(str(src), dst, rsync_options=["--bwlimit=100"])
    cmd = rsync_commands(cfg, state)[0]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(p.is_file() for p in dst.rglob("*")):
        time.sleep(0.05)
    time.sleep(0.5)
    # A crash or power loss: sender and receiver die at once, nobody cleans up.
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    names = [p.name for p in dst.rglob("*") if p.is_file()]
    assert names, "the transfer had not started; the test proves nothing"
    assert not any(n.endswith(".jsonl") for n in names), names
    assert minute_files("server2", dst, NOW - timedelta(hours=3), NOW, TZ) == []
    # The next pull completes the file and the stray temp file is not a minute file.
    result = pull_server(server(str(src), dst), NOW, state)
    assert result.ok and (dst / rel).stat().st_size == 1_320_000
    assert len(minute_files("server2", dst, NOW - timedelta(hours=3), NOW, TZ)) == 1


def test_unsafe_options_refused(tmp_path: Path) -> None:
    for opt in ("--inplace", "--partial", "-P", "--append-verify"):
        with pytest.raises(RsyncConfigError, match="partial"):
            rsync_commands(server("/x", tmp_path, rsync_options=[opt]), tmp_path)


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
    cfg = server("u@h:/p/", tmp_path, ssh_key_file="/k/id_ed25519", ssh_port=2222)
    cmds = rsync_commands(cfg, tmp_path / "state")
    assert len(cmds) == 2
    e = cmds[0][cmds[0].index("-e") + 1]
    for part in (
        "-i /k/id_ed25519",
        "-p 2222",
        "BatchMode=yes",
        "StrictHostKeyChecking=accept-new",
    ):
        assert part in e
    assert f"UserKnownHostsFile={(tmp_path / 'state').resolve()}/known_hosts" in e
    assert "--checksum" in cmds[1] and "--remove-source-files" in cmds[1]
    assert "--remove-source-files" not in cmds[0]


@pytest.mark.integration
def test_pull_through_sshd(tmp_path: Path, sshd: Sshd) -> None:
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    complete = make_tree(src)
    cfg = server(
        f"{sshd.user}@{sshd.host}:{src}/",
        dst,
        ssh_key_file=str(sshd.key_file),
        ssh_port=sshd.port,
    )
    result = pull_server(cfg, NOW, state)
    assert result.ok, f"{result.error}\n--- sshd log ---\n{sshd.log()[-3000:]}"
    assert result.files_pulled == 3 and result.removed == 3
    assert tree(dst) == complete
    assert sorted(tree(src)) == [
        "2026-01-14/10/.2026-01-14T1001+0100.tmp",
        "2026-01-14/10/2026-01-14T1001+0100.jsonl.part",
    ]
    # The host key was learned into the state dir, not the user's ~/.ssh.
    assert "ssh-ed25519" in (state / "known_hosts").read_text()
    assert "Accepted publickey" in sshd.log()


@pytest.mark.integration
def test_wrong_key_is_a_clear_failure(tmp_path: Path, sshd: Sshd) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other], check=True)
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    make_tree(src)
    cfg = server(
        f"{sshd.user}@{sshd.host}:{src}/", dst, ssh_key_file=str(other), ssh_port=sshd.port
    )
    result = pull_server(cfg, NOW, state)
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
