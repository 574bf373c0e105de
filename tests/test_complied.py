"""Issue 24: the complied-ID set (``ingest.complied``): the day log's format and what a raw
line keeps of a complied post or account, for every raw line shape the build reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest import complied
from ingest.complied import ComplianceLogError, Complied, Entry


def stream_line(tid: int, author: int, includes_tweets=()) -> bytes:
    obj = {
        "data": {"id": str(tid), "author_id": str(author), "text": "t"},
        "includes": {
            "users": [{"id": str(author), "username": f"u{author}"}],
            "tweets": [
                {"id": str(t), "author_id": str(a), "text": "q"} for t, a in includes_tweets
            ],
        },
        "__twarc": {"retrieved_at": "2026-01-14T10:00:01+00:00"},
    }
    return json.dumps(obj).encode() + b"\n"


C = Complied(posts={11: "deleted"}, accounts={900: "suspended"})


def test_a_complied_post_or_account_drops_its_stream_line() -> None:
    assert complied.scrub_line(stream_line(11, 5), C) is None
    assert complied.scrub_line(stream_line(12, 900), C) is None
    kept = stream_line(12, 5)
    assert complied.scrub_line(kept, C) is kept


def test_includes_lose_complied_posts_and_accounts_the_line_stays() -> None:
    line = stream_line(12, 5, includes_tweets=[(11, 7), (13, 900), (14, 7)])
    new = complied.scrub_line(line, C)
    assert new is not None and new.endswith(b"\n")
    obj = json.loads(new)
    assert obj["data"]["id"] == "12"
    assert [t["id"] for t in obj["includes"]["tweets"]] == ["14"]
    assert complied.scrub_line(new, C) is new  # deterministic: a second pass changes nothing


def test_a_page_keeps_its_other_tweets_and_a_flattened_tweet_goes() -> None:
    page = {"data": [{"id": "11", "author_id": "5"}, {"id": "12", "author_id": "5"}]}
    obj = json.loads(complied.scrub_line(json.dumps(page).encode(), C))
    assert [t["id"] for t in obj["data"]] == ["12"]
    flat = json.dumps({"id": "13", "author_id": "900", "author": {"id": "900"}}).encode()
    assert complied.scrub_line(flat, C) is None
    for other in (b"not json\n", b"\n", b'{"errors": [{"title": "x"}]}\n'):
        assert complied.scrub_line(other, C) is other


def test_scrub_bytes_counts_and_keeps_an_untouched_file_as_it_is() -> None:
    data = stream_line(11, 5) + stream_line(12, 5) + stream_line(13, 900)
    new, changed = complied.scrub_bytes(data, C)
    assert changed == 2 and new == stream_line(12, 5)
    same = stream_line(12, 5)
    assert complied.scrub_bytes(same, C) == (same, 0)
    assert complied.scrub_bytes(data, Complied()) == (data, 0)


def test_the_log_lists_each_id_once_and_reads_back(tmp_path: Path) -> None:
    entries = [
        Entry(11, "tweets", "deleted", "2026-01-20"),
        Entry(900, "users", "suspended", "2026-01-20"),
        Entry(11, "tweets", "protected", "2026-01-27"),  # a later pass: the first stays
    ]
    text = complied.format_log(entries)
    assert text.splitlines()[1:] == [
        "11\ttweets\tdeleted\t2026-01-20",
        "900\tusers\tsuspended\t2026-01-20",
    ]
    path = complied.log_path(tmp_path, "2026-01-14")
    path.parent.mkdir()
    path.write_text(text)
    found = complied.for_day(tmp_path, "2026-01-14")
    assert found.posts == {11: "deleted"} and found.accounts == {900: "suspended"}
    # A minute file just after midnight also consults the day before's log.
    assert complied.around(tmp_path, "2026-01-15").posts == {11: "deleted"}
    assert not complied.for_day(tmp_path, "2026-01-13")


def test_a_broken_log_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "2026-01-14_compliance.tsv"
    path.write_text(complied.HEADER + "11\ttweets\tdeleted\t2026-01-20\nbroken line\n")
    with pytest.raises(ComplianceLogError, match=r"2026-01-14_compliance.tsv: line 3"):
        complied.read_log(path)
