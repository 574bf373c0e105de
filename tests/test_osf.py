"""ingest.publish.osf against a loopback stand-in of the OSF API (tests/osf_standin.py)."""

from __future__ import annotations

import hashlib
import logging
import lzma
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from osfclient import OSF

from ingest.clock import FixedClock
from ingest.publish.osf import (
    OSFAPISession,
    OSFAuthError,
    OSFError,
    OSFTransientError,
    OSFVerifyError,
    RetryPolicy,
    check_publishable,
    remote_path_for,
    upload,
)
from ingest.secrets import SecretError
from tests.configs import loaded_config
from tests.osf_standin import OSFStandIn

pytestmark = pytest.mark.integration  # the OSF stand-in over HTTP

LOG = logging.getLogger("test.osf")
CLOCK = FixedClock(datetime(2026, 1, 14, 11, 12, 0, tzinfo=UTC))
DAY = "2026/01/14"


class Sleeps(list):
    """A sleep that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def fast_policy(sleeps: Sleeps | None = None, **kw) -> RetryPolicy:
    return RetryPolicy(
        attempts=kw.pop("attempts", 4),
        base_delay=0.01,
        max_delay=0.1,
        min_interval=0.0,
        read_timeout=kw.pop("read_timeout", 5.0),
        connect_timeout=2.0,
        sleep=sleeps if sleeps is not None else Sleeps(),
    )


def ids_file(directory: Path, hour: str = "10", ids=(1880000000000000001, 1880000000000000002)):
    path = directory / f"2026-01-14_{hour}_IDs.txt.xz"
    path.write_bytes(lzma.compress("".join(f"{i}\n" for i in ids).encode()))
    return path


def report_file(directory: Path, rows: int) -> Path:
    path = directory / "2026-01-14_report.txt"
    lines = ["hour\tserv 1\tserv 2\ttotal\tdiff\tdiff %"]
    lines += [f"{h}\t100\t99\t100\t1\t1.00%" for h in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def cfg(osf_standin: OSFStandIn, tmp_path: Path) -> dict:
    token_file = tmp_path / "osf_token"
    token_file.write_text(osf_standin.token + "\n")
    token_file.chmod(0o600)
    osf = {
        "enabled": True,
        "project": osf_standin.project,
        "storage": "osfstorage",
        "token_file": str(token_file),
        "api_url": osf_standin.api_url,
    }
    return loaded_config(osf=osf)["osf"]


def osf_config(st: OSFStandIn, token: Path) -> dict:
    """The loaded ``osf:`` section for a stand-in (storage and the rest from the schema)."""
    osf = {"enabled": True, "project": st.project, "token_file": str(token), "api_url": st.api_url}
    return loaded_config(osf=osf)["osf"]


def creates(st: OSFStandIn) -> list[tuple[str, str]]:
    """(kind, name) of every create PUT the stand-in saw."""
    out = []
    for method, _path, query, _outcome in st.requests:
        if method == "PUT" and "name=" in query:
            q = dict(kv.split("=", 1) for kv in query.split("&"))
            out.append((q.get("kind", "file"), q["name"]))
    return out


# --------------------------------------------------------------------------------- happy path
def test_new_file_creates_day_folders(osf_standin, cfg, tmp_path):
    local = ids_file(tmp_path)
    receipt = upload(local, f"{DAY}/{local.name}", cfg, LOG, CLOCK, fast_policy())

    assert osf_standin.read(f"{DAY}/{local.name}") == local.read_bytes()
    assert [e.kind for e in map(osf_standin.entry, ["2026", "2026/01", DAY])] == ["folder"] * 3
    assert creates(osf_standin) == [
        ("folder", "2026"),
        ("folder", "01"),
        ("folder", "14"),
        ("file", local.name),
    ]
    data = local.read_bytes()
    stored = osf_standin.entry(f"{DAY}/{local.name}")
    assert receipt == {
        "remote_path": f"{DAY}/{local.name}",
        "project": osf_standin.project,
        "storage": "osfstorage",
        "local_path": str(local),
        "size": len(data),
        "md5": hashlib.md5(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "osf_file_id": stored.id,
        "osf_url": f"{osf_standin.base_url}/{osf_standin.project}/files/osfstorage/{stored.id}",
        "download_url": (
            f"{osf_standin.wb_url}resources/{osf_standin.project}/providers/osfstorage/{stored.id}"
        ),
        "action": "created",
        "version": 1,
        "requests": osf_standin.total_requests,
        "uploaded_at": "2026-01-14T11:12:00+00:00",
    }
    # node, storages, root listing, 3 folder creations, file PUT, metadata GET
    assert osf_standin.total_requests == 8


def test_second_report_upload_updates_in_place(osf_standin, cfg, tmp_path):
    local = report_file(tmp_path, rows=3)
    remote = f"{DAY}/{local.name}"
    first = upload(local, remote, cfg, LOG, CLOCK, fast_policy())
    report_file(tmp_path, rows=4)  # the day grew
    osf_standin.reset_counts()
    second = upload(local, remote, cfg, LOG, CLOCK, fast_policy())

    assert (first["action"], second["action"]) == ("created", "updated")
    assert second["osf_file_id"] == first["osf_file_id"]
    assert (second["version"], second["size"]) == (2, local.stat().st_size)
    assert list(osf_standin.entry(DAY).children) == [local.name]  # one file, not two
    assert osf_standin.read(remote) == local.read_bytes()
    assert osf_standin.file_count() == 1
    # the update went to the file's own upload link, with no create attempt
    assert creates(osf_standin) == []
    file_url = (
        f"PUT /v1/resources/{osf_standin.project}/providers/osfstorage/{first['osf_file_id']}"
    )
    assert osf_standin.counts[file_url] == 1


def test_uploads_to_existing_day_folder(osf_standin, cfg, tmp_path):
    osf_standin.add_file(f"{DAY}/2026-01-14_09_IDs.txt.xz", b"x")
    local = ids_file(tmp_path, hour="10")
    receipt = upload(local, f"{DAY}/{local.name}", cfg, LOG, CLOCK, fast_policy())
    assert receipt["action"] == "created"
    assert sorted(osf_standin.entry(DAY).children) == [
        "2026-01-14_09_IDs.txt.xz",
        "2026-01-14_10_IDs.txt.xz",
    ]
    assert creates(osf_standin) == [("file", local.name)]


def test_hash_mismatch_fails_and_next_run_repairs(osf_standin, cfg, tmp_path):
    local = ids_file(tmp_path)
    remote = f"{DAY}/{local.name}"
    osf_standin.corrupt_next_store()
    with pytest.raises(OSFVerifyError, match=r"failed verification: .*md5 .* != local"):
        upload(local, remote, cfg, LOG, CLOCK, fast_policy())
    assert osf_standin.read(remote) != local.read_bytes()  # the broken copy is there...

    receipt = upload(local, remote, cfg, LOG, CLOCK, fast_policy())  # ...until the next run
    assert receipt["action"] == "updated"
    assert osf_standin.read(remote) == local.read_bytes()


def test_folder_made_by_someone_else_meanwhile(osf_standin, cfg, tmp_path):
    """Between our listing and our create, a parallel upload made the folder: 409, then use it."""
    local = ids_file(tmp_path)
    osf_standin.inject(
        lambda st: st.add_folder("2026/01"), method="PUT", query=r"kind=folder&name=2026"
    )
    receipt = upload(local, f"{DAY}/{local.name}", cfg, LOG, CLOCK, fast_policy())
    assert receipt["action"] == "created"
    assert list(osf_standin.entry("").children) == ["2026"]
    assert list(osf_standin.entry("2026").children) == ["01"]
    assert creates(osf_standin) == [("folder", "2026"), ("folder", "14"), ("file", local.name)]
    assert osf_standin.read(f"{DAY}/{local.name}") == local.read_bytes()


def test_file_made_by_someone_else_in_new_folder(osf_standin, cfg, tmp_path):
    """Our new day folder got the file from a parallel upload first: 409, then update it."""
    local = report_file(tmp_path, rows=2)
    osf_standin.inject(
        lambda st: st.add_file(f"{DAY}/{local.name}", b"hour\tother\n"),
        method="PUT",
        query=r"kind=file&name=",
    )
    receipt = upload(local, f"{DAY}/{local.name}", cfg, LOG, CLOCK, fast_policy())
    assert receipt["action"] == "updated"
    assert osf_standin.read(f"{DAY}/{local.name}") == local.read_bytes()
    assert list(osf_standin.entry(DAY).children) == [local.name]


def test_parallel_uploads_of_one_day(osf_standin, cfg, tmp_path):
    """The IDs and the report of a new day uploaded at once (as parallel jobs may)."""
    ids = ids_file(tmp_path)
    report = report_file(tmp_path, rows=1)
    with ThreadPoolExecutor(2) as pool:
        jobs = [
            pool.submit(upload, p, f"{DAY}/{p.name}", cfg, LOG, CLOCK, fast_policy())
            for p in (ids, report)
        ]
        receipts = [j.result() for j in jobs]
    assert {r["remote_path"] for r in receipts} == {f"{DAY}/{ids.name}", f"{DAY}/{report.name}"}
    assert list(osf_standin.entry("").children) == ["2026"]
    assert sorted(osf_standin.entry(DAY).children) == sorted([ids.name, report.name])


# ------------------------------------------------------------------------ cost per upload
def _populate(st: OSFStandIn, n: int) -> None:
    """n IDs files in other days: other years, other months, other days of January 2026."""
    days = [f"2025/{m:02d}/{d:02d}" for m in (11, 12) for d in range(1, 29)]
    days += [f"2026/01/{d:02d}" for d in range(1, 14)]
    for i in range(n):
        day = days[i // 24 % len(days)]
        st.add_file(f"{day}/{day.replace('/', '-')}_{i % 24:02d}_IDs.txt.xz", b"%d\n" % i)


def _measure(tmp_path: Path, pre_existing: int) -> tuple[int, int, OSFStandIn]:
    st = OSFStandIn().start()
    try:
        _populate(st, pre_existing)
        token = tmp_path / f"token{pre_existing}"
        token.write_text(st.token)
        token.chmod(0o600)
        cfg = osf_config(st, token)
        first = ids_file(tmp_path, hour="10")
        upload(first, f"{DAY}/{first.name}", cfg, LOG, CLOCK, fast_policy())
        st.reset_counts()
        second = ids_file(tmp_path, hour="11")
        receipt = upload(second, f"{DAY}/{second.name}", cfg, LOG, CLOCK, fast_policy())
        assert receipt["requests"] == st.total_requests
        return st.file_count(), st.total_requests, st
    finally:
        st.stop()


def test_request_count_does_not_grow_with_project_files(tmp_path):
    files_empty, requests_empty, _ = _measure(tmp_path, 0)
    files_full, requests_full, full = _measure(tmp_path, 500)
    assert (files_empty, files_full) == (2, 502)
    assert requests_empty == requests_full == 8
    # node, storages, 4 listings (root, 2026, 01, 14), the PUT, the metadata GET
    listed = sorted(k for k in full.counts if k.startswith("GET /v2/nodes/"))
    assert len(listed) == 6


def test_osfclient_force_path_does_grow(tmp_path):
    """The seed's way (create_file force=True) against the same stand-in: cost grows with files.

    Also checks the stand-in speaks osfclient's dialect: osfclient's own guid lookup, project,
    storage, folder walk and recursive listing run against it unchanged.
    """
    counts = {}
    for n in (0, 500):
        st = OSFStandIn().start()
        try:
            local = ids_file(tmp_path)
            # added first, so osfclient's walk (last listed entry first) reaches it last
            st.add_file(f"{DAY}/{local.name}", b"old")
            _populate(st, n)
            osf = OSF()
            osf.session = OSFAPISession(st.api_url, st.token, fast_policy(), LOG)
            storage = osf.project(st.project).storage("osfstorage")
            st.reset_counts()
            with local.open("rb") as fp:
                storage.create_file(f"{DAY}/{local.name}", fp, force=True)
            counts[n] = st.total_requests
            assert st.read(f"{DAY}/{local.name}") == local.read_bytes()
            listed = {f.path: f.hashes["md5"] for f in storage.files}
            assert len(listed) == n + 1
            assert listed[f"/{DAY}/{local.name}"] == hashlib.md5(local.read_bytes()).hexdigest()
        finally:
            st.stop()
    assert counts[500] > counts[0] + 50  # one listing per folder and per page of 10


# ---------------------------------------------------------------------------- failures
def test_503_twice_then_success(osf_standin, cfg, tmp_path, caplog):
    local = ids_file(tmp_path)
    osf_standin.inject(503, times=2, method="PUT")
    sleeps = Sleeps()
    with caplog.at_level(logging.WARNING, logger="test.osf"):
        receipt = upload(local, f"{DAY}/{local.name}", cfg, LOG, CLOCK, fast_policy(sleeps))
    assert receipt["action"] == "created"
    assert osf_standin.read(f"{DAY}/{local.name}") == local.read_bytes()
    assert sleeps == [0.01, 0.02]  # exponential backoff
    assert [o for *_, o in osf_standin.requests if o == 503] == [503, 503]
    assert receipt["requests"] == 8 + 2
    assert "HTTP 503; retry 1/3" in caplog.text


def test_connection_drop_is_retried(osf_standin, cfg, tmp_path):
    local = ids_file(tmp_path)
    osf_standin.inject("drop", times=1, method="GET", path=r"^/v2/nodes/[a-z0-9]+/$")
    osf_standin.inject("drop", times=1, method="PUT", path=r"/providers/osfstorage/\w+/$")
    sleeps = Sleeps()
    receipt = upload(local, f"{DAY}/{local.name}", cfg, LOG, CLOCK, fast_policy(sleeps))
    assert osf_standin.read(f"{DAY}/{local.name}") == local.read_bytes()
    assert [o for *_, o in osf_standin.requests].count("drop") == 2
    assert len(sleeps) == 2 and receipt["requests"] == 10


def test_lost_answer_to_create_turns_into_update(osf_standin, cfg, tmp_path):
    """OSF stored the file but the answer was lost: the retry gets 409 and updates instead."""
    local = ids_file(tmp_path)
    osf_standin.inject("drop_after", method="PUT", path=r"/providers/osfstorage/\w+/$")
    # the day folder exists, so the create is the only PUT to a folder
    osf_standin.add_file(f"{DAY}/2026-01-14_09_IDs.txt.xz", b"1\n")
    receipt = upload(local, f"{DAY}/{local.name}", cfg, LOG, CLOCK, fast_policy())
    assert receipt["action"] == "updated"
    assert sorted(osf_standin.entry(DAY).children) == [
        "2026-01-14_09_IDs.txt.xz",
        local.name,
    ]
    assert osf_standin.read(f"{DAY}/{local.name}") == local.read_bytes()
    outcomes = [o for m, _p, _q, o in osf_standin.requests if m == "PUT"]
    assert outcomes == ["drop_after(201)", 409, 200]


def test_timeout_is_retried(tmp_path):
    st = OSFStandIn(stall_seconds=1.0).start()
    try:
        token = tmp_path / "token"
        token.write_text(st.token)
        token.chmod(0o600)
        cfg = osf_config(st, token)
        st.inject("stall", method="GET", path=r"^/v2/files/")
        local = ids_file(tmp_path)
        sleeps = Sleeps()
        receipt = upload(
            local, f"{DAY}/{local.name}", cfg, LOG, CLOCK, fast_policy(sleeps, read_timeout=0.3)
        )
        assert receipt["action"] == "created" and len(sleeps) == 1
        assert [o for *_, o in st.requests].count("stall") == 1
    finally:
        st.stop()


def test_retries_give_up_with_transient_error(osf_standin, cfg, tmp_path):
    local = ids_file(tmp_path)
    osf_standin.inject(502, times=100)
    sleeps = Sleeps()
    with pytest.raises(OSFTransientError, match=r"failed 4 times; last: HTTP 502"):
        upload(local, f"{DAY}/{local.name}", cfg, LOG, CLOCK, fast_policy(sleeps))
    assert sleeps == [0.01, 0.02, 0.04]
    assert osf_standin.total_requests == 4


def test_429_is_retried(osf_standin, cfg, tmp_path):
    local = ids_file(tmp_path)
    osf_standin.inject(429, times=1)
    receipt = upload(local, f"{DAY}/{local.name}", cfg, LOG, CLOCK, fast_policy())
    assert receipt["requests"] == 9


def test_401_fails_fast_without_leaking_token(osf_standin, cfg, tmp_path, caplog):
    Path(cfg["token_file"]).write_text("wrong-" + osf_standin.token)
    local = ids_file(tmp_path)
    sleeps = Sleeps()
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(OSFAuthError, match="OSF token rejected") as err:
            upload(local, f"{DAY}/{local.name}", cfg, LOG, CLOCK, fast_policy(sleeps))
    assert osf_standin.total_requests == 1 and sleeps == []
    assert osf_standin.token not in str(err.value)
    assert osf_standin.token not in caplog.text
    assert "osf.token_file" in str(err.value)


def test_injected_401_mid_walk_fails_fast(osf_standin, cfg, tmp_path):
    local = ids_file(tmp_path)
    osf_standin.inject(401, method="PUT")
    with pytest.raises(OSFAuthError, match="OSF token rejected"):
        upload(local, f"{DAY}/{local.name}", cfg, LOG, CLOCK, fast_policy())
    assert [o for *_, o in osf_standin.requests][-1] == 401
    assert osf_standin.counts.total() == 4  # node, storages, root listing, the refused PUT


def test_other_4xx_fails_fast_with_clear_message(osf_standin, cfg, tmp_path):
    local = ids_file(tmp_path)
    sleeps = Sleeps()
    with pytest.raises(OSFError, match=r"project 'zzzzz' not found .*osf\.project"):
        upload(
            local,
            f"{DAY}/{local.name}",
            {**cfg, "project": "zzzzz"},
            LOG,
            CLOCK,
            fast_policy(sleeps),
        )
    assert osf_standin.total_requests == 1 and sleeps == []

    osf_standin.reset_counts()
    osf_standin.inject(403, method="PUT")
    with pytest.raises(OSFAuthError, match=r"HTTP 403 .*write access"):
        upload(local, f"{DAY}/{local.name}", cfg, LOG, CLOCK, fast_policy(sleeps))
    assert sleeps == []

    with pytest.raises(OSFError, match="has no storage 'github'"):
        upload(
            local, f"{DAY}/{local.name}", {**cfg, "storage": "github"}, LOG, CLOCK, fast_policy()
        )


# ------------------------------------------------------------------------------ guards
@pytest.mark.parametrize(
    "name",
    [
        "2026-01-14_10_tweets.csv.xz",
        "2026-01-14_10_users.csv.xz",
        "2026-01-14_10_stats.json",
        "notes.txt",
    ],
)
def test_guard_rejects_everything_but_ids_and_reports(osf_standin, cfg, tmp_path, name):
    local = tmp_path / name
    local.write_bytes(lzma.compress(b"id,text\n1,hello\n"))
    with pytest.raises(ValueError, match="X's terms allow sharing tweet IDs only"):
        upload(local, f"{DAY}/{name}", cfg, LOG, CLOCK, fast_policy())
    assert osf_standin.total_requests == 0


def test_guard_checks_content_and_remote_name(osf_standin, cfg, tmp_path):
    disguised = tmp_path / "2026-01-14_10_IDs.txt.xz"
    disguised.write_bytes(lzma.compress(b"id,text\n1,hello\n"))
    with pytest.raises(ValueError, match="line 1 is not a tweet ID"):
        upload(disguised, f"{DAY}/{disguised.name}", cfg, LOG, CLOCK, fast_policy())
    plain = tmp_path / "2026-01-15_10_IDs.txt.xz"
    plain.write_bytes(b"1\n2\n")
    with pytest.raises(ValueError, match="not a valid xz file"):
        check_publishable(plain)
    ids = ids_file(tmp_path)
    with pytest.raises(ValueError, match="only tweet IDs files"):
        upload(ids, f"{DAY}/2026-01-14_10_tweets.csv.xz", cfg, LOG, CLOCK, fast_policy())
    fake_report = tmp_path / "x_report.txt"
    fake_report.write_text("id,text\n1,hello\n")
    with pytest.raises(ValueError, match="day report's header"):
        check_publishable(fake_report)
    assert check_publishable(ids) == "ids"
    assert check_publishable(report_file(tmp_path, 1)) == "report"
    assert osf_standin.total_requests == 0


def test_remote_path_must_be_a_day_path(osf_standin, cfg, tmp_path):
    local = ids_file(tmp_path)
    for bad in (
        "2026/01/14",
        f"2026/1/14/{local.name}",
        f"/2026/01/14/{local.name}",
        f"2026/01/14/x/{local.name}",
    ):
        with pytest.raises(ValueError, match="is not YYYY/MM/DD/<name>"):
            upload(local, bad, cfg, LOG, CLOCK, fast_policy())
    assert remote_path_for(local) == f"{DAY}/{local.name}"
    assert remote_path_for("/v/2026-01-14/2026-01-14_report.txt") == f"{DAY}/2026-01-14_report.txt"
    assert osf_standin.total_requests == 0


def test_token_file_readable_by_others_is_refused(osf_standin, cfg, tmp_path):
    os.chmod(cfg["token_file"], 0o644)
    local = ids_file(tmp_path)
    with pytest.raises(SecretError, match="chmod 600") as err:
        upload(local, f"{DAY}/{local.name}", cfg, LOG, CLOCK, fast_policy())
    assert osf_standin.token not in str(err.value)
    assert osf_standin.total_requests == 0


def test_token_from_environment(osf_standin, cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("OSF_TOKEN", osf_standin.token)
    local = ids_file(tmp_path)
    cfg = {k: v for k, v in cfg.items() if k != "token_file"}
    receipt = upload(local, f"{DAY}/{local.name}", cfg, LOG, CLOCK, fast_policy())
    assert receipt["action"] == "created"
    monkeypatch.delenv("OSF_TOKEN")
    with pytest.raises(SecretError, match="OSF_TOKEN"):
        upload(local, f"{DAY}/{local.name}", cfg, LOG, CLOCK, fast_policy())


def test_default_policy_paces_like_osfclient(osf_standin, cfg, tmp_path):
    """Production pacing (one request a second) uses the policy's clock and sleep."""
    now = [100.0]
    sleeps = Sleeps()

    def sleep(s: float) -> None:
        sleeps.append(round(s, 6))
        now[0] += s

    policy = RetryPolicy(sleep=sleep, monotonic=lambda: now[0])
    local = ids_file(tmp_path)
    upload(local, f"{DAY}/{local.name}", cfg, LOG, CLOCK, policy)
    assert sleeps == [1.0] * (osf_standin.total_requests - 1)
