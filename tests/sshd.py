"""The loopback sshd (ingest/devtools/sshd.py, also the soak's) as the session fixture "sshd".

Use it as a fixture (tests/conftest.py registers this module as a plugin)::

    def test_x(sshd):
        subprocess.run(["ssh", *sshd.ssh_args(), sshd.target, "true"], check=True)

When sshd cannot be started the fixture fails with the reason if the environment variable CI
is set (so CI never passes without the ssh test having run) and skips with the reason otherwise.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

# Re-exported: the tests import the server's helpers from here.
from ingest.devtools.sshd import Sshd, SshdUnavailable, start_sshd

__all__ = ["Sshd", "SshdUnavailable", "sshd", "start_sshd", "unavailable"]


def unavailable(reason: str) -> None:
    """Fail in CI (the test must run there), skip locally; either way say why."""
    msg = f"cannot run a test sshd: {reason}"
    if os.environ.get("CI"):
        pytest.fail(msg + " (failing because CI is set)", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    try:
        server = start_sshd(tmp_path_factory.mktemp("sshd"))
    except (SshdUnavailable, OSError, subprocess.CalledProcessError) as e:
        unavailable(str(e))
    try:
        yield server
    finally:
        server.stop()
