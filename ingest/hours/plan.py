"""What a workflow run has to do, decided from what is on disk.

The plan is cheap to make: it lists the raw folders (kept for ``retention.keep_raw_hours``),
the vault's day folders and the receipt folders, and reads the stats of recent hours only.
A year of built hours costs a few hundred directory listings, not a DAG of a year.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ingest import backoff, changed_hours, layout
from ingest.hours.minutes import read_meta
from ingest.hours.stats import HourStats, StatsError, input_sizes, read_stats_if_built
from ingest.layout import Hour, MinuteFile
from ingest.vault import records
from ingest.vault.day import days_to_derive


@dataclass
class Plan:
    build: list[Hour] = field(default_factory=list)  # hours to build or rebuild now
    waiting: list[Hour] = field(default_factory=list)  # complete, but a secondary is not in yet
    reports: list[str] = field(default_factory=list)  # days whose report is rebuilt
    uploads: list[Hour] = field(default_factory=list)  # hours whose OSF upload is missing
    mails: list[str] = field(default_factory=list)  # complete days not mailed yet, or revised
    revised: list[str] = field(default_factory=list)  # of those, mailed before: a newer report
    # Minute files whose intermediates are missing or older than the raw file: those of the
    # hours to build, and those of hours still in progress, parsed ahead so that an hour's
    # build is mostly the merge (a cron run every few minutes spreads the parsing out).
    to_parse: list[MinuteFile] = field(default_factory=list)
    # What the operator must hear of although the run goes on (e.g. a damaged stats file, its
    # hour rebuilt): one line each, printed with the plan and mailed by the run's alert.
    warnings: list[str] = field(default_factory=list)


def upload_backoff(receipt: Path) -> Path:
    """Next to an hour's upload receipt: its back-off state after failed uploads."""
    return receipt.with_suffix(".backoff")


def intermediate(work_dir: str | Path, f: MinuteFile, kind: str) -> Path:
    """The per-minute intermediate of a raw minute file (kind: tweets or users)."""
    day, hh = f.path.parent.parent.name, f.path.parent.name
    return layout.work_paths(work_dir)["minutes"] / f.server / day / hh / f"{f.stem}.{kind}.tsv"


def window_files(
    config: dict[str, Any], hour: Hour, rejected: set[layout.Rejected] | None = None
) -> dict[str, list[MinuteFile]]:
    """Each server's raw minute files that hour ``hour`` reads (entries skipped: ``rejected``)."""
    tz = ZoneInfo(config["timezone"])
    start, end = layout.read_window(hour, tz, config["late_minutes"])
    return {
        s["name"]: layout.minute_files(s["name"], s["raw_dir"], start, end, tz, rejected)
        for s in config["servers"]
    }


def has_new_input(stats: HourStats, files: dict[str, list[MinuteFile]]) -> bool:
    """True when a minute file arrived after the hour was built (e.g. a late secondary), or one
    the build read has another size now (a minute completed after a restart, or pulled again).

    Sizes recorded as None (builds before sizes were recorded) compare by name only.
    """
    recorded = input_sizes(stats)
    for server, server_files in files.items():
        seen = {Path(name).name: size for name, size in recorded.get(server, {}).items()}
        for f in server_files:
            if f.path.name not in seen:
                return True
            size = seen[f.path.name]
            if size is not None and _size(f.path) not in (size, None):
                return True
    return False


def _size(path: Path) -> int | None:
    """The file's size; None when it is gone meanwhile (retention, a pull's rename)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def selected(hour: Hour, only: str | None) -> bool:
    """Is ``hour`` among ``hours`` (the config key): a day, an hour, or an inclusive range of
    them, ``A..B`` (``2023-01-01..2023-03-31``, ``2023-01-01_06..2023-01-01_17``)?"""
    if only is None:
        return True
    first, _, last = only.partition("..")
    # Labels (YYYY-mm-dd_HH) sort as text; a day stands for its hours _00 to _23.
    return _first_hour(first) <= hour.label <= _last_hour(last or first)


def _first_hour(day_or_hour: str) -> str:
    return day_or_hour if "_" in day_or_hour else f"{day_or_hour}_00"


def _last_hour(day_or_hour: str) -> str:
    return day_or_hour if "_" in day_or_hour else f"{day_or_hour}_23"


def hours_range_error(only: str | None) -> str | None:
    """What is wrong with ``hours`` that its schema pattern cannot say (a range ending before
    it starts, which would select nothing), or None."""
    first, sep, last = (only or "").partition("..")
    if sep and _last_hour(last) < _first_hour(first):
        return f"hours: {only!r}: the range ends before it starts"
    return None


def secondary_waiting(
    config: dict[str, Any], hour: Hour, now: datetime, pull_state: dict[str, dict]
) -> bool:
    """A pulled server whose last pull failed holds an hour back for secondary_wait_minutes."""
    tz = ZoneInfo(config["timezone"])
    _, end = layout.hour_bounds(hour, tz)
    complete_at = end + timedelta(minutes=config["late_minutes"] + config["grace_minutes"])
    if now >= complete_at + timedelta(minutes=config["secondary_wait_minutes"]):
        return False
    return any(
        not pull_state.get(s["name"], {}).get("ok", True)
        for s in config["servers"]
        if s.get("rsync_from")
    )


def server_hours(
    config: dict[str, Any], server: dict[str, Any], rejected: set[layout.Rejected]
) -> set[Hour]:
    """The hours a server's raw_dir holds that the plan looks at. An imported server's raw_dir
    is kept for good: a cron run takes the hours its imports marked changed
    (``ingest.changed_hours``) instead of walking years of folders; ``hours=`` walks it."""
    if server["imported"] and config.get("hours") is None:
        marked = changed_hours.changed(config["work_dir"], server["name"])
        if marked is not None:
            return marked
    return layout.raw_hours(server["raw_dir"], rejected)


def make_plan(
    config: dict[str, Any], now: datetime, pull_state: dict[str, dict] | None = None
) -> Plan:
    tz = ZoneInfo(config["timezone"])
    late, grace = config["late_minutes"], config["grace_minutes"]
    only = config.get("hours")
    vault = Path(config["vault_dir"])
    plan = Plan()

    candidates: set[Hour] = set()
    rejected: set[layout.Rejected] = set()  # odd names and special files: skipped, reported
    for s in config["servers"]:
        if not Path(s["raw_dir"]).is_dir():
            plan.warnings.append(
                f"servers: {s['name']}: raw_dir {s['raw_dir']} does not exist (read as empty)"
            )
        for h in server_hours(config, s, rejected):
            bounds = layout.hour_bounds(h, tz)
            if bounds is None:
                continue  # a folder for an hour the DST jump skipped
            candidates.add(h)
            # Copies in h's first minutes may count for the hour before (late arrivals).
            candidates.add(layout.hour_of(bounds[0] - layout.MINUTE, tz))
    ahead: set[MinuteFile] = set()
    needed: set[MinuteFile] = set()
    for hour in sorted(candidates):
        if not selected(hour, only):
            continue
        files = window_files(config, hour, rejected)
        if not layout.is_complete(hour, tz, now, late, grace):
            if only is None:
                ahead.update(f for fs in files.values() for f in fs)
            continue
        if not any(files.values()):
            continue  # no raw data, nothing to build
        try:
            stats = read_stats_if_built(layout.vault_paths(vault, hour)["stats"])
        except StatsError as e:
            # Rebuilt (the build merges in the hour's old vault files), not a stop for every
            # other hour: the plan is made before Snakemake can report anything.
            plan.warnings.append(f"{e}: rebuilding hour {hour}")
            stats = None
        else:
            if stats is not None and only is None and not has_new_input(stats, files):
                continue  # built, and nothing new arrived
        if pull_state and secondary_waiting(config, hour, now, pull_state):
            plan.waiting.append(hour)
            continue
        plan.build.append(hour)
        needed.update(f for fs in files.values() for f in fs)

    plan.warnings += [f"{r}: skipped" for r in sorted(rejected, key=str)]
    plan.to_parse = sorted(
        (f for f in needed | ahead if not _parsed(config["work_dir"], f)),
        key=lambda f: (f.minute, f.server),
    )
    # Days whose manifest is older than a record (a run killed before its day_manifest, a
    # rebuild with --until build_hour) or that have hours from before records: every run.
    plan.reports = sorted({h.day for h in plan.build} | set(days_to_derive(vault)))
    _publication(plan, config, now, built_hours(vault))
    return plan


def _publication(plan: Plan, config: dict[str, Any], now: datetime, built: list[Hour]) -> None:
    """The plan's OSF uploads and day mails, from their receipts."""
    vault, only = Path(config["vault_dir"]), config.get("hours")
    if config["osf"]["enabled"]:
        osf_dir = layout.work_paths(config["work_dir"])["osf"]
        pending = set(plan.build) | {h for h in built if not _uploaded(osf_dir, vault, h)}
        # Hours whose last upload failed wait out their back-off; a backlog goes a few a run.
        due = [
            h
            for h in sorted(pending)
            if selected(h, only)
            and backoff.is_due(upload_backoff(osf_dir / h.day / f"{h.label}.json"), now)
        ]
        plan.uploads = due[: config["osf"]["max_uploads_per_run"]]
    if config["email"]["enabled"]:
        tz, wait = ZoneInfo(config["timezone"]), config["late_minutes"] + config["grace_minutes"]
        mail_dir = layout.work_paths(config["work_dir"])["mail"]
        sent = _names(mail_dir, ".sent")
        days = {h.day for h in built} | set(plan.reports)
        # A day with an hour held back for a secondary is mailed once that hour is built: the
        # report goes only once, so it must not go without the day's last hours.
        held = {h.day for h in plan.waiting}
        complete = [
            d
            for d in days
            if d not in held and now >= layout.day_end(d, tz) + timedelta(minutes=wait)
        ]
        # A newer generation of an hour of a day already mailed rewrites its report: the day
        # is mailed again, marked revised (tracked by the report's hash in the marker).
        plan.revised = sorted(
            d
            for d in complete
            if f"{d}.sent" in sent and _report_changed(mail_dir / f"{d}.sent", vault, d)
        )
        plan.mails = sorted({d for d in complete if f"{d}.sent" not in sent} | set(plan.revised))


def _report_changed(marker: Path, vault: Path, day: str) -> bool:
    """Is the day's report other than the one its mail marker names? Only a report written
    after the mail is read and hashed (a year of markers costs two stats a day). A marker
    from before the hash was kept names none: nothing to compare, not mailed again."""
    report = layout.report_path(vault, day)
    try:
        if report.stat().st_mtime <= marker.stat().st_mtime:
            return False
        mailed = json.loads(marker.read_text()).get("report_sha256")
        return mailed is not None and mailed != hashlib.sha256(report.read_bytes()).hexdigest()
    except (OSError, ValueError, AttributeError):
        return False


def _parsed(work_dir: str, f: MinuteFile) -> bool:
    """Are the minute's intermediates there, newer than the raw file and made from a raw file
    of its current size? (A rewrite in the same second as the parse keeps the mtime order.)
    Intermediates without a recorded size (older versions) go by the mtimes alone."""
    try:
        raw = f.path.stat()
        paths = [intermediate(work_dir, f, kind) for kind in ("tweets", "users")]
        if any(p.stat().st_mtime < raw.st_mtime for p in paths):
            return False
        return read_meta(paths[0]).get("size", raw.st_size) == raw.st_size
    except (FileNotFoundError, ValueError):
        return False  # missing, or no readable metadata line: parse it again


def built_hours(vault_dir: Path) -> list[Hour]:
    """Hours with a stats file in the vault (one listing per day folder)."""
    out = []
    if not vault_dir.is_dir():
        return out
    for day_dir in vault_dir.iterdir():
        if not day_dir.is_dir():
            continue
        for name in _names(day_dir, "_stats.json"):
            try:
                out.append(Hour.parse(name.removesuffix("_stats.json")))
            except ValueError:
                continue
    return sorted(out)


def _uploaded(osf_dir: Path, vault: Path, hour: Hour) -> bool:
    """Is the hour's newest generation on OSF? Its upload receipt is newer than its record (an
    hour built before records: a receipt at all)."""
    try:
        done = (osf_dir / hour.day / f"{hour.label}.json").stat().st_mtime_ns
    except FileNotFoundError:
        return False
    try:
        return records.record_path(vault, hour).stat().st_mtime_ns <= done
    except FileNotFoundError:
        return True


def _names(folder: Path, suffix: str) -> set[str]:
    """File names ending in ``suffix`` anywhere below ``folder``."""
    if not folder.is_dir():
        return set()
    return {p.name for p in folder.rglob(f"*{suffix}")}


def pull_state(state_dir: Path, servers: list[str]) -> dict[str, dict]:
    """Whether each pulled server's last pull worked ({"ok": True} for one never pulled)."""
    from ingest.pull.state import load_state

    return {
        server: {"ok": load_state(state_dir, server).first_failure is None} for server in servers
    }


def describe(
    plan: Plan,
    now: datetime,
    when: str = "",
    copies: dict[str, list[Hour]] | None = None,
    pulls: list[str] = (),
) -> str:
    """One line per kind of pending work, what `snakemake -n` must make obvious: "nothing
    pending" only when no job of any kind would run. ``copies``: each replica's hours to copy;
    ``pulls``: the servers this run pulls."""
    lines = [f"plan at {now.isoformat()}{f' {when}' if when else ''}:"]
    kinds = [
        ("servers to pull", list(pulls)),
        ("hours to build", [h.label for h in plan.build]),
        ("hours waiting for a secondary", [h.label for h in plan.waiting]),
        ("day reports and manifests to write", plan.reports),
        *(
            (f"hours to copy to replica {r}", [h.label for h in hs])
            for r, hs in (copies or {}).items()
        ),
        ("uploads to OSF", [h.label for h in plan.uploads]),
        ("day reports to mail", plan.mails),
    ]
    for what, items in kinds:
        if items:
            lines.append(f"  {what} ({len(items)}): {', '.join(items)}")
    if plan.to_parse:
        lines.append(f"  minute files to parse: {len(plan.to_parse)}")
    lines += [f"  warning: {w}" for w in plan.warnings]
    if len(lines) == 1:
        lines.append("  nothing pending")
    return "\n".join(lines)
