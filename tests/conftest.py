"""Fixtures shared by several test modules."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture
def restore_logging():
    """The collector configures the root logger; put pytest's handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
