"""``sampled-stream import``: twarc2 and seed archives into the raw layout (issue 13).

The inputs are the real payloads in ../shared/fixtures/twitter-v2: the sample-stream lines as
twarc2 ``sample`` writes them (``__twarc.retrieved_at`` added, as twarc2 does), the response
pages, the flattened tweets. What lands is checked with the build's own parser.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from ingest.config import validate_config
from ingest.hours.parse import datetime_key, parse_line
from ingest.imports import importer
from ingest.imports.importer import ImportSetupError, Progress, import_sources
from ingest.imports.lines import place_line
from ingest.layout import minute_path, parse_minute_name
from tests.configs import minimal_config

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures" / "twitter-v2"
TZ = ZoneInfo("Europe/Berlin")
PAGES = ("2sets.jsonl", "brexit.jsonl", "kpop.jsonl", "noflat.jsonl", "withheld.jsonl")


def fixture(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"real payload fixture {path} not present (needs ../shared beside the repo)")
    return path


def config(root: Path, imported: bool = True) -> dict:
    c = minimal_config(root, "old")
    c["servers"][0]["imported"] = imported
    return validate_config(c, "test config")


def config_path(root: Path, imported: bool = True) -> Path:
    c = minimal_config(root, "old")
    c["servers"][0]["imported"] = imported
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(c))
    return path


def twarc_sample(
    path: Path, start: datetime | None = None, copies: int = 1, every: float = 0.02
) -> list[bytes]:
    """The fixture's stream lines as ``twarc2 sample`` writes them: retrieved a few seconds
    after creation (or one line each ``every`` seconds from ``start``), ``copies`` times over."""
    objs = [json.loads(line) for line in fixture("sample-stream-lines.jsonl").open()]
    out = []
    n = 0
    for _ in range(copies):
        for o in objs:
            if start is None:
                at = datetime.fromisoformat(o["data"]["created_at"]) + timedelta(seconds=3.25)
            else:
                at = start + timedelta(seconds=every * n)
            o["__twarc"] = {
                "url": "https://api.twitter.com/2/tweets/sample/stream",
                "version": "2.14.0",
                "retrieved_at": at.isoformat(),
            }
            out.append(json.dumps(o).encode() + b"\n")
            n += 1
    path.write_bytes(b"".join(out))
    return out


def raw_lines(raw_dir: Path) -> dict[str, list[bytes]]:
    """Every minute file under raw_dir: relative path -> its lines (with newlines)."""
    return {
        str(p.relative_to(raw_dir)): p.read_bytes().splitlines(keepends=True)
        for p in sorted(raw_dir.rglob("*.jsonl"))
    }


def parsed(raw_dir: Path) -> tuple[Counter, list]:
    """The build's parser over every line that landed: (line kinds, tweets)."""
    kinds: Counter = Counter()
    tweets = []
    for p in sorted(raw_dir.rglob("*.jsonl")):
        minute = parse_minute_name(p.name, TZ)
        assert minute is not None, p
        for raw in p.read_bytes().splitlines():
            line = parse_line(raw, default_retrieved=datetime_key(minute))
            kinds[line.kind] += 1
            tweets += [(t, minute) for t in line.tweets]
    return kinds, tweets


# --- what lands where -------------------------------------------------------------------


def test_twarc2_sample_output_lands_by_retrieved_at_and_parses(tmp_path: Path) -> None:
    src = tmp_path / "sample.jsonl"
    lines = twarc_sample(src)
    c = config(tmp_path)
    report = import_sources(c, "old", [src])
    [result] = report.results
    assert result["status"] == "imported" and result["lines"] == {"stream": 522}
    assert result["by_created_at"] == 0
    raw_dir = tmp_path / "raw"
    landed = raw_lines(raw_dir)
    # Every line once, byte for byte, in the minute file of its retrieved_at.
    assert sorted(line for ls in landed.values() for line in ls) == sorted(lines)
    for line in lines:
        at = datetime.fromisoformat(json.loads(line)["__twarc"]["retrieved_at"])
        assert line in landed[str(minute_path(Path(), at, TZ))]
    assert result["minutes"] == {rel: len(ls) for rel, ls in landed.items()}
    # The build reads them all as tweets, arrived within the minute of their file.
    kinds, tweets = parsed(raw_dir)
    assert kinds == {"tweets": 522}
    for t, minute in tweets:
        assert minute <= t.retrieved_at < minute + timedelta(minutes=1)
    ids = {json.loads(line)["data"]["id"] for line in lines}
    assert {str(t.id) for t, _ in tweets} == ids


def test_response_pages_and_flattened_tweets_land_whole_and_parse(tmp_path: Path) -> None:
    """Pages and flattened tweets retrieved within their tweets' hours land whole (those
    fetched later go by created_at: test_import_promises)."""
    srcs = [fixture(name) for name in (*PAGES, "flat.jsonl") if name != "withheld.jsonl"]
    report = import_sources(config(tmp_path), "old", srcs)
    by_name = {Path(r["source"]).name: r for r in report.results}
    assert all(r["status"] == "imported" for r in report.results)
    assert all(r["by_created_at"] == 0 for r in report.results)
    assert by_name["flat.jsonl"]["lines"] == {"flat": 100}
    # Each page lands whole, in the minute of its own retrieved_at.
    landed = raw_lines(tmp_path / "raw")
    all_landed = [line for ls in landed.values() for line in ls]
    expected_tweets = 0
    for src in srcs:
        for line in src.read_bytes().splitlines(keepends=True):
            obj = json.loads(line)
            at = datetime.fromisoformat(obj["__twarc"]["retrieved_at"])
            assert line in landed[str(minute_path(Path(), at, TZ))]
            if line in all_landed:
                all_landed.remove(line)  # the same page in two files lands once (line union)
                expected_tweets += len(obj["data"]) if isinstance(obj.get("data"), list) else 1
    kinds, tweets = parsed(tmp_path / "raw")
    assert kinds["tweets"] == sum(len(ls) for ls in landed.values())
    assert len(tweets) == expected_tweets > 300


def test_lines_without_retrieved_at_go_by_created_at_and_are_counted(tmp_path: Path) -> None:
    src = fixture("sample-stream-lines.jsonl")  # stream lines without __twarc
    [result] = import_sources(config(tmp_path), "old", [src]).results
    assert result["lines"] == {"stream": 522} and result["by_created_at"] == 522
    landed = raw_lines(tmp_path / "raw")
    for line in src.read_bytes().splitlines(keepends=True):
        at = datetime.fromisoformat(json.loads(line)["data"]["created_at"])
        assert line in landed[str(minute_path(Path(), at, TZ))]
    # A page without retrieved_at: each of its tweets goes by its own created_at.
    page = json.loads(fixture("withheld.jsonl").read_bytes().splitlines()[3])
    del page["__twarc"]
    placed = place_line(json.dumps(page).encode(), TZ, 5)
    assert placed.kind == "page" and placed.by_created == len(page["data"]) == 100
    assert [minute for minute, _ in placed.pieces] == [
        datetime.fromisoformat(t["created_at"]).replace(second=0) for t in page["data"]
    ]


def test_a_line_of_every_other_kind_is_counted_and_skipped(tmp_path: Path) -> None:
    good = json.dumps(
        {"data": {"id": "1", "created_at": "2021-04-01T15:52:31.000Z", "text": "hi"}}
    ).encode()
    v1 = json.dumps(
        {"created_at": "Wed Oct 10 20:19:24 +0000 2018", "id": 1, "id_str": "1", "user": {}}
    ).encode()
    lines = [
        good,  # 1
        b"",  # 2 blank (keep-alive)
        b"   \r",  # 3 blank
        b'{"errors": [{"title": "operational-disconnect"}]}',  # 4 error
        v1,  # 5 v1 tweet
        b"not json at all",  # 6 invalid_json
        b'{"data": {"id": "2", "text": "\xff\xfe"}}',  # 7 invalid_utf8
        b"[1, 2, 3]",  # 8 not_object
        b'{"meta": {"result_count": 0}}',  # 9 no_tweet
        b'{"data": []}',  # 10 no_tweet: a page without tweets
        b'{"data": {"id": "3", "text": "no time at all"}}',  # 11 no_time
        b'{"data": {"id": "4", "created_at": "2021-04-01T15:5',  # 12 truncated (cut, last)
    ]
    src = tmp_path / "mixed.jsonl"
    src.write_bytes(b"\n".join(lines))
    [result] = import_sources(config(tmp_path), "old", [src]).results
    assert result["lines"] == {
        "stream": 1,
        "blank": 2,
        "error": 1,
        "v1_tweet": 1,
        "invalid_json": 1,
        "invalid_utf8": 1,
        "not_object": 1,
        "no_tweet": 2,
        "no_time": 1,
        "truncated": 1,
    }
    assert result["lines_total"] == len(lines)
    assert result["skipped_examples"]["no_tweet"] == [9, 10]
    assert raw_lines(tmp_path / "raw") == {
        "2021-04-01/17/2021-04-01T1752+0200.jsonl": [good + b"\n"]
    }
    assert set(result["lines"]) <= set(importer.WRITTEN) | set(importer.SKIPPED)


def test_a_line_longer_than_max_line_is_skipped_in_pieces(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(importer, "MAX_LINE", 1000)
    good = b'{"data": {"id": "1", "created_at": "2021-04-01T15:52:31.000Z"}}\n'
    src = tmp_path / "long.jsonl"
    src.write_bytes(good + b'{"data": "' + b"x" * 5000 + b'"}\n' + good)
    [result] = import_sources(config(tmp_path), "old", [src]).results
    assert result["lines"] == {"stream": 2, "too_long": 1}


# --- compression ----------------------------------------------------------------------------


def zstd_compress(data: bytes) -> bytes:
    from backports import zstd

    return zstd.compress(data)


COMPRESSORS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": zstd_compress,
}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_each_compression_is_told_by_content_and_lands_as_plain_does(
    tmp_path: Path, kind: str
) -> None:
    plain = tmp_path / "sample.jsonl"
    lines = twarc_sample(plain)
    import_sources(config(tmp_path / "a"), "old", [plain])
    # Two members/frames/streams, as a collection appended to in two sessions writes them;
    # named .jsonl, so only the content says it is compressed.
    half = len(lines) // 2
    packed = tmp_path / f"sample-{kind}.jsonl"
    compress = COMPRESSORS[kind]
    packed.write_bytes(compress(b"".join(lines[:half])) + compress(b"".join(lines[half:])))
    [result] = import_sources(config(tmp_path / "b"), "old", [packed]).results
    assert result["compression"] == kind and result["lines"] == {"stream": 522}
    assert result["size"] == packed.stat().st_size
    assert raw_lines(tmp_path / "b" / "raw") == raw_lines(tmp_path / "a" / "raw")


def test_a_cut_compressed_input_imports_what_verified_and_says_so(tmp_path: Path) -> None:
    """Two gzip members, the file cut inside the second: the first member's lines land,
    nothing of the unverified rest."""
    plain = tmp_path / "sample.jsonl"
    lines = twarc_sample(plain)
    cut = tmp_path / "cut.jsonl.gz"
    first = gzip.compress(b"".join(lines[:200]))
    second = gzip.compress(b"".join(lines[200:]))
    cut.write_bytes(first + second[: len(second) // 2])
    [result] = import_sources(config(tmp_path), "old", [cut]).results
    assert result["damaged"] and "EOFError" in result["damaged"]
    assert f"gzip member at offset {len(first):,}" in result["damaged"]
    assert result["lines"] == {"stream": 200}
    landed = [line for ls in raw_lines(tmp_path / "raw").values() for line in ls]
    assert sorted(landed) == sorted(lines[:200])


# --- idempotent, resumable, never overwriting ------------------------------------------------


def snapshot(raw_dir: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(raw_dir)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(raw_dir.rglob("*"))
        if p.is_file()
    }


def test_importing_the_same_input_again_changes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "sample.jsonl.gz"
    plain = tmp_path / "plain.jsonl"
    twarc_sample(plain)
    src.write_bytes(gzip.compress(plain.read_bytes()))
    c = config(tmp_path)
    [first] = import_sources(c, "old", [src]).results
    receipt = tmp_path / "work" / "import" / "old" / "receipts" / f"{first['sha256']}.json"
    stored = json.loads(receipt.read_text())
    assert stored["size"] == src.stat().st_size and stored["lines"] == {"stream": 522}
    assert stored["placed"]["new"] == len(stored["minutes"]) > 100
    before = snapshot(tmp_path / "raw")
    [again] = import_sources(c, "old", [src]).results
    assert again["status"] == "already"
    # A copy under another name is recognised by its checksum once read: nothing placed.
    copy = tmp_path / "copy.bin"
    shutil.copyfile(src, copy)
    [same] = import_sources(c, "old", [copy]).results
    assert same["status"] == "same_content" and same["source"] == str(copy.resolve())
    assert snapshot(tmp_path / "raw") == before
    assert [again["status"] for again in import_sources(c, "old", [copy]).results] == ["already"]
    assert not any((tmp_path / "work" / "import" / "old" / "staging").iterdir())


def test_two_overlapping_inputs_keep_each_others_lines(tmp_path: Path) -> None:
    src = tmp_path / "all.jsonl"
    lines = twarc_sample(src, start=datetime(2023, 1, 1, tzinfo=UTC), copies=3)
    # Interleaved: every minute is in both, and the middle third in both twice over.
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    n = len(lines)
    a.write_bytes(b"".join(lines[i] for i in range(n) if i % 2 == 0 or n // 3 <= i < 2 * n // 3))
    b.write_bytes(b"".join(lines[i] for i in range(n) if i % 2 == 1 or n // 3 <= i < 2 * n // 3))
    report = import_sources(config(tmp_path), "old", [a, b], jobs=2)  # placed side by side
    assert [r["status"] for r in report.results] == ["imported", "imported"]
    assert sum(r["placed"]["merged"] for r in report.results) > 0
    landed = [line for ls in raw_lines(tmp_path / "raw").values() for line in ls]
    assert sorted(landed) == sorted(lines)  # every line, once


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ingest.cli", "import", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def test_the_command_refuses_a_server_retention_would_empty(tmp_path: Path) -> None:
    src = tmp_path / "sample.jsonl"
    twarc_sample(src)
    cfg = config_path(tmp_path, imported=False)
    proc = run_cli("--config", str(cfg), "--server", "old", str(src))
    assert proc.returncode == 2 and "imported: true" in proc.stderr
    proc = run_cli("--config", str(config_path(tmp_path)), "--server", "old", str(src) + "x")
    assert proc.returncode == 2 and "sample.jsonlx: no such file" in proc.stderr
    assert not (tmp_path / "raw").exists()
    with pytest.raises(ImportSetupError, match="no server named 'nope'"):
        import_sources(config(tmp_path), "nope", [src])


def test_the_command_logs_progress_and_reports_each_input(tmp_path: Path) -> None:
    src = tmp_path / "sample.jsonl"
    twarc_sample(src)
    cfg = config_path(tmp_path)
    bad = tmp_path / "v1.jsonl"
    bad.write_text('{"id": 1, "id_str": "1", "user": {}, "created_at": "Wed Oct 10"}\n')
    # Two worker processes: their progress comes through a queue.
    options = ["--progress", "log", "--log-every", "0", "--jobs", "2"]
    proc = run_cli("--config", str(cfg), "--server", "old", *options, str(src), str(bad))
    assert proc.returncode == 1, proc.stderr  # the v1 file holds no tweet this archive keeps
    assert "import old:" in proc.stderr and "lines/s" in proc.stderr and "left" in proc.stderr
    assert "522 lines written (522 stream)" in proc.stdout
    assert "v1.jsonl: FAILED holds no tweet: 1 line, none a tweet (1 v1_tweet)" in proc.stdout
    assert "1 of 2 input(s) done" in proc.stdout


def test_the_progress_bar_shows_bytes_lines_per_second_and_time_left() -> None:
    import io

    out = io.StringIO()
    bar = Progress(10 << 20, "import old", bar=True, stream=out)
    bar.update(5 << 20, 12_345)
    bar.close()
    text = out.getvalue()
    assert "5.00M/10.0M" in text and "lines/s" in text and "12,345 lines" in text
    assert "<" in text  # tqdm's elapsed<left


@pytest.mark.integration
def test_a_killed_import_started_again_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    src = tmp_path / "big.jsonl"
    # ~40 MB over ~2,000 minutes: the placement takes long enough to be killed in.
    lines = twarc_sample(src, start=datetime(2023, 1, 1, tzinfo=UTC), copies=40, every=6)
    ref = tmp_path / "ref"
    import_sources(config(ref), "old", [src])
    expected = {rel: sorted(ls) for rel, ls in raw_lines(ref / "raw").items()}
    assert sum(map(len, expected.values())) == len(lines)

    for phase in ("read", "place"):
        root = tmp_path / phase
        root.mkdir()
        cfg = config_path(root)
        staging = root / "work" / "import" / "old" / "staging"
        proc = subprocess.Popen(
            [sys.executable, "-m", "ingest.cli", "import", "--config", str(cfg)]
            + ["--server", "old", "--progress", "none", str(src)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while proc.poll() is None:
                staged = list(staging.glob("*/*/*/*.jsonl")) if staging.is_dir() else []
                marker = any(staging.glob(f"*/{importer.MARKER}")) if staging.is_dir() else False
                # "place": wait for the first placed minute; the marker alone can come a moment
                # before placement starts.
                placing = marker and (root / "raw").is_dir()
                if (phase == "read" and staged and not marker) or (phase == "place" and placing):
                    proc.kill()
                    break
        finally:
            proc.wait()
        assert proc.returncode == -9, f"{phase}: the import ended before it could be killed"
        receipts = root / "work" / "import" / "old" / "receipts"
        assert not receipts.is_dir() or not any(receipts.iterdir())
        if phase == "place":
            assert (root / "raw").is_dir()  # killed with some minutes placed, others not
        again = run_cli("--config", str(cfg), "--server", "old", str(src))
        assert again.returncode == 0, again.stderr
        if phase == "read":
            assert "1 read(s) cut short by a killed import: thrown away" in again.stdout
            assert ": imported" in again.stdout
        else:
            assert again.stdout.startswith("resumed ") and "already imported" in again.stdout
        landed = {rel: sorted(ls) for rel, ls in raw_lines(root / "raw").items()}
        assert landed == expected, phase
        assert not any(staging.iterdir())


@pytest.mark.integration
def test_memory_stays_flat_whatever_the_inputs_size(tmp_path: Path) -> None:
    peaks = {}
    for copies in (10, 100):  # ~10 MB and ~100 MB of twarc2 output
        src = tmp_path / f"in{copies}.jsonl"
        twarc_sample(src, start=datetime(2023, 1, 1, tzinfo=UTC), copies=copies)
        root = tmp_path / str(copies)
        root.mkdir()
        cfg = config_path(root)
        # VmHWM: the peak of this process's own memory (ru_maxrss would count the parent's
        # pages of a vfork before the exec).
        code = (
            "import re, sys; from ingest.cli import main; rc = main(sys.argv[1:]); "
            "status = open('/proc/self/status').read(); "
            "print(re.search(r'VmHWM:\\s+(\\d+)', status)[1]); sys.exit(rc)"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code, "import", "--config", str(cfg), "--server", "old"]
            + ["--progress", "none", str(src)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        peaks[copies] = int(proc.stdout.split()[-1]) / 1024  # MiB
        os.remove(src)
    # Ten times the input, the same memory (buffers of FLUSH_BYTES and one minute file).
    assert peaks[100] < peaks[10] + 25, peaks
