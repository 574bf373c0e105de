"""ingest.observe.plot: the per-minute PNG attached to the daily report mail."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ingest.observe.plot import merge_minutes, minutes_plot_png, parse_minute_key

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TZ = ZoneInfo("Europe/Berlin")


def day_stats(day: str, tz: ZoneInfo, outage: range) -> list[dict]:
    """Hourly stats for a local day: server1 always there, server2 away for ``outage`` minutes
    of the day (counted from local midnight)."""
    start = datetime.fromisoformat(day).replace(tzinfo=tz).astimezone(UTC)
    hours = []
    for h in range(24):
        s1, s2 = {}, {}
        for m in range(60):
            i = h * 60 + m
            t = start + timedelta(minutes=i)
            key = t.astimezone(tz).isoformat(timespec="minutes")  # as ingest.hours.hourly writes
            s1[key] = 3300 + (i * 37) % 400
            s2[key] = None if i in outage else 3300 + (i * 37) % 400 - (i % 7)
        hours.append({"hour": f"{day}_{h:02d}", "minutes": {"server1": s1, "server2": s2}})
    return hours


def test_png_of_a_day_with_an_outage() -> None:
    stats = day_stats("2026-01-14", TZ, range(600, 660))
    png = minutes_plot_png("2026-01-14", stats, ["server1", "server2"], tz=TZ)
    assert png.startswith(PNG_SIGNATURE)
    assert len(png) > 20_000  # two panels of 1440 points, not an empty canvas
    # Pillow and NumPy come with matplotlib.
    import numpy as np
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    assert img.size == (1200, 540)
    # The outage band is drawn: many pixels are the light red of the shaded span.
    px = np.asarray(img).reshape(-1, 3).astype(int)
    r, g, b = px[:, 0], px[:, 1], px[:, 2]
    reddish = int(((r > 230) & (g > 180) & (g < 215) & (b > 180) & (b < 215)).sum())
    assert reddish > 1000


def test_png_without_timezone_and_with_missing_hours() -> None:
    stats = day_stats("2026-01-14", ZoneInfo("UTC"), range(0))[:5]  # only 5 hours built
    png = minutes_plot_png("2026-01-14", stats, ["server1", "server2", "server3"])
    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000


def test_minute_keys_and_merging() -> None:
    utc = datetime(2026, 1, 14, 9, 6, tzinfo=UTC)
    assert parse_minute_key("2026-01-14T09:06:00+00:00") == utc
    assert parse_minute_key("2026-01-14T10:06+01:00") == utc  # ingest.hours.hourly's stats keys
    assert parse_minute_key("2026-01-14T1006+0100") == utc  # minute file stem
    with pytest.raises(ValueError):
        parse_minute_key("2026-01-14T09:06:00")
    # Overlapping read windows: a count beats a null, the larger count wins.
    merged = merge_minutes(
        [
            {"minutes": {"a": {"2026-01-14T09:06:00+00:00": None, "2026-01-14T09:07:00+00:00": 5}}},
            {"minutes": {"a": {"2026-01-14T09:06:00+00:00": 7, "2026-01-14T09:07:00+00:00": 4}}},
            {"minutes": {"b": {"2026-01-14T09:08:00+00:00": None}}},
        ],
        ["a", "b"],
    )
    assert merged["a"] == {utc: 7, utc + timedelta(minutes=1): 5}
    assert merged["b"] == {utc + timedelta(minutes=2): None}
