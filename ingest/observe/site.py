"""Where the dashboard's pages are: its folder and a day page's URL (the day mail links it).

Apart from ``ingest.observe.dashboard``, which writes the pages, so that the mail job can link
a page without importing the dashboard (and the health it shows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def dashboard_dir(config: dict[str, Any]) -> Path:
    configured = config["dashboard"]["dir"]
    return Path(configured) if configured else Path(config["vault_dir"]) / "dashboard"


def day_page(day: str) -> str:
    """A day's page, relative to the dashboard folder."""
    return f"day/{day}.html"


def day_url(config: dict[str, Any], day: str) -> str | None:
    """The day page's URL when ``dashboard.base_url`` is set, else None."""
    base = config["dashboard"]["base_url"]
    return f"{base.rstrip('/')}/{day_page(day)}" if base else None
