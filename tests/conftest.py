"""Fixtures shared by several test modules.

The loopback servers are plugins, so any test asks for them by name (no imports): ``sshd``
(tests/sshd.py, one per session), ``smtp`` (tests/smtp.py) and ``osf_standin``
(tests/osf_standin.py). Their helper classes and functions are imported normally.
"""

from __future__ import annotations

import logging

import pytest

pytest_plugins = ["tests.sshd", "tests.smtp", "tests.osf_standin"]


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """pytest-randomly shuffles the order and names its seed in the header, which -q hides: name
    it last, next to the failures, so an order-dependent failure can be repeated."""
    if config.pluginmanager.hasplugin("randomly"):
        seed = config.getoption("randomly_seed")
        terminalreporter.write_line(
            f"random order; repeat it with -p randomly --randomly-seed={seed}"
        )


@pytest.fixture(autouse=True)
def restore_logging():
    """The commands (``cli.main``) and the collector configure the root logger; put pytest's
    handlers back after every test, or a later test's server thread (aiosmtpd) logs to the
    closed capture stream of the test that set them."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
