"""Parsing raw lines into tweet records and the seed's CSV fields.

The real payloads in ../shared/fixtures/twitter-v2 are checked field by field against an
independent, straightforward reading of the same JSON, formatted with the csv module.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from ingest.hours.parse import (
    TWEET_COLUMNS,
    USER_COLUMNS,
    format_row,
    iter_lines,
    parse_line,
    time_key,
)

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "twitter-v2"


def fixture(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"real payload fixture {path} not present (needs ../shared beside the repo)")
    return path


# --- an independent reference: what each column must hold --------------------------------


def _one_line(v: str) -> str:
    return v.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def _ts(v: str | None) -> str:
    if not v:
        return ""
    from datetime import UTC, datetime

    return (
        datetime.fromisoformat(v.replace("Z", "+00:00"))
        .astimezone(UTC)
        .strftime("%Y-%m-%d %H:%M:%S+00:00")
    )


def _val(v) -> str:
    if v is None:
        return ""
    if v is True:
        return "true"
    if v is False:
        return "false"
    return _one_line(str(v))


def expected_row(tweet: dict, user: dict | None, retrieved: str | None) -> list[str]:
    refs = tweet.get("referenced_tweets") or []
    u = user or {}
    pm = u.get("public_metrics", {})
    return [
        tweet["id"],
        _val(tweet.get("conversation_id")),
        _val(tweet.get("author_id")),
        _ts(tweet["created_at"]),
        _ts(retrieved),
        _val(tweet.get("source")),
        _val(tweet.get("lang")),
        _val(tweet.get("text")),
        refs[0]["type"] if refs else "original",
        refs[0]["id"] if refs else "",
        _ts(u.get("created_at")),
        _val(u.get("location")),
        _val(u.get("name")),
        _val(u.get("username")),
        _val(u.get("verified")),
        _val(u.get("protected")),
        _val(pm.get("followers_count")),
        _val(pm.get("following_count")),
        _val(pm.get("tweet_count")),
        _val(pm.get("listed_count")),
    ]


def csv_line(fields: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_MINIMAL, lineterminator="\n").writerow(fields)
    return buf.getvalue()[:-1]


def user_of(obj: dict, author_id: str | None) -> dict | None:
    for u in obj.get("includes", {}).get("users", []):
        if u["id"] == author_id:
            return u
    return None


def stream_line(
    tweet: dict, users: list[dict] | None = None, retrieved: str | None = None
) -> bytes:
    obj: dict = {"data": tweet}
    if users is not None:
        obj["includes"] = {"users": users}
    if retrieved is not None:
        obj["__twarc"] = {"url": "https://example", "version": "2.14.0", "retrieved_at": retrieved}
    return json.dumps(obj, ensure_ascii=False).encode()


TWEET = {
    "id": "1499000000000000001",
    "conversation_id": "1499000000000000001",
    "author_id": "42",
    "created_at": "2022-03-03T14:12:18.000Z",
    "source": "Twitter for iPhone",
    "lang": "de",
    "text": "hello",
}
USER = {
    "id": "42",
    "created_at": "2010-01-02T03:04:05.000Z",
    "name": "Ada",
    "username": "ada",
    "location": "Wien",
    "verified": False,
    "protected": True,
    "public_metrics": {
        "followers_count": 10,
        "following_count": 20,
        "tweet_count": 30,
        "listed_count": 0,
    },
}


def only_tweet(raw: bytes, **kw):
    line = parse_line(raw, **kw)
    assert line.kind == "tweets", (line.kind, line.reason)
    assert len(line.tweets) == 1
    return line.tweets[0]


# --- timestamps ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("2022-03-03T14:12:18.000Z", "2022-03-03T14:12:18.000000+00:00"),
        ("2022-03-03T14:12:18.123Z", "2022-03-03T14:12:18.123000+00:00"),
        ("2021-04-08T20:41:43+00:00", "2021-04-08T20:41:43.000000+00:00"),
        ("2021-04-08T20:41:43.123456+00:00", "2021-04-08T20:41:43.123456+00:00"),
        ("2021-04-08T22:41:43+02:00", "2021-04-08T20:41:43.000000+00:00"),  # slow path
        ("2021-04-08T20:41:43Z", "2021-04-08T20:41:43.000000+00:00"),
        ("2021-04-08 20:41:43", "2021-04-08T20:41:43.000000+00:00"),  # naive: UTC
        ("yesterday", None),
        ("", None),
        (None, None),
        (12345, None),
    ],
)
def test_time_key(value, key):
    assert time_key(value) == key


TIMESTAMP_FORMATS = [
    "2026-01-14T09:05:02.000Z",  # API
    "2026-01-14T09:05:02+00:00",  # twarc
    "2026-01-14T09:05:02.123456+00:00",  # twarc with microseconds
]


def malformed(value: str) -> list[str]:
    """``value`` with each character in turn replaced by a CSV- or format-breaking one."""
    return [value[:i] + c + value[i + 1 :] for i in range(len(value)) for c in ',\n"x'] + [
        value[:i] + "\u0663" + value[i + 1 :]
        for i in range(len(value))  # a non-ASCII digit
    ]


@pytest.mark.parametrize("value", TIMESTAMP_FORMATS)
def test_time_key_of_a_malformed_timestamp_is_none_or_a_clean_key(value):
    # The fast paths once checked only some positions: "...T09:05\n02.000Z" became a key
    # with a newline in it, and with it a tweets row of 4 fields.
    for bad in malformed(value):
        key = time_key(bad)
        if key is not None:
            assert len(key) == 32 and key.isascii(), repr(bad)
            assert datetime.fromisoformat(key).isoformat(timespec="microseconds") == key


def test_time_keys_sort_as_text_in_time_order():
    values = [
        "2021-04-08T20:41:43.5+00:00",
        "2021-04-08T20:41:43+00:00",
        "2021-04-08T21:41:42+01:00",
        "2021-04-08T20:41:43.000001+00:00",
    ]
    keys = [time_key(v) for v in values]
    assert all(len(k) == 32 for k in keys)
    by_text = [values[i] for i in sorted(range(4), key=lambda i: keys[i])]
    by_time = sorted(values, key=datetime.fromisoformat)
    assert by_text == by_time


# --- the real sampled-stream lines ---------------------------------------------------------


def test_all_522_sample_stream_lines_match_their_json():
    path = fixture("sample-stream-lines.jsonl")
    data = path.read_bytes()
    n = with_author = with_newline = 0
    for _, raw, unterminated in iter_lines(data):
        obj = orjson.loads(raw)
        tweet = obj["data"]
        user = user_of(obj, tweet.get("author_id"))
        t = only_tweet(raw, unterminated=unterminated, default_retrieved=None)
        expected = expected_row(tweet, user, None)
        assert t.row == expected
        assert t.tweet_csv == csv_line(expected)  # RFC 4180 as the csv module writes it
        assert t.id == int(tweet["id"])
        assert t.id_key == tweet["id"].zfill(20)
        assert t.has_author == (user is not None)
        assert "\n" not in t.tweet_csv and "\r" not in t.tweet_csv
        if user is not None:
            assert t.user_row() == [tweet["author_id"], tweet["lang"], *expected[10:]]
            assert t.user_csv == csv_line(t.user_row())
            with_author += 1
        with_newline += "\n" in tweet["text"]
        n += 1
    assert n == 522
    assert with_author == 516  # 6 lines of the fixture have no author
    assert with_newline > 100  # the fixture exercises the newline rule


def test_fixture_field_formats():
    """Formats as the seed's files show them, checked on every line of the real sample."""
    import re

    ts = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\+00:00$")
    for _, raw, _ in iter_lines(fixture("sample-stream-lines.jsonl").read_bytes()):
        row = only_tweet(raw, default_retrieved="2026-01-14T10:06:00.000000+00:00").row
        assert len(row) == len(TWEET_COLUMNS) == 20
        assert ts.match(row[3]) and row[4] == ""  # no __twarc: not retrieved at a known time
        assert row[0].isdigit() and row[1].isdigit() and row[2].isdigit()
        assert row[8] in {"original", "retweeted", "quoted", "replied_to"}
        assert (row[9] == "") == (row[8] == "original")
        if row[10]:
            assert ts.match(row[10])
            assert row[14] in {"true", "false"} and row[15] in {"true", "false"}
            assert all(v.isdigit() for v in row[16:20])
        else:
            assert row[10:] == [""] * 10


def test_cut_last_line_is_truncated():
    data = fixture("streaming_output_with_error.jsonl").read_bytes()
    kinds = []
    for _, raw, unterminated in iter_lines(data):
        line = parse_line(raw, unterminated=unterminated)
        kinds.append(line.reason if line.kind == "skipped" else line.kind)
    assert kinds == ["tweets"] * 7 + ["truncated"]


def test_filtered_stream_lines_take_retrieved_at_from_twarc():
    data = fixture("streaming_output_with_error.jsonl").read_bytes()
    _, raw, _ = next(iter_lines(data))
    t = only_tweet(raw)
    assert t.retrieved_key == "2021-04-01T15:52:42.000000+00:00"
    assert t.row[4] == "2021-04-01 15:52:42+00:00"


@pytest.mark.parametrize("name", ["noflat.jsonl", "2sets.jsonl", "kpop.jsonl", "brexit.jsonl"])
def test_response_pages_give_every_tweet_with_its_author(name):
    for _, raw, _ in iter_lines(fixture(name).read_bytes()):
        obj = orjson.loads(raw)
        line = parse_line(raw)
        assert line.kind == "tweets"
        assert [t.id for t in line.tweets] == [int(t["id"]) for t in obj["data"]]
        retrieved = obj["__twarc"]["retrieved_at"]
        for t, src in zip(line.tweets, obj["data"], strict=True):
            user = user_of(obj, src["author_id"])
            assert user is not None
            assert t.row == expected_row(src, user, retrieved)


def test_withheld_page_has_tweets_without_author():
    lines = [parse_line(raw) for _, raw, _ in iter_lines(fixture("withheld.jsonl").read_bytes())]
    tweets = [t for line in lines for t in line.tweets]
    assert len(tweets) == 215
    missing = [t for t in tweets if not t.has_author]
    assert len(missing) == 6
    for t in missing:
        assert t.row[10:] == [""] * 10
        assert t.author.count(",") == 9


def test_flat_tweets_take_the_folded_author():
    n = 0
    for _, raw, _ in iter_lines(fixture("flat.jsonl").read_bytes()):
        obj = orjson.loads(raw)
        t = only_tweet(raw)
        assert t.row == expected_row(obj, obj["author"], obj["__twarc"]["retrieved_at"])
        assert t.has_author
        n += 1
    assert n == 100


# --- line kinds ------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"\r", b"  ", b" \t\r"])
def test_blank_lines_are_keepalives(raw):
    assert parse_line(raw).kind == "keepalive"


def test_errors_only_line_is_an_error_message():
    raw = json.dumps(
        {
            "errors": [
                {"title": "operational-disconnect", "disconnect_type": "OperationalDisconnect"}
            ]
        }
    ).encode()
    line = parse_line(raw)
    assert line.kind == "error_message"
    assert line.tweets == []


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"data": {"id": "1", "text": "\xff\xfe"}}', "invalid_utf8"),
        (b'{"data": {"id": "1", "text": "caf\xc3"}}', "invalid_utf8"),
        (b'{"data": {"id": "1"', "invalid_json"),
        (b"not json at all", "invalid_json"),
        (b"[1, 2, 3]", "not_object"),
        (b'"a string"', "not_object"),
        (b"42", "not_object"),
        (b"null", "not_object"),
        (b'{"meta": {"result_count": 0}}', "no_tweet"),
        (b'{"data": {"text": "no id", "created_at": "2022-03-03T14:12:18.000Z"}}', "bad_id"),
        (b'{"data": {"id": "12x", "created_at": "2022-03-03T14:12:18.000Z"}}', "bad_id"),
        (b'{"data": {"id": "-5", "created_at": "2022-03-03T14:12:18.000Z"}}', "bad_id"),
        (
            b'{"data": {"id": "123456789012345678901", "created_at": "2022-03-03T14:12:18.000Z"}}',
            "bad_id",
        ),
        (b'{"data": {"id": "1"}}', "bad_created_at"),
        (b'{"data": {"id": "1", "created_at": "soon"}}', "bad_created_at"),
        (b'{"data": []}', "no_tweet"),
        (b'{"data": [1, 2]}', "no_tweet"),
        (b'{"data": "text"}', "no_tweet"),
    ],
)
def test_unusable_lines_are_skipped_with_a_reason(raw, reason):
    line = parse_line(raw)
    assert line.kind == "skipped"
    assert line.reason == reason
    assert line.tweets == []


def test_an_unterminated_last_line_that_parses_is_kept():
    raw = stream_line(TWEET, [USER])
    assert only_tweet(raw, unterminated=True).id == 1499000000000000001
    assert parse_line(raw[:-5], unterminated=True).reason == "truncated"
    assert parse_line(raw[:-5], unterminated=False).reason == "invalid_json"


def test_iter_lines_numbers_lines_and_flags_the_unterminated_last():
    assert list(iter_lines(b"a\nb\n")) == [(1, b"a", False), (2, b"b", False)]
    assert list(iter_lines(b"a\n\nc")) == [(1, b"a", False), (2, b"", False), (3, b"c", True)]
    assert list(iter_lines(b"")) == []


def test_page_with_one_bad_tweet_keeps_the_others():
    page = {
        "data": [TWEET, {"id": "x"}, {**TWEET, "id": "7"}, "junk"],
        "includes": {"users": [USER]},
    }
    line = parse_line(json.dumps(page).encode())
    assert line.kind == "tweets"
    assert [t.id for t in line.tweets] == [1499000000000000001, 7]
    assert line.dropped == ["bad_id", "no_tweet"]


def test_page_with_data_and_errors_is_read_for_its_data():
    page = {"data": [TWEET], "includes": {"users": [USER]}, "errors": [{"title": "x"}]}
    assert parse_line(json.dumps(page).encode()).tweets[0].has_author


def test_lone_surrogate_in_text_falls_back_to_the_json_module():
    raw = b'{"data": {"id": "5", "created_at": "2022-03-03T14:12:18.000Z", "text": "a\\ud800b"}}'
    t = only_tweet(raw)
    assert t.id == 5
    assert t.row[7] == "a\ud800b"  # kept; written as U+FFFD-free UTF-8 later ("replace")


# --- CSV fields ------------------------------------------------------------------------------


def test_newlines_in_text_and_author_fields_become_one_space():
    tweet = {**TWEET, "text": "one\r\ntwo\nthree\rfour\n\nfive", "source": "my\napp"}
    user = {**USER, "name": "A\r\nB", "location": "Here\nThere", "username": "u\rv"}
    row = only_tweet(stream_line(tweet, [user])).row
    assert row[7] == "one two three four  five"
    assert row[5] == "my app"
    assert row[12] == "A B"
    assert row[11] == "Here There"
    assert row[13] == "u v"


def test_newlines_in_other_fields_never_break_a_record():
    tweet = {**TWEET, "lang": "e\nn", "conversation_id": "1\r2"}
    t = only_tweet(stream_line(tweet, [USER]))
    assert "\n" not in t.tweet_csv and "\r" not in t.tweet_csv
    assert t.row[6] == "e n" and t.row[1] == "1 2"


def test_quoting_commas_and_quotes():
    tweet = {**TWEET, "text": 'She said "hi", then left', "source": "a,b"}
    user = {**USER, "name": 'The "Best"', "location": "Berlin, Germany"}
    t = only_tweet(stream_line(tweet, [user]))
    assert '"She said ""hi"", then left"' in t.tweet_csv
    assert ',"a,b",' in t.tweet_csv
    assert '"The ""Best"""' in t.tweet_csv
    assert '"Berlin, Germany"' in t.tweet_csv
    assert t.row[7] == 'She said "hi", then left'
    assert t.row[11] == "Berlin, Germany"


def test_booleans_counts_and_timestamps():
    row = only_tweet(stream_line(TWEET, [USER], "2022-03-03T14:12:19.654321+00:00")).row
    assert row[3] == "2022-03-03 14:12:18+00:00"
    assert row[4] == "2022-03-03 14:12:19+00:00"
    assert row[10] == "2010-01-02 03:04:05+00:00"
    assert row[14:16] == ["false", "true"]
    assert row[16:20] == ["10", "20", "30", "0"]


def test_missing_author_gives_empty_author_fields():
    t = only_tweet(stream_line(TWEET, []))
    assert not t.has_author
    assert t.row[2] == "42"  # author_id is a tweet field
    assert t.row[10:] == [""] * 10
    t = only_tweet(stream_line(TWEET))  # no includes at all
    assert t.row[10:] == [""] * 10


def test_author_is_the_includes_user_whose_id_is_author_id():
    other = {**USER, "id": "43", "name": "Not the author"}
    row = only_tweet(stream_line(TWEET, [other, USER])).row
    assert row[12] == "Ada"


def test_missing_source_and_partial_user_are_empty():
    tweet = {k: v for k, v in TWEET.items() if k != "source"}
    user = {"id": "42", "username": "ada"}
    row = only_tweet(stream_line(tweet, [user])).row
    assert row[5] == ""
    assert row[10:] == ["", "", "", "ada", "", "", "", "", "", ""]


def test_reference_from_the_first_referenced_tweet():
    tweet = {
        **TWEET,
        "referenced_tweets": [{"type": "quoted", "id": "11"}, {"type": "replied_to", "id": "12"}],
    }
    row = only_tweet(stream_line(tweet, [USER])).row
    assert row[8:10] == ["quoted", "11"]
    row = only_tweet(stream_line({**TWEET, "referenced_tweets": []}, [USER])).row
    assert row[8:10] == ["original", ""]
    row = only_tweet(stream_line(TWEET, [USER])).row
    assert row[8:10] == ["original", ""]


def test_multilingual_and_emoji_text_survive():
    text = 'Ünïcödé 日本語のテキスト 🎉👩‍👩‍👧 العربية עברית, "quoted"'
    t = only_tweet(stream_line({**TWEET, "text": text}, [{**USER, "name": "Zoë 🌸"}]))
    assert t.row[7] == text
    assert t.row[12] == "Zoë 🌸"
    assert t.tweet_csv == csv_line(t.row)
    assert t.tweet_csv.encode("utf-8").decode("utf-8") == t.tweet_csv


def test_ids_as_numbers_and_with_leading_zeros_are_normalised():
    t = only_tweet(stream_line({**TWEET, "id": 99}, [USER]))
    assert t.row[0] == "99" and t.id_key == "00000000000000000099"
    t = only_tweet(stream_line({**TWEET, "id": "0099"}, [USER]))
    assert t.row[0] == "99" and t.id == 99


def test_format_row_matches_the_csv_module():
    samples = [
        ["plain", "a,b", 'q"q', "", " lead", "trail ", "x\ny", "x\r\ny", "é, ü", '"', ","],
        ["", "", ""],
        ['a"b,c', "tab\there", "semi;colon"],
    ]
    for fields in samples:
        cleaned = [f.replace("\r\n", " ").replace("\n", " ").replace("\r", " ") for f in fields]
        assert format_row(fields) == csv_line(cleaned)
    assert format_row(TWEET_COLUMNS) == ",".join(TWEET_COLUMNS)
    assert format_row(USER_COLUMNS) == ",".join(USER_COLUMNS)
