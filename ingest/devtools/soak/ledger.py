"""The soak's final checks, against records the code under test never writes: the stand-in's
ledger (tweets made and written to each connection), the injector's faults and down times, and
the soak's own watch of the raw dirs and the vault while it ran; for the vault's copies, the
files on each copy's disk (``copies``)."""

from __future__ import annotations

import csv
import io
import lzma
import os
import re
import stat
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from ingest.devtools.compliance import ComplianceJobs
from ingest.devtools.osf_standin import Entry, OSFStandIn
from ingest.devtools.soak.compliance import Expected, compliance_problems
from ingest.devtools.soak.copies import (
    PRIMARY,
    Spot,
    carried,
    day_disagreements,
    hour_disagreements,
    spot_problem,
)
from ingest.devtools.soak.faults import Fault
from ingest.vault import records

DELIVERY_GRACE = 2.0  # a tweet is delivered if its collector still ran this long after the write
VAULT_FILE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})_(\d{2})_"
    r"(IDs\.txt\.xz|tweets\.csv\.xz|users\.csv\.xz|stats\.json|record\.json)$"
)
REPORT_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}_report\.txt$")
COMPLIANCE_LOG = re.compile(r"^\d{4}-\d{2}-\d{2}_compliance\.tsv$")  # ``compliance``'s
DAY_MANIFEST = re.compile(r"^\d{4}-\d{2}-\d{2}_SHA256SUMS$")  # the replicas' checksums
TEMP_MARKS = (".part", ".tmp-", ".tmp")
SHOWN = 20  # IDs named in a failure


@dataclass
class Watch:
    """What the raw dirs held and how the vault changed, scanned every few seconds."""

    raw_dirs: dict[str, Path]
    vault: Path
    seen: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # id -> files
    files: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (size, mtime)
    versions: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def scan(self) -> None:
        for root in self.raw_dirs.values():
            for path in _walk(root):
                if not path.endswith(".jsonl"):
                    continue
                try:
                    st = os.stat(path, follow_symlinks=False)
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    key = (st.st_size, st.st_mtime_ns)
                    if self.files.get(path) == key:
                        continue
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                self.files[path] = key
                for tweet_id in _ids_of_lines(data):
                    self.seen[tweet_id].add(path)
        for path in _walk(self.vault):
            if path.endswith("_IDs.txt.xz"):
                try:
                    mtime = os.stat(path).st_mtime_ns
                except OSError:
                    continue
                if not self.versions[path] or self.versions[path][-1] != mtime:
                    self.versions[path].append(mtime)


def _walk(root: Path):
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            yield os.path.join(dirpath, name)


def _ids_of_lines(data: bytes) -> list[str]:
    out = []
    for line in data.splitlines():
        try:
            obj = orjson.loads(line)
            tweet_id = obj["data"]["id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        if isinstance(tweet_id, str):
            out.append(tweet_id)
    return out


@dataclass
class StandInLedger:
    made: dict[str, str]  # id -> created_at
    sends: list[tuple[float, str, list[str]]]  # (unix time after the write, client, ids)
    # The stream faults that hit a connection, in order: (time, client, connection, kind),
    # and what each connection was sent after them: connection -> [(time, ids)].
    hits: list[tuple[float, str, int, str]] = field(default_factory=list)
    by_conn: dict[int, list[tuple[float, list[str]]]] = field(default_factory=dict)
    authors: dict[str, str | None] = field(default_factory=dict)  # id -> author_id

    @classmethod
    def read(cls, path: Path) -> StandInLedger:
        made: dict[str, str] = {}
        authors: dict[str, str | None] = {}
        sends = []
        hits = []
        by_conn: dict[int, list[tuple[float, list[str]]]] = defaultdict(list)
        with open(path, "rb") as f:
            for line in f:
                try:
                    r = orjson.loads(line)
                except orjson.JSONDecodeError:  # the stand-in was stopped mid-line
                    continue
                if r[0] == "g":
                    made[r[1]] = r[2]
                    authors[r[1]] = r[3] if len(r) > 3 else None
                elif r[0] == "f":
                    hits.append((r[1], r[2], r[3], r[4]))
                else:
                    sends.append((r[1], r[2], r[4]))
                    by_conn[r[3]].append((r[1], r[4]))
        return cls(made, sends, hits, dict(by_conn), authors)

    def malformed_received(self, faults: list[Fault], seen: dict[str, set[str]]) -> None:
        """Mark each "stand-in malformed" fault with whether its line can have reached the
        collector: a tweet written after it on the same connection is in a raw file (a
        connection is in order). One cut before the next write discards it unread."""
        hits = defaultdict(list)
        for t, client, conn, kind in self.hits:
            if kind == "malformed":
                hits[client].append((t, conn))
        for f in (f for f in faults if f.kind == "stand-in malformed"):
            # The stand-in applies one client's faults of a kind in the order they came.
            t, conn = hits[f.target].pop(0) if hits[f.target] else (None, None)
            after = [ids for ts, ids in self.by_conn.get(conn, []) if t is not None and ts > t]
            f.evidence["line received"] = any(i in seen for ids in after for i in ids)

    def delivered(self, down: dict[str, list[list[float | None]]]) -> dict[str, list[float]]:
        """id -> write times of the copies written to any collector that was still running
        (``delivered_to``)."""
        out: dict[str, list[float]] = defaultdict(list)
        for ids in self.delivered_to(down).values():
            for tweet_id, times in ids.items():
                out[tweet_id] += times
        return out

    def delivered_to(
        self, down: dict[str, list[list[float | None]]]
    ) -> dict[str, dict[str, list[float]]]:
        """Per collector: id -> write times of the copies written to it while it was still
        running ``DELIVERY_GRACE`` seconds later (by the injector's record of down times): no
        down time began in that span, nor had one begun before the write and not yet ended (a
        collector told to stop reads on for a moment, into a minute it has already closed)."""
        spans = {
            c: sorted((s, float("inf") if e is None else e) for s, e in v) for c, v in down.items()
        }
        out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for t, client, ids in self.sends:
            s = spans.get(client, [])
            # A collector's down spans do not overlap: the last one begun by t + grace ends
            # last of those, so it alone tells whether one reaches t.
            i = bisect_right(s, (t + DELIVERY_GRACE, float("inf")))
            if i and s[i - 1][1] >= t:
                continue
            for tweet_id in ids:
                out[client][tweet_id].append(t)
        return out


def hour_label(created_at: str, tz: ZoneInfo) -> str:
    """The local hour ``YYYY-mm-dd_HH`` of a created_at (the assignment rule, for copies that
    arrive in time: the soak's collectors share the stand-in's clock)."""
    local = datetime.fromisoformat(created_at.replace("Z", "+00:00")).astimezone(tz)
    return f"{local:%Y-%m-%d_%H}"


def _record_problems(path: Path) -> list[str]:
    """An hour's files must be the set its record names (issue 21)."""
    try:
        record = records.read_record(path)
    except records.RecordError as e:
        return [str(e)]
    return [
        f"{path.parent / name}: differs from its record (generation {record.generation})"
        for name, entry in record.files.items()
        if not records.matches(path.parent / name, entry)
    ]


def read_vault(
    vault: Path, complied: Collection[str] = frozenset()
) -> tuple[dict[str, list[str]], list[str], list[str]]:
    """(hour label -> IDs in its IDs file, inconsistent hours, unexpected files). An hour's
    tweets file holds its IDs file's tweets but the ``complied`` ones (its IDs file stays)."""
    hours: dict[str, list[str]] = {}
    inconsistent, unexpected = [], []
    for path in sorted(Path(p) for p in _walk(vault)):
        parts = path.relative_to(vault).parts
        if parts[0] == "dashboard":  # the static pages (issue 12)
            continue
        name = path.name
        if name == ".soak-filler":
            continue
        if any(part.startswith(".") for part in parts[:-1]):
            # A staging folder (a restore's, a replica's copy) a killed writer left: its files
            # have the vault's names, but are no hour's.
            unexpected.append(str(path))
            continue
        m = VAULT_FILE.match(name)
        if REPORT_FILE.match(name) or DAY_MANIFEST.match(name) or COMPLIANCE_LOG.match(name):
            continue
        if m and m[3] == "record.json":
            inconsistent += _record_problems(path)
            continue
        if m and m[3] in ("users.csv.xz", "stats.json"):
            continue
        if not m:
            unexpected.append(str(path))
            continue
        label = f"{m[1]}_{m[2]}"
        if m[3] == "IDs.txt.xz":
            try:
                hours[label] = lzma.decompress(path.read_bytes()).decode().split()
            except (OSError, lzma.LZMAError) as e:
                inconsistent.append(f"{label}: IDs file unreadable ({e})")
        else:
            try:
                text = lzma.decompress(path.read_bytes()).decode()
                rows = list(csv.reader(io.StringIO(text)))
                tweet_ids = sorted(r[0] for r in rows[1:])
            except (OSError, lzma.LZMAError, IndexError) as e:
                inconsistent.append(f"{label}: tweets file unreadable ({e})")
                continue
            ids_path = path.with_name(f"{label}_IDs.txt.xz")
            try:
                ids = lzma.decompress(ids_path.read_bytes()).decode().split()
                listed = sorted(i for i in ids if i not in complied)
            except (OSError, lzma.LZMAError):
                listed = None
            if listed != tweet_ids:
                inconsistent.append(f"{label}: IDs file and tweets file differ (complied aside)")
    return hours, inconsistent, unexpected


def osf_mismatches(osf: OSFStandIn, vault: Path) -> list[str]:
    """Every IDs file, report and day manifest on OSF byte-equal to the vault's, and nothing
    else there."""
    published: dict[str, bytes] = {}

    def walk(entry: Entry, prefix: str) -> None:
        for child in entry.children.values():
            if child.kind == "folder":
                walk(child, f"{prefix}{child.name}/")
            else:
                published[prefix + child.name] = child.data

    with osf.lock:
        for root in osf.roots.values():
            walk(root, "")
    expected: dict[str, Path] = {}
    for p in map(Path, _walk(vault)):
        if (
            p.name.endswith("_IDs.txt.xz")
            or REPORT_FILE.match(p.name)
            or DAY_MANIFEST.match(p.name)
        ):
            y, m, d = p.name[:10].split("-")
            expected[f"{y}/{m}/{d}/{p.name}"] = p
    out = [f"on OSF, not in the vault: {k}" for k in sorted(set(published) - set(expected))]
    out += [f"in the vault, not on OSF: {k}" for k in sorted(set(expected) - set(published))]
    out += [
        f"differs from the vault: {k}"
        for k in sorted(set(expected) & set(published))
        if expected[k].read_bytes() != published[k]
    ]
    return out


def leftovers(roots: list[Path]) -> list[str]:
    """Temp and .part files left anywhere the system writes (Snakemake's own dir aside)."""
    found = []
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d != ".snakemake"]
            found += [os.path.join(dirpath, n) for n in files if any(m in n for m in TEMP_MARKS)]
    return sorted(found)


def flips_not_repaired(faults: list[Fault], copies: dict[str, Path]) -> list[str]:
    """Every bit flip that no scrub finding or failed replicate job named (unless a build, a
    copy or a restore renamed a new file over it first: ``traces.superseded``), whose file is
    not again what its copy's record says, or whose flipped bytes are still in it (carried into
    a new generation)."""
    out = []
    for f in (f for f in faults if f.kind == "vault bit flip"):
        why = []
        if f.evidence.get("trace") == "no trace":
            gone = "gone with no finding naming it" if "gone" in f.evidence else "still there"
            why.append(f"never found ({gone})")
        ev = f.evidence
        spot = Spot(ev["location"], ev["day"], ev["file"])
        problem = spot_problem(copies, spot)
        if problem:
            why.append(f"now {problem}")
        if carried(spot.path(copies), ev):
            why.append("the flipped bytes are still in it")
        if why:
            out.append(f"{f.describe()}: {'; '.join(why)}")
    return out


def generations(vault: Path) -> dict[str, int]:
    """Hour label -> the generation of its record on the primary (intact records only)."""
    out = {}
    for path in Path(vault).glob("*/*_record.json"):
        try:
            record = records.read_record(path)
        except records.RecordError:
            continue
        if record is not None:
            out[record.hour] = record.generation
    return out


@dataclass
class Compliance:
    """What the compliance checks need besides the vault: the stand-in's answers (``jobs``,
    with its seed), the primary's raw dirs, why a pass is still open at the end (or None)."""

    jobs: ComplianceJobs
    raw_dirs: list[Path]
    open_pass: str | None


def check(
    ledger: StandInLedger,
    faults: list[Fault],
    down: dict[str, list[list[float | None]]],
    watch: Watch,
    copies: dict[str, Path],
    osf: OSFStandIn,
    write_roots: list[Path],
    tz: ZoneInfo,
    traces: dict[str, dict[str, Any]],
    comply: Compliance,
) -> dict[str, Any]:
    """Every invariant of issue 11's "at the end", issue 21's (the vault's copies agree,
    every bit flip was found and mended) and issue 24's (nothing complied is kept, anywhere),
    with the evidence for each failure. ``copies``: the primary's vault first, then each
    replica's folder. ``traces``: per fault kind, what ``traces.assess`` found where an
    operator looks."""
    vault = copies[PRIMARY]
    delivered = ledger.delivered(down)
    sent_ids = {i for _, _, ids in ledger.sends for i in ids}
    expected = Expected.of(comply.jobs, ledger.made, ledger.authors)
    dropped = dropped_by_collector(ledger.delivered_to(down), watch, expected.posts.keys())
    hours, inconsistent, unexpected = read_vault(vault, expected.posts.keys())
    for root in (r for loc, r in copies.items() if loc != PRIMARY):
        unexpected += read_vault(root)[2]  # its hours: ``hour_disagreements``
    where = _hours_of_ids(hours)
    by_id = _id_problems(ledger, delivered, sent_ids, where, watch, tz, expected.posts.keys())
    raw_files = {
        label: [p for p in watch.files if Path(p).is_relative_to(d)]
        for label, d in watch.raw_dirs.items()
    }
    untraced = [d for k in traces.values() for d in k.get("untraced", [])]
    complying = compliance_problems(
        comply.jobs, expected, copies, PRIMARY, comply.raw_dirs, set(where), comply.open_pass
    )
    osf_bad = osf_mismatches(osf, vault)
    temps = leftovers(write_roots)
    disagree = hour_disagreements(copies)
    flips = [f for f in faults if f.kind == "vault bit flip"]
    unrepaired = flips_not_repaired(faults, copies)

    # Rebuilds, not restores or repairs (which renew the files too): generations past the first.
    rebuilt = sum(g - 1 for g in generations(vault).values())
    problems = {
        name: (ids, _evidence(ids, ledger, faults, delivered, where, watch, tz))
        for name, ids in by_id.items()
    }
    problems |= {
        "delivered to a collector, not in its minute files": (
            dropped,
            _evidence(
                [d.split(": ")[1] for d in dropped], ledger, faults, delivered, where, watch, tz
            ),
        ),
        "OSF differs from the vault": (osf_bad, []),
        "temp or .part files left": (temps, []),
        "vault hours inconsistent": (inconsistent, []),
        "hours where primary and replicas disagree": (disagree, []),
        "day reports or manifests that differ between copies": (day_disagreements(copies), []),
        "bit flips not repaired": (unrepaired, []),
        "unexpected files in the vault": (unexpected, []),
        "faults that left no trace for the operator": (untraced, []),
        "nothing delivered (did the collectors run?)": ([] if delivered else ["0 tweets"], []),
    }
    problems |= {name: (items, []) for name, items in complying.items()}
    return {
        "tweets": {
            "made": len(ledger.made),
            "sent": len(sent_ids),
            "delivered": len(delivered),
            "archived": len(where),
            "lost": len(by_id["lost"]),
            "duplicated": len(by_id["duplicated"]),
            "dropped by one collector": len(dropped),
        },
        "hours": {"built": len(hours), "rebuilt": rebuilt},
        "complied": {
            "posts archived": len(expected.posts.keys() & where.keys()),
            "accounts": len(expected.accounts),
        },
        "copies": {
            "hours where primary and replicas disagree": len(disagree),
            "bit flips": len(flips),
            "bit flips not repaired": len(unrepaired),
        },
        "raw files": {
            label: {"seen": len(ps), "deleted": sum(not os.path.exists(p) for p in ps)}
            for label, ps in raw_files.items()
        },
        "traces": traces,
        "problems": {
            name: {"count": len(items), "items": items[:SHOWN], "evidence": ev}
            for name, (items, ev) in problems.items()
        },
    }


def dropped_by_collector(
    delivered_to: dict[str, dict[str, list[float]]],
    watch: Watch,
    complied: Collection[str] = frozenset(),
) -> list[str]:
    """Each collector's own ledger: a tweet written to it (and read, by ``delivered_to``) is in
    one of its minute files. The union over both collectors would hide one that lost lines the
    other also got. Entries "server: id", sorted. A ``complied`` post may be gone from them
    before the soak looked (a compliance pass rewrites the raw files it finds)."""
    out = []
    for client, ids in sorted(delivered_to.items()):
        roots = [d for label, d in watch.raw_dirs.items() if label.startswith(client)]
        for tweet_id in sorted(i for i in ids if i not in complied):
            files = watch.seen.get(tweet_id, ())
            if not any(Path(p).is_relative_to(r) for p in files for r in roots):
                out.append(f"{client}: {tweet_id}")
    return out


def _hours_of_ids(hours: dict[str, list[str]]) -> dict[str, list[str]]:
    """Tweet ID -> the vault hours whose IDs file lists it."""
    where: dict[str, list[str]] = defaultdict(list)
    for label, ids in hours.items():
        for tweet_id in ids:
            where[tweet_id].append(label)
    return where


def _id_problems(
    ledger: StandInLedger,
    delivered: dict[str, list[float]],
    sent_ids: set[str],
    where: dict[str, list[str]],
    watch: Watch,
    tz: ZoneInfo,
    complied: Collection[str] = frozenset(),
) -> dict[str, list[str]]:
    """The checks that name tweets: problem -> its IDs, sorted (the result's order). A
    ``complied`` post need not be in the vault: a compliance pass drops its lines from the raw
    files of hours not built yet (an IDs file built before keeps it)."""
    lost = sorted(set(delivered) - set(where) - set(complied))
    duplicated = sorted(i for i, labels in where.items() if len(labels) > 1)
    wrong_hour = sorted(
        i
        for i, labels in where.items()
        if i in ledger.made and hour_label(ledger.made[i], tz) not in labels
    )
    phantom = sorted(set(where) - sent_ids)
    raw_unarchived = sorted(set(watch.seen) - set(where) - set(complied))
    raw_deleted = [i for i in raw_unarchived if not any(map(os.path.exists, watch.seen[i]))]
    return {
        "lost": lost,
        "duplicated": duplicated,
        "in the wrong hour": wrong_hour,
        "never sent by the stand-in": phantom,
        "in a raw file but not in the vault": raw_unarchived,
        "raw file deleted, tweets not in the vault": raw_deleted,
    }


def _evidence(
    ids: list[str],
    ledger: StandInLedger,
    faults: list[Fault],
    delivered: dict[str, list[float]],
    where: dict[str, list[str]],
    watch: Watch,
    tz: ZoneInfo,
) -> list[dict[str, Any]]:
    """What the records say of the first ``SHOWN`` of ``ids``."""
    out = []
    for i in ids[:SHOWN]:
        sends = [(t, client) for t, client, x in ledger.sends if i in x]
        times = delivered.get(i) or [t for t, _ in sends][:3]
        out.append(
            {
                # When the stand-in wrote it to whom (seconds since the first write).
                "sent": [f"{client} t+{t - ledger.sends[0][0]:.1f}s" for t, client in sends],
                "id": i,
                "created_at": ledger.made.get(i),
                "vault_hours": where.get(i, []),
                "expected_hour": hour_label(ledger.made[i], tz) if i in ledger.made else None,
                "minute_files": sorted(watch.seen.get(i, set())),
                "faults_around": [
                    f"{f.describe()} at t+{f.t - ledger.sends[0][0]:.1f}s"
                    for f in faults
                    if any(f.covers(t, 10.0) for t in [t for t, _ in sends] or times)
                ][:20],
            }
        )
    return out


def table(result: dict[str, Any]) -> str:
    """The soak's one table (the JSON has the same and the evidence)."""
    lines = [f"soak {result['command']}", ""]
    heads = ("traced", "not met", "no trace")
    lines.append(
        f"{'faults injected':<44}{sum(result['faults'].values()):>8}"
        + "".join(f"{h:>10}" for h in heads)
    )
    for kind, n in sorted(result["faults"].items()):
        seen = result["traces"].get(kind, {})
        lines.append(f"  {kind:<42}{n:>8}" + "".join(f"{seen.get(h, 0):>10}" for h in heads))
    lines.append("")
    for k, v in result["tweets"].items():
        lines.append(f"{'tweets ' + k:<44}{v:>8}")
    lines.append(f"{'hours built':<44}{result['hours']['built']:>8}")
    lines.append(f"{'hours rebuilt':<44}{result['hours']['rebuilt']:>8}")
    for k, v in result["complied"].items():
        lines.append(f"{'complied ' + k:<44}{v:>8}")
    for k, v in result["copies"].items():
        lines.append(f"{k:<44}{v:>8}")
    lines.append(f"{'raw files seen / deleted':<44}")
    for label, n in result["raw files"].items():
        lines.append(f"  {label:<42}{n['seen']:>8}{n['deleted']:>10}")
    runs: Counter = Counter(result["runs"])
    lines.append(f"{'workflow runs':<44}{sum(runs.values()):>8}")
    for outcome, n in sorted(runs.items()):
        lines.append(f"  {outcome:<42}{n:>8}")
    for kind in ("scrub", "restore", "comply"):
        outcomes: Counter = Counter(result["tools"].get(kind, []))
        lines.append(f"{kind + ' runs':<44}{sum(outcomes.values()):>8}")
        for outcome, n in sorted(outcomes.items()):
            lines.append(f"  {outcome:<42}{n:>8}")
    lines.append(f"{'mails received':<44}{sum(result['mails'].values()):>8}")
    for subject, n in sorted(result["mails"].items()):
        lines.append(f"  {subject[:42]:<42}{n:>8}")
    lines.append(f"{'wall time (s)':<44}{result['wall_seconds']:>8.0f}")
    lines.append("")
    failed = {k: v for k, v in result["problems"].items() if v["count"]}
    for name, p in failed.items():
        lines.append(f"FAIL {name}: {p['count']}")
        for e in p["evidence"][:5]:
            lines.append(f"  {e['id']} created {e['created_at']} expected {e['expected_hour']}")
            lines.append(f"    in vault hours {e['vault_hours'] or '-'}")
            lines.append(f"    minute files {e['minute_files'] or '- (never in a raw file)'}")
            lines.append(f"    sent {', '.join(e['sent']) or '-'}")
            lines.append(f"    faults around: {'; '.join(e['faults_around']) or '-'}")
        if not p["evidence"]:
            lines += [f"  {item}" for item in p["items"][:5]]
    for note in result["notes"]:
        lines.append(f"note: {note}")
    lines.append("PASS" if not failed else f"FAILED (seed {result['seed']})")
    return "\n".join(lines)
