"""The OSF API stand-in (ingest/devtools/osf_standin.py, also the soak's) as the fixture
"osf_standin" (tests/conftest.py registers this module as a plugin)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# Re-exported: the tests import the stand-in from here.
from ingest.devtools.osf_standin import Entry, OSFStandIn

__all__ = ["Entry", "OSFStandIn", "osf_standin"]


@pytest.fixture
def osf_standin() -> Iterator[OSFStandIn]:
    """A started stand-in (project ``qx7st``, storage ``osfstorage``), stopped afterwards."""
    standin = OSFStandIn().start()
    try:
        yield standin
    finally:
        standin.stop()
