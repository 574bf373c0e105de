"""The collector's systemd unit: its directives, systemd's own check, and the CLI it runs."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ingest import cli

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "config" / "systemd" / "sampled-stream-collector@.service"
EXEC = "/opt/sampled-stream/.venv/bin/sampled-stream"


def directives(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (systemd allows a key more than once)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = out.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        assert section is not None, f"directive outside a section: {line}"
        section.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_directives() -> None:
    d = directives(UNIT.read_text())
    assert d["Unit"]["StartLimitIntervalSec"] == ["0"]  # in [Unit], where systemd reads it
    assert "network-online.target" in d["Unit"]["After"][0]
    svc = d["Service"]
    assert svc["User"] == ["sampled-stream"] and svc["Group"] == ["sampled-stream"]
    assert svc["Restart"] == ["always"]
    assert svc["RestartSec"] == ["3"]
    assert svc["KillSignal"] == ["SIGTERM"]
    (exec_start,) = svc["ExecStart"]
    assert exec_start == (f"{EXEC} collect --config /etc/sampled-stream/config.yaml --server %i")
    assert "StartLimitIntervalSec" not in svc
    assert d["Install"]["WantedBy"] == ["multi-user.target"]
    # The token comes from the config's token file, never from the unit (world-readable).
    assert not any("TOKEN" in v for v in svc.get("Environment", []))


def test_exec_start_is_a_valid_collect_command() -> None:
    (exec_start,) = directives(UNIT.read_text())["Service"]["ExecStart"]
    argv = shlex.split(exec_start.replace("%i", "server1"))
    assert argv[0] == EXEC
    args = cli.build_parser().parse_args(argv[1:])
    assert args.func is cli.cmd_collect
    assert (args.config, args.server) == ("/etc/sampled-stream/config.yaml", "server1")
    assert args.speed == 1.0 and args.backoff_scale == 1.0  # real time in production


def verify(unit: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.integration
@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # The real ExecStart exists only on an installed server: verify an instance whose
    # ExecStart is this checkout's interpreter running the same command line.
    here = f"{sys.executable} -m ingest.cli"
    unit = tmp_path / "sampled-stream-collector@server1.service"
    unit.write_text(UNIT.read_text().replace(EXEC, here))
    result = verify(unit)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" and result.stdout.strip() == ""
    # The check is real: a broken copy is reported.
    bad = tmp_path / "broken@server1.service"
    bad.write_text(unit.read_text().replace("RestartSec=3", "RestartSec=soon"))
    assert "RestartSec" in verify(bad).stderr or "sec value" in verify(bad).stderr
    missing = tmp_path / "missing@server1.service"
    missing.write_text(UNIT.read_text().replace(EXEC, "/nonexistent/sampled-stream"))
    result = verify(missing)
    assert result.returncode != 0 and "not executable" in result.stderr
