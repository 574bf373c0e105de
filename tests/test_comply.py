"""Issue 24: deletion compliance on every copy.

Real parts throughout: hours built by ``hourly.build_hour`` from synthetic minute files
(tests/test_hourly.World), a local replica, the stream stand-in's batch compliance endpoints
driven through twarc's ``Twarc2`` (``ingest.comply.client``), the vault's commit, scrub,
restore, the pull's rsync (a local ``rsync_from``) and the import. What the stand-in answers
for an ID is known in advance (``ComplianceJobs.verdict``), so each test knows which posts
and accounts must be gone everywhere and which must all still be there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import lzma
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from ingest import complied, layout
from ingest.clock import SystemClock
from ingest.comply.client import ComplyError, JobClient
from ingest.comply.run import comply, make_client
from ingest.comply.state import load as load_state
from ingest.config import validate_config
from ingest.devtools.compliance import ComplianceJobs
from ingest.devtools.emulator import Emulator
from ingest.hours.report import write_day_report
from ingest.hours.stats import day_stats_paths
from ingest.imports.importer import import_sources
from ingest.observe.dashboard import update_dashboard
from ingest.publish.jobs import mail_job
from ingest.pull.rsync import pull_server
from ingest.vault.records import read_record, record_path
from ingest.vault.replicate import hour_receipt, replicate_hour
from ingest.vault.restore import restore
from ingest.vault.scrub import scrub
from tests.configs import minimal_config
from tests.test_hourly import H11, World, on_time, read_csv, utc
from tests.test_replicate import flip_byte, local
from tests.workflow_runs import smtp_email

pytestmark = pytest.mark.integration  # the stand-in over HTTP, comply subprocesses

T = utc(2026, 1, 14, 10, 5)  # 11:05 CET, in H11
DAY = H11.day
TOKEN = "comply-test-token-0123456789"
REMOVED = {"deleted", "protected", "suspended", "deactivated"}
SHARES = {
    "tweets": {"deleted": 0.15, "protected": 0.05, "scrub_geo": 0.05},
    "users": {"suspended": 0.15, "deactivated": 0.05},
}
N_TWEETS = 120
LOG = logging.getLogger("test_comply")


def author_of(i: int) -> str:
    return str(5000 + i % 23)


def tweet_id(i: int) -> int:
    return 1_600_000_000_000_000_000 + i * 7919


@pytest.fixture
def standin():
    em = Emulator(rate=0.001, token=TOKEN, compliance=ComplianceJobs(seed=5, shares=SHARES))
    em.start()
    yield em
    em.stop()


def make_world(tmp_path: Path) -> World:
    """H11 with both servers: N_TWEETS tweets of 23 authors, a few only on one server."""
    w = World(tmp_path)
    for i in range(N_TWEETS):
        created = T + timedelta(seconds=20 * i)
        for s in ("s1", "s2") if i % 10 else ("s1",):
            w.add(on_time(s, tweet_id(i), created, author=author_of(i), text=f"post {i}"))
    return w


def make_config(w: World, em: Emulator, tmp_path: Path, **extra) -> dict:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    raw = {
        **minimal_config(w.root),
        "servers": [{"name": s, "raw_dir": str(w.raw_dir(s))} for s in w.servers],
        "vault_replicas": [local(tmp_path)],
        "stream": {"url": em.url, "bearer_token_file": str(token)},
        "comply": {"poll_seconds": 0.01, "backoff_scale": 0.001, "ids_per_job": 50},
        "xz_preset": 0,
        **extra,
    }
    return validate_config(raw, "test config")


def expected(em: Emulator, w: World) -> tuple[set[int], set[int]]:
    """(post IDs, author IDs) the stand-in has removed."""
    jobs = em.compliance
    posts = {tweet_id(i) for i in range(N_TWEETS) if jobs.verdict("tweets", tweet_id(i)) in REMOVED}
    authors = {int(author_of(i)) for i in range(23)}
    accounts = {a for a in authors if jobs.verdict("users", a) in REMOVED}
    return posts, accounts


def gone(posts: set[int], accounts: set[int]) -> set[int]:
    """Every post ID that must be nowhere: complied posts and complied accounts' posts."""
    return posts | {tweet_id(i) for i in range(N_TWEETS) if int(author_of(i)) in accounts}


def tweets_rows(path: Path) -> list[list[str]]:
    return read_csv(path)[1:]


def raw_ids(w: World) -> set[int]:
    """Every tweet ID (data, includes) in every raw minute file."""
    out = set()
    for s in w.servers:
        for p in w.raw_dir(s).rglob("*.jsonl"):
            for line in p.read_bytes().splitlines():
                obj = json.loads(line)
                out.add(int(obj["data"]["id"]))
    return out


def build_and_copy(w: World, config: dict) -> dict:
    from ingest.vault.day import derive_manifest

    _, out = w.build(H11)
    vault = Path(config["vault_dir"])
    derive_manifest(vault / DAY, vault / "m.lock", LOG)
    replicate_hour(config, "disk2", H11, T, hour_receipt(config["work_dir"], "disk2", H11))
    return out


def run_comply(config: dict) -> object:
    return comply(config, make_client(config), SystemClock(), sleep=lambda s: time.sleep(0.01))


def write_archive(path: Path) -> Path:
    """A twarc2 archive of every tweet the world's collectors saw (complied ones included)."""
    path.write_bytes(
        b"".join(
            on_time("s1", tweet_id(i), T + timedelta(seconds=20 * i), author=author_of(i)).line()
            + b"\n"
            for i in range(N_TWEETS)
        )
    )
    return path


def test_comply_removes_complied_posts_and_accounts_everywhere(tmp_path, standin):
    w = make_world(tmp_path)
    config = make_config(w, standin, tmp_path)
    out = build_and_copy(w, config)
    ids_before = out["ids"].read_bytes()
    generation = read_record(record_path(config["vault_dir"], H11)).generation
    posts, accounts = expected(standin, w)
    assert posts and accounts, "the shares must hit some posts and some accounts"
    removed = gone(posts, accounts)

    result = run_comply(config)

    kept = {tweet_id(i) for i in range(N_TWEETS)} - removed
    replica = tmp_path / "disk2" / DAY
    for folder in (out["tweets"].parent, replica):
        rows = tweets_rows(folder / out["tweets"].name)
        ids = {int(r[0]) for r in rows}
        assert not ids & removed, f"complied posts left in {folder}"
        assert ids == kept, "a post that is not complied went missing"
        users = {int(r[0]) for r in tweets_rows(folder / out["users"].name)}
        assert not users & accounts, f"complied accounts' rows left in {folder}"
        assert users == {int(r[2]) for r in rows}, "a user row without a tweet, or missing"
        assert (folder / out["ids"].name).read_bytes() == ids_before, "the IDs file changed"
    assert read_record(record_path(config["vault_dir"], H11)).generation == generation + 1
    assert not raw_ids(w) & removed, "complied posts left in raw minute files"
    assert raw_ids(w) == kept
    # The log: each affected ID once, the right actions.
    entries = complied.read_log(complied.log_path(config["vault_dir"], DAY))
    assert len({(e.id, e.type) for e in entries}) == len(entries)
    # Posts: the complied ones and the complied accounts' ones (with the account's action).
    assert {e.id for e in entries if e.type == "tweets"} == removed
    assert {e.id for e in entries if e.type == "users"} == accounts
    authors = {tweet_id(i): int(author_of(i)) for i in range(N_TWEETS)}
    for e in entries:
        if e.type == "tweets" and e.id not in posts:
            assert e.action == standin.compliance.verdict("users", authors[e.id])
        else:
            assert e.action == standin.compliance.verdict(e.type, e.id)
    assert (replica / complied.log_path("", DAY).name).read_bytes() == complied.log_path(
        config["vault_dir"], DAY
    ).read_bytes()
    assert sum(result.tweets_removed.values()) == len(removed)
    # One job per chunk of at most ids_per_job IDs, never two of a type at once.
    assert len(standin.compliance.created) == len(result.jobs) >= 3
    # Scrub finds every copy intact at the new generation; the manifest lists the log.
    manifest = (out["ids"].parent / f"{DAY}_SHA256SUMS").read_text()
    assert f"  {DAY}_compliance.tsv\n" in manifest
    report = scrub(config)
    assert not report.findings and not report.unrepaired
    # The dashboard shows the day's removed posts by action (from the hours' stats).
    update_dashboard(config, T, None)
    pages = Path(config["vault_dir"]) / "dashboard"
    by_action = ", ".join(f"{a} {n}" for a, n in sorted(result.tweets_removed.items()))
    assert (
        f"Posts removed for compliance: {by_action}" in (pages / "day" / f"{DAY}.html").read_text()
    )
    assert by_action in (pages / "index.html").read_text()
    # A second pass finds nothing new and writes no generation.
    again = run_comply(config)
    assert not again.hours_rewritten and not again.logged
    assert read_record(record_path(config["vault_dir"], H11)).generation == generation + 1


def test_an_account_whose_posts_came_without_its_user_object_is_asked_about(tmp_path, standin):
    """The stream sometimes sends a post without its author in ``includes.users`` (the soak
    met it): the hour's users file has no row for that author, its tweets file has the
    author_id. The account is asked about all the same, and its posts go."""
    w = make_world(tmp_path)
    jobs = standin.compliance
    author = next(a for a in range(9000, 9999) if jobs.verdict("users", a) in REMOVED)
    bare = [tweet_id(1000 + k) for k in range(3)]
    for k, tid in enumerate(bare):
        copy = on_time("s1", tid, T + timedelta(seconds=7 + 20 * k), author=str(author))
        obj = json.loads(copy.line())
        del obj["includes"]  # no user object: no row in the users file
        w.add_raw("s1", copy.retrieved.replace(second=0, microsecond=0), json.dumps(obj).encode())
    config = make_config(w, standin, tmp_path)
    out = build_and_copy(w, config)
    assert {int(r[0]) for r in tweets_rows(out["tweets"])} >= set(bare)
    assert str(author) not in {r[0] for r in tweets_rows(out["users"])}

    run_comply(config)

    for folder in (out["tweets"].parent, tmp_path / "disk2" / DAY):
        ids = {int(r[0]) for r in tweets_rows(folder / out["tweets"].name)}
        assert not ids & set(bare), f"the complied account's posts are left in {folder}"
    entries = complied.read_log(complied.log_path(config["vault_dir"], DAY))
    assert (author, "users") in {(e.id, e.type) for e in entries}
    assert set(bare) <= {e.id for e in entries if e.type == "tweets"}


def test_the_day_report_and_its_mail_show_the_posts_removed_by_action(tmp_path, standin, smtp):
    sink, port = smtp
    w = make_world(tmp_path)
    config = make_config(w, standin, tmp_path, email=smtp_email(port))
    vault = Path(config["vault_dir"])
    build_and_copy(w, config)
    report = layout.report_path(vault, DAY)
    write_day_report(DAY, day_stats_paths(vault / DAY, DAY), report, w.servers)
    assert "removed for compliance" not in report.read_text()

    result = run_comply(config)

    removed = ", ".join(f"{a} {n}" for a, n in sorted(result.tweets_removed.items()))
    assert removed.count(" ") >= 3, "the shares must remove posts for two actions or more"
    line = f"removed for compliance: {removed}\n"
    assert report.read_text().endswith(line), "the day report says what was removed, by action"
    # The replica's copy, the manifest and a scrub agree with the new report.
    assert (tmp_path / "disk2" / DAY / report.name).read_bytes() == report.read_bytes()
    assert not scrub(config).findings
    # The day's mail (here a revised one: the day was mailed before the pass) says it too.
    marker = layout.work_paths(config["work_dir"])["mail"] / f"{DAY}.sent"
    mail_job(config, DAY, report, marker, LOG, T + timedelta(days=1), revised=True)
    text = sink.messages[-1].get_body(("plain",)).get_content()
    assert line in text.replace("\r\n", "\n") and "removed for compliance (sampled" in text


@pytest.mark.parametrize("damage", ["flipped", "deleted"])
def test_scrub_repairs_the_primarys_compliance_log_from_a_replica(tmp_path, standin, damage):
    """Without its log, later builds and pulls of the day could bring complied posts back:
    a log rotted (its time stamp as it was) or deleted on the primary is found and repaired
    from a replica that holds the one the manifest lists."""
    w = make_world(tmp_path)
    config = make_config(w, standin, tmp_path)
    build_and_copy(w, config)
    run_comply(config)
    log = complied.log_path(config["vault_dir"], DAY)
    good = log.read_bytes()
    assert (tmp_path / "disk2" / DAY / log.name).read_bytes() == good
    if damage == "flipped":
        st = log.stat()
        flip_byte(log, offset=len(good) // 2)
        os.utime(log, ns=(st.st_atime_ns, st.st_mtime_ns))  # rot changes no time stamp
    else:
        log.unlink()

    report = scrub(config)

    assert log.read_bytes() == good
    found = [f for f in report.findings if f.name == log.name]
    assert [(f.location, f.repair) for f in found] == [("primary", "repaired from disk2")]
    assert found[0].status == ("missing" if damage == "deleted" else "mismatch")
    manifest = (log.parent / f"{DAY}_SHA256SUMS").read_text()
    assert f"{hashlib.sha256(good).hexdigest()}  {log.name}\n" in manifest
    assert not scrub(config).findings


def test_rebuild_late_pull_and_import_bring_nothing_back(tmp_path, standin):
    w = make_world(tmp_path)
    config = make_config(w, standin, tmp_path)
    # s2's minute files also wait on a "secondary" (a local rsync_from), as before a pull.
    secondary = tmp_path / "secondary"
    w.write()
    subprocess.run(["cp", "-a", f"{w.raw_dir('s2')}/.", str(secondary)], check=True)
    build_and_copy(w, config)
    posts, accounts = expected(standin, w)
    removed = gone(posts, accounts)
    run_comply(config)
    vault = Path(config["vault_dir"])
    out = layout.vault_paths(vault, H11)
    ids_file = lzma.decompress(out["ids"].read_bytes())
    by_action = json.loads(out["stats"].read_text())["complied"]  # as the rewrite counted

    # The secondary's copies arrive late: the pull must not bring the complied lines back.
    server = {**config["servers"][1], "rsync_from": f"{secondary}/"}
    result = pull_server(server, T, tmp_path / "pullstate", LOG, vault_dir=vault)
    assert result.ok, result.error
    assert not raw_ids(w) & removed
    # An archive holding complied posts is imported.
    archive = write_archive(tmp_path / "archive.jsonl")
    imported = tmp_path / "raw" / "old"
    config_i = validate_config(
        {
            **minimal_config(w.root),
            "servers": [
                *({"name": s, "raw_dir": str(w.raw_dir(s))} for s in w.servers),
                {"name": "old", "raw_dir": str(imported), "imported": True},
            ],
        },
        "test config",
    )
    report = import_sources(config_i, "old", [archive])
    assert not report.failed
    lines = [json.loads(x) for p in imported.rglob("*.jsonl") for x in p.read_bytes().splitlines()]
    assert lines and not {int(x["data"]["id"]) for x in lines} & removed
    # The hour rebuilt (the rebuilt raw files, merged into the vault): nothing comes back.
    w.files.clear()  # World.write must not restore the original raw files
    stats, out = w.build(H11)
    ids = {int(r[0]) for r in tweets_rows(out["tweets"])}
    assert not ids & removed
    assert ids == {tweet_id(i) for i in range(N_TWEETS)} - removed
    assert not {int(r[0]) for r in tweets_rows(out["users"])} & accounts
    assert lzma.decompress(out["ids"].read_bytes()) == ids_file, "the IDs file lost its IDs"
    assert stats["complied"] == by_action, "the rebuild counts the removed posts alike"
    assert sum(stats["complied"].values()) == len(removed)
    assert "complied before" not in stats["complied"], "the log names every removed post"


def test_restore_brings_back_the_new_generation_and_the_log(tmp_path, standin):
    w = make_world(tmp_path)
    config = make_config(w, standin, tmp_path)
    build_and_copy(w, config)
    removed = gone(*expected(standin, w))
    run_comply(config)
    vault = Path(config["vault_dir"])
    day_dir = vault / DAY
    log_bytes = complied.log_path(vault, DAY).read_bytes()
    for p in day_dir.iterdir():
        p.unlink()
    results = restore(config, "disk2", [DAY])
    assert not results[0].failed
    assert complied.log_path(vault, DAY).read_bytes() == log_bytes
    out = layout.vault_paths(vault, H11)
    assert not {int(r[0]) for r in tweets_rows(out["tweets"])} & removed
    assert not scrub(config).unrepaired
    # A log that rotted fails closed (the build stops, naming it) until restore mends it.
    path = complied.log_path(vault, DAY)
    path.write_bytes(log_bytes.replace(b"\ttweets\t", b"\ttwe\x00ts\t", 1))
    with pytest.raises(complied.ComplianceLogError, match=r"_compliance.tsv: line \d+ is not"):
        w.build(H11)
    assert not restore(config, "disk2", [DAY])[0].failed
    assert path.read_bytes() == log_bytes


def test_a_run_killed_mid_job_resumes_the_same_job(tmp_path, standin):
    w = make_world(tmp_path)
    config = make_config(w, standin, tmp_path)
    build_and_copy(w, config)
    standin.compliance.polls = 10**9  # the job stays in progress until the test lets it end
    cfg_file = tmp_path / "config.yaml"
    raw = {k: v for k, v in config.items()}
    raw["comply"] = {**config["comply"], "ids_per_job": 10**6}
    cfg_file.write_text(yaml.safe_dump(json.loads(json.dumps(raw))))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest.cli", "comply", "--config", str(cfg_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = load_state(config["work_dir"])
            if state and state.chunks[0].uploaded:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the run never uploaded its first job")
        time.sleep(0.2)  # polling now
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    job_id = load_state(config["work_dir"]).chunks[0].job["id"]
    assert standin.compliance.created == [("tweets", job_id)]
    standin.compliance.polls = 1
    standin.compliance.jobs[job_id].polls_left = 1
    done = subprocess.run(
        [sys.executable, "-m", "ingest.cli", "comply", "--config", str(cfg_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "(resumed)" in done.stdout
    types = [t for t, _ in standin.compliance.created]
    assert types == ["tweets", "users"], "the resumed run created another tweets job"
    assert standin.compliance.created[0][1] == job_id
    removed = gone(*expected(standin, w))
    out = layout.vault_paths(Path(config["vault_dir"]), H11)
    assert not {int(r[0]) for r in tweets_rows(out["tweets"])} & removed
    assert load_state(config["work_dir"]) is None


def test_the_client_backs_off_as_the_collector_does_and_never_runs_two_jobs_of_a_type(standin):
    standin.fault("503", 2, client="comply")
    standin.fault("429", 1, client="comply")
    waits: list[float] = []
    client = JobClient(TOKEN, standin.base_url, sleep=waits.append)
    job = client.create("tweets", "first")
    assert waits == [5.0, 10.0, 60.0]  # HTTP errors from 5 s doubling; 429 from a minute
    assert [j["id"] for j in client.active("tweets")] == [job["id"]]
    with pytest.raises(ComplyError, match="create a tweets job"):
        client.create("tweets", "second")  # X allows one job per type at a time
    assert client.create("users", "other")["type"] == "users"
    with pytest.raises(ComplyError):
        JobClient("wrong-token-0123456789", standin.base_url, sleep=waits.append).get(job["id"])
    assert len(waits) == 3, "a refused token is not retried"


def test_a_damaged_hour_keeps_the_pass_open_until_it_is_repaired(tmp_path, standin):
    w = make_world(tmp_path)
    config = make_config(w, standin, tmp_path)
    out = build_and_copy(w, config)
    flip_byte(out["tweets"])
    result = run_comply(config)
    assert result.errors and "differs from its record" in result.errors[0]
    assert load_state(config["work_dir"]) is not None, "the pass must stay open"
    jobs = list(standin.compliance.created)
    scrub(config)  # repairs the hour from the replica
    again = run_comply(config)
    assert again.resumed and not again.errors and again.hours_rewritten == [H11.label]
    assert standin.compliance.created == jobs, "the same answers, no new job"
    removed = gone(*expected(standin, w))
    assert not {int(r[0]) for r in tweets_rows(out["tweets"])} & removed
    assert load_state(config["work_dir"]) is None


def test_an_hour_whose_record_is_damaged_keeps_the_pass_open_until_it_is_repaired(
    tmp_path, standin
):
    """Its IDs are asked about all the same (the soak met an hour whose record was flipped
    before the pass: the pass ended "ok" and left its complied posts in place)."""
    w = make_world(tmp_path)
    config = make_config(w, standin, tmp_path)
    out = build_and_copy(w, config)
    flip_byte(record_path(config["vault_dir"], H11), offset=40)
    result = run_comply(config)
    assert result.errors and "record" in result.errors[0]
    assert load_state(config["work_dir"]) is not None, "the pass must stay open"
    scrub(config)  # repairs the record from the replica
    again = run_comply(config)
    assert again.resumed and not again.errors and again.hours_rewritten == [H11.label]
    removed = gone(*expected(standin, w))
    assert not {int(r[0]) for r in tweets_rows(out["tweets"])} & removed
    assert load_state(config["work_dir"]) is None


def test_a_full_disk_during_the_rewrite_keeps_the_pass_open_not_a_traceback(
    tmp_path, standin, monkeypatch
):
    """The soak's finding: a pass whose rewrite met the vault's full disk ended in a
    traceback (``XzError`` from the xz pipe). The hour is named, the pass stays open, and the
    next pass, with space again, finishes it."""
    from ingest.atomic import XzError
    from ingest.comply import run as comply_run

    w = make_world(tmp_path)
    config = make_config(w, standin, tmp_path)
    out = build_and_copy(w, config)

    def full(*args, **kwargs):
        raise XzError(
            "writing .2026-01-14_11_tweets.csv.xz.tmp: [Errno 28] No space left on device"
        )

    with monkeypatch.context() as m:
        m.setattr(comply_run, "rewrite_hour", full)  # the disk fills during the rewrite
        result = run_comply(config)
    assert result.errors and "No space left" in result.errors[0]
    assert load_state(config["work_dir"]) is not None, "the pass must stay open"
    again = run_comply(config)
    assert again.resumed and not again.errors and again.hours_rewritten == [H11.label]
    assert not {int(r[0]) for r in tweets_rows(out["tweets"])} & gone(*expected(standin, w))


def test_a_full_disk_while_the_log_is_written_is_a_clear_error(
    tmp_path, standin, monkeypatch, capsys
):
    """The soak's finding: the disk full when the day's log is written ended the command in a
    traceback. It says what failed (exit 1) and the pass stays open for the next one."""
    import errno

    from ingest import cli
    from ingest.comply import run as comply_run

    w = make_world(tmp_path)
    config = make_config(w, standin, tmp_path)
    build_and_copy(w, config)
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(json.loads(json.dumps(config))))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(comply_run, "atomic_write", full)
    assert cli.main(["comply", "--config", str(cfg_file)]) == 1
    err = capsys.readouterr().err
    assert "sampled-stream comply: error:" in err and "No space left" in err
    assert "Traceback" not in err
    assert load_state(config["work_dir"]) is not None, "the pass must stay open"


_REWRITE = """
import sys
from pathlib import Path
from ingest.complied import for_day
from ingest.comply.rewrite import rewrite_hour
from ingest.layout import Hour
vault, label = Path(sys.argv[1]), sys.argv[2]
rewrite_hour(vault, Hour.parse(label), for_day(vault, label[:10]), xz_preset=6, xz_threads=1)
"""


def _rewrite_process(vault: Path) -> tuple[subprocess.Popen, float]:
    """The rewrite in its own process, once it writes its temps: (process, when it did)."""
    proc = subprocess.Popen([sys.executable, "-c", _REWRITE, str(vault), H11.label])
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        if any(".tmp-" in p.name for p in (vault / DAY).iterdir()):
            break
        time.sleep(0.002)
    return proc, time.monotonic()


@pytest.mark.parametrize("share", [0.5, 0.95, 0.99])
def test_a_rewrite_killed_at_any_point_leaves_one_whole_generation(tmp_path, share):
    """kill -9 of a real process rewriting the hour: afterwards the hour is its old
    generation or its new one, whole, and the next rewrite (or the commit's settle) ends at
    the new one, with no temporary file left."""
    from ingest.vault import day as vault_day
    from ingest.vault.records import matches

    w = World(tmp_path)
    big = 3000
    for i in range(big):
        created = T + timedelta(seconds=i % 3000 // 60)
        w.add(on_time("s1", tweet_id(i), created, author=author_of(i), text=f"post {i} " * 20))
    _, out = w.build(H11)
    vault = out["ids"].parent.parent
    gone_ids = {tweet_id(i) for i in range(0, big, 7)}
    log_text = complied.format_log(complied.Entry(i, "tweets", "deleted", DAY) for i in gone_ids)
    complied.log_path(vault, DAY).write_text(log_text)
    before = read_record(record_path(vault, H11))
    # How long a rewrite writes and commits, on a copy; then killed at ``share`` of that.
    trial = tmp_path / "trial"
    shutil.copytree(vault, trial)
    proc, started = _rewrite_process(trial)
    proc.wait(60)
    writing = time.monotonic() - started

    proc, started = _rewrite_process(vault)
    time.sleep(max(0.0, started + share * writing - time.monotonic()))
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    # What the next run's start does: a commit the kill cut short is finished.
    assert not vault_day.settle_vault(vault)
    record = read_record(record_path(vault, H11))
    assert record.generation in (before.generation, before.generation + 1)
    for name, entry in record.files.items():  # one generation, whole
        assert matches(vault / DAY / name, entry), name
    subprocess.run([sys.executable, "-c", _REWRITE, str(vault), H11.label], check=True)
    vault_day.settle_vault(vault)
    record = read_record(record_path(vault, H11))
    assert record.generation == before.generation + 1
    for name, entry in record.files.items():
        assert matches(vault / DAY / name, entry), name
    ids = {int(r[0]) for r in tweets_rows(out["tweets"])}
    assert ids == {tweet_id(i) for i in range(big)} - gone_ids
    assert not [p.name for p in (vault / DAY).iterdir() if p.name.startswith(".")]


def test_an_imported_archive_held_in_raw_is_scrubbed_and_its_hours_marked(tmp_path, standin):
    """An imported server's raw_dir is kept for good and never walked by the plan: comply
    rewrites its minute files too and marks their hours changed, so the next run rebuilds
    them from the scrubbed files."""
    from ingest import changed_hours

    w = make_world(tmp_path)
    imported = tmp_path / "raw" / "old"
    config = make_config(w, standin, tmp_path)
    config["servers"].append({**config["servers"][0], "name": "old", "raw_dir": str(imported)})
    config["servers"][-1]["imported"] = True
    archive = write_archive(tmp_path / "archive.jsonl")
    assert not import_sources(config, "old", [archive]).failed
    build_and_copy(w, config)
    for hour in changed_hours.changed(config["work_dir"], "old") or set():
        changed_hours.unmark(config["work_dir"], "old", hour)  # as if built since
    removed = gone(*expected(standin, w))
    run_comply(config)
    lines = [json.loads(x) for p in imported.rglob("*.jsonl") for x in p.read_bytes().splitlines()]
    ids = {int(x["data"]["id"]) for x in lines}
    assert ids == {tweet_id(i) for i in range(N_TWEETS)} - removed
    assert H11 in (changed_hours.changed(config["work_dir"], "old") or set())
