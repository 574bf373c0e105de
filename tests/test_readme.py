"""The README a new user follows (issue 23): it says where the commands live before it uses them."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_readme_says_where_the_commands_live_before_it_first_uses_them():
    first_use = re.search(r"sampled-stream (collect|status|scrub|restore|import)\b", README)
    assert first_use is not None
    before = README[: first_use.start()]
    assert ".venv/bin/" in before and "source .venv/bin/activate" in before
