"""One raw line of a minute file -> tweet records with the seed's CSV fields.

This is the hot path of the build (every line of every server's minute files passes through
here once), so it stays lean: orjson on bytes, string slicing instead of datetime objects for
the API's fixed timestamp formats (with a datetime fallback for anything else), no pandas.

Line kinds:
- stream line ``{"data": {tweet}, "includes": {"users": [...]}, "__twarc": {...}}``;
- response page, ``data`` a list (search/lookup pages that twarc writes);
- the seed's flattened tweet (tweet fields at the top level, ``author`` folded in);
- blank or whitespace-only line: a keep-alive;
- ``{"errors": [...]}`` without data: an operational/disconnect message;
- anything else is skipped with a reason (see ``REASONS``).

Timestamps are carried as fixed-width UTC strings ``YYYY-mm-ddTHH:MM:SS.ffffff+00:00``
(``*_key``): they sort as text in time order, which lets later stages merge sorted files
as plain bytes.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

import orjson

TWEET_COLUMNS = (
    "id",
    "conversation_id",
    "author_id",
    "created_at",
    "retrieved_at",
    "source",
    "lang",
    "text",
    "reference_type",
    "referenced_tweet_id",
    "author.created_at",
    "author.location",
    "author.name",
    "author.username",
    "author.verified",
    "author.protected",
    "author.public_metrics.followers_count",
    "author.public_metrics.following_count",
    "author.public_metrics.tweet_count",
    "author.public_metrics.listed_count",
)
# Index of the first author column in a tweet row; a users row is [author_id, lang] + row[A:].
AUTHOR_START = TWEET_COLUMNS.index("author.created_at")
USER_COLUMNS = ("author_id", "lang", *TWEET_COLUMNS[AUTHOR_START:])

# Why a line (or one tweet of a page) was not used.
REASONS = {
    "invalid_utf8": "line is not valid UTF-8",
    "invalid_json": "line is not valid JSON",
    "truncated": "last line of the file is cut (no newline, not valid JSON)",
    "not_object": "JSON is not an object",
    "no_tweet": "object holds no tweet (no data, no id)",
    "bad_id": "tweet id missing or not a number",
    "bad_created_at": "tweet created_at missing or not a timestamp",
    "error_message": "API error/disconnect message, no tweet",
}

_METRICS = ("followers_count", "following_count", "tweet_count", "listed_count")


# --- field formatting -----------------------------------------------------------------------


def clean(value: str) -> str:
    """One record is one line: each CR LF, LF or CR becomes one space."""
    if "\n" in value or "\r" in value:
        return value.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return value


def fmt(value: object) -> str:
    """A JSON value as its CSV field: absent empty, booleans true/false, numbers as is.

    Newlines are replaced later, for the whole row (``format_row``).
    """
    t = type(value)
    if t is str:
        return value  # type: ignore[return-value]
    if value is None:
        return ""
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return str(value)
    if t is float:
        return str(int(value)) if value.is_integer() else repr(value)  # type: ignore[union-attr]
    # Not expected in these fields: keep it, as compact JSON.
    return orjson.dumps(value).decode()


def _slow_key(value: str) -> str | None:
    """Any ISO 8601 instant -> fixed-width UTC key; naive means UTC; None if not a timestamp."""
    try:
        dt = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC).isoformat(timespec="microseconds")
    except (OverflowError, ValueError):
        return None


# The fast paths' formats, every character checked: a key is copied into CSV rows and
# intermediate lines as is, so a stray comma, quote or newline must never get through. One
# compiled match costs about what the few slice checks did.
DATE_TIME = r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d"
# The fractions and zones of the fast paths, after DATE_TIME: API, twarc, twarc with microseconds.
UTC_TAILS = (r"\.\d{3}Z", r"\+00:00", r"\.\d{6}\+00:00")
_API_TIME, _TWARC_TIME, _TWARC_TIME_US = (
    re.compile(DATE_TIME + tail, re.ASCII).fullmatch for tail in UTC_TAILS
)


def time_key(value: object) -> str | None:
    """Fixed-width UTC key ``YYYY-mm-ddTHH:MM:SS.ffffff+00:00`` of an API or twarc timestamp."""
    if type(value) is not str:
        return None
    n = len(value)
    # API: 2022-03-03T14:12:18.000Z
    if n == 24 and _API_TIME(value):
        return value[:23] + "000+00:00"
    # twarc: 2021-04-08T20:41:43+00:00 or 2021-04-08T20:41:43.123456+00:00
    if n == 25 and _TWARC_TIME(value):
        return value[:19] + ".000000+00:00"
    if n == 32 and _TWARC_TIME_US(value):
        return value
    return _slow_key(value)


def key_to_csv(key: str) -> str:
    """Fixed-width key -> the seed's ``YYYY-mm-dd HH:MM:SS+00:00``."""
    return key[:10] + " " + key[11:19] + "+00:00"


def key_to_datetime(key: str) -> datetime:
    return datetime.fromisoformat(key)


def datetime_key(dt: datetime) -> str:
    """Aware datetime -> fixed-width UTC key."""
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def fmt_time(value: object) -> str:
    """A timestamp field as the seed writes it; empty when absent or unreadable."""
    key = time_key(value)
    return key_to_csv(key) if key is not None else ""


# --- records --------------------------------------------------------------------------------


@dataclass(slots=True)
class Tweet:
    """One copy of a tweet as read from one line, with its CSV fields ready to write.

    ``head`` holds the tweets-CSV columns id .. referenced_tweet_id: ``head_pre`` (id ..
    created_at and a comma), ``retrieved_csv``, ``head_post`` (a comma, source ..
    referenced_tweet_id); ``author`` the ten author columns; all formatted CSV (quoted where
    needed, no newlines), so a tweet row is ``head + "," + author``. ``lang`` is in CSV form
    too.
    """

    id_key: str  # the ID zero-padded to 20 digits (sorts as text in numeric order)
    created_key: str  # fixed-width UTC
    retrieved_key: str | None  # fixed-width UTC: the line's __twarc, else the default given
    retrieved_csv: str  # the CSV's retrieved_at: empty when the line had no __twarc time
    author_id: str  # as in the data, "" when absent
    lang: str
    head_pre: str
    head_post: str
    author: str
    has_author: bool

    @property
    def head(self) -> str:
        return self.head_pre + self.retrieved_csv + self.head_post

    def retrieved(self, key: str | None, known: bool) -> Tweet:
        """This copy as another line with the same tweet retrieved at ``key`` holds it."""
        return Tweet(
            self.id_key,
            self.created_key,
            key,
            _retrieved_csv(key, known),
            self.author_id,
            self.lang,
            self.head_pre,
            self.head_post,
            self.author,
            self.has_author,
        )

    @property
    def id(self) -> int:
        return int(self.id_key)

    @property
    def created_at(self) -> datetime:
        return key_to_datetime(self.created_key)

    @property
    def retrieved_at(self) -> datetime | None:
        return None if self.retrieved_key is None else key_to_datetime(self.retrieved_key)

    @property
    def tweet_csv(self) -> str:
        """The 20-column tweets row, without line end."""
        return self.head + "," + self.author

    @property
    def user_csv(self) -> str:
        """The 12-column users row, without line end."""
        return text_field(self.author_id) + "," + self.lang + "," + self.author

    @property
    def row(self) -> list[str]:
        """The tweets row as a list of field values (for inspection and tests)."""
        return next(csv.reader([self.tweet_csv]))

    def user_row(self) -> list[str]:
        return next(csv.reader([self.user_csv]))


class Line:
    """What one raw line held."""

    __slots__ = ("kind", "tweets", "reason", "dropped")

    def __init__(
        self,
        kind: str,  # "tweets" | "keepalive" | "error_message" | "skipped"
        tweets: list[Tweet] | None = None,
        reason: str | None = None,  # for "skipped"
        dropped: list[str] | None = None,  # reasons for unusable tweets of a page
    ) -> None:
        self.kind = kind
        self.tweets = tweets if tweets is not None else []
        self.reason = reason
        self.dropped = dropped if dropped is not None else []

    def __repr__(self) -> str:
        return f"Line({self.kind!r}, {len(self.tweets)} tweets, reason={self.reason!r})"


EMPTY_AUTHOR = "," * (len(TWEET_COLUMNS) - AUTHOR_START - 1)


def text_field(v: object) -> str:
    """A value as one CSV field: newlines become spaces, quoted when it holds , or "."""
    if type(v) is not str:
        v = fmt(v)
    if "\n" in v or "\r" in v:  # type: ignore[operator]
        v = v.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")  # type: ignore[union-attr]
    if '"' in v:  # type: ignore[operator]
        return '"' + v.replace('"', '""') + '"'  # type: ignore[union-attr]
    if "," in v:  # type: ignore[operator]
        return '"' + v + '"'  # type: ignore[operator]
    return v  # type: ignore[return-value]


def _needs_care(s: str) -> bool:
    return "," in s or '"' in s or "\n" in s or "\r" in s


def author_csv(user: dict) -> str:
    """The ten author columns of a tweet row, as CSV, from an API user object."""
    pm = user.get("public_metrics")
    if type(pm) is not dict:
        pm = {}
    v = user.get("verified")
    p = user.get("protected")
    a = pm.get("followers_count")
    b = pm.get("following_count")
    c = pm.get("tweet_count")
    d = pm.get("listed_count")
    return (
        f"{fmt_time(user.get('created_at'))},{text_field(user.get('location'))},"
        f"{text_field(user.get('name'))},{text_field(user.get('username'))},"
        f"{'true' if v is True else 'false' if v is False else text_field(v)},"
        f"{'true' if p is True else 'false' if p is False else text_field(p)},"
        f"{a if type(a) is int else text_field(a)},{b if type(b) is int else text_field(b)},"
        f"{c if type(c) is int else text_field(c)},{d if type(d) is int else text_field(d)}"
    )


def tweet_record(
    t: dict, user: dict | None, retrieved_key: str | None, retrieved_known: bool = True
) -> Tweet | str:
    """A Tweet from an API tweet object and its author (or None); a reason string if unusable.

    ``retrieved_known`` false: ``retrieved_key`` is a stand-in (the file's minute) that orders
    the copy; the CSV's retrieved_at stays empty rather than invented.

    This runs once per tweet copy: fields known to be safe (IDs checked here, timestamps we
    format) skip the CSV checks, short fields from the data are checked together, and only
    free text (text, source, names, location) is checked field by field.
    """
    raw_id = t.get("id")
    if type(raw_id) is str and raw_id.isdigit() and raw_id.isascii() and len(raw_id) <= 20:
        if raw_id[0] == "0" and len(raw_id) > 1:
            raw_id = str(int(raw_id))
    elif type(raw_id) is int and 0 <= raw_id < 10**20:
        raw_id = str(raw_id)
    else:
        return "bad_id"
    created_key = time_key(t.get("created_at"))
    if created_key is None:
        return "bad_created_at"

    author_id = t.get("author_id")
    if author_id is None and user is not None:
        author_id = user.get("id")
    if type(author_id) is not str:
        author_id = fmt(author_id)
    conv = t.get("conversation_id")
    if type(conv) is not str:
        conv = fmt(conv)
    lang = t.get("lang")
    if type(lang) is not str:
        lang = fmt(lang)
    refs = t.get("referenced_tweets")
    if type(refs) is list and refs and type(refs[0]) is dict:
        ref_type = refs[0].get("type")
        ref_id = refs[0].get("id")
        if type(ref_type) is not str:
            ref_type = fmt(ref_type)
        if type(ref_id) is not str:
            ref_id = fmt(ref_id)
    else:
        ref_type, ref_id = "original", ""
    aid = author_id
    if _needs_care(conv + author_id + lang + ref_type + ref_id):
        conv, aid, lang, ref_type, ref_id = map(
            text_field, (conv, author_id, lang, ref_type, ref_id)
        )
    author = author_csv(user) if user is not None else EMPTY_AUTHOR
    return Tweet(
        raw_id.zfill(20),
        created_key,
        retrieved_key,
        _retrieved_csv(retrieved_key, retrieved_known),
        author_id,
        lang,
        f"{raw_id},{conv},{aid},{created_key[:10]} {created_key[11:19]}+00:00,",
        f",{text_field(t.get('source'))},{lang},{text_field(t.get('text'))},{ref_type},{ref_id}",
        author,
        user is not None,
    )


def _retrieved_csv(key: str | None, known: bool) -> str:
    return key_to_csv(key) if key and known else ""


def _users_by_id(obj: dict) -> list | None:
    inc = obj.get("includes")
    if type(inc) is not dict:
        return None
    users = inc.get("users")
    return users if type(users) is list else None


def _find_user(users: list | None, author_id: object) -> dict | None:
    if not users or author_id is None:
        return None
    for u in users:  # stream lines carry one or a few users: a scan beats building a dict
        if type(u) is dict and u.get("id") == author_id:
            return u
    return None


_RETRIEVED: dict[str, str | None] = {}  # twarc stamps are per second: many lines share one


def _retrieved(obj: dict) -> str | None:
    return _twarc_time(obj.get("__twarc"))


def _twarc_time(meta: object) -> str | None:
    if type(meta) is not dict:
        return None
    value = meta.get("retrieved_at")
    if type(value) is not str:
        return None
    try:
        return _RETRIEVED[value]
    except KeyError:
        if len(_RETRIEVED) > 100_000:
            _RETRIEVED.clear()
        key = _RETRIEVED[value] = time_key(value)
        return key


def _loads(raw: bytes) -> tuple[object, str | None]:
    """After orjson failed: (object, None) or (None, reason).

    orjson refuses some valid JSON that a stream can carry (a lone surrogate escape in a
    tweet's text, integers beyond 64 bits): let the standard parser have a go.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "invalid_utf8"
    try:
        return json.loads(text), None
    except (ValueError, RecursionError):
        return None, "invalid_json"


def parse_line(
    raw: bytes, *, unterminated: bool = False, default_retrieved: str | None = None
) -> Line:
    """Parse one raw line (without its newline).

    ``unterminated``: this is the file's last line and had no newline, so a parse failure
    means it was cut (a crash mid-write), reported as ``truncated``.
    ``default_retrieved``: the key that orders copies whose line has no ``__twarc`` (the minute
    file's start); their CSV retrieved_at stays empty.
    """
    if not raw or raw.isspace():
        return Line("keepalive")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj, reason = _loads(raw)
        if reason is not None:
            if unterminated and reason == "invalid_json":
                reason = "truncated"
            return Line("skipped", reason=reason)
    if type(obj) is not dict:
        return Line("skipped", reason="not_object")

    data = obj.get("data")
    retrieved = _retrieved(obj)
    known = retrieved is not None
    if not known:
        retrieved = default_retrieved
    if type(data) is dict:  # stream line: the common case
        user = None
        inc = obj.get("includes")
        if type(inc) is dict:
            users = inc.get("users")
            if type(users) is list and users:
                user = _find_user(users, data.get("author_id"))
        rec = tweet_record(data, user, retrieved, known)
        if type(rec) is str:
            return Line("skipped", reason=rec)
        return Line("tweets", [rec])
    if type(data) is list:  # response page
        users = _users_by_id(obj)
        by_id = {u["id"]: u for u in users or () if type(u) is dict and type(u.get("id")) is str}
        out = Line("tweets")
        for t in data:
            if type(t) is not dict:
                out.dropped.append("no_tweet")
                continue
            aid = t.get("author_id")
            rec = tweet_record(t, by_id.get(aid) if type(aid) is str else None, retrieved, known)
            if type(rec) is str:
                out.dropped.append(rec)
            else:
                out.tweets.append(rec)
        if not out.tweets:
            return Line("skipped", reason=out.dropped[0] if out.dropped else "no_tweet")
        return out
    if data is None and "id" in obj:  # the seed's flattened tweet
        author = obj.get("author")
        rec = tweet_record(obj, author if type(author) is dict else None, retrieved, known)
        if type(rec) is str:
            return Line("skipped", reason=rec)
        return Line("tweets", [rec])
    if data is None and "errors" in obj:
        return Line("error_message", reason="error_message")
    return Line("skipped", reason="no_tweet")


TWARC_KEY = b',"__twarc":'


class Copies:
    """``parse_line`` for lines many of which are copies of one another (a minute's file from
    each server): a copy of a line parsed before is not parsed again.

    The collector writes a line as ``orjson.dumps`` of twarc's object, whose last key is its
    ``__twarc``; two servers' lines of one tweet are the same bytes up to that key when the API
    sent both connections the same payload. Such a line's ``__twarc`` alone is parsed, and the
    tweet of its first copy restamped with its retrieved_at (a minute's two files: 11-18 %
    less CPU, README "Speed"). Lines of any other shape, and copies whose first was not one usable
    tweet, are parsed whole. The bytes before ``__twarc`` are the keys, compared whole (a
    digest would cost more than Python's hash of them): one ``Copies`` holds a minute's lines
    (a server's minute file, 7 MB at 1 %, 70 MB at 10 %), so it lives only as long as the
    files that share tweets.
    """

    def __init__(self) -> None:
        self._tweets: dict[bytes, Tweet] = {}

    def parse_line(
        self, raw: bytes, *, unterminated: bool = False, default_retrieved: str | None = None
    ) -> Line:
        cut = raw.rfind(TWARC_KEY)
        meta = None
        if cut > 0 and raw[-1:] == b"}":
            try:
                meta = orjson.loads(raw[cut + len(TWARC_KEY) : -1])
            except orjson.JSONDecodeError:
                pass
        if type(meta) is not dict:
            return parse_line(raw, unterminated=unterminated, default_retrieved=default_retrieved)
        # The line ends with "__twarc": {object} }: the key is the top-level object's last, so
        # any line with the same bytes before it is valid JSON holding the same tweet.
        key = raw[:cut]
        first = self._tweets.get(key)
        if first is not None:
            retrieved = _twarc_time(meta)
            known = retrieved is not None
            return Line(
                "tweets", [first.retrieved(retrieved if known else default_retrieved, known)]
            )
        line = parse_line(raw, unterminated=unterminated, default_retrieved=default_retrieved)
        if line.kind == "tweets" and len(line.tweets) == 1 and not line.dropped:
            self._tweets[key] = line.tweets[0]
        return line


def iter_lines(source: bytes | BinaryIO) -> Iterator[tuple[int, bytes, bool]]:
    """(line number from 1, raw line without its newline, unterminated) of bytes or a file.

    Reading a file line by line keeps memory at one line, not the whole minute (70 MB a
    minute at the 10 % rate). ``unterminated`` marks a last line without a newline.
    """
    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(source)
    for n, raw in enumerate(source, 1):
        if raw[-1:] == b"\n":
            yield n, raw[:-1], False
        else:
            yield n, raw, True


# --- CSV ------------------------------------------------------------------------------------


def _quote(v: str) -> str:
    if '"' in v:
        return '"' + v.replace('"', '""') + '"'
    if "," in v or "\n" in v or "\r" in v:
        return '"' + v + '"'
    return v


def format_row(fields: list[str] | tuple[str, ...]) -> str:
    """One CSV record without its line end: RFC 4180 quoting, as csv's QUOTE_MINIMAL writes it.

    A field is quoted when it holds a comma, a double quote (doubled) or a line break. Before
    that, one record is one line: each CR LF, LF or CR in any field becomes one space.
    The common case, no field needing either, costs one join and a few C-level scans of the
    line (the csv module is ~2.5x slower: it looks up every character in the line terminator).
    """
    line = ",".join(fields)
    if '"' in line or "\n" in line or "\r" in line or line.count(",") != len(fields) - 1:
        if "\n" in line or "\r" in line:
            fields = [clean(v) for v in fields]
        line = ",".join([_quote(v) for v in fields])
    return line
