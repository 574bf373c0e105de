"""The static dashboard: pages from the stats, rewritten only where something changed."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from html import unescape
from pathlib import Path

import pytest

from ingest import layout
from ingest.config import validate_config
from ingest.observe import dashboard, health
from ingest.observe.site import dashboard_dir, day_url
from ingest.publish.jobs import mail_job
from tests import dashdata
from tests.workflow_runs import smtp_email

NOW = dashdata.NOW


def setup(tmp_path: Path, **extra) -> tuple[dict, Path]:
    config = validate_config({**dashdata.write_archive(tmp_path), **extra})
    return config, dashboard_dir(config)


def test_pages_hold_the_stats_numbers_and_the_outage(tmp_path: Path) -> None:
    config, out = setup(tmp_path)
    update = dashboard.update_dashboard(config, NOW, health.system_health(config, NOW))
    assert update.days == ["2026-01-12", "2026-01-13", "2026-01-14"]
    assert update.months == ["2026-01"]
    day = (out / "day" / "2026-01-14.html").read_text()
    hour, server, minutes = dashdata.OUTAGE
    stats = json.loads(
        (Path(config["vault_dir"]) / hour.day / f"{hour.label}_stats.json").read_text()
    )
    row = re.search(rf'<tr data-hour="{hour.label}">(.*?)</tr>', day)[1]
    assert f'<td data-server="server1">{stats["counts"]["server1"]:,}</td>' in row
    assert f'<td data-k="total">{stats["total"]:,}</td>' in row
    assert "<script" not in day and "http" not in day.replace("http-equiv", "")
    front = unescape((out / "index.html").read_text())
    assert "server2 Wed 2026-01-14 10:20 to 10:35 (15 min): no minute file: not connected" in front
    assert "server1 Wed 2026-01-14 10:40: 0 tweets (connected, nothing came)" in front
    assert "(no file from this server all hour)" in front  # 2026-01-13 03, server2
    assert '<rect x="' in front and 'class="o"' in front
    month = (out / "month" / "2026-01.html").read_text()
    assert 'href="../day/2026-01-14.html"' in month
    # server2 has no file all hour, server1 covers it: a partial hour, server2 shown as "-".
    assert re.search(r'<td class="partial" title="2026-01-13 03: [^"]*server2 - \(60 min', month)
    # The day's files, relative to the page (the vault holds the dashboard).
    assert 'href="../../2026-01-14/2026-01-14_10_IDs.txt.xz"' in day


def test_only_changed_days_are_rewritten(tmp_path: Path) -> None:
    config, out = setup(tmp_path)
    dashboard.update_dashboard(config, NOW, None)
    pages = sorted(p for p in out.rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in pages}
    again = dashboard.update_dashboard(config, NOW, None)
    assert again.days == [] and again.months == []
    assert again.written == [out / "data" / "index.json", out / "index.html"]
    # One hour rebuilt: its day, its month, the index and the front page.
    stats = Path(config["vault_dir"]) / "2026-01-13" / "2026-01-13_05_stats.json"
    data = json.loads(stats.read_text())
    data["counts"]["server1"] += 1
    stats.write_text(json.dumps(data))
    one = dashboard.update_dashboard(config, NOW, None)
    assert one.days == ["2026-01-13"] and one.months == ["2026-01"]
    changed = {p for p in pages if p.stat().st_mtime_ns != before[p]}
    assert changed == {
        out / "data" / "index.json",
        out / "index.html",
        out / "data" / "2026-01-13.json",
        out / "day" / "2026-01-13.html",
        out / "month" / "2026-01.html",
    }
    assert f"{data['counts']['server1']:,}" in (out / "day" / "2026-01-13.html").read_text()
    assert not list(out.rglob(".*.tmp-*"))


def test_upload_receipt_and_mail_marker_rewrite_their_day(tmp_path: Path) -> None:
    config, out = setup(
        tmp_path,
        osf={"enabled": True, "project": "abcde"},
        email={"enabled": True, "smtp_host": "h", "from": "a@b", "to": ["c@d"]},
    )
    dashboard.update_dashboard(config, NOW, None)
    front = (out / "index.html").read_text()
    assert "0/24 uploaded" in front and "not sent" in front
    work = Path(config["work_dir"])
    (work / "osf" / "2026-01-12").mkdir(parents=True)
    (work / "osf" / "2026-01-12" / "2026-01-12_00.json").write_text("[]")
    (work / "mail").mkdir()
    (work / "mail" / "2026-01-12.sent").write_text('{"sent_at": "Tue, 13 Jan 2026 00:12:00"}')
    update = dashboard.update_dashboard(config, NOW, None)
    assert update.days == ["2026-01-12"]
    row = re.search(r'<tr data-day="2026-01-12">(.*?)</tr>', (out / "index.html").read_text())[1]
    assert "1/24 uploaded" in row and "sent Tue, 13 Jan 2026 00:12:00" in row


def test_damaged_stats_costs_only_its_hour(tmp_path: Path) -> None:
    config, out = setup(tmp_path)
    (Path(config["vault_dir"]) / "2026-01-13" / "2026-01-13_07_stats.json").write_text("{cut")
    update = dashboard.update_dashboard(config, NOW, None)
    assert "2026-01-13" in update.days
    day = (out / "day" / "2026-01-13.html").read_text()
    assert "Unreadable stats" in day and "Hours (23 built)" in day


def test_a_day_of_a_year_under_a_second(tmp_path: Path) -> None:
    """The incremental rewrite reads listings and one day's stats, not the year's."""
    config, out = setup(tmp_path)
    dashboard.update_dashboard(config, NOW, None)
    vault = Path(config["vault_dir"])
    index = json.loads((out / "data" / "index.json").read_text())
    # 360 more days in the index, each with its day folder (a stats file each).
    for k in range(360):
        day = f"2025-{1 + k // 30:02d}-{1 + k % 28:02d}"
        (vault / day).mkdir(exist_ok=True)
        (vault / day / f"{day}_00_stats.json").write_text("{}")
    fps = dashboard.fingerprints(config)
    for day, fp in fps.items():
        index["days"].setdefault(day, {**index["days"]["2026-01-12"], "fp": fp})
    (out / "data" / "index.json").write_text(json.dumps(index))
    os.utime(vault / "2026-01-14" / "2026-01-14_11_stats.json", ns=(1, 1))
    t = time.monotonic()
    update = dashboard.update_dashboard(config, NOW, None)
    assert update.days == ["2026-01-14"]
    assert time.monotonic() - t < 1.0


def test_day_url_only_with_a_base_url(tmp_path: Path) -> None:
    config, _ = setup(tmp_path)
    assert day_url(config, "2026-01-14") is None
    config["dashboard"]["base_url"] = "https://archive.example.org/dash/"
    assert day_url(config, "2026-01-14") == "https://archive.example.org/dash/day/2026-01-14.html"


@pytest.mark.integration  # the SMTP sink
def test_day_mail_links_the_day_page(tmp_path: Path, smtp) -> None:
    sink, port = smtp
    email = smtp_email(port)
    config, _ = setup(tmp_path, email=email, dashboard={"base_url": "https://x.example.org/d/"})
    report = layout.report_path(Path(config["vault_dir"]), "2026-01-13")
    report.write_text("hour\tserv 1\tserv 2\ttotal\tdiff\tdiff %\n")
    marker = Path(config["work_dir"]) / "mail" / "2026-01-13.sent"
    mail_job(config, "2026-01-13", report, marker, logging.getLogger("test"), dashdata.NOW)
    body = sink.messages[0].get_body(("plain",)).get_content()
    assert "The day on the dashboard: https://x.example.org/d/day/2026-01-13.html" in body


def test_dst_days_have_their_own_length(tmp_path: Path) -> None:
    """The day DST ends has 25 hours (its 02 covers two), the day it starts 23."""
    for day in ("2026-03-29", "2026-10-25"):
        for h in layout.day_hours(day, dashdata.TZ):
            p = layout.vault_paths(tmp_path / "vault", h)["stats"]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(dashdata.hour_stats(h)))
    config = validate_config({**dashdata.write_archive(tmp_path, days=0)})
    out = dashboard_dir(config)
    dashboard.update_dashboard(config, NOW, None)
    spring = json.loads((out / "data" / "2026-03-29.json").read_text())
    autumn = json.loads((out / "data" / "2026-10-25.json").read_text())
    assert len(spring["minutes"]["server1"]) == 23 * 60 and len(spring["hours"]) == 23
    assert len(autumn["minutes"]["server1"]) == 25 * 60 and len(autumn["hours"]) == 24
    # the repeated 02 is one stats file of 120 minutes, all of them counted
    assert dashboard.NOT_BUILT not in autumn["minutes"]["server1"]
