"""Late minute files for a built hour are merged into it: no tweet in the vault is dropped.

Issue 10 item 1: the primary builds an hour alone, retention deletes its raw files, then the
secondary's minutes arrive. The rebuild used to see only the secondary's files: with more
tweets it replaced the hour (the primary's own tweets gone), with fewer it kept the old files
and the secondary's own tweets were never archived.
"""

from __future__ import annotations

import json
import logging
import lzma
import re
import shutil
from datetime import timedelta

import pytest

from ingest import layout
from ingest.hours import hourly
from ingest.hours.hourly import InputError, build_hour
from ingest.hours.vault_source import VaultError
from ingest.vault import records
from ingest.vault.records import record_name
from tests.test_hourly import CET, FAST_XZ, H11, Copy, World, on_time, read_csv, read_ids, utc

T = utc(2026, 1, 14, 10, 30)  # 11:30 CET
MINUTE_1130 = "2026-01-14T1130+0100.jsonl"


def drop_raw(w: World, server: str) -> None:
    """Retention took ``server``'s raw files (and with them its intermediates) of the hour."""
    for key in [k for k in w.files if k[0] == server]:
        del w.files[key]
    shutil.rmtree(w.raw_dir(server))
    shutil.rmtree(w.root / "mid" / server, ignore_errors=True)


def rows_by_id(out) -> dict[str, list[str]]:
    return {r[0]: r for r in read_csv(out["tweets"])[1:]}


def vault_files(out) -> dict[str, bytes]:
    return {k: p.read_bytes() for k, p in out.items()}


def no_temps(out) -> bool:
    """Only the hour's files and its record: no temporary file, no journal."""
    return sorted(p.name for p in out["ids"].parent.iterdir()) == sorted(
        [*(p.name for p in out.values()), record_name(H11.label)]
    )


def primary_alone(w: World, ids, **kw) -> tuple[dict, dict]:
    """The primary builds the hour with the secondary unreachable, then its raw files go."""
    w.add(*(on_time("s1", i, T, text=f"s1 {i}", **kw) for i in ids))
    w.add_raw("s1", T, b"{broken")  # a skipped line the stats keep
    stats, out = w.build(H11)
    assert stats["missing_servers"] == ["s2"]
    drop_raw(w, "s1")
    return stats, out


# --- the two scenarios ---------------------------------------------------------------


def test_late_secondary_with_more_tweets_keeps_the_primarys(tmp_path):
    """Was: the hour was replaced by the secondary's 6 tweets; 1 and 2 were lost."""
    w = World(tmp_path)
    old, out = primary_alone(w, [1, 2, 3, 4])
    w.add(
        # earlier than the vault's row (retrieved 10:30:02): its row wins
        Copy("s2", 3, T, T + timedelta(seconds=1), text="s2 3 earlier"),
        # later than the vault's row: the vault's stays
        Copy("s2", 4, T, T + timedelta(seconds=5), text="s2 4 later"),
        *(on_time("s2", i, T + timedelta(minutes=1), text=f"s2 {i}") for i in (5, 6, 7, 8)),
    )
    stats, _ = w.build(H11)
    assert read_ids(out["ids"]) == [1, 2, 3, 4, 5, 6, 7, 8]
    rows = rows_by_id(out)
    assert len(read_csv(out["tweets"])) == 9  # header + one row per ID
    assert [rows[i][7] for i in "1234"] == ["s1 1", "s1 2", "s2 3 earlier", "s1 4"]
    assert rows["3"][4] == "2026-01-14 10:30:01+00:00"
    assert stats["counts"] == {"s1": 4, "s2": 6}  # the vault's rows count for the primary
    assert (stats["total"], stats["diff"]) == (8, 6)  # seen by both: 3 and 4
    assert stats["missing_servers"] == []
    # the primary's minutes, skipped lines and inputs as its build saw them
    assert stats["minutes"]["s1"] == old["minutes"]["s1"]
    assert stats["minutes"]["s1"]["2026-01-14T11:30+01:00"] == 4
    assert stats["minutes"]["s2"]["2026-01-14T11:31+01:00"] == 4
    assert stats["minutes"]["s2"]["2026-01-14T11:32+01:00"] is None
    assert stats["skipped"] == {"s1": {"invalid_json": 1}, "s2": {}}
    assert stats["inputs"]["s1"] == old["inputs"]["s1"]
    assert list(stats["inputs"]["s2"]) == [MINUTE_1130, "2026-01-14T1131+0100.jsonl"]
    assert json.loads(out["stats"].read_text()) == stats
    assert no_temps(out)


def test_late_secondary_with_fewer_tweets_adds_its_own(tmp_path):
    """Was: the old files were kept, the secondary's 6 never archived, its file marked seen."""
    w = World(tmp_path)
    primary_alone(w, [1, 2, 3, 4, 5])
    w.add(on_time("s2", 4, T, text="s2 4"), on_time("s2", 6, T, text="s2 6"))
    stats, out = w.build(H11)
    assert read_ids(out["ids"]) == [1, 2, 3, 4, 5, 6]
    # the same retrieved_at (to the CSV's second) as the vault's row: the current copy wins
    assert rows_by_id(out)["4"][7] == "s2 4"
    assert rows_by_id(out)["5"][7] == "s1 5"
    assert rows_by_id(out)["6"][7] == "s2 6"
    assert stats["counts"] == {"s1": 5, "s2": 2}
    assert (stats["total"], stats["diff"], stats["diff_pct"]) == (6, 5, 83.33)
    assert stats["skipped"]["s1"] == {"invalid_json": 1}


def test_users_come_from_the_vault_and_the_new_copies(tmp_path):
    w = World(tmp_path)
    # author 7's latest tweet is only in the vault; author 8's latest only in the late file
    w.add(on_time("s1", 1, T + timedelta(minutes=2), author="7", followers=70))
    w.add(on_time("s1", 2, T, author="8", followers=80))
    w.add(on_time("s1", 3, T, author=None))  # no author: no users row
    w.build(H11)
    drop_raw(w, "s1")
    w.add(on_time("s2", 4, T, author="7", followers=71))
    w.add(on_time("s2", 5, T + timedelta(minutes=3), author="8", followers=81))
    stats, out = w.build(H11)
    users = read_csv(out["users"])[1:]
    assert [(u[0], u[8]) for u in users] == [("7", "70"), ("8", "81")]
    assert stats["users"] == 2


def test_vault_rows_are_written_back_byte_for_byte(tmp_path):
    """Quoted commas and "" in the text and the author's fields survive the round trip."""
    w = World(tmp_path)
    tricky = Copy("s1", 10, T, T + timedelta(seconds=2), author="5", text='a, "b"\nc')
    obj = json.loads(tricky.line())
    obj["includes"]["users"][0].update(name='Ann, "the" one', location="x,y", verified="?")
    w.add_raw("s1", T, json.dumps(obj, ensure_ascii=False).encode())
    w.add(on_time("s1", 11, T, author="0006", text="Grüße 👋🏽 مرحبا"))
    _, out = w.build(H11)
    before = {k: lzma.decompress(out[k].read_bytes()) for k in ("tweets", "users")}
    drop_raw(w, "s1")
    w.add(on_time("s2", 12, T, author="9"))
    w.build(H11)
    after = {k: lzma.decompress(out[k].read_bytes()) for k in ("tweets", "users")}
    for k in ("tweets", "users"):
        old_lines = before[k].splitlines(keepends=True)
        new_lines = after[k].splitlines(keepends=True)
        assert new_lines[: len(old_lines)] == old_lines  # s2's sort after them
        assert len(new_lines) == len(old_lines) + 1
    assert read_csv(out["users"])[1][3:5] == ["x,y", 'Ann, "the" one']


def test_both_servers_gone_counts_their_vault_rows_for_both(tmp_path):
    """The documented limit: with two present servers' files gone, which saw what is lost."""
    w = World(tmp_path)
    w.add(on_time("s1", 1, T), on_time("s1", 2, T), on_time("s2", 2, T), on_time("s2", 3, T))
    w.build(H11)
    drop_raw(w, "s1")
    drop_raw(w, "s2")
    w.add(on_time("s2", 4, T + timedelta(minutes=5)))
    stats, out = w.build(H11)
    assert read_ids(out["ids"]) == [1, 2, 3, 4]
    assert stats["counts"] == {"s1": 3, "s2": 4}
    assert (stats["total"], stats["diff"]) == (4, 1)


# --- nothing else changes ----------------------------------------------------------------


def test_a_rebuild_with_every_input_present_is_byte_identical(tmp_path):
    """The vault's copy loses every tie to a current one, to the microsecond of twarc."""
    w = World(tmp_path)
    for i in range(200):
        created = T + timedelta(seconds=i % 40)
        author = str(i % 13) if i % 17 else None
        w.add(
            Copy("s1", i, created, created + timedelta(seconds=1, microseconds=700_000),
                 author=author, text=f'{i}, "q"', followers=i),
            # s2 in the same second, earlier or later: the row is the earliest copy's
            Copy("s2", i, created, created + timedelta(seconds=1, microseconds=i * 4_000),
                 author=author, followers=1000 + i),
        )  # fmt: skip
    w.add(*(on_time("s2", i, T + timedelta(minutes=3)) for i in range(500, 520)))
    # first s1 alone, then s2 arrives while s1's files are all still there
    w.build(H11, servers=["s1"])
    merged, out = w.build(H11)
    scratch, fresh = w.build(H11, vault="fresh")
    assert merged == scratch
    assert vault_files(out) == vault_files(fresh)
    again, _ = w.build(H11, from_scratch=True)  # the switch: the same when nothing is gone
    assert again == scratch and vault_files(out) == vault_files(fresh)
    assert merged["counts"] == {"s1": 200, "s2": 220}


def test_a_crash_before_the_stats_are_written_loses_nothing(tmp_path, monkeypatch):
    """Killed after the .xz renames, before the stats': the next build finishes the commit
    from its journal, then merges what the new tweets file holds. Was: the stats were removed
    first, and the next build, finding no stats, built from the raw files alone."""
    w = World(tmp_path)
    primary_alone(w, [1, 2])
    w.add(on_time("s2", 3, T))

    def crash(self, *, sync_dir=True):
        raise OSError("power cut before the stats were written")

    monkeypatch.setattr(hourly.StagedFile, "commit", crash)
    with pytest.raises(OSError, match="power cut"):
        w.build(H11)
    monkeypatch.undo()
    stats, out = w.build(H11)
    assert read_ids(out["ids"]) == [1, 2, 3]
    # (s1's count takes in s2's tweet too: the tweets file read was the crashed build's)
    assert (stats["total"], stats["counts"]["s2"]) == (3, 1)


# --- from_scratch ----------------------------------------------------------------------------


def test_from_scratch_is_refused_when_raw_files_are_gone(tmp_path):
    w = World(tmp_path)
    primary_alone(w, [1, 2])
    w.add(on_time("s2", 3, T))
    out = layout.vault_paths(tmp_path / "vault", H11)
    before = vault_files(out)
    with pytest.raises(InputError, match=f"from_scratch refused.*s1: {re.escape(MINUTE_1130)}"):
        w.build(H11, from_scratch=True)
    assert vault_files(out) == before
    assert no_temps(out)


def test_from_scratch_drops_tweets_only_the_vault_holds(tmp_path):
    """A minute file whose content changed (same name): the merge keeps the tweet it lost,
    counted in the total for no server; from_scratch rebuilds from the files alone."""
    w = World(tmp_path, servers=["s1"])
    w.add(*(on_time("s1", i, T) for i in (1, 2, 3)))
    w.build(H11)
    w.files[("s1", T)].pop()  # the file now holds 1 and 2 only
    stats, out = w.build(H11)
    assert read_ids(out["ids"]) == [1, 2, 3]
    assert (stats["counts"], stats["total"]) == ({"s1": 2}, 3)
    stats, out = w.build(H11, from_scratch=True)
    assert read_ids(out["ids"]) == [1, 2]
    assert (stats["counts"], stats["total"]) == ({"s1": 2}, 2)


# --- a damaged or broken old build -------------------------------------------------------------


def test_damaged_stats_merge_the_old_tweets_for_no_server(tmp_path, caplog):
    """Was: a StatsError on every run, the hour never built again."""
    w = World(tmp_path)
    _, out = primary_alone(w, [1, 2])
    out["stats"].write_text('{"total": 12')
    w.add(on_time("s2", 2, T), on_time("s2", 3, T))
    with caplog.at_level(logging.WARNING):
        stats, _ = w.build(H11, log=logging.getLogger("hourly"))
    assert "2026-01-14_11_stats.json" in caplog.text and "unknown inputs" in caplog.text
    assert read_ids(out["ids"]) == [1, 2, 3]
    assert stats["counts"] == {"s1": 0, "s2": 2}  # which server held 1 is unknown
    assert stats["total"] == 3
    assert json.loads(out["stats"].read_text()) == stats


def test_damaged_stats_and_unreadable_tweets_build_from_the_raw_files(tmp_path, caplog):
    """Only when asked (from_scratch): by default the rebuild is refused (test_vault_generations),
    since the record says the vault held tweets the raw files no longer have."""
    w = World(tmp_path)
    _, out = primary_alone(w, [1, 2])
    out["stats"].write_text("[]")
    out["tweets"].write_bytes(out["tweets"].read_bytes()[:40])
    w.add(on_time("s2", 3, T))
    with caplog.at_level(logging.WARNING):
        stats, _ = w.build(H11, log=logging.getLogger("hourly"), from_scratch=True)
    assert "with 1 tweets; the vault held 2" in caplog.text
    assert read_ids(out["ids"]) == [3]
    assert stats["total"] == 1


@pytest.mark.parametrize("damage", ["truncated", "missing", "not_csv"])
def test_an_unreadable_old_tweets_file_stops_the_build(tmp_path, damage):
    """Was: the old tweets file was never read; the rebuild replaced or ignored it."""
    w = World(tmp_path)
    _, out = primary_alone(w, range(1, 200))
    data = out["tweets"].read_bytes()
    if damage == "truncated":
        out["tweets"].write_bytes(data[: len(data) // 2])
    elif damage == "missing":
        out["tweets"].unlink()
    else:
        out["tweets"].write_bytes(lzma.compress(b"id,text\n1,x\n", format=lzma.FORMAT_XZ))
    w.add(*(on_time("s2", i, T) for i in range(150, 400)))
    present = {k: p for k, p in out.items() if p.exists()}
    before = vault_files(present)
    with pytest.raises(VaultError, match=r"2026-01-14_11_tweets\.csv\.xz"):
        w.build(H11)
    assert vault_files(present) == before
    assert sorted(p.name for p in out["ids"].parent.iterdir()) == sorted(
        [*(p.name for p in present.values()), record_name(H11.label)]
    )


def test_a_merge_with_fewer_tweets_than_the_record_writes_nothing(tmp_path):
    """A merge that comes out smaller than the record says the vault held: a bug or damage,
    never a result (here a record that claims more rows than its intact tweets file has)."""
    w = World(tmp_path)
    _, out = primary_alone(w, [1, 2, 3])
    path = out["stats"].parent / record_name(H11.label)
    record = records.read_record(path)
    tweets = record.files[out["tweets"].name]
    files = {**record.files, out["tweets"].name: records.FileEntry(tweets.sha256, tweets.bytes, 9)}
    records.write_record(path, records.HourRecord(record.hour, record.generation, files))
    w.add(on_time("s2", 4, T))
    before = vault_files(out)
    with pytest.raises(VaultError, match="fewer than the 9"):
        w.build(H11)
    assert vault_files(out) == before
    assert no_temps(out)


def test_only_a_built_hour_reads_the_vault(tmp_path, monkeypatch):
    """A first build costs nothing extra; a tweets file without stats is not an hour built."""
    read = []
    monkeypatch.setattr(hourly, "VaultSource", lambda *a, **kw: read.append(a))
    out = layout.vault_paths(tmp_path / "vault", H11)
    out["tweets"].parent.mkdir(parents=True)
    out["tweets"].write_bytes(b"left by a build killed before its stats")
    build_hour(H11, CET, {}, out, server_names=["s1"], **FAST_XZ)
    assert read == []
    build_hour(H11, CET, {}, out, server_names=["s1"], **FAST_XZ)  # now it is built
    assert [a[0] for a in read] == [out["tweets"]]


def test_rot_in_the_stats_does_not_pass_into_the_next_generation(tmp_path, caplog):
    """The soak's flip in a stats file's input name: the plan took it for new input, and the
    rebuild carried the damaged name into generation 2, vouched for by its new record."""
    w = World(tmp_path)
    _, out = primary_alone(w, [1, 2])
    data = out["stats"].read_bytes()
    out["stats"].write_bytes(data.replace(b"T1130", b"T11#0", 1))  # one bit, still JSON
    w.add(on_time("s2", 3, T))
    with caplog.at_level(logging.WARNING):
        stats, _ = w.build(H11, log=logging.getLogger("hourly"))
    assert "differs from its record" in caplog.text
    assert read_ids(out["ids"]) == [1, 2, 3]
    assert not any("T11#0" in name for files in stats["inputs"].values() for name in files)
