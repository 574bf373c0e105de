"""Backfill jobs (issue 13): an hour's job parses its own read window in a folder of its own."""

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from ingest import layout
from ingest.devtools.generate import TweetFactory, stream_line
from ingest.hours import resources
from ingest.hours.backfill import parsed_window
from ingest.hours.hourly import build_hour
from ingest.hours.jobs import build_job
from tests.configs import loaded_config
from tests.workflow_runs import smtp_email

TZ = ZoneInfo("Europe/Berlin")


def minute_file(raw_dir: Path, minute: datetime, tweets: list[dict]) -> Path:
    p = layout.minute_path(raw_dir, minute, TZ)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"".join(stream_line(t, minute) for t in tweets))
    return p


def test_a_window_is_parsed_into_a_folder_of_its_own_and_built(tmp_path):
    factory = TweetFactory(seed=1)
    minute = datetime(2026, 1, 14, 10, 30, tzinfo=UTC)
    tweets = [factory.make(minute) for _ in range(5)]
    good = minute_file(tmp_path / "raw", minute, tweets)
    odd = tmp_path / "raw" / "not-a-minute.jsonl"
    odd.write_bytes(good.read_bytes())
    log = tmp_path / "parse.log"
    with parsed_window({"s1": [good, odd], "s2": []}, "Europe/Berlin", 6, 2, str(log)) as w:
        folder = Path(w.inputs["s1"][0][0]).parent.parent
        assert folder.is_dir() and tmp_path not in folder.parents  # not beside the raw files
        assert w.inputs["s2"] == [] and len(w.inputs["s1"]) == 1 and w.files == 1
        assert [r.path for r in w.skipped_files] == [str(odd)]  # costs only itself
        stats = build_hour(
            layout.Hour("2026-01-14", 11),
            TZ,
            w.inputs,
            layout.vault_paths(tmp_path / "vault", layout.Hour("2026-01-14", 11)),
            xz_preset=0,
            xz_threads=1,
            server_names=["s1", "s2"],
        )
    assert stats["total"] == 5 and list(stats["inputs"]["s1"]) == [good.name]
    assert not folder.exists()  # removed with the block
    assert "not-a-minute.jsonl" in log.read_text()


def test_resources_follow_the_measured_hours():
    # 1 %: 857 MiB raw in the window, ~530 MB and ~70 s measured; 10 %: 8,553 MiB, ~990 MB
    # (estimated) and ~700 s.
    one, ten = 857, 8553
    assert 530 < resources.build_mem_mb(one, raw=True) < 800
    assert 990 < resources.build_mem_mb(ten, raw=True) < 1400
    assert resources.build_runtime_min(one, raw=True) == resources.MIN_RUNTIME_MIN
    assert 700 / 60 * 2 < resources.build_runtime_min(ten, raw=True) < 700 / 60 * 4
    # The cron mode's intermediates (267 MiB at 1 %) stand for ~3x their size in raw JSON.
    assert resources.build_mem_mb(267, raw=False) > resources.build_mem_mb(267, raw=True)
    assert abs(resources.build_mem_mb(267, raw=False) - resources.build_mem_mb(one, raw=True)) < 5


def test_a_backfill_job_mails_the_raw_files_it_could_not_read(tmp_path, smtp):
    """A backfill job parses on its own (on a cluster node, maybe): a file it skips was only
    logged, so an operator reading mail never heard of the hour built without it."""
    sink, port = smtp
    factory = TweetFactory(seed=2)
    minute = datetime(2026, 1, 14, 10, 30, tzinfo=UTC)
    good = minute_file(tmp_path / "raw", minute, [factory.make(minute) for _ in range(3)])
    odd = tmp_path / "raw" / "not-a-minute.jsonl"
    odd.write_bytes(good.read_bytes())
    config = loaded_config(tmp_path, email=smtp_email(port), xz_preset=0)
    hour = layout.Hour("2026-01-14", 11)
    receipt = tmp_path / "work" / "built" / "2026-01-14" / "2026-01-14_11.run1.json"
    now = datetime(2026, 1, 20, tzinfo=UTC)
    for _ in range(2):  # built twice: mailed once
        stats = build_job(
            config,
            hour,
            {"s1": [str(good), str(odd)]},
            {},
            1,
            str(receipt),
            str(tmp_path / "build.log"),
            now,
        )
    assert stats["total"] == 3 and receipt.exists()
    (mail,) = sink.wait_for(1)
    assert "1 raw file(s) not built into 2026-01-14_11" in mail["Subject"]
    assert str(odd) in mail.get_content() and len(sink.messages) == 1


def test_a_jobs_threads_follow_its_share_of_the_run():
    # One hour alone: every core; many hours: one each; a big hour beside two small ones
    # (a day's last hour and the next one's first minutes): what the small ones leave.
    assert resources.job_threads(2, 1.0) == 2
    assert resources.job_threads(8, 1 / 24) == 1
    assert resources.job_threads(2, 0.9) == 2 and resources.job_threads(2, 0.05) == 1
    assert resources.job_threads(8, 0.5) == 4
    assert resources.job_threads(2, 1.0, fixed=1) == 1  # backfill_threads set: as set


def test_a_cluster_jobs_threads_are_the_slot_it_asked_for():
    # Under a cluster executor the main process (no --cores: Snakemake leaves them unset, read
    # as 1) sizes the job's slot from threads; the job then runs with --cores all, the node's
    # CPUs, and evaluates threads again. Both must agree, or the job's srun asks for more
    # CPUs than its slot holds and fails (make slurm-test: "More processors requested than
    # permitted"). Neither side knows the other's cores, so a cluster job takes
    # backfill_threads, else 1.
    asked = resources.job_threads(1, 1 / 6, local=False)
    used = resources.job_threads(2, 1.0, local=False)
    assert asked == used == 1
    assert resources.job_threads(1, 1 / 6, fixed=3, local=False) == 3
    assert resources.job_threads(64, 1.0, fixed=3, local=False) == 3
    assert resources.job_threads(2, 1.0, local=True) == 2  # on one machine: the run's cores


def test_a_backfill_job_keeps_its_late_copies_from_the_files_around_its_hour(tmp_path, monkeypatch):
    """The job of 11 h reads the 12:02 file for its late copies only: the other lines there
    (12 h's) are passed over unparsed, and the late copy is in the built hour."""
    from ingest.hours import backfill

    factory = TweetFactory(seed=3)
    in_hour = datetime(2026, 1, 14, 10, 30, tzinfo=UTC)  # 11:30 in Berlin
    after = datetime(2026, 1, 14, 11, 2, tzinfo=UTC)  # 12:02
    own = minute_file(tmp_path / "raw", in_hour, [factory.make(in_hour) for _ in range(4)])
    late = factory.make(datetime(2026, 1, 14, 10, 59, 59, tzinfo=UTC))
    edge = minute_file(tmp_path / "raw", after, [factory.make(after) for _ in range(5)] + [late])
    metas = []
    parse_many = backfill.parse_many
    monkeypatch.setattr(
        backfill,
        "parse_many",
        lambda *a, **k: metas.extend((r := parse_many(*a, **k)).metas) or r,
    )
    config = loaded_config(tmp_path, xz_preset=0)
    hour = layout.Hour("2026-01-14", 11)
    receipt = tmp_path / "work" / "built" / "2026-01-14" / "2026-01-14_11.run1.json"
    stats = build_job(
        config,
        hour,
        {"s1": [str(own), str(edge)]},
        {},
        2,
        str(receipt),
        str(tmp_path / "build.log"),
        datetime(2026, 1, 20, tzinfo=UTC),
    )
    assert stats["total"] == 5  # the hour's four and its late copy
    by_file = {Path(m["file"]).name: m for m in metas}
    assert by_file[edge.name]["passed_over"] == 5 and by_file[edge.name]["tweets"] == 1
    assert "passed_over" not in by_file[own.name]
