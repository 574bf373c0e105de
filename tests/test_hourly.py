"""The hourly merge: copies from several servers -> the hour's ids/tweets/users .xz and stats."""

from __future__ import annotations

import csv
import io
import json
import lzma
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ingest import layout
from ingest.hours.assign import assign_hour
from ingest.hours.compression import MIB, tweets_block_size
from ingest.hours.hourly import (
    InputError,
    MergeProgress,
    build_hour,
    count_servers,
    read_inputs,
    stats_minutes,
)
from ingest.hours.minutes import parse_minute_file, read_meta
from ingest.hours.parse import TWEET_COLUMNS, USER_COLUMNS, iter_lines, parse_line
from ingest.layout import Hour
from ingest.vault.records import record_name

CET = ZoneInfo("CET")
BERLIN = ZoneInfo("Europe/Berlin")
LATE = 6
H11 = Hour("2026-01-14", 11)  # 10:00-11:00 UTC
# The config gives the preset and threads; tests take the fastest preset.
FAST_XZ = {"xz_preset": 0, "xz_threads": 2}


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def api(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


@dataclass
class Copy:
    server: str
    tid: int
    created: datetime
    retrieved: datetime
    author: str | None = "42"
    text: str = "hello"
    followers: int = 1
    file_minute: datetime | None = None  # default: the minute of retrieved

    def line(self) -> bytes:
        tweet = {
            "id": str(self.tid),
            "created_at": api(self.created),
            "text": self.text,
            "lang": "en",
            "conversation_id": str(self.tid),
        }
        obj: dict = {"data": tweet}
        if self.author is not None:
            tweet["author_id"] = self.author
            obj["includes"] = {
                "users": [
                    {
                        "id": self.author,
                        "name": f"name{self.author}",
                        "username": f"user{self.author}",
                        "created_at": "2010-01-02T03:04:05.000Z",
                        "verified": False,
                        "protected": False,
                        "public_metrics": {
                            "followers_count": self.followers,
                            "following_count": 0,
                            "tweet_count": 0,
                            "listed_count": 0,
                        },
                    }
                ]
            }
        obj["__twarc"] = {
            "url": "u",
            "version": "2.14.0",
            "retrieved_at": self.retrieved.isoformat(),
        }
        return json.dumps(obj, ensure_ascii=False).encode()


class World:
    """Raw minute files of several servers, their intermediates, and hour builds."""

    def __init__(self, root: Path, servers=("s1", "s2"), tz: ZoneInfo = CET):
        self.root = root
        self.servers = list(servers)
        self.tz = tz
        self.files: dict[tuple[str, datetime], list[bytes]] = defaultdict(list)

    def add(self, *copies: Copy) -> None:
        for c in copies:
            minute = c.file_minute or c.retrieved.replace(second=0, microsecond=0)
            self.files[(c.server, minute)].append(c.line())

    def connected(self, server: str, start: datetime, end: datetime) -> None:
        """Empty files (connected, nothing came) for every minute in [start, end) not written."""
        t = start
        while t < end:
            self.files.setdefault((server, t), [])
            t += timedelta(minutes=1)

    def add_raw(self, server: str, minute: datetime, raw: bytes) -> None:
        self.files[(server, minute)].append(raw)

    def raw_dir(self, server: str) -> Path:
        return self.root / "raw" / server

    def write(self) -> None:
        for (server, minute), lines in self.files.items():
            p = layout.minute_path(self.raw_dir(server), minute, self.tz)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"".join(ln + b"\n" for ln in lines))

    def inputs(self, hour: Hour) -> dict[str, list[tuple[Path, Path]]]:
        self.write()
        start, end = layout.read_window(hour, self.tz, LATE)
        out = {}
        for server in self.servers:
            pairs = []
            for f in layout.minute_files(server, self.raw_dir(server), start, end, self.tz):
                mid = self.root / "mid" / server / f"{f.stem}"
                t, u = mid.with_suffix(".tweets.tsv"), mid.with_suffix(".users.tsv")
                parse_minute_file(f.path, t, u, server, self.tz, LATE)
                pairs.append((t, u))
            out[server] = pairs[::-1]  # any order
        return out

    def build(self, hour: Hour, vault: str = "vault", servers=None, **kw) -> tuple[dict, dict]:
        outputs = layout.vault_paths(self.root / vault, hour)
        inputs = self.inputs(hour)
        if servers is not None:
            inputs = {s: v for s, v in inputs.items() if s in servers}
        stats = build_hour(
            hour, self.tz, inputs, outputs, server_names=self.servers, **{**FAST_XZ, **kw}
        )
        return stats, outputs


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(lzma.decompress(path.read_bytes()).decode("utf-8"))))


def read_ids(path: Path) -> list[int]:
    return [int(x) for x in lzma.decompress(path.read_bytes()).decode().split()]


def contents(outputs: dict) -> dict[str, bytes]:
    return {k: lzma.decompress(outputs[k].read_bytes()) for k in ("ids", "tweets", "users")}


def on_time(server, tid, created, **kw) -> Copy:
    return Copy(server, tid, created, created + timedelta(seconds=2), **kw)


# --- counting and merging --------------------------------------------------------------------


def test_two_servers_with_disagreement(tmp_path):
    w = World(tmp_path)
    t = utc(2026, 1, 14, 10, 30)
    w.add(*(on_time("s1", i, t) for i in (1, 2, 3)), *(on_time("s2", i, t) for i in (2, 3, 4)))
    stats, out = w.build(H11)
    assert stats["counts"] == {"s1": 3, "s2": 3}
    assert (stats["total"], stats["diff"], stats["diff_pct"]) == (4, 2, 50.0)
    assert stats["servers"] == ["s1", "s2"] and stats["missing_servers"] == []
    assert read_ids(out["ids"]) == [1, 2, 3, 4]
    rows = read_csv(out["tweets"])
    assert rows[0] == list(TWEET_COLUMNS)
    assert [r[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert read_csv(out["users"])[0] == list(USER_COLUMNS)
    assert json.loads(out["stats"].read_text()) == stats
    assert sorted(p.name for p in out["ids"].parent.iterdir()) == sorted(
        [*(p.name for p in out.values()), record_name(H11.label)]
    )  # no temporary files left


def test_the_earliest_copy_gives_the_row(tmp_path):
    w = World(tmp_path)
    c = utc(2026, 1, 14, 10, 30)
    w.add(
        Copy("s1", 10, c, c + timedelta(seconds=5), text="from s1", followers=100),
        Copy(
            "s2", 10, c, c + timedelta(seconds=1, microseconds=500), text="from s2", followers=200
        ),
        Copy("s1", 11, c, c + timedelta(seconds=1), text="s1 first"),
        Copy("s2", 11, c, c + timedelta(seconds=3), text="s2 later"),
        # the same server twice (a backfill overlap): its earlier copy
        Copy("s1", 12, c, c + timedelta(seconds=9), text="late dup"),
        Copy("s1", 12, c, c + timedelta(seconds=2), text="first dup"),
    )
    stats, out = w.build(H11)
    rows = {r[0]: r for r in read_csv(out["tweets"])[1:]}
    assert rows["10"][7] == "from s2"
    assert rows["10"][4] == "2026-01-14 10:30:01+00:00"
    assert rows["11"][7] == "s1 first"
    assert rows["12"][7] == "first dup"
    assert stats["counts"] == {"s1": 3, "s2": 2}
    assert stats["total"] == 3


def test_ties_go_to_the_first_server_in_config_order(tmp_path):
    c = utc(2026, 1, 14, 10, 30)
    for order, winner in ((["s1", "s2"], "s1"), (["s2", "s1"], "s2")):
        w = World(tmp_path / winner, servers=order)
        w.add(
            Copy("s1", 10, c, c + timedelta(seconds=1), text="s1", followers=1),
            Copy("s2", 10, c, c + timedelta(seconds=1), text="s2", followers=2),
        )
        _, out = w.build(H11)
        assert read_csv(out["tweets"])[1][7] == winner
        assert read_csv(out["users"])[1][8] == ("1" if winner == "s1" else "2")


def test_ids_in_numeric_not_text_order(tmp_path):
    w = World(tmp_path)
    t = utc(2026, 1, 14, 10, 30)
    ids = [1000, 99, 100, 9, 1499000000000000001, 18446744073709551615]
    w.add(*(on_time("s1", i, t) for i in ids), *(on_time("s2", i, t) for i in ids))
    _, out = w.build(H11)
    assert read_ids(out["ids"]) == sorted(ids)
    assert lzma.decompress(out["ids"].read_bytes()).startswith(b"9\n99\n100\n1000\n")
    assert [int(r[0]) for r in read_csv(out["tweets"])[1:]] == sorted(ids)


def test_labels_decide_which_hour_a_copy_counts_for(tmp_path):
    w = World(tmp_path)
    w.add(
        # created 11:59:59 CET, arrives 12:00:02 in the 12:00 file: counts for 11
        Copy("s1", 1, utc(2026, 1, 14, 10, 59, 59), utc(2026, 1, 14, 11, 0, 2)),
        # created 12:00:00.5 CET, s2's clock slow: retrieved 11:59:59 in the 11:59 file: 12
        Copy("s2", 2, utc(2026, 1, 14, 11, 0, 0, 500000), utc(2026, 1, 14, 10, 59, 59)),
        # created 10:59:58 CET, arrives 11:00:01 in the 11:00 file: counts for 10
        Copy("s1", 3, utc(2026, 1, 14, 9, 59, 58), utc(2026, 1, 14, 10, 0, 1)),
        # backfilled at 11:40 CET, created at 08:00 CET: counts for 11 (the hour it arrived)
        Copy("s2", 4, utc(2026, 1, 14, 7, 0), utc(2026, 1, 14, 10, 40, 3)),
        # created 11:58 CET, a late copy at 12:04 CET: still 11
        Copy("s2", 5, utc(2026, 1, 14, 10, 58), utc(2026, 1, 14, 11, 4)),
        # created 11:58 CET, a very late copy at 12:07 CET: 12
        Copy("s1", 6, utc(2026, 1, 14, 10, 58), utc(2026, 1, 14, 11, 7)),
    )
    stats11, out11 = w.build(H11)
    assert read_ids(out11["ids"]) == [1, 4, 5]
    stats12, out12 = w.build(Hour("2026-01-14", 12))
    assert read_ids(out12["ids"]) == [2, 6]
    stats10, out10 = w.build(Hour("2026-01-14", 10))
    assert read_ids(out10["ids"]) == [3]
    # hour 11 reads 10:59-12:05 CET: s1's 12:07 file is not among its inputs
    assert list(stats11["inputs"]["s1"]) == [
        "2026-01-14T1100+0100.jsonl",
        "2026-01-14T1200+0100.jsonl",
    ]


def test_users_from_each_authors_latest_tweet(tmp_path):
    w = World(tmp_path)
    base = utc(2026, 1, 14, 10, 10)
    later = utc(2026, 1, 14, 10, 20)
    w.add(
        on_time("s1", 5, base, author="42", followers=10),
        on_time("s1", 6, later, author="42", followers=20),
        # same created_at, higher ID: the latest tweet of author 42
        Copy("s1", 7, later, later + timedelta(seconds=3), author="42", followers=30),
        Copy("s2", 7, later, later + timedelta(seconds=1), author="42", followers=31),
        on_time("s2", 8, base, author="9", followers=90),
        # author 9's later tweet counts for the next hour: not used here
        on_time("s2", 9, utc(2026, 1, 14, 11, 1), author="9", followers=91),
        on_time("s1", 10, base, author=None),  # no author: no users row
        on_time("s1", 11, base, author="100", followers=1000),
    )
    stats, out = w.build(H11)
    users = read_csv(out["users"])
    assert users[0] == list(USER_COLUMNS)
    assert [(r[0], r[8]) for r in users[1:]] == [("9", "90"), ("42", "31"), ("100", "1000")]
    assert stats["users"] == 3
    assert users[2][1] == "en" and users[2][4] == "name42"


def test_stats_minutes_null_for_missing_files_and_zero_for_empty_ones(tmp_path):
    w = World(tmp_path)
    start, end = utc(2026, 1, 14, 9, 59), utc(2026, 1, 14, 11, 6)
    w.connected("s1", start, end)
    w.connected("s2", start, utc(2026, 1, 14, 10, 30))  # s2 down from 11:30 CET
    w.add(on_time("s1", 1, utc(2026, 1, 14, 10, 5)), on_time("s1", 2, utc(2026, 1, 14, 10, 5, 30)))
    w.add(on_time("s2", 1, utc(2026, 1, 14, 10, 5)))
    stats, _ = w.build(H11)
    m1, m2 = stats["minutes"]["s1"], stats["minutes"]["s2"]
    assert len(m1) == len(m2) == 60
    assert list(m1)[0] == "2026-01-14T11:00+01:00" and list(m1)[-1] == "2026-01-14T11:59+01:00"
    assert m1["2026-01-14T11:05+01:00"] == 2 and m1["2026-01-14T11:06+01:00"] == 0
    assert m2["2026-01-14T11:05+01:00"] == 1
    assert m2["2026-01-14T11:29+01:00"] == 0
    assert m2["2026-01-14T11:30+01:00"] is None
    assert sum(v is None for v in m2.values()) == 30
    # the read window's extra minutes are inputs, but not minutes of the hour
    assert len(stats["inputs"]["s1"]) == 67
    assert next(iter(stats["inputs"]["s1"])) == "2026-01-14T1059+0100.jsonl"
    # each with the raw file's size as parsed (the plan notices a file that changed)
    raw = w.raw_dir("s1") / "2026-01-14" / "11" / "2026-01-14T1105+0100.jsonl"
    assert stats["inputs"]["s1"]["2026-01-14T1105+0100.jsonl"] == raw.stat().st_size > 0


def test_skipped_lines_are_summed_for_the_hours_own_minutes(tmp_path):
    w = World(tmp_path)
    w.add_raw("s1", utc(2026, 1, 14, 9, 59), b"{broken")  # before the hour: not this hour's
    w.add_raw("s1", utc(2026, 1, 14, 10, 30), b"{broken")
    w.add_raw("s1", utc(2026, 1, 14, 10, 30), b'{"errors": [{"title": "x"}]}')
    w.add_raw("s1", utc(2026, 1, 14, 10, 31), b"\xff")
    w.add_raw("s2", utc(2026, 1, 14, 10, 30), b"")
    stats, _ = w.build(H11)
    assert stats["skipped"] == {
        "s1": {"error_message": 1, "invalid_json": 1, "invalid_utf8": 1},
        "s2": {},
    }


def test_one_server_has_no_diff(tmp_path):
    w = World(tmp_path, servers=["only"])
    w.add(*(on_time("only", i, utc(2026, 1, 14, 10, 30)) for i in range(5)))
    stats, out = w.build(H11)
    assert (stats["total"], stats["diff"], stats["diff_pct"]) == (5, 0, 0.0)
    assert stats["counts"] == {"only": 5}


def test_three_servers_diff_is_ids_not_seen_by_all(tmp_path):
    w = World(tmp_path, servers=["a", "b", "c"])
    t = utc(2026, 1, 14, 10, 30)
    seen = {1: "abc", 2: "ab", 3: "c", 4: "abc", 5: "bc"}
    for tid, servers in seen.items():
        w.add(*(on_time(s, tid, t) for s in servers))
    stats, out = w.build(H11)
    assert stats["counts"] == {"a": 3, "b": 4, "c": 4}
    assert (stats["total"], stats["diff"], stats["diff_pct"]) == (5, 3, 60.0)


def test_missing_server(tmp_path):
    w = World(tmp_path)
    w.add(*(on_time("s1", i, utc(2026, 1, 14, 10, 30)) for i in range(4)))
    stats, _ = w.build(H11)
    assert stats["missing_servers"] == ["s2"]
    assert stats["inputs"]["s2"] == {}
    assert stats["counts"] == {"s1": 4, "s2": 0}
    assert (stats["diff"], stats["diff_pct"]) == (4, 100.0)  # the seed's definition
    assert all(v is None for v in stats["minutes"]["s2"].values())


def test_an_hour_with_files_but_no_tweets(tmp_path):
    w = World(tmp_path)
    w.connected("s1", utc(2026, 1, 14, 10, 0), utc(2026, 1, 14, 10, 2))
    stats, out = w.build(H11)
    assert (stats["total"], stats["diff"], stats["diff_pct"]) == (0, 0, 0.0)
    assert read_ids(out["ids"]) == []
    assert read_csv(out["tweets"]) == [list(TWEET_COLUMNS)]


def test_dst_end_hour_covers_two_clock_hours(tmp_path):
    w = World(tmp_path, tz=BERLIN)
    h02 = Hour("2026-10-25", 2)  # 00:00-02:00 UTC
    w.add(
        on_time("s1", 1, utc(2026, 10, 25, 0, 10)),  # first 02:10 (CEST)
        on_time("s1", 2, utc(2026, 10, 25, 1, 10)),  # second 02:10 (CET)
        on_time("s2", 2, utc(2026, 10, 25, 1, 10)),
        on_time("s1", 3, utc(2026, 10, 25, 2, 10)),  # 03:10 CET: next label
    )
    stats, out = w.build(h02)
    assert read_ids(out["ids"]) == [1, 2]
    minutes = stats["minutes"]["s1"]
    assert len(minutes) == 120
    assert minutes["2026-10-25T02:10+02:00"] == 1 and minutes["2026-10-25T02:10+01:00"] == 1
    assert out["ids"].name == "2026-10-25_02_IDs.txt.xz"


def test_inputs_for_an_unknown_server_are_refused(tmp_path):
    with pytest.raises(InputError):
        build_hour(
            H11, CET, {"x": []}, layout.vault_paths(tmp_path, H11), server_names=["s1"], **FAST_XZ
        )


def test_a_nonexistent_hour_is_refused(tmp_path):
    h = Hour("2026-03-29", 2)
    with pytest.raises(ValueError):
        build_hour(h, BERLIN, {}, layout.vault_paths(tmp_path, h), server_names=["s1"], **FAST_XZ)


# --- outputs: atomic, deterministic (merging into a built hour: test_hourly_merge) ---------


def test_an_exception_mid_write_leaves_no_final_file(tmp_path):
    w = World(tmp_path)
    w.add(*(on_time("s1", i, utc(2026, 1, 14, 10, 30)) for i in range(1000)))
    inputs = w.inputs(H11)
    # one users intermediate lost its metadata line: found only once the merge is under way
    t, u = next(pair for pair in inputs["s1"] if Path(pair[0]).stat().st_size > 1000)
    u.write_bytes(b"no metadata\n")
    outputs = layout.vault_paths(tmp_path / "vault", H11)
    with pytest.raises(InputError):
        build_hour(H11, CET, inputs, outputs, server_names=w.servers, **FAST_XZ)
    day = outputs["ids"].parent
    assert not day.exists() or list(day.iterdir()) == []


def test_a_failed_rebuild_keeps_the_previous_outputs(tmp_path):
    w = World(tmp_path)
    w.add(*(on_time("s1", i, utc(2026, 1, 14, 10, 30)) for i in range(10)))
    _, out = w.build(H11)
    before = {k: p.read_bytes() for k, p in out.items()}
    inputs = w.inputs(H11)
    t, u = next(pair for pair in inputs["s1"] if Path(pair[0]).stat().st_size > 1000)
    t.write_bytes(t.read_bytes() + b"\xff broken line without tabs\n")  # sorts last, readable
    u.write_bytes(b"")
    with pytest.raises(InputError):
        build_hour(H11, CET, inputs, out, server_names=w.servers, **FAST_XZ)
    assert {k: p.read_bytes() for k, p in out.items()} == before
    assert sorted(p.name for p in out["ids"].parent.iterdir()) == sorted(
        [*(p.name for p in out.values()), record_name(H11.label)]
    )


def test_identical_input_gives_identical_outputs(tmp_path):
    w = World(tmp_path)
    t = utc(2026, 1, 14, 10, 30)
    w.add(
        *(on_time("s1", i, t + timedelta(seconds=i % 50), text=f't{i}, "q"\n') for i in range(300)),
        *(
            on_time("s2", i, t + timedelta(seconds=i % 50), author=str(i % 7))
            for i in range(100, 400)
        ),
    )
    s1, o1 = w.build(H11, vault="v1", xz_threads=1)
    s2, o2 = w.build(H11, vault="v2", xz_threads=2)
    assert contents(o1) == contents(o2)
    assert s1 == s2
    assert o1["stats"].read_bytes() == o2["stats"].read_bytes()


# --- against an independent reference on generated data ----------------------------------------


def test_generated_hours_match_a_reference_from_the_raw_lines(tmp_path):
    from ingest.devtools.generate import generate_raw_tree

    root = tmp_path
    w = World(root, servers=["server1", "server2"], tz=BERLIN)
    generate_raw_tree(
        [(s, w.raw_dir(s)) for s in w.servers],
        utc(2026, 1, 14, 9, 50),
        utc(2026, 1, 14, 12, 10),
        BERLIN,
        rate_per_minute=120,
        seed=3,
        bad_lines=True,
        late_fraction=0.05,
    )
    # reference: parse every raw line, label every copy with the datetime version of the rule
    copies = defaultdict(lambda: defaultdict(list))  # hour -> id -> [(retrieved, rank, row)]
    for rank, server in enumerate(w.servers):
        for f in layout.minute_files(
            server, w.raw_dir(server), utc(2026, 1, 1), utc(2027, 1, 1), BERLIN
        ):
            for _, raw, unterminated in iter_lines(f.path.read_bytes()):
                for t in parse_line(raw, unterminated=unterminated).tweets:
                    arrival = t.retrieved_at or f.minute
                    h = assign_hour(t.created_at, arrival, f.minute, BERLIN, LATE)
                    copies[h][t.id].append((arrival, rank, t.tweet_csv, server))
    for hour in (H11, Hour("2026-01-14", 12)):
        stats, out = w.build(hour)
        expected = copies[hour]
        assert read_ids(out["ids"]) == sorted(expected)
        body = lzma.decompress(out["tweets"].read_bytes()).decode().split("\n")[1:-1]
        assert body == [min(expected[i])[2] for i in sorted(expected)]
        for server in w.servers:
            assert stats["counts"][server] == sum(
                any(c[3] == server for c in cs) for cs in expected.values()
            )
        assert stats["total"] == len(expected)
        assert stats["diff"] == sum(len({c[3] for c in cs}) < 2 for cs in expected.values())
        assert stats["total"] > 5000 and 0 < stats["diff"] < stats["total"] * 0.1
        assert sum(sum(s.values()) for s in stats["skipped"].values()) > 0


# --- xz block size -------------------------------------------------------------------------


def test_row_bytes_of_the_intermediates_add_up_to_the_tweets_csv(tmp_path):
    """The estimate behind the xz block size is exact for one server."""
    w = World(tmp_path, servers=["only"])
    w.add(
        # Counts for the hour before (label 10), though in the hour's first minute file.
        Copy("only", 1, utc(2026, 1, 14, 9, 59, 58), utc(2026, 1, 14, 10, 0, 1)),
        on_time("only", 2, utc(2026, 1, 14, 10, 30), text="Grüße 👋🏽 مرحبا"),
        on_time("only", 3, utc(2026, 1, 14, 10, 31), text='quote "and" comma, newline\n'),
        # Counts for this hour, though in a late-window file after it.
        Copy("only", 4, utc(2026, 1, 14, 10, 59, 59), utc(2026, 1, 14, 11, 0, 3)),
        # Counts for the next hour, in the same late-window file.
        on_time("only", 5, utc(2026, 1, 14, 11, 0, 1)),
    )
    stats, out = w.build(H11)
    assert stats["total"] == 3
    metas = [read_meta(t) for t, _ in w.inputs(H11)["only"]]
    estimate = sum(m["row_bytes"].get(H11.label, 0) for m in metas)
    header, rows = contents(out)["tweets"].split(b"\n", 1)
    assert estimate == len(rows)


@pytest.mark.parametrize(
    ("csv_bytes", "threads", "block"),
    [
        (100 * MIB, 2, int(100 * MIB * 1.02 / 2)),  # one block per thread, 2 % spare
        (100 * MIB, 4, int(100 * MIB * 1.02 / 4)),
        (100 * MIB, 1, 0),  # one thread: xz's single block
        (1000 * MIB, 2, 64 * MIB),  # the 10 % rate: bounded memory
        (1000, 2, MIB),  # a tiny hour: never tiny blocks
    ],
)
def test_tweets_block_size(csv_bytes, threads, block):
    assert tweets_block_size(csv_bytes, threads) == block


# --- phases on their own ---------------------------------------------------------------------


def test_read_inputs_estimates_the_csv_from_the_biggest_server_per_minute(tmp_path):
    """Servers see nearly the same tweets: the estimate is not their sum, but per minute file
    the larger one (a server's outage minute adds nothing)."""
    w = World(tmp_path)
    t1, t2 = utc(2026, 1, 14, 10, 5), utc(2026, 1, 14, 10, 6)
    w.add(on_time("s1", 1, t1), on_time("s2", 1, t1), on_time("s2", 2, t1))  # s2 bigger
    w.add(on_time("s1", 3, t2, text="a longer text " * 5))  # only s1
    inputs = w.inputs(H11)
    start, end = layout.hour_bounds(H11, CET)
    sources = read_inputs(H11, CET, inputs, w.servers, stats_minutes(start, end, None))

    def row_bytes(server, minute):
        (t, _) = next(p for p in inputs[server] if read_meta(p[0])["minute"].startswith(minute))
        return read_meta(t)["row_bytes"][H11.label]

    assert sources.csv_bytes == row_bytes("s2", "2026-01-14T10:05") + row_bytes(
        "s1", "2026-01-14T10:06"
    )
    assert sources.missing == []
    assert len(sources.tweet_files) == len(sources.user_files) == 3
    assert sources.raw_names["s1"] == ["2026-01-14T1105+0100.jsonl", "2026-01-14T1106+0100.jsonl"]


def test_count_servers_from_masks():
    # three servers: bit 0 = a, 1 = b, 2 = c
    per_server, total, diff = count_servers({0b111: 10, 0b011: 2, 0b100: 1}, ["a", "b", "c"])
    assert per_server == {"a": 12, "b": 12, "c": 11}
    assert (total, diff) == (13, 3)
    assert count_servers({0b1: 5}, ["only"]) == ({"only": 5}, 5, 0)
    assert count_servers({}, ["a", "b"]) == ({"a": 0, "b": 0}, 0, 0)


# --- progress of a long merge ----------------------------------------------------------------


class SteppingClock:
    """A monotonic clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.t = 0.0

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def test_merge_progress_is_logged_when_the_interval_passes(tmp_path):
    w = World(tmp_path, servers=["only"])
    t = utc(2026, 1, 14, 10, 30)
    w.add(*(on_time("only", i, t) for i in range(1, 8)))
    log = io.StringIO()
    # Read at the start (10 s), then once a row (rows 1, 2, 3 at 20, 30, 40 s: row 3 is due,
    # its report reads 50 s), rows 4, 5, 6 at 60, 70, 80 s (due, reported at 90 s).
    stats, _ = w.build(H11, log=log, monotonic=SteppingClock(10))
    progress = [line for line in log.getvalue().splitlines() if "merged" in line]
    assert progress == [
        f"{H11}: merged 3 tweets, 0 MiB of about 0 MiB (42%), 40 s",  # 7 rows of equal size
        f"{H11}: merged 6 tweets, 0 MiB of about 0 MiB (85%), 80 s",
    ]
    assert stats["total"] == 7  # progress changes nothing


def test_no_progress_lines_before_the_interval(tmp_path):
    w = World(tmp_path, servers=["only"])
    t = utc(2026, 1, 14, 10, 30)
    w.add(*(on_time("only", i, t) for i in range(1, 8)))
    log = io.StringIO()
    w.build(H11, log=log, monotonic=SteppingClock(1))  # 8 s in all
    assert "merged" not in log.getvalue()
    assert log.getvalue().startswith(f"{H11}: 7 tweets")


def test_merge_progress_share_from_the_estimate():
    log = io.StringIO()
    clock = SteppingClock(45)
    p = MergeProgress(H11, 400 * MIB, log, clock)  # started at 45 s, due at 75 s
    assert p.next_at == 75
    assert p.report(1000, 100 * MIB) == 90 + 30
    assert log.getvalue() == f"{H11}: merged 1000 tweets, 100 MiB of about 400 MiB (25%), 45 s\n"
    p.report(5000, 500 * MIB)  # the estimate fell short: never 100 % before the end
    assert log.getvalue().splitlines()[-1].endswith("(99%), 90 s")
    quiet = io.StringIO()
    MergeProgress(H11, 0, quiet, clock).report(3, 10)  # no estimate: no share
    assert quiet.getvalue() == f"{H11}: merged 3 tweets, 0 MiB, 45 s\n"


def xz_blocks(path: Path) -> list[str]:
    """The filter chain of each block of an .xz file (``xz --robot -lvv``)."""
    out = subprocess.run(["xz", "--robot", "-lvv", str(path)], capture_output=True, text=True)
    return [line.split("\t")[-1] for line in out.stdout.splitlines() if line.startswith("block")]


def test_the_ids_and_users_xz_use_a_small_dictionary(tmp_path):
    """xz -6 through a pipe allocates for its 8 MiB dictionary whatever the input: at 1 % the
    IDs' and users' xz took 46 and 100 MB of a job's memory for 4 and 15 MB of input. The
    sorted IDs compress as well with 256 KiB (6 MB of memory) as with 1 MiB (14 MB)."""
    w = World(tmp_path)
    t = utc(2026, 1, 14, 10, 30)
    w.add(*(on_time("s1", i, t + timedelta(seconds=i % 50)) for i in range(300)))
    _, out = w.build(H11, xz_preset=6, xz_threads=2)
    assert xz_blocks(out["ids"]) == ["--lzma2=dict=256KiB"]
    assert xz_blocks(out["users"]) == ["--lzma2=dict=1MiB"]
    assert xz_blocks(out["tweets"]) == ["--lzma2=dict=8MiB"]  # one block: the hour is tiny


def test_a_one_thread_build_cut_into_the_cron_builds_blocks_writes_the_same_bytes(tmp_path):
    """A backfill job takes one core; given the cron mode's block count it writes the file
    the cron build wrote (xz's multi-threaded encoder for one thread: -T+1), so rebuilding a
    day changes no vault byte, manifest line or replica."""
    w = World(tmp_path)
    t = utc(2026, 1, 14, 10, 30)
    w.add(*(on_time("s1", i, t, text=f"tweet {i} " * 60) for i in range(6000)))  # ~3 MiB
    _, cron = w.build(H11, vault="cron", xz_preset=1, xz_threads=2)
    _, one = w.build(H11, vault="one", xz_preset=1, xz_threads=1, xz_blocks=2)
    assert len(xz_blocks(cron["tweets"])) == 2
    for kind in ("ids", "tweets", "users"):
        assert one[kind].read_bytes() == cron[kind].read_bytes(), kind
