"""The loopback SMTP sink (ingest/devtools/mailsink.py, also the demo's) as the fixture "smtp".

Use the fixture (tests/conftest.py registers this module as a plugin)::

    def test_x(smtp):
        sink, port = smtp
        ...  # send to 127.0.0.1:port, security "none"
        assert sink.subjects() == ["[sampled-stream] ..."]

or ``start(Sink(...), **controller_options)`` for TLS or AUTH (see tests/test_notify.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# Re-exported: the tests import the sink's helpers from here.
from ingest.devtools.mailsink import Sink, free_port, start

__all__ = ["Sink", "free_port", "smtp_fixture", "start"]


@pytest.fixture(name="smtp")
def smtp_fixture() -> Iterator[tuple[Sink, int]]:
    """A plain (no TLS, no AUTH) sink: (sink, port)."""
    sink = Sink()
    c = start(sink)
    try:
        yield sink, c.port
    finally:
        c.stop()
