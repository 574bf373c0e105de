"""The dashboard tells the truth at a glance (issue 23), looked at in headless Chromium: the heat
map follows the newest data, one colour scale shows a half-rate server, a finished demo reads as
one while a real stopped collector fails, times and counts read one way, and a page that cannot
be written says so."""

from __future__ import annotations

import json
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from ingest.collect.status import status_path, write_status
from ingest.config import validate_config
from ingest.layout import MINUTE, minute_path
from ingest.observe import dashboard, health
from ingest.observe.site import dashboard_dir
from tests import dashdata
from tests.test_dashboard_browser import CHROMIUM, load, sync_api

pytestmark = pytest.mark.integration  # a browser

NOW = dashdata.NOW
SERVERS = dashdata.SERVERS


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def archive(root: Path, **dashboard_cfg) -> dict:
    raw = dashdata.write_archive(root)
    raw["dashboard"] = dashboard_cfg
    return validate_config(raw)


def halve(config: dict, server: str) -> None:
    """``server`` collected half of every minute (a server at half the rate)."""
    for p in Path(config["vault_dir"]).glob("*/*_stats.json"):
        stats = json.loads(p.read_text())
        row = stats["minutes"][server]
        stats["minutes"][server] = {k: None if v is None else v // 2 for k, v in row.items()}
        stats["counts"][server] //= 2
        p.write_text(json.dumps(stats))


def render(config: dict, now=NOW) -> Path:
    dashboard.update_dashboard(config, now, health.system_health(config, now))
    return dashboard_dir(config) / "index.html"


ORANGE = "rgb(253, 141, 60)"  # under 60 % of the expected rate
BLUES = {"rgb(158, 202, 225)", "rgb(33, 113, 181)", "rgb(8, 48, 107)"}  # 60-90, 90-110, over


def fills(page, server: str, day: str) -> set[str]:
    """The colours of ``server``'s counted minutes of ``day`` ("Wed 2026-01-14") on the map."""
    return set(
        page.locator("svg rect").evaluate_all(
            "(rects, prefix) => rects.filter(r => r.textContent.startsWith(prefix)"
            " && r.textContent.endsWith(' tweets')).map(r => getComputedStyle(r).fill)",
            f"{server} {day} ",
        )
    )


def test_the_map_shows_the_newest_week_of_data_and_links_its_days(tmp_path, browser):
    config = archive(tmp_path)
    index = render(config, NOW + timedelta(days=40))  # nothing collected for 40 days
    page, problems = load(browser, index)
    assert problems == []
    note = page.locator("#anchor").inner_text()
    assert "newest is from 2026-01-14" in note and "40 days ago" in note
    assert (
        "7 days up to 2026-01-14" in page.locator("h2", has_text="Tweets per minute").inner_text()
    )
    # The data are drawn (counts' colours), not an empty week of "not built".
    assert fills(page, "server1", "Wed 2026-01-14") <= BLUES
    assert len(fills(page, "server1", "Wed 2026-01-14")) >= 1
    # Every day holding data is reachable from the map and from its month's page.
    linked = page.locator("svg a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert {"day/2026-01-12.html", "day/2026-01-13.html", "day/2026-01-14.html"} <= set(linked)
    month, _ = load(browser, index.parent / "month" / "2026-01.html")
    for day in ("2026-01-12", "2026-01-13", "2026-01-14"):
        assert month.locator(f'a[href="../day/{day}.html"]').count() == 1

    # With data this week the map ends today, without the note.
    fresh, _ = load(browser, render(config, NOW))
    assert fresh.locator("#anchor").count() == 0


def test_a_half_rate_server_stands_out_on_one_numeric_scale(tmp_path, browser):
    config = archive(tmp_path)
    halve(config, "server2")
    page, problems = load(browser, render(config))
    assert problems == []
    for day in ("Tue 2026-01-13", "Wed 2026-01-14"):
        assert fills(page, "server1", day) <= BLUES
        assert fills(page, "server2", day) == {ORANGE}
    # The legend gives the scale in tweets per minute: the busiest server's median here.
    legend = page.locator("#legend").inner_text()
    median = re.search(r"against ([\d,]+) expected", legend)
    assert median and 100 <= int(median[1].replace(",", "")) <= 140  # dashdata: 100-139
    assert re.search(r"under \d+ \(< 60.0 % of expected\)", legend)

    # A configured rate sets the scale: at 240 a minute, both servers are far below it.
    config = archive(tmp_path / "configured", expected_per_minute=240)
    page, _ = load(browser, render(config))
    assert "against 240 expected (dashboard.expected_per_minute)" in page.inner_text("#legend")
    assert fills(page, "server1", "Wed 2026-01-14") == {ORANGE}
    assert "under 144 " in page.inner_text("#legend")


def stopped_collectors(config: dict) -> None:
    """Both collectors stopped on SIGTERM, their last minute files 5 minutes before NOW."""
    tz = dashdata.TZ
    for s in config["servers"]:
        write_status(
            status_path(config, s["name"]),
            {"state": "stopped", "stopped_reason": "SIGTERM", "stopped_at": NOW.isoformat()},
        )
        p = minute_path(Path(s["raw_dir"]), NOW - 5 * MINUTE, tz)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
    health.record_run(config, "r1", NOW - 2 * MINUTE, NOW - MINUTE, "ok")


def badge(page) -> str:
    return page.locator("h2 .badge").inner_text()


def test_a_finished_demo_reads_as_one_and_a_stopped_collector_as_failing(tmp_path, browser):
    config = archive(tmp_path)
    stopped_collectors(config)
    page, _ = load(browser, render(config))
    assert badge(page) == "FAILING"
    assert page.locator("#demo").count() == 0
    assert "stopped at 2026-01-14 12:20 CET: SIGTERM" in page.inner_text("#health")

    health.end_demo(config, list(SERVERS), NOW - 13 * MINUTE)
    page, problems = load(browser, render(config))
    assert problems == []
    assert "A finished demo: collectors stopped at 2026-01-14 12:07 CET" in page.inner_text("#demo")
    assert badge(page) != "FAILING"
    rows = page.locator("#health tr", has_text="collector")
    assert rows.count() == 2
    for i in range(2):
        assert rows.nth(i).locator("td").first.inner_text() == "OK"
        assert "collectors stopped at 2026-01-14 12:07 CET" in rows.nth(i).inner_text()


def test_times_ages_counts_and_percentages_read_one_way(tmp_path, browser):
    config = archive(tmp_path)
    # A minute file stamped a minute ahead of the clock (clocks differ by seconds), a run
    # recorded with microseconds, a secondary's hour waiting, an alert.
    for s in config["servers"]:
        p = minute_path(Path(s["raw_dir"]), NOW + MINUTE, dashdata.TZ)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()
        write_status(status_path(config, s["name"]), {"state": "running", "connected_since": "x"})
    started = NOW - timedelta(minutes=2, microseconds=123456)
    health.record_run(config, "r1", started, NOW - timedelta(microseconds=654321), "ok")
    page, _ = load(browser, render(config))
    text = page.inner_text("body")
    assert not re.search(r"-\d+ (s|min)\b", text), "a negative age"
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", text), "microseconds"
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", text), "a raw ISO time"
    assert "last run: ok, 2026-01-14 12:17 CET to 2026-01-14 12:19 CET" in text  # local, zone named
    assert "(s)" not in text and not re.search(r"\b1 (lines|hours|files|uploads)\b", text)
    percentages = re.findall(r"\d[\d.,]*\s?%", text)
    assert percentages and all(re.fullmatch(r"\d+\.\d %", p) for p in percentages), percentages
    day, _ = load(browser, index_dir(config) / "day" / "2026-01-14.html")
    day_pcts = re.findall(r"\d[\d.,]*\s?%", day.inner_text("#hours"))
    assert day_pcts and all(re.fullmatch(r"\d+\.\d %", p) for p in day_pcts), day_pcts


def index_dir(config: dict) -> Path:
    return dashboard_dir(config)


def test_a_page_that_cannot_be_written_is_an_alert_a_health_item_and_says_so(tmp_path, browser):
    config = archive(tmp_path)
    out = dashboard_dir(config)
    render(config)
    # A new day's page cannot be written: its folder is a file now (a full or broken disk
    # fails the same way), and there is a new hour to show.
    shutil.rmtree(out / "day")
    (out / "day").write_text("not a folder")
    later = NOW + timedelta(hours=1)
    dashdata.write_archive(tmp_path, later)
    assert dashboard.after_run(config, "r2", later, later, "ok") is None

    page, problems = load(browser, out / "index.html")
    assert problems == []
    assert badge(page) == "FAILING"
    failed = page.inner_text("#failed")
    assert "could not be updated at 2026-01-14 13:20 CET" in failed
    assert "FileExistsError" in failed
    assert page.locator('a[href="month/2026-01.html"]').count() == 1  # the older pages
    h = health.system_health(config, later)
    check = {c.name: c for c in h.checks}["dashboard"]
    assert check.level == health.FAILING and "FileExistsError" in check.summary
    assert [a["kind"] for a in h.facts["alerts_24h"]] == ["notice-dashboard"]

    # Once the pages can be written again, the item is gone and the page is the real one.
    (out / "day").unlink()
    assert dashboard.after_run(config, "r3", later, later, "ok") is not None
    assert "dashboard" not in {c.name for c in health.system_health(config, later).checks}
    page, _ = load(browser, out / "index.html")
    assert page.locator("#failed").count() == 0 and page.locator("#days").count() == 1


@pytest.mark.parametrize("name", ["index.html", "day/2026-01-14.html"])
def test_chart_labels_read_at_10_px_or_more_at_a_laptops_width(tmp_path, browser, name):
    config = archive(tmp_path)
    render(config)
    page, _ = load(browser, dashboard_dir(config) / name, width=1400)
    # A chart's text as shown: its font size times the scale its SVG is drawn at.
    shown = page.locator("svg").first.evaluate(
        """svg => {
            const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
            const size = parseFloat(getComputedStyle(svg.querySelector('text')).fontSize);
            return size * scale;
        }"""
    )
    assert shown >= 10, shown
