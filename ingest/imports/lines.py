"""One input line: what it is, and which minute file each of its tweets goes into.

The rule keeps "every tweet ID in exactly one hour" whatever was imported:
- a stream line (twarc2 ``sample``/``stream``: ``data`` one tweet) goes, byte for byte, to the
  minute of its ``__twarc.retrieved_at``, the arrival a collector would have filed it under;
- a tweet of a response page (``search``, ``timeline``, ``hydrate``) or a flattened tweet
  goes there too when it was retrieved within its created hour's read window (so the build
  counts it for that hour). Fetched later (days, years), its retrieval minute would put it
  into some later hour, once per fetch: it goes to the minute of its own ``created_at``
  instead, where every fetch of it meets and the build keeps one copy. A page whose tweets
  do not all stay with it is split into one stream line per tweet, each with the ``includes``
  entries that tweet refers to and the page's ``__twarc``;
- a line without ``retrieved_at`` goes by ``created_at`` (per tweet) and is counted as such.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import orjson

from ingest import layout

WRITTEN = {
    "stream": "stream response (twarc2 sample/stream, the seed's raw files)",
    "page": "response page (data is a list of tweets)",
    "flat": "flattened tweet (tweet fields at the top level)",
}
SKIPPED = {
    "blank": "empty or whitespace-only line (a keep-alive)",
    "error": "API error or disconnect message, no tweet",
    "v1_tweet": "v1.1 tweet (id_str, user): not the v2 format this archive keeps",
    "no_tweet": "JSON object without a tweet (no data, no id)",
    "no_time": "no __twarc.retrieved_at and no readable created_at",
    "not_object": "JSON that is not an object",
    "invalid_json": "not valid JSON",
    "invalid_utf8": "not valid UTF-8",
    "truncated": "last line cut short (no newline, not valid JSON)",
    "too_long": "line longer than MAX_LINE (64 MiB)",
}


class Placed(NamedTuple):
    """What became of one line: its kind, and (minute, bytes) for each piece to write.
    (A tuple: one is made per input line, and a dataclass costs twice as much.)"""

    kind: str
    pieces: list[tuple[datetime, bytes]] = []  # noqa: RUF012 - never changed in place
    by_created: int = 0  # tweets placed by created_at (late or without retrieved_at)


_MINUTES: dict[str, datetime | None] = {}  # twarc stamps are per second: many lines share one


def utc_minute(value: object) -> datetime | None:
    """The UTC minute of an ISO 8601 instant (naive means UTC), None if it is not one."""
    if type(value) is not str:
        return None
    try:
        return _MINUTES[value]
    except KeyError:
        pass
    if len(_MINUTES) > 100_000:
        _MINUTES.clear()
    try:
        dt = datetime.fromisoformat(value)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        minute: datetime | None = dt.astimezone(UTC).replace(second=0, microsecond=0)
    except (ValueError, OverflowError):
        minute = None
    _MINUTES[value] = minute
    return minute


@lru_cache(maxsize=8192)
def _window(created: datetime, tz: ZoneInfo, late: int) -> tuple[datetime, datetime] | None:
    """The read window of ``created``'s local hour (None past the calendar's end)."""
    try:
        return layout.read_window(layout.hour_of(created, tz), tz, late)
    except (ValueError, OverflowError):
        return None


def on_time(created: datetime, retrieved: datetime, tz: ZoneInfo, late: int) -> bool:
    """Does a copy retrieved at ``retrieved`` (a minute) count for its created hour?"""
    window = _window(created, tz, late)
    return window is not None and window[0] <= retrieved < window[1]


def _load(raw: bytes, unterminated: bool) -> tuple[Any, str | None]:
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError:
        # orjson refuses some JSON that the build's parser reads (lone surrogates, big ints).
        try:
            return json.loads(raw.decode("utf-8")), None
        except UnicodeDecodeError:
            return None, "invalid_utf8"
        except (ValueError, RecursionError):
            return None, "truncated" if unterminated else "invalid_json"


def place_line(raw: bytes, tz: ZoneInfo, late: int, unterminated: bool = False) -> Placed:
    """Where the line ``raw`` (without its newline) goes; see the module docstring.

    ``unterminated`` marks a last line that had no newline: invalid JSON there is a cut
    line (``truncated``). The shapes are those ``ingest.hours.parse.parse_line`` reads.
    """
    if not raw or raw.isspace():
        return Placed("blank")
    obj, reason = _load(raw, unterminated)
    if reason is not None:
        return Placed(reason)
    if type(obj) is not dict:
        return Placed("not_object")
    raw += b"\n"  # as written: every line ends in one, also a last line that had none
    data = obj.get("data")
    meta = obj.get("__twarc")
    retrieved = utc_minute(meta.get("retrieved_at")) if type(meta) is dict else None
    if type(data) is dict and "id" in data:
        if retrieved is not None:
            return Placed("stream", [(retrieved, raw)])
        created = utc_minute(data.get("created_at"))
        return Placed("stream", [(created, raw)], 1) if created else Placed("no_time")
    if type(data) is list and any(type(t) is dict for t in data):
        return _page(obj, raw, retrieved, tz, late)
    if data is None and "id" in obj:
        if "id_str" in obj or type(obj.get("user")) is dict:
            return Placed("v1_tweet")
        created = utc_minute(obj.get("created_at"))
        if retrieved is not None and (created is None or on_time(created, retrieved, tz, late)):
            return Placed("flat", [(retrieved, raw)])
        return Placed("flat", [(created, raw)], 1) if created else Placed("no_time")
    if data is None and "errors" in obj:
        return Placed("error")
    return Placed("no_tweet")


def _page(obj: dict, raw: bytes, retrieved: datetime | None, tz: ZoneInfo, late: int) -> Placed:
    tweets = [t for t in obj["data"] if type(t) is dict]
    created = [utc_minute(t.get("created_at")) for t in tweets]
    if retrieved is not None and all(c is None or on_time(c, retrieved, tz, late) for c in created):
        return Placed("page", [(retrieved, raw)])  # the whole page stays together
    if all(c is None for c in created) and retrieved is None:
        return Placed("no_time")
    pieces, by_created = [], 0
    index = _IncludesIndex(obj.get("includes"))
    for t, c in zip(tweets, created, strict=True):
        if c is not None and (retrieved is None or not on_time(c, retrieved, tz, late)):
            minute, by_created = c, by_created + 1
        elif retrieved is not None:
            minute = retrieved
        else:
            continue  # neither time: the build could not place it either
        line = {"data": t, "includes": index.of(t)}
        if "__twarc" in obj:
            line["__twarc"] = obj["__twarc"]
        pieces.append((minute, orjson.dumps(line) + b"\n"))
    return Placed("page", pieces, by_created)


class _IncludesIndex:
    """A page's ``includes`` by key, to give each tweet of a split page what it refers to."""

    KEYS = {"users": "id", "tweets": "id", "media": "media_key", "places": "id", "polls": "id"}

    def __init__(self, includes: object) -> None:
        self.by_kind: dict[str, dict[str, Any]] = {}
        if type(includes) is dict:
            for kind, key in self.KEYS.items():
                items = includes.get(kind)
                if type(items) is list:
                    self.by_kind[kind] = {i[key]: i for i in items if type(i) is dict and key in i}

    def of(self, t: dict) -> dict[str, list[Any]]:
        attach = t.get("attachments") if type(t.get("attachments")) is dict else {}
        geo = t.get("geo") if type(t.get("geo")) is dict else {}
        entities = t.get("entities") if type(t.get("entities")) is dict else {}
        wanted = {
            "users": [t.get("author_id"), t.get("in_reply_to_user_id")]
            + [m.get("id") for m in _dicts(entities.get("mentions"))],
            "tweets": [r.get("id") for r in _dicts(t.get("referenced_tweets"))],
            "media": list(attach.get("media_keys") or []),
            "polls": list(attach.get("poll_ids") or []),
            "places": [geo.get("place_id")],
        }
        out: dict[str, list[Any]] = {}
        for kind, keys in wanted.items():
            have = self.by_kind.get(kind, {})
            found = [have[k] for k in dict.fromkeys(keys) if type(k) is str and k in have]
            if found:
                out[kind] = found
        return out


def _dicts(value: object) -> list[dict]:
    return [v for v in value if type(v) is dict] if type(value) is list else []
