"""An OSF outage costs the runs little (issue 10 item 13).

A failed upload waits before the next run tries it again (10 min, doubled per failure, at most
6 h; state next to the receipt in work_dir/osf), a run starts at most osf.max_uploads_per_run
uploads, and builds go before uploads (priority), so they never wait for OSF.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from ingest import backoff, layout
from ingest.hours import plan
from ingest.layout import Hour
from tests.configs import loaded_config, minimal_config
from tests.osf_standin import OSFStandIn
from tests.workflow_runs import snakemake

T0 = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)


def test_back_off_doubles_per_failure_up_to_six_hours(tmp_path):
    path = tmp_path / "h.backoff"
    assert backoff.is_due(path, T0)  # never failed
    waits = []
    for _ in range(8):
        state = backoff.record_failure(path, T0, "HTTP 503")
        waits.append(datetime.fromisoformat(state["next_attempt"]) - T0)
    assert [w.total_seconds() / 60 for w in waits] == [10, 20, 40, 80, 160, 320, 360, 360]
    assert not backoff.is_due(path, T0 + timedelta(hours=5))
    assert backoff.is_due(path, T0 + waits[-1])
    backoff.clear(path)
    assert backoff.is_due(path, T0)
    path.write_text("{not json")  # a damaged state never blocks an upload
    assert backoff.is_due(path, T0)


def built_vault(root: Path, hours: list[Hour]) -> None:
    for h in hours:
        stats = layout.vault_paths(root / "vault", h)["stats"]
        stats.parent.mkdir(parents=True, exist_ok=True)
        stats.write_text("{}")


def test_the_plan_takes_only_due_uploads_and_at_most_the_cap(tmp_path):
    config = loaded_config(
        tmp_path, osf={"enabled": True, "project": "abcde", "max_uploads_per_run": 3}
    )
    hours = [Hour("2026-01-14", hh) for hh in range(5)]
    built_vault(tmp_path, hours)
    assert plan.make_plan(config, T0).uploads == hours[:3]  # the oldest first, three a run
    osf = layout.work_paths(config["work_dir"])["osf"]
    for h in hours[:2]:  # their uploads just failed
        backoff.record_failure(plan.upload_backoff(osf / h.day / f"{h.label}.json"), T0, "503")
    assert plan.make_plan(config, T0 + timedelta(minutes=5)).uploads == hours[2:5]
    assert plan.make_plan(config, T0 + timedelta(minutes=10)).uploads == hours[:3]


def nodes_requests(standin: OSFStandIn) -> int:
    return sum(1 for m, p, _, _ in standin.requests if m == "GET" and p.startswith("/v2/nodes/"))


@pytest.mark.integration
def test_an_osf_outage_backs_off_across_runs_and_caps_each_run(tmp_path):
    """Three hours built, OSF answering 503 to everything, at most 2 uploads a run."""
    from ingest.devtools.generate import generate_raw_tree

    tz = ZoneInfo("Europe/Berlin")
    generate_raw_tree(
        [("s1", tmp_path / "raw")],
        datetime(2026, 1, 14, 8, 50, tzinfo=UTC),  # local 09:50 to 12:01: hours 09, 10, 11
        datetime(2026, 1, 14, 11, 1, tzinfo=UTC),
        tz,
        rate_per_minute=3,
        seed=8,
    )
    standin = OSFStandIn().start()
    try:
        token = tmp_path / "osf_token"
        token.write_text(standin.token)
        token.chmod(0o600)
        osf = {
            "enabled": True,
            "project": standin.project,
            "api_url": standin.api_url,
            "token_file": str(token),
            "request_interval_seconds": 0,
            "retry_base_seconds": 0,
            "max_uploads_per_run": 2,
        }
        config = minimal_config(tmp_path, late_minutes=1, grace_minutes=1, xz_preset=0, osf=osf)
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
        standin.inject(503, times=10_000)  # OSF is down

        def run(now: str) -> tuple[int, int]:
            """(exit status, upload jobs this run made: 6 tries of the first request each)."""
            before = nodes_requests(standin)
            proc = snakemake(tmp_path, now=now)
            return proc.returncode, (nodes_requests(standin) - before) // 6

        status, uploads = run("2026-01-14T11:05:00+00:00")
        assert status != 0 and uploads == 2  # 3 hours built, 2 uploads tried: the cap
        built = sorted(p.name for p in (tmp_path / "vault").rglob("*_stats.json"))
        assert len(built) == 3  # builds never wait for (or fail with) OSF
        assert run("2026-01-14T11:10:00+00:00")[1] == 1  # the third hour; two back off
        assert run("2026-01-14T11:12:00+00:00") == (0, 0)  # all three back off: a quiet run
        assert run("2026-01-14T11:16:00+00:00")[1] == 2  # the first two are due again
        states = [json.loads(p.read_text()) for p in (tmp_path / "work" / "osf").rglob("*.backoff")]
        assert sorted(s["attempts"] for s in states) == [1, 2, 2]
        assert not list((tmp_path / "work" / "osf").rglob("*.json"))  # no receipt: none uploaded
    finally:
        standin.stop()
