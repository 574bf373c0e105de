"""The generator's progress bar: shown only on a terminal, and never changes what is written."""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest.devtools.generate import generate_raw_tree

T0 = datetime(2026, 1, 14, 10, 0, tzinfo=UTC)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jsonl"))}


def _generate(root: Path, progress: bool) -> dict[str, bytes]:
    generate_raw_tree(
        [("server1", root / "server1"), ("server2", root / "server2")],
        T0,
        T0 + timedelta(minutes=3),
        ZoneInfo("CET"),
        rate_per_minute=300,
        seed=3,
        bad_lines=True,
        progress=progress,
    )
    return _files(root)


def test_progress_bar_writes_identical_files(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("tqdm")
    quiet = _generate(tmp_path / "off", progress=False)
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    shown = _generate(tmp_path / "on", progress=True)
    assert "generating" in terminal.getvalue() and "4/4" in terminal.getvalue()  # bar drawn
    assert len(quiet) == 2 * 3 and shown == quiet


def test_progress_bar_is_off_when_stderr_is_not_a_terminal(tmp_path: Path, capfd) -> None:
    _generate(tmp_path, progress=True)
    assert capfd.readouterr().err == ""
