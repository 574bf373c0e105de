"""The synthetic stream generator: shapes like the real payloads, determinism, raw-tree layout."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from ingest.devtools.generate import (
    BAD_LINE_KINDS,
    TweetFactory,
    generate_raw_tree,
    main,
    snowflake_ms,
    snowflake_time,
    stream_line,
)
from ingest.layout import hour_of, minute_path, parse_minute_name

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared/fixtures/twitter-v2"
SAMPLE = FIXTURES / "sample-stream-lines.jsonl"
BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 1, 14, 10, 0, tzinfo=UTC)
API_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.000Z$")
TWARC_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00$")


@functools.cache
def _made(n: int, seed: int = 1, step_ms: int = 37) -> tuple[dict, ...]:
    f = TweetFactory(seed)
    return tuple(f.make(T0 + timedelta(milliseconds=i * step_ms)) for i in range(n))


def _make(n: int, seed: int = 1, step_ms: int = 37) -> tuple[dict, ...]:
    """Lines made in sequence (cached: the lines are read-only)."""
    return _made(n, seed, step_ms)


def _api_dt(s: str) -> datetime:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.000Z").replace(tzinfo=UTC)


def _classify(path: Path) -> tuple[list[dict], Counter]:
    """Read a minute file the way a strict parser would: good lines and bad lines by kind."""
    raw = path.read_bytes()
    good, bad = [], Counter()
    if not raw:
        return good, bad
    lines = raw.split(b"\n")
    last = lines.pop()  # b"" when the file ends with a newline, else a cut last line
    if last:
        bad["cut_last_line"] += 1
    for line in lines:
        if not line.strip():
            bad["blank"] += 1
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            bad["invalid_utf8"] += 1
            continue
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            bad["invalid_json"] += 1
            continue
        if "errors" in obj:
            bad["errors"] += 1
        elif "data" in obj:
            good.append(obj)
        else:
            bad["other"] += 1
    return good, bad


def _tree(tmp_path: Path, **kw):
    servers = [("server1", tmp_path / "raw1"), ("server2", tmp_path / "raw2")]
    kw.setdefault("rate_per_minute", 300)
    kw.setdefault("seed", 7)
    start = kw.pop("start", T0)
    end = kw.pop("end", start + timedelta(minutes=6))
    tz = kw.pop("tz", BERLIN)
    return servers, generate_raw_tree(servers, start, end, tz, **kw)


def _read_tree(raw_dir: Path, tz: ZoneInfo):
    """(minute, good lines, bad counts) per file, checking names and directories on the way."""
    out = []
    for path in sorted(raw_dir.rglob("*.jsonl")):
        minute = parse_minute_name(path.name, tz)
        assert minute is not None, path
        assert path == minute_path(raw_dir, minute, tz)  # YYYY-mm-dd/HH/ of the local minute
        good, bad = _classify(path)
        out.append((minute, good, bad))
    return out


# --- shapes -------------------------------------------------------------------------------


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"real fixture lines not present at {SAMPLE}")
def test_shape_matches_the_real_sample_stream_lines():
    real = [orjson.loads(line) for line in SAMPLE.read_bytes().splitlines()]
    real_data_keys = set().union(*(r["data"] for r in real))
    real_user_keys = set().union(*(u for r in real for u in r["includes"].get("users", [])))
    real_pm = set(real[0]["includes"]["users"][0]["public_metrics"])
    always = set.intersection(*(set(r["data"]) for r in real))
    # Fields the real lines lack because they predate them (edit history) or the fixture's
    # request did not ask for them (entities): both are sent by the API today.
    newer = {"edit_history_tweet_ids", "entities"}

    made = _make(6000)
    assert {k for t in made for k in t} <= {"data", "includes"}
    for t in made:
        d = t["data"]
        # Every field present in all real lines is present here, except source, which X
        # stopped sending for many tweets.
        assert always - {"source"} <= set(d), always - set(d)
        assert set(d) <= real_data_keys | newer, set(d) - real_data_keys
        assert API_TIME.match(d["created_at"])
        for key in ("id", "conversation_id", "author_id"):
            assert isinstance(d[key], str) and d[key].isdigit()
        assert isinstance(d["possibly_sensitive"], bool)
        assert set(d["public_metrics"]) >= set(real[0]["data"]["public_metrics"])
        for ref in d.get("referenced_tweets", []):
            assert ref["type"] in {"retweeted", "quoted", "replied_to"} and ref["id"].isdigit()
        for u in t.get("includes", {}).get("users", []):
            assert u["id"] == d["author_id"]
            assert set(u) <= real_user_keys, set(u) - real_user_keys
            assert {"id", "name", "username", "created_at", "verified", "protected"} <= set(u)
            assert set(u["public_metrics"]) == real_pm
            assert all(isinstance(v, int) for v in u["public_metrics"].values())
            assert isinstance(u["verified"], bool) and isinstance(u["protected"], bool)
            assert API_TIME.match(u["created_at"])
    # Both kinds of present/absent fields occur.
    assert any("source" in t["data"] for t in made)
    assert any("source" not in t["data"] for t in made)
    assert any("location" in t["includes"]["users"][0] for t in made if t.get("includes"))
    assert any("location" not in t["includes"]["users"][0] for t in made if t.get("includes"))
    assert any("entities" in t["data"] for t in made)


def test_mix_of_kinds_languages_and_authors():
    made = _make(6000)
    kinds = Counter(
        t["data"]["referenced_tweets"][0]["type"] if "referenced_tweets" in t["data"] else "none"
        for t in made
    )
    assert 0.40 < kinds["retweeted"] / len(made) < 0.50
    assert kinds["replied_to"] > 0.15 * len(made) and kinds["quoted"] > 0 and kinds["none"] > 0
    langs = Counter(t["data"]["lang"] for t in made)
    assert {"en", "ja", "es", "pt", "ar", "ko", "th", "tr", "fr", "hi", "und"} <= set(langs)
    assert langs.most_common(1)[0][0] == "en"
    missing = sum(1 for t in made if not t.get("includes", {}).get("users"))
    assert 0.002 < missing / len(made) < 0.03
    assert any("includes" not in t for t in made) and any(t.get("includes") == {} for t in made)
    # Recurring authors: some post several times, with counts that move between their tweets.
    by_author: dict[str, list[int]] = {}
    for t in made:
        for u in t.get("includes", {}).get("users", []):
            by_author.setdefault(u["id"], []).append(u["public_metrics"]["tweet_count"])
    repeated = [c for c in by_author.values() if len(c) > 1]
    assert len(repeated) > 50
    assert any(c == sorted(c) and c[-1] > c[0] for c in repeated)
    assert len(by_author) > 0.6 * len(made)  # most authors still appear once


def test_text_names_and_locations_carry_the_hard_characters():
    made = _make(6000)
    texts = [t["data"]["text"] for t in made]
    users = [u for t in made for u in t.get("includes", {}).get("users", [])]
    names = [u["name"] for u in users]
    locations = [u["location"] for u in users if "location" in u]
    assert any("\r\n" in s for s in texts)
    assert any("\n" in s.replace("\r\n", "") for s in texts)
    assert any("\r" in s.replace("\r\n", "") for s in texts)
    assert any('"' in s for s in texts) and any("," in s for s in texts)
    assert any(any(ord(c) >= 0x1F300 for c in s) for s in texts)  # emoji
    assert any("@" in s for s in texts) and any("#" in s for s in texts)
    assert any("https://t.co/" in s for s in texts)
    assert any("\n" in s for s in names) and any('"' in s and "," in s for s in names)
    assert any("\n" in s for s in locations) and any("," in s for s in locations)
    # Entity offsets are code points into the text, as the API gives them.
    checked = 0
    for t in made:
        text = t["data"]["text"]
        ents = t["data"].get("entities", {})
        for m in ents.get("mentions", []):
            assert text[m["start"] : m["end"]] == "@" + m["username"]
            checked += 1
        for h in ents.get("hashtags", []):
            assert text[h["start"] : h["end"]] == "#" + h["tag"]
        for u in ents.get("urls", []):
            assert text[u["start"] : u["end"]] == u["url"]
    assert checked > 1000


def test_ids_are_snowflakes_of_created_at():
    made = _make(3000, step_ms=997)
    ids = [int(t["data"]["id"]) for t in made]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # created in time order, so IDs grow
    for t, tid in zip(made, ids, strict=True):
        d = t["data"]
        assert len(d["id"]) == 19
        assert snowflake_ms(tid) // 1000 == int(_api_dt(d["created_at"]).timestamp())
        assert snowflake_time(tid).replace(microsecond=0) == _api_dt(d["created_at"])
        assert d["edit_history_tweet_ids"] == [d["id"]]
        for ref in d.get("referenced_tweets", []):
            assert int(ref["id"]) < tid
        if d.get("referenced_tweets", [{}])[0].get("type") == "replied_to":
            assert int(d["conversation_id"]) <= int(d["referenced_tweets"][0]["id"])
            assert d["in_reply_to_user_id"].isdigit()
        else:
            assert d["conversation_id"] == d["id"]


def test_same_seed_same_lines_other_seed_other_lines():
    a = [orjson.dumps(t) for t in _make(500, seed=3)]
    b = [orjson.dumps(t) for t in _make(500, seed=3)]
    c = [orjson.dumps(t) for t in _make(500, seed=4)]
    assert a == b
    assert sum(x != y for x, y in zip(a, c, strict=True)) > 450


def test_stream_line_has_twarc_metadata_in_twarc_format():
    from twarc.client2 import _utcnow

    tweet = _make(1)[0]
    when = datetime(2026, 1, 14, 10, 0, 1, 734000, tzinfo=UTC)
    line = stream_line(tweet, when)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    obj = orjson.loads(line)
    assert list(obj)[-1] == "__twarc"
    assert obj["data"] == tweet["data"] and obj["includes"] == tweet["includes"]
    meta = obj["__twarc"]
    assert set(meta) == {"url", "version", "retrieved_at"}
    assert meta["url"].startswith("https://api.twitter.com/2/tweets/sample/stream?")
    assert meta["retrieved_at"] == "2026-01-14T10:00:01+00:00"
    assert TWARC_TIME.match(_utcnow())  # the same shape twarc itself writes
    # A non-UTC instant is written in UTC, like twarc's clock.
    assert orjson.loads(stream_line(tweet, when.astimezone(BERLIN)))["__twarc"] == meta


def test_line_size_like_real_lines(tmp_path):
    f = TweetFactory(5)
    sizes = sorted(len(stream_line(f.make(T0), T0)) for _ in range(2000))
    median = sizes[len(sizes) // 2]
    assert 1300 < median < 2600, median


# --- raw trees ----------------------------------------------------------------------------


def test_tree_files_names_and_arrival_minutes(tmp_path):
    servers, summary = _tree(tmp_path)
    for name, raw_dir in servers:
        files = _read_tree(raw_dir, BERLIN)
        minutes = [m for m, _, _ in files]
        assert minutes == [T0 + timedelta(minutes=i) for i in range(6)]
        assert summary.servers[name].files_written == 6
        on_disk: Counter = Counter()
        for minute, good, bad in files:
            assert not bad
            for obj in good:
                retrieved = datetime.fromisoformat(obj["__twarc"]["retrieved_at"])
                assert TWARC_TIME.match(obj["__twarc"]["retrieved_at"])
                # The file is the minute of arrival by the server's clock.
                assert minute <= retrieved < minute + timedelta(minutes=1)
                created = _api_dt(obj["data"]["created_at"])
                assert timedelta(0) <= retrieved - created < timedelta(minutes=4)
                on_disk[int(obj["data"]["id"])] += 1
        s = summary.servers[name]
        assert set(on_disk) == s.ids and s.unique_ids == len(s.ids)
        assert sum(on_disk.values()) == s.tweets_written
        assert sum(c - 1 for c in on_disk.values()) == s.duplicate_copies
    # The same tweet sequence reaches both servers.
    a, b = summary.servers["server1"].ids, summary.servers["server2"].ids
    assert len(a & b) > 0.95 * len(a | b)


def test_tweet_from_the_last_second_lands_in_the_next_hour_file(tmp_path):
    start = datetime(2026, 1, 14, 10, 58, tzinfo=UTC)
    servers, _ = _tree(tmp_path, start=start, end=start + timedelta(minutes=3), rate_per_minute=600)
    crossed = 0
    for _, raw_dir in servers:
        for minute, good, _ in _read_tree(raw_dir, BERLIN):
            for obj in good:
                created = _api_dt(obj["data"]["created_at"])
                retrieved = datetime.fromisoformat(obj["__twarc"]["retrieved_at"])
                if retrieved - created >= timedelta(minutes=1):
                    continue  # a backfilled copy may cross the hour from earlier on
                if hour_of(created, BERLIN) != hour_of(minute, BERLIN):
                    assert created.minute == 59 and minute.minute == 0
                    assert minute_path(raw_dir, minute, BERLIN).parent.name == "12"
                    crossed += 1
    assert crossed > 0


def test_disagreement_close_to_requested(tmp_path):
    _, summary = _tree(tmp_path, rate_per_minute=1000, disagreement=0.06, late_fraction=0)
    a, b = summary.servers["server1"].ids, summary.servers["server2"].ids
    diff = len(a ^ b) / len(a | b)
    assert 0.045 < diff < 0.075, diff
    assert 0.96 < len(a) / (summary.tweets_generated * 5 / 6 / 0.97) < 1.06  # rough volume


def test_deterministic_trees(tmp_path):
    kw = {"bad_lines": True, "late_fraction": 0.05, "rate_per_minute": 200}
    _, sa = _tree(tmp_path / "a", **kw)
    _, sb = _tree(tmp_path / "b", keep_ids=False, **kw)  # same files, same counts, no ID sets
    da, db = sa.to_dict(), sb.to_dict()
    da.pop("seconds"), db.pop("seconds")
    for d in (da, db):
        for server in d["servers"].values():
            server.pop("raw_dir")
    assert da == db
    assert sb.servers["server1"].ids is None and sa.servers["server1"].duplicate_copies > 0
    fa = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.jsonl"))
    fb = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.jsonl"))
    assert fa == fb and len(fa) == 12
    for rel in fa:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    _tree(tmp_path / "c", seed=8, **kw)
    assert (tmp_path / "c" / fa[3]).read_bytes() != (tmp_path / "a" / fa[3]).read_bytes()


def test_bad_lines_every_kind_and_counted(tmp_path):
    servers, summary = _tree(tmp_path, bad_lines=True)
    for name, raw_dir in servers:
        found: Counter = Counter()
        for _, _, bad in _read_tree(raw_dir, BERLIN):
            found += bad
        assert set(found) == set(BAD_LINE_KINDS), found
        assert found == summary.servers[name].bad_lines
    # Without the option every line is a good tweet line.
    servers, summary = _tree(tmp_path / "clean", end=T0 + timedelta(minutes=2))
    for _, raw_dir in servers:
        assert not any(bad for _, _, bad in _read_tree(raw_dir, BERLIN))


def test_late_backfill_and_duplicates(tmp_path):
    servers, summary = _tree(tmp_path, late_fraction=0.05, rate_per_minute=400)
    for name, raw_dir in servers:
        s = summary.servers[name]
        assert s.late_copies > 0.02 * s.tweets_written
        assert s.duplicate_copies > 0
        late = 0
        for minute, good, _ in _read_tree(raw_dir, BERLIN):
            for obj in good:
                retrieved = datetime.fromisoformat(obj["__twarc"]["retrieved_at"])
                if retrieved - _api_dt(obj["data"]["created_at"]) >= timedelta(minutes=1):
                    late += 1
                    created = _api_dt(obj["data"]["created_at"])
                    assert minute >= created.replace(second=0) + timedelta(minutes=1)
        assert late == s.late_copies


def test_outages_empty_minutes_and_skew(tmp_path):
    out = [(T0 + timedelta(minutes=2), T0 + timedelta(minutes=4))]
    empty = [(T0 + timedelta(minutes=5), T0 + timedelta(minutes=6))]
    servers, summary = _tree(
        tmp_path,
        outages={"server2": out},
        empty_minutes={"server1": empty},
        skew_seconds={"server1": 0.0, "server2": 0.4},
    )
    m1 = {m: good for m, good, _ in _read_tree(servers[0][1], BERLIN)}
    m2 = {m: good for m, good, _ in _read_tree(servers[1][1], BERLIN)}
    assert len(m1) == 6 and m1[T0 + timedelta(minutes=5)] == []
    assert minute_path(servers[0][1], T0 + timedelta(minutes=5), BERLIN).stat().st_size == 0
    assert sorted(m2) == [T0 + timedelta(minutes=i) for i in (0, 1, 4, 5)]
    assert summary.servers["server2"].missing_minutes == [
        T0 + timedelta(minutes=2),
        T0 + timedelta(minutes=3),
    ]
    assert summary.servers["server1"].empty_files == 1
    # server2's clock runs 0.4 s ahead: on average its copies arrive later than server1's.
    first = {}
    for obj in (o for g in m1.values() for o in g):
        first[obj["data"]["id"]] = datetime.fromisoformat(obj["__twarc"]["retrieved_at"])
    later = [
        datetime.fromisoformat(o["__twarc"]["retrieved_at"]) - first[o["data"]["id"]]
        for g in m2.values()
        for o in g
        if o["data"]["id"] in first
    ]
    assert sum(d.total_seconds() for d in later) / len(later) > 0.1


def test_dst_end_repeated_hour_has_distinct_files(tmp_path):
    # 2026-10-25: Berlin goes from 03:00 CEST back to 02:00 CET at 01:00 UTC.
    start = datetime(2026, 10, 25, 0, 58, tzinfo=UTC)
    servers, summary = _tree(tmp_path, start=start, end=start + timedelta(minutes=4))
    names = sorted(p.name for p in (servers[0][1] / "2026-10-25" / "02").glob("*.jsonl"))
    assert names == [
        "2026-10-25T0200+0100.jsonl",
        "2026-10-25T0201+0100.jsonl",
        "2026-10-25T0258+0200.jsonl",
        "2026-10-25T0259+0200.jsonl",
    ]
    minutes = sorted(m for m, _, _ in _read_tree(servers[0][1], BERLIN))
    assert minutes == [start + timedelta(minutes=i) for i in range(4)]


def test_ids_by_hour_groups_by_created_hour(tmp_path):
    start = datetime(2026, 1, 14, 10, 58, tzinfo=UTC)
    _, summary = _tree(tmp_path, start=start, end=start + timedelta(minutes=3))
    by_hour = summary.ids_by_hour(BERLIN)
    assert set(by_hour) == {hour_of(start, BERLIN), hour_of(start + timedelta(hours=1), BERLIN)}
    assert set().union(*by_hour.values()) == summary.all_ids()
    one = summary.ids_by_hour(BERLIN, "server1")
    assert set().union(*one.values()) == summary.servers["server1"].ids
    for hour, ids in by_hour.items():
        assert all(hour_of(snowflake_time(i), BERLIN) == hour for i in ids)


def test_copies_outside_the_range_are_not_written(tmp_path):
    start = T0 + timedelta(seconds=30)  # floored to the minute
    servers, summary = _tree(tmp_path, start=start, end=start + timedelta(minutes=2))
    assert summary.start == T0 and summary.end == T0 + timedelta(minutes=3)
    for _, raw_dir in servers:
        minutes = [m for m, _, _ in _read_tree(raw_dir, BERLIN)]
        assert minutes == [T0 + timedelta(minutes=i) for i in range(3)]


@pytest.mark.integration
def test_cli_writes_into_the_config_servers(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(
        f"timezone: CET\nvault_dir: {tmp_path}/vault\nwork_dir: {tmp_path}/work\n"
        f"servers:\n  - name: server1\n    raw_dir: {tmp_path}/raw1\n"
        f"  - name: server2\n    raw_dir: {tmp_path}/raw2\n"
        "osf:\n  enabled: false\nemail:\n  enabled: false\n"
    )
    assert main(["--config", str(config), "--start", "2026-01-14T10:00", "--hours", "0.05",
                 "--rate", "60", "--bad-lines"]) == 0  # fmt: skip
    for raw in ("raw1", "raw2"):  # a start without offset is in the config's timezone
        files = sorted((tmp_path / raw / "2026-01-14" / "10").glob("*.jsonl"))
        assert [f.name for f in files] == [f"2026-01-14T100{i}+0100.jsonl" for i in range(3)]
    # The module runs as a program too.
    proc = subprocess.run(
        [sys.executable, "-m", "ingest.devtools.generate", "--config", str(config), "--start",
         "2026-01-14T12:00:00+01:00", "--hours", "0.01", "--rate", "30", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(proc.stdout)["servers"]["server2"]["files_written"] == 1

    assert main(["--config", str(tmp_path / "nope.yaml"), "--start", "2026-01-14T10:00",
                 "--hours", "1"]) == 2  # fmt: skip
    assert "not found" in capsys.readouterr().err
    assert main(["--config", str(config), "--start", "yesterday", "--hours", "1"]) == 2
