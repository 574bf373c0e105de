"""The soak's compliance verdict (ingest/devtools/soak/compliance.py and ledger.read_vault), on
vaults written here: a complied post or account left anywhere, a log that misses one or names
one the stand-in never answered, fail; a vault that did it all passes. Fast (no processes)."""

from __future__ import annotations

import lzma
from pathlib import Path
from zoneinfo import ZoneInfo

from ingest.devtools.compliance import ComplianceJobs
from ingest.devtools.soak.compliance import Expected, compliance_problems
from ingest.devtools.soak.ledger import StandInLedger, Watch, _id_problems, read_vault

DAY, LABEL = "2026-12-07", "2026-12-07_22"
JOBS = ComplianceJobs(1)  # the soak's stand-in seed and shares
ZONE = ZoneInfo("Europe/Berlin")


def pick(kind: str, want: bool, n: int, start: int) -> list[str]:
    """``n`` IDs from ``start`` on whose answer in a ``kind`` job removes them (``want``), or
    that get no answer at all."""
    out, i = [], start
    while len(out) < n:
        answer = JOBS.verdict(kind, str(i))
        if (answer not in (None, "scrub_geo")) if want else answer is None:
            out.append(str(i))
        i += 1
    return out


KEPT = pick("tweets", False, 6, 2_130_000_000_000_000_000)
DELETED = pick("tweets", True, 2, 2_130_000_000_000_000_000)  # their own answer removes them
GOOD_AUTHORS = pick("users", False, 2, 10_000)
GONE_AUTHOR = pick("users", True, 1, 10_000)[0]
AUTHORS = {t: GOOD_AUTHORS[i % 2] for i, t in enumerate(KEPT + DELETED)}
BY_GONE = KEPT[-1]  # a post with no answer of its own, by an account that has one
AUTHORS[BY_GONE] = GONE_AUTHOR
ARCHIVED = KEPT + DELETED
EXPECTED = Expected.of(JOBS, ARCHIVED, AUTHORS)


def xz_write(path: Path, text: str) -> None:
    path.write_bytes(lzma.compress(text.encode()))


def write_hour(root: Path, tweets: list[str], users: list[str]) -> Path:
    """One hour on a copy: its IDs file lists every archived tweet, its tweets and users files
    hold ``tweets`` and ``users``."""
    day = root / DAY
    day.mkdir(parents=True, exist_ok=True)
    xz_write(day / f"{LABEL}_IDs.txt.xz", "".join(f"{i}\n" for i in sorted(ARCHIVED)))
    rows = "".join(f"{t},{t},{AUTHORS[t]},2026-12-07 21:00:00+00:00\n" for t in sorted(tweets))
    xz_write(day / f"{LABEL}_tweets.csv.xz", "id,conversation_id,author_id,created_at\n" + rows)
    xz_write(
        day / f"{LABEL}_users.csv.xz", "author_id,lang\n" + "".join(f"{u},en\n" for u in users)
    )
    return day


def write_log(root: Path, rows: list[tuple[str, str, str]]) -> None:
    lines = "".join(f"{i}\t{t}\t{a}\t{DAY}\n" for i, t, a in rows)
    (root / DAY / f"{DAY}_compliance.tsv").write_text("id\ttype\taction\tjob_date\n" + lines)


def complied_log() -> list[tuple[str, str, str]]:
    """What a pass logs: each complied post (an account's with the account's action), each
    complied account."""
    rows = [(t, "tweets", EXPECTED.posts[t]) for t in DELETED + [BY_GONE]]
    return [*rows, (GONE_AUTHOR, "users", EXPECTED.accounts[GONE_AUTHOR])]


def copies_done(tmp_path: Path) -> dict[str, Path]:
    """A primary and a replica on which the pass did everything."""
    out = {}
    for loc in ("primary", "usb"):
        root = tmp_path / loc
        write_hour(root, [t for t in ARCHIVED if t not in EXPECTED.posts], GOOD_AUTHORS)
        write_log(root, complied_log())
        out[loc] = root
    return out


def problems(copies: dict[str, Path], raw: list[Path] | None = None) -> dict[str, list[str]]:
    found = compliance_problems(JOBS, EXPECTED, copies, "primary", raw or [], set(ARCHIVED), None)
    return {k: v for k, v in found.items() if v}


def test_the_stand_ins_answers_give_the_complied_posts_and_accounts() -> None:
    assert set(EXPECTED.posts) == {*DELETED, BY_GONE}
    assert EXPECTED.accounts == {GONE_AUTHOR: JOBS.verdict("users", GONE_AUTHOR)}


def test_a_vault_that_complied_everywhere_passes(tmp_path: Path) -> None:
    copies = copies_done(tmp_path)
    assert problems(copies) == {}
    hours, inconsistent, unexpected = read_vault(copies["primary"], EXPECTED.posts.keys())
    assert hours == {LABEL: sorted(ARCHIVED)} and inconsistent == [] and unexpected == []


def test_a_complied_post_or_account_left_on_a_replica_fails(tmp_path: Path) -> None:
    copies = copies_done(tmp_path)
    write_hour(copies["usb"], ARCHIVED, [*GOOD_AUTHORS, GONE_AUTHOR])  # the old generation
    found = problems(copies)
    assert sorted(found) == [
        "complied accounts still in a users file",
        "complied posts still in a tweets file",
    ]
    assert len(found["complied posts still in a tweets file"]) == 3
    assert found["complied accounts still in a users file"] == [
        f"usb: {LABEL}_users.csv.xz: {GONE_AUTHOR}"
    ]


def test_a_tweets_file_holding_a_complied_post_or_missing_a_kept_one_is_inconsistent(
    tmp_path: Path,
) -> None:
    root = tmp_path / "primary"
    write_hour(root, [t for t in ARCHIVED if t != BY_GONE], GOOD_AUTHORS)  # BY_GONE aside
    assert read_vault(root, EXPECTED.posts.keys())[1] == [
        f"{LABEL}: IDs file and tweets file differ (complied aside)"
    ]
    write_hour(root, [t for t in KEPT if t != BY_GONE][1:], GOOD_AUTHORS)  # a kept one lost
    assert read_vault(root, EXPECTED.posts.keys())[1] != []
    # Without the complied IDs (the soak before issue 24), a complied hour looks inconsistent.
    write_hour(root, [t for t in ARCHIVED if t not in EXPECTED.posts], GOOD_AUTHORS)
    assert read_vault(root, EXPECTED.posts.keys())[1] == []
    assert read_vault(root)[1] != []


def test_a_log_that_misses_a_post_names_an_unanswered_id_or_one_twice_fails(
    tmp_path: Path,
) -> None:
    copies = copies_done(tmp_path)
    write_log(copies["primary"], complied_log()[1:])  # DELETED[0] not logged
    assert problems(copies)["complied posts no compliance log names"] == [DELETED[0]]
    # A post of a logged account needs no line of its own.
    write_log(copies["primary"], [r for r in complied_log() if r[0] != BY_GONE])
    assert problems(copies) == {}
    write_log(copies["primary"], [*complied_log(), (KEPT[0], "tweets", "deleted")])
    assert problems(copies)["compliance log entries the stand-in did not answer"] == [
        f"{DAY}: tweets {KEPT[0]} (deleted)"
    ]
    write_log(copies["primary"], [*complied_log(), complied_log()[0]])
    assert problems(copies)["IDs listed twice in a compliance log"] == [
        f"{DAY}: tweets {DELETED[0]}"
    ]


def test_a_complied_post_in_a_raw_file_the_primary_holds_fails(tmp_path: Path) -> None:
    copies = copies_done(tmp_path)
    raw = tmp_path / "raw" / "server1" / DAY / "22"
    raw.mkdir(parents=True)
    minute = raw / "2026-12-07T2205+0100.jsonl"
    minute.write_text("".join(f'{{"data": {{"id": "{t}"}}}}\n' for t in [KEPT[0], DELETED[1]]))
    assert problems(copies, [tmp_path / "raw"]) == {
        "complied posts in the primary's raw files": [f"{minute}: {DELETED[1]}"]
    }


def test_a_pass_left_open_fails(tmp_path: Path) -> None:
    copies = copies_done(tmp_path)
    found = compliance_problems(
        JOBS, EXPECTED, copies, "primary", [], set(ARCHIVED), "state.json left"
    )
    assert found["compliance pass left open"] == ["state.json left"]


def test_a_complied_post_need_not_be_in_the_vault_a_kept_one_must(tmp_path: Path) -> None:
    """A pass drops a complied post's lines from the raw files of hours not built yet: its ID
    never reaches an IDs file. Not lost; a tweet not complied missing is."""
    made = {t: "2026-12-07T21:30:00.000Z" for t in ARCHIVED}
    ledger = StandInLedger(made, [(1.0, "server1", ARCHIVED)])
    watch = Watch({"server1": tmp_path / "raw"}, tmp_path / "vault")
    watch.seen.update({t: {str(tmp_path / "raw" / "m.jsonl")} for t in ARCHIVED})
    delivered = {t: [1.0] for t in ARCHIVED}
    where = {t: [LABEL] for t in KEPT if t not in (BY_GONE, KEPT[0])}  # KEPT[0] lost
    found = _id_problems(ledger, delivered, set(ARCHIVED), where, watch, ZONE, EXPECTED.posts)
    assert found["lost"] == [KEPT[0]] and found["in a raw file but not in the vault"] == [KEPT[0]]
    assert sorted(_id_problems(ledger, delivered, set(ARCHIVED), where, watch, ZONE)["lost"]) == (
        sorted([KEPT[0], *EXPECTED.posts])
    )
