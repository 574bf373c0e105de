"""``sampled-stream``: dispatch, help, exit codes for bad config, the emulator as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests

from ingest import cli
from ingest.collect.collector import Collector
from ingest.devtools import emulate
from tests.configs import config_file

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "cli-test-token-5d1e"


pytestmark = pytest.mark.usefixtures("restore_logging")  # in conftest.py


def test_console_script_is_declared() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["sampled-stream"] == "ingest.cli:main"


def test_help_for_every_subcommand(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("collect", "status"):
        assert name in out
    assert "emulate" not in out  # a development tool: python -m ingest.devtools.emulate
    expected = {
        "collect": ["--config", "--server", "--speed", "--backoff-scale", "TWITTER_BEARER_TOKEN"],
        "status": ["--config", "--json", "--server"],
    }
    for name, options in expected.items():
        with pytest.raises(SystemExit) as e:
            cli.main([name, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        for option in options:
            assert option in out, (name, option)


def test_emulate_help(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        emulate.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--port",
        "--rate",
        "--keepalive",
        "--token-file",
        "--seed",
        "--refuse-backfill",
    ):
        assert option in out


def test_usage_errors_exit_2(capsys) -> None:
    for argv in ([], ["nope"], ["collect", "--config", "x.yaml"]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 2
    capsys.readouterr()


def config_with(tmp_path: Path, **stream) -> Path:
    return config_file(
        tmp_path, stream={"url": "http://127.0.0.1:9/2/tweets/sample/stream", **stream}
    )


def token_file(tmp_path: Path, text: str = TOKEN, mode: int = 0o600) -> str:
    path = tmp_path / "token"
    path.write_text(text)
    path.chmod(mode)
    return str(path)


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "does not exist"),
        ("empty", "is empty"),
        ("world-readable", "chmod 600"),
        ("group-readable", "chmod 600"),
        ("no-token-at-all", "TWITTER_BEARER_TOKEN"),
        ("unknown-server", "no server named 'other'"),
        ("invalid-config", "stall_seconds"),
    ],
)
def test_collect_refuses_bad_config_with_exit_2(
    tmp_path, monkeypatch, capsys, case, message
) -> None:
    monkeypatch.delenv("TWITTER_BEARER_TOKEN", raising=False)
    server = "s1"
    if case == "missing":
        cfg = config_with(tmp_path, bearer_token_file=str(tmp_path / "absent"))
    elif case == "empty":
        cfg = config_with(tmp_path, bearer_token_file=token_file(tmp_path, "\n"))
    elif case == "world-readable":
        cfg = config_with(tmp_path, bearer_token_file=token_file(tmp_path, mode=0o644))
    elif case == "group-readable":
        cfg = config_with(tmp_path, bearer_token_file=token_file(tmp_path, mode=0o640))
    elif case == "no-token-at-all":
        cfg = config_with(tmp_path)
    elif case == "unknown-server":
        cfg, server = config_with(tmp_path, bearer_token_file=token_file(tmp_path)), "other"
    else:
        cfg = config_with(tmp_path, bearer_token_file=token_file(tmp_path), stall_seconds=-1)
    assert cli.main(["collect", "--config", str(cfg), "--server", server]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sampled-stream collect: error: ")
    assert message in err
    assert TOKEN not in err
    assert not (tmp_path / "raw").exists()  # refused before touching anything


def test_collect_refuses_a_raw_dir_taken_by_another_collector(tmp_path, capsys) -> None:
    cfg = config_with(tmp_path, bearer_token_file=token_file(tmp_path))
    from ingest.config import load_config

    other = Collector.from_config(load_config(cfg), "s1")
    other.prepare()  # holds the lock on raw_dir
    assert cli.main(["collect", "--config", str(cfg), "--server", "s1"]) == 2
    assert "another collector is running" in capsys.readouterr().err


def test_token_from_the_environment(tmp_path, monkeypatch) -> None:
    from ingest.config import load_config

    monkeypatch.setenv("TWITTER_BEARER_TOKEN", TOKEN)
    c = Collector.from_config(load_config(config_with(tmp_path)), "s1")
    assert c.token_source() == TOKEN


@pytest.mark.integration
def test_emulate_as_a_process(tmp_path: Path) -> None:
    tf = token_file(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "ingest.devtools.emulate", "--port", "0", "--rate", "40"]
    args += ["--keepalive", "0.2", "--token-file", tf, "--speed", "60", "--log-level", "warning"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/2/tweets/sample/stream")
        assert TOKEN.encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with requests.get(url, headers=auth, stream=True, timeout=5) as r:
            assert r.status_code == 200
            lines = []
            for line in r.iter_lines():
                if line:
                    lines.append(line)
                if len(lines) == 3:
                    break
        assert all(b'"data"' in x for x in lines)
        base = url.rsplit("/2/", 1)[0]
        requests.post(f"{base}/_fault", params={"kind": "503"}, timeout=5).raise_for_status()
        assert requests.get(url, headers=auth, timeout=5).status_code == 503
        assert requests.get(url, timeout=5).status_code == 401
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.stdout.close()
