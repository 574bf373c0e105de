"""One workflow run at a time, however started; every failing run is heard of (issue 10, items
6 and 12; item 11's `now`).

The Snakefile takes work_dir/run.lock itself (cron needs no `flock`), so a second run, by cron
or by hand, does nothing and says who holds the lock; a holder past run_lock_alert_minutes (a
hung run) is mailed once. A run that fails while Snakemake reads the Snakefile (before
`onerror` exists) mails its error. The lock's holder here is the test process itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from ingest import layout, notify, workflow_run
from ingest.config import TEST_CLOCK_ENV, ConfigError, check_now
from ingest.locks import LockBusy, RunLock, read_holder
from tests.configs import loaded_config, minimal_config
from tests.workflow_runs import smtp_email, snakemake

PREFIX = "[sampled-stream] "


def write_config(root: Path, **sections) -> Path:
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(minimal_config(root, "server1", **sections)))
    return path


def subjects(sink) -> list[str]:
    return [" ".join(m["Subject"].split()).removeprefix(PREFIX) for m in sink.messages]


# --- the lock itself ------------------------------------------------------------------------


def test_run_lock_records_its_holder_and_a_second_one_is_refused_naming_it(tmp_path):
    now = datetime(2026, 1, 14, 11, 0, tzinfo=UTC)
    first = RunLock(tmp_path / "run.lock", now)
    try:
        holder = read_holder(tmp_path / "run.lock")
        assert holder is not None and holder.pid == os.getpid() and holder.started == now
        with pytest.raises(LockBusy, match=f"pid {os.getpid()}") as busy:
            RunLock(tmp_path / "run.lock", now + timedelta(minutes=5))
        assert busy.value.holder == holder
        assert "(5 min)" in str(busy.value)
    finally:
        first.release()
    RunLock(tmp_path / "run.lock", now).release()  # free once released
    assert (tmp_path / "run.lock").stat().st_mode & 0o777 == 0o640


def test_now_is_for_dry_runs_only(monkeypatch):
    config = loaded_config(now="2026-01-14T11:00:00+00:00")
    monkeypatch.delenv(TEST_CLOCK_ENV, raising=False)
    check_now(config, dry_run=True)
    with pytest.raises(ConfigError, match="now: .* dry runs only"):
        check_now(config, dry_run=False)
    monkeypatch.setenv(TEST_CLOCK_ENV, "1")
    check_now(config, dry_run=False)
    check_now(loaded_config(), dry_run=False)  # no now: the real time


def test_a_condition_lasting_across_runs_is_mailed_once(tmp_path, smtp):
    sink, port = smtp
    config = loaded_config(tmp_path, email=smtp_email(port))
    now = datetime(2026, 1, 14, 11, 0, tzinfo=UTC)
    assert notify.notify_once(config, "plan", ["a broken"], "plan", "found:", now)
    assert not notify.notify_once(config, "plan", ["a broken"], "plan", "found:", now)
    assert notify.notify_once(config, "plan", ["a broken", "b broken"], "plan", "found:", now)
    first, second = sink.wait_for(2)
    assert "a broken" in first.get_content() and "a broken" not in second.get_content()
    # Once gone, it is forgotten: if it comes back, it is news again.
    assert not notify.notify_once(config, "plan", [], "plan", "found:", now)
    assert notify.notify_once(config, "plan", ["a broken"], "plan", "found:", now)


# --- runs -----------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_second_run_does_nothing_and_says_why(tmp_path):
    write_config(tmp_path)
    now = datetime.now(UTC)
    lock = RunLock(tmp_path / "work" / "run.lock", now)  # a run that is going
    try:
        proc = snakemake(tmp_path)
        said = proc.stdout + proc.stderr
        assert proc.returncode == 75, said
        assert "another workflow run is going" in said and f"pid {os.getpid()}" in said
        assert now.isoformat() in said
        assert "plan at" not in said  # stopped before planning: nothing done
        # A dry run writes nothing and takes no lock: it still shows the plan.
        dry = snakemake(tmp_path, "-n")
        assert dry.returncode == 0 and "plan at" in dry.stderr, dry.stderr
    finally:
        lock.release()
    again = snakemake(tmp_path)
    assert again.returncode == 0, again.stderr
    # The run took the lock and, finishing, emptied its record: no run is going.
    assert "never finished" not in again.stdout
    assert read_holder(tmp_path / "work" / "run.lock") is None


@pytest.mark.integration
def test_a_run_lock_held_past_the_limit_is_mailed_once(tmp_path, smtp):
    sink, port = smtp
    write_config(tmp_path, email=smtp_email(port), run_lock_alert_minutes=120)
    hung_since = datetime.now(UTC) - timedelta(hours=3)
    lock = RunLock(tmp_path / "work" / "run.lock", hung_since)
    try:
        for _ in range(2):  # two cron runs: one mail about this holder
            proc = snakemake(tmp_path)
            assert proc.returncode == 75, proc.stderr
    finally:
        lock.release()
    (msg,) = sink.wait_for(1)
    assert subjects(sink) == ["a run has held the run lock for 120+ min"]
    text = msg.get_content()
    assert f"pid {os.getpid()}" in text and hung_since.isoformat() in text
    assert len(sink.messages) == 1


@pytest.mark.integration
def test_a_run_that_fails_while_snakemake_reads_the_snakefile_is_mailed(tmp_path, smtp):
    sink, port = smtp
    write_config(tmp_path, email=smtp_email(port), late_minutes=99)  # invalid: at most 60
    proc = snakemake(tmp_path)
    assert proc.returncode == 1
    (msg,) = sink.wait_for(1)
    assert msg["Subject"] == PREFIX + "workflow run failed"  # no rule ran: no build failed
    assert "late_minutes" in msg.get_content()
    # A dry run is the operator at a terminal: no mail.
    assert snakemake(tmp_path, "-n").returncode == 1
    assert len(sink.messages) == 1


@pytest.mark.integration
def test_a_run_that_writes_refuses_now_unless_the_test_clock_is_allowed(tmp_path):
    write_config(tmp_path, now="2026-01-14T11:00:00+00:00")
    env = {k: v for k, v in os.environ.items() if k != TEST_CLOCK_ENV}
    proc = snakemake(tmp_path, env=env)
    assert proc.returncode == 1
    assert "now: '2026-01-14T11:00:00+00:00' is for dry runs only" in proc.stderr
    assert not (tmp_path / "vault").exists()  # refused before anything was made
    assert snakemake(tmp_path, "-n", env=env).returncode == 0
    assert snakemake(tmp_path, env={**env, TEST_CLOCK_ENV: "1"}).returncode == 0


@pytest.mark.integration
def test_what_the_plan_skips_is_mailed_once(tmp_path, smtp):
    sink, port = smtp
    write_config(tmp_path, email=smtp_email(port))
    (tmp_path / "raw" / "2026-01-14" / "24").mkdir(parents=True)  # no such hour: skipped
    for _ in range(2):
        proc = snakemake(tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "2026-01-14/24" in proc.stderr  # printed with the plan by every run
    (msg,) = sink.wait_for(1)
    assert subjects(sink) == ["the hourly build skipped or rebuilds something"]
    assert "2026-01-14/24" in msg.get_content()
    assert len(sink.messages) == 1


HOLD_AND_WAIT = """
import sys, time
from datetime import UTC, datetime
from ingest.locks import RunLock
lock = RunLock(sys.argv[1], datetime.now(UTC))
print("held", flush=True)
if sys.argv[2] == "wait":
    time.sleep(60)
"""


def hold_run_lock(path: Path, how: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_WAIT, str(path), how], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "held\n"
    return proc


def test_a_run_killed_just_before_a_scrub_takes_the_lock_is_reported(tmp_path, smtp, capsys):
    """The soak: a run killed, then a scrub (or restore) took the lock first and emptied the
    record, so no later run could say the killed one never finished."""
    from ingest.workflow_run import wait_for_run_lock

    sink, port = smtp
    config = loaded_config(tmp_path, email=smtp_email(port))
    path = layout.work_paths(config["work_dir"])["run_lock"]
    killed = hold_run_lock(path, "wait")
    killed.kill()
    killed.wait()
    wait_for_run_lock(config, 0).release()
    (msg,) = sink.wait_for(1)
    assert f"pid {killed.pid}" in msg.get_content()
    assert f"pid {killed.pid}" in capsys.readouterr().out


def test_a_run_killed_holding_the_lock_is_reported_once_by_the_next(tmp_path, smtp, capsys):
    # A run killed with kill -9 (or its machine's power cut) said nothing itself.
    sink, port = smtp
    config = loaded_config(tmp_path, email=smtp_email(port))
    path = layout.work_paths(config["work_dir"])["run_lock"]
    hold_run_lock(path, "exit").wait()  # a run that ended normally: nothing to say
    lock = workflow_run.take_run_lock(config, datetime.now(UTC))
    assert lock is not None and lock.unfinished is None
    lock.release()

    killed = hold_run_lock(path, "wait")
    killed.kill()
    killed.wait()
    for _ in range(2):  # the next run says so, and mails once
        lock = workflow_run.take_run_lock(config, datetime.now(UTC))
        assert lock is not None
        lock.release()
    (msg,) = sink.wait_for(1)
    assert subjects(sink) == ["a workflow run ended without finishing"]
    assert f"pid {killed.pid}" in msg.get_content()
    assert f"pid {killed.pid}" in capsys.readouterr().out
    assert len(sink.messages) == 1


def test_the_failure_mail_names_what_failed() -> None:
    from ingest.workflow_run import failure_subject

    log = "Error in rule mail_report:\n    jobid: 7\nError in rule upload_osf:\n    jobid: 3\n"
    assert failure_subject(log) == "day mail, OSF upload failed"
    assert failure_subject("Error in rule build_hour:\n") == "hourly build failed"
    assert failure_subject("WorkflowError: late_minutes: 99 is greater than 60") == (
        "workflow run failed"
    )
