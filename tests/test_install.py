"""A plain (non-editable) install works away from the source tree.

The project is installed from a copy of what a wheel needs into a fresh venv, with the lock
(constraints.txt) and only the declared dependencies: a file the package reads from the source
tree, or an import it does not declare, fails here. About a minute (pip's cache, no bytecode).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.configs import config_file

ROOT = Path(__file__).resolve().parents[1]
# What the wheel is built from: no tests/, workflow/ or config/, so nothing can lean on them.
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "ingest"]

pytestmark = [
    pytest.mark.integration,
    # The first test to run sets up the install: pip alone may take 240 s on a cold cache.
    pytest.mark.timeout(420),
]


def run(*cmd: str | Path, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ folder of a fresh venv holding the project, installed non-editable."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)  # this pip installs into it: saves a pip install
    python = env_dir / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python]
    install = [*pip, "install", "-q", "--no-compile", "-c", ROOT / "constraints.txt", src]
    done = run(*install, cwd=tmp, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    check = run(*pip, "check", cwd=tmp)
    assert check.returncode == 0, check.stdout + check.stderr
    return env_dir / "bin"


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """A working directory outside the source tree."""
    (tmp_path / "cwd").mkdir()
    return tmp_path / "cwd"


def test_installed_package_is_not_the_source_tree(installed, elsewhere):
    done = run(installed / "python", "-c", "import ingest; print(ingest.__file__)", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(installed.parent)


def test_installed_command_helps_and_checks_a_config(installed, elsewhere, tmp_path):
    done = run(installed / "sampled-stream", "collect", "--help", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert "--server" in done.stdout

    # status loads and validates the config (the schema is the package's own file).
    done = run(
        installed / "sampled-stream",
        "status",
        "--config",
        config_file(tmp_path, "server1"),
        cwd=elsewhere,
    )
    assert done.returncode == 2, done.stderr  # failing: no minute file yet
    assert "server1" in done.stdout

    done = run(installed / "sampled-stream", "--version", cwd=elsewhere)
    assert (done.returncode, done.stdout.strip()) == (0, "sampled-stream 0.1.0")

    bad = config_file(tmp_path, "server1", late_minutes="six")
    done = run(installed / "sampled-stream", "status", "--config", bad, cwd=elsewhere)
    assert done.returncode == 3  # unknown: the state could not be read
    assert "late_minutes: 'six' is not of type 'integer'" in done.stderr
