"""The dashboard's pages in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright):
they load without console errors or any request beyond their own file, JavaScript off; the
numbers shown are the stats files'; the known outage is drawn as an outage; a phone's width
scrolls inside the tables and charts, not the page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ingest.config import validate_config
from ingest.observe import dashboard, health
from ingest.observe.site import dashboard_dir
from tests import dashdata

pytestmark = pytest.mark.integration  # a browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    config = validate_config(dashdata.write_archive(root))
    now = dashdata.NOW
    dashboard.update_dashboard(config, now, health.system_health(config, now))
    return config, dashboard_dir(config)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def load(browser, path: Path, width: int = 1400):
    """The page, with what went wrong while loading it."""
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": width, "height": 900}
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "request",
        lambda r: r.url == path.as_uri() or problems.append(f"request: {r.url}"),
    )
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.goto(path.as_uri())
    return page, problems


@pytest.mark.parametrize("name", ["index.html", "month/2026-01.html", "day/2026-01-14.html"])
def test_page_loads_clean(site, browser, name, tmp_path) -> None:
    _, out = site
    page, problems = load(browser, out / name)
    assert problems == []
    shot = tmp_path / (name.replace("/", "_") + ".png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
    # On a phone the page itself does not scroll sideways: wide parts scroll in their box.
    phone, problems = load(browser, out / name, width=390)
    assert problems == []
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(tmp_path / "phone.png"))


def test_known_outage_minute_is_drawn_as_an_outage(site, browser) -> None:
    _, out = site
    page, _ = load(browser, out / "index.html")
    cell = page.locator(
        "rect.o", has=page.locator("title", has_text="server2 Wed 2026-01-14 10:20")
    )
    assert cell.count() == 1
    assert cell.evaluate("e => getComputedStyle(e).fill") == "rgb(214, 39, 40)"  # red
    zero = page.locator("rect", has=page.locator("title", has_text="server1 Wed 2026-01-14 10:40:"))
    assert zero.evaluate("e => e.getAttribute('class')") == "z"
    # and the minute before the outage is a count
    before = page.locator(
        "rect", has=page.locator("title", has_text="server2 Wed 2026-01-14 10:19:")
    )
    assert before.evaluate("e => e.getAttribute('class')").startswith("c")


def test_numbers_on_the_pages_are_the_stats(site, browser) -> None:
    config, out = site
    vault = Path(config["vault_dir"])
    page, _ = load(browser, out / "day" / "2026-01-14.html")
    rows = page.locator("#hours tr[data-hour]")
    assert rows.count() == 12
    for i in range(rows.count()):
        row = rows.nth(i)
        label = row.get_attribute("data-hour")
        stats = json.loads((vault / "2026-01-14" / f"{label}_stats.json").read_text())
        for server in dashdata.SERVERS:
            shown = row.locator(f'td[data-server="{server}"]').inner_text()
            assert shown == f"{stats['counts'][server]:,}"
        assert row.locator('td[data-k="total"]').inner_text() == f"{stats['total']:,}"
    front, _ = load(browser, out / "index.html")
    day_row = front.locator('#days tr[data-day="2026-01-13"]')
    all_stats = [json.loads(p.read_text()) for p in (vault / "2026-01-13").glob("*_stats.json")]
    total = sum(s["total"] for s in all_stats)
    assert day_row.locator('td[data-k="total"]').inner_text() == f"{total:,}"
