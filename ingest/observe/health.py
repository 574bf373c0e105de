"""The whole system's health in one view: collectors, workflow, disk, recent alerts.

``gather`` reads what is on disk (the collectors' status files and newest minute files, the
pull state, the workflow's run record, plan and receipts, free space and its history, the
alert state files) into plain figures; ``assess`` turns them into checks, each OK, warning or
failing by the ``health`` thresholds of the config. The dashboard, ``sampled-stream status``
and the Prometheus textfile all show the same ``Health``.

The workflow's main process records each run (``record_run``) and samples free space
(``sample_disk``) when it ends; a failing check that lasts ``health.mail_after_minutes`` is
mailed once through the alert path (``mail_lasting_failures``).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ingest import backoff, layout
from ingest.atomic import atomic_write_json
from ingest.collect.status import server_report, status_dir
from ingest.hours import plan as planning
from ingest.pull.state import load_state
from ingest.vault import replicate as replication

OK, WARNING, FAILING = "ok", "warning", "failing"
LEVELS = (OK, WARNING, FAILING)  # in order of severity; the metrics use the index
DISK_HISTORY = timedelta(hours=25)  # samples kept: a day's decline gives the rate
RECENT_ALERTS = timedelta(hours=24)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# --- the run record and the disk history (written by the workflow's main process) -----------


def state_file(config: dict[str, Any], name: str) -> Path:
    return layout.work_paths(config["work_dir"])["state"] / name


def record_run(
    config: dict[str, Any], run: str, started: datetime, ended: datetime, result: str
) -> dict[str, Any]:
    """Remember how the workflow run ``run`` ended (result: ok, failed, nothing to do)."""
    path = state_file(config, "last_run.json")
    old = _read_json(path) or {}
    record = {
        "run": run,
        "started": _iso(started),
        "ended": _iso(ended),
        "result": result,
        # The last run that did not fail: "no good run for N minutes" needs it.
        "last_ok": _iso(ended) if result != "failed" else old.get("last_ok"),
    }
    atomic_write_json(path, record)
    return record


def disk_paths(config: dict[str, Any]) -> dict[str, Path]:
    """What fills up: each server's raw_dir, work_dir and vault_dir."""
    paths = {f"raw:{s['name']}": Path(s["raw_dir"]) for s in config["servers"]}
    return {**paths, "work": Path(config["work_dir"]), "vault": Path(config["vault_dir"])}


def _free(path: Path) -> tuple[int, int] | None:
    """(free bytes for an unprivileged user, total bytes) of the file system holding ``path``."""
    while not path.exists() and path != path.parent:
        path = path.parent  # not made yet: its file system is its nearest existing parent's
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def sample_disk(config: dict[str, Any], now: datetime) -> None:
    """Add this run's free space to the history the days-left estimate is made from."""
    path = state_file(config, "disk.json")
    data = _read_json(path)
    samples = data.get("samples", []) if isinstance(data, dict) else []
    samples = [s for s in samples if (t := _parse(s.get("at"))) and now - t < DISK_HISTORY]
    free = {k: f[0] for k, p in disk_paths(config).items() if (f := _free(p)) is not None}
    samples.append({"at": now.isoformat(), "free": free})
    atomic_write_json(path, {"samples": samples[-500:]})


def _days_left(label: str, free: int, samples: list[dict], now: datetime) -> float | None:
    """Days until ``free`` is gone at the rate it fell since the oldest sample at least an hour
    old (a day at most); None when it does not fall or there is no such sample yet."""
    for s in samples:
        t = _parse(s.get("at"))
        then = (s.get("free") or {}).get(label)
        if t is None or then is None or now - t < timedelta(hours=1):
            continue
        fell = then - free
        if fell <= 0:
            return None
        per_day = fell / ((now - t).total_seconds() / 86400)
        return round(free / per_day, 1)
    return None


# --- gathering ------------------------------------------------------------------------------


def collectors(config: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """Per server: its status file and newest minute file (``collect.status``), and for a
    pulled secondary the state of its pulls (its status file stays on the secondary)."""
    tz = ZoneInfo(config["timezone"])
    state_dir = layout.work_paths(config["work_dir"])["state"]
    out = []
    for s in config["servers"]:
        report = server_report(config, s, tz, now)
        report["pulled"] = bool(s.get("rsync_from"))
        if report["pulled"]:
            pull = load_state(state_dir, s["name"])
            report["pull"] = {
                "last_success": pull.last_success,
                "unreachable_since": pull.first_failure,
                "last_error": pull.last_error,
            }
        out.append(report)
    return out


def workflow(config: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The last run, what is overdue or waiting, OSF uploads and the day mails."""
    config = {k: v for k, v in config.items() if k != "hours"}  # the whole archive
    tz = ZoneInfo(config["timezone"])
    work = layout.work_paths(config["work_dir"])
    pulled = [s["name"] for s in config["servers"] if s.get("rsync_from")]
    plan = planning.make_plan(config, now, planning.pull_state(work["state"], pulled))
    vault = Path(config["vault_dir"])
    unbuilt = [
        h
        for h in sorted(plan.build + plan.waiting)
        if not layout.vault_paths(vault, h)["stats"].exists()
    ]
    overdue = None
    if unbuilt:
        _, end = layout.hour_bounds(unbuilt[0], tz)
        due = end + timedelta(minutes=config["late_minutes"] + config["grace_minutes"])
        overdue = round((now - due).total_seconds() / 60, 1)
    built = planning.built_hours(vault)
    out: dict[str, Any] = {
        "last_run": _read_json(state_file(config, "last_run.json")),
        "built_hours": len(built),
        "newest_built_hour": built[-1].label if built else None,
        "oldest_unbuilt_hour": unbuilt[0].label if unbuilt else None,
        "oldest_unbuilt_overdue_minutes": overdue,
        "hours_to_rebuild": len(plan.build) - len([h for h in unbuilt if h in plan.build]),
        "hours_waiting_for_secondary": [h.label for h in plan.waiting],
        "warnings": plan.warnings,
        "osf_enabled": bool(config["osf"]["enabled"]),
        "uploads_pending": 0,
        "uploads_failed": [],
        "email_enabled": bool(config["email"]["enabled"]),
        "last_day_mailed": None,
        "days_to_mail": plan.mails,
    }
    if config["osf"]["enabled"]:
        receipts = {p.name for p in work["osf"].rglob("*.json")} if work["osf"].is_dir() else set()
        out["uploads_pending"] = sum(1 for h in built if f"{h.label}.json" not in receipts)
        failed = sorted(work["osf"].rglob("*.backoff")) if work["osf"].is_dir() else []
        out["uploads_failed"] = [
            {"hour": p.stem, "attempts": st.get("attempts"), "error": st.get("last_error")}
            for p in failed
            if (st := backoff.read(p))
        ]
    sent = sorted(work["mail"].glob("*.sent")) if work["mail"].is_dir() else []
    if sent:
        marker = _read_json(sent[-1]) or {}
        out["last_day_mailed"] = {"day": sent[-1].stem, "sent_at": marker.get("sent_at")}
    return out


def replica_facts(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Each replica's state (failing since, last success, error) and how many built hours its
    receipts lack at their newest generation."""
    vault, work_dir = Path(config["vault_dir"]), config["work_dir"]
    built = planning.built_hours(vault)
    out = []
    for entry in config["vault_replicas"]:
        state = replication.load_state(layout.work_paths(work_dir)["state"], entry["name"])
        behind = sum(1 for h in built if not replication.copied(work_dir, vault, entry["name"], h))
        out.append(
            {
                "name": entry["name"],
                "target": entry["target"],
                "optional": entry["optional"],
                "alert_after_minutes": entry["alert_after_minutes"],
                "failing_since": state.first_failure,
                "last_success": state.last_success,
                "last_error": state.last_error,
                "hours_behind": behind,
            }
        )
    return out


def disks(config: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    history = _read_json(state_file(config, "disk.json"))
    samples = history.get("samples", []) if isinstance(history, dict) else []
    out = []
    for label, path in disk_paths(config).items():
        free = _free(path)
        if free is None:
            out.append({"path": label, "dir": str(path), "error": "cannot stat"})
            continue
        out.append(
            {
                "path": label,
                "dir": str(path),
                "free_bytes": free[0],
                "total_bytes": free[1],
                "free_percent": round(100 * free[0] / free[1], 1) if free[1] else 0.0,
                "days_left": _days_left(label, free[0], samples, now),
            }
        )
    return out


def alert_state_files(config: dict[str, Any]) -> list[Path]:
    """The workflow's alert state and each collector's (``{status_dir}/{server}.alerts.json``)."""
    files = [state_file(config, "alerts.json")]
    return files + [status_dir(config) / f"{s['name']}.alerts.json" for s in config["servers"]]


def recent_alerts(config: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """Alerts raised in the last 24 h, as ``ingest.notify.Alerts`` records them, oldest first."""
    out = []
    for path in alert_state_files(config):
        state = _read_json(path)
        for a in state.get("recent", []) if isinstance(state, dict) else []:
            t = _parse(a.get("at"))
            if t is not None and now - t < RECENT_ALERTS:
                out.append({**a, "source": path.name})
    return sorted(out, key=lambda a: a["at"])


# --- assessing ------------------------------------------------------------------------------


@dataclass
class Check:
    name: str  # e.g. "collector server1", "workflow", "disk vault"
    level: str  # OK, WARNING or FAILING
    summary: str  # one line: what is wrong, or what is fine
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "level": self.level, "summary": self.summary}


def graded(value: float | None, limits: dict[str, float], higher_is_worse: bool = True) -> str:
    """OK, WARNING or FAILING for ``value`` against ``{"warning": w, "failing": f}``."""
    if value is None:
        return OK
    if higher_is_worse:
        return (
            FAILING if value >= limits["failing"] else WARNING if value >= limits["warning"] else OK
        )
    return FAILING if value <= limits["failing"] else WARNING if value <= limits["warning"] else OK


def worst(levels: list[str]) -> str:
    return max(levels, key=LEVELS.index, default=OK)


def _check(name: str, graded_problems: list[tuple[str, str]], fine: str) -> Check:
    bad = [(lvl, text) for lvl, text in graded_problems if lvl != OK]
    level = worst([lvl for lvl, _ in bad])
    texts = [text for _, text in sorted(bad, key=lambda p: -LEVELS.index(p[0]))]
    return Check(name, level, "; ".join(texts) if texts else fine, texts)


def assess_archive(report: dict[str, Any]) -> Check:
    """An imported server: an archive has no liveness, only what it holds and its raw_dir."""
    a = report["archive"]
    problems: list[tuple[str, str]] = []
    if not report.get("raw_dir_exists", True):
        problems.append((WARNING, f"raw_dir {report['raw_dir']} does not exist"))
    if "unreadable" in a:
        problems.append((WARNING, f"import summary unreadable: {a['unreadable']}"))
    if a.get("inputs"):
        n = a["inputs"]
        fine = (
            f"{a['lines']:,} lines from {n:,} input{'s' * (n != 1)}, {a['first_minute']} to "
            f"{a['last_minute']}, last import {a['last_import']}"
        )
    else:
        fine = "nothing imported yet"
    return _check(f"archive {report['server']}", problems, fine)


def assess_collector(report: dict[str, Any], limits: dict[str, Any]) -> Check:
    if "archive" in report:
        return assess_archive(report)
    name = f"collector {report['server']}"
    age = report.get("newest_minute_age_seconds")
    age_limits = dict(limits["minute_file_age_minutes"])
    if report.get("pulled"):
        # A secondary's minutes come with the pulls: a cron interval and a run later.
        extra = limits["pulled_allowance_minutes"]
        age_limits = {k: v + extra for k, v in age_limits.items()}
    problems: list[tuple[str, str]] = []
    if not report.get("raw_dir_exists", True):
        problems.append((FAILING, f"raw_dir {report['raw_dir']} does not exist"))
    elif age is None:
        problems.append((FAILING, "no minute file at all"))
    else:
        level = graded(age / 60, age_limits)
        problems.append((level, f"newest minute file {age / 60:.0f} min old"))
    if report.get("pulled"):
        pull = report.get("pull") or {}
        if pull.get("unreachable_since"):
            problems.append(
                (WARNING, f"pull failing since {pull['unreachable_since']}: {pull['last_error']}")
            )
    else:
        st = report.get("status")
        if st is None:
            problems.append((WARNING, "no status file"))
        elif "unreadable" in st:
            problems.append((WARNING, f"status file unreadable: {st['unreadable']}"))
        elif st.get("state") == "stopped":
            problems.append((FAILING, f"stopped: {st.get('stopped_reason') or 'unknown reason'}"))
        else:
            if not st.get("connected_since"):
                problems.append((WARNING, "disconnected, reconnecting"))
            unwritten = st.get("unwritten_minutes") or {}
            taken = unwritten.get("taken") or []
            for t in taken:
                problems.append(
                    (FAILING, f"minute file name taken by a {t['is']}: move {t['file']} away")
                )
            if len(unwritten.get("minutes") or []) > len(taken):
                problems.append((FAILING, "closed minutes not written (disk?)"))
            correction = (st.get("clock") or {}).get("correction_seconds")
            if correction:  # filing by the tweets' time, not by a wrong wall clock
                problems.append((WARNING, f"wall clock off by {correction:+.0f} s, corrected"))
    fine = f"newest minute file {age / 60:.0f} min old" if age is not None else "ok"
    return _check(name, problems, fine)


def assess_workflow(wf: dict[str, Any], limits: dict[str, Any], now: datetime) -> Check:
    problems: list[tuple[str, str]] = []
    run = wf.get("last_run") or {}
    last_ok = _parse(run.get("last_ok"))
    if not run:
        problems.append((WARNING, "no workflow run recorded"))
    else:
        if run.get("result") == "failed":
            problems.append((WARNING, f"last run failed ({run.get('ended')})"))
        since = (now - last_ok).total_seconds() / 60 if last_ok else None
        level = graded(since, limits["no_good_run_minutes"]) if last_ok else FAILING
        if level != OK:
            problems.append(
                (level, f"no good run for {since:.0f} min" if since else "no good run yet")
            )
    overdue = wf.get("oldest_unbuilt_overdue_minutes")
    if overdue is not None:
        level = graded(overdue, limits["unbuilt_hour_overdue_minutes"])
        problems.append(
            (level, f"hour {wf['oldest_unbuilt_hour']} unbuilt, due {overdue:.0f} min ago")
        )
    if wf.get("hours_waiting_for_secondary"):
        n = len(wf["hours_waiting_for_secondary"])
        problems.append((WARNING, f"{n} hour(s) waiting for a secondary"))
    failed = len(wf.get("uploads_failed") or [])
    if failed:
        problems.append(
            (graded(failed, limits["failed_uploads"]), f"{failed} failed OSF upload(s)")
        )
    fine = f"last run {run.get('result')} at {run.get('ended')}" if run else "ok"
    return _check("workflow", problems, fine)


def assess_replica(r: dict[str, Any], raw_held: int, now: datetime) -> Check:
    """Failing once a required replica has failed for its alert_after_minutes; a warning while
    it fails or lacks hours; the raw files retention keeps for the replicas are named."""
    problems = []
    since = _parse(r["failing_since"])
    if since is not None:
        long = now - since >= timedelta(minutes=r["alert_after_minutes"])
        level = FAILING if long and not r["optional"] else WARNING
        problems.append((level, f"failing since {since.isoformat()}: {r['last_error']}"))
    if r["hours_behind"]:
        problems.append((WARNING, f"{r['hours_behind']} built hours not copied yet"))
    if raw_held and problems and not r["optional"]:
        problems.append((WARNING, f"{raw_held} raw minute files kept until it has their hours"))
    return _check(f"replica {r['name']}", problems, f"up to date ({r['target']})")


def assess_disk(d: dict[str, Any], limits: dict[str, Any]) -> Check:
    name = f"disk {d['path']}"
    if "error" in d:
        return Check(name, WARNING, f"{d['dir']}: {d['error']}", [d["error"]])
    gb = d["free_bytes"] / 1e9
    problems = [
        (
            graded(d["free_percent"], limits["disk_free_percent"], higher_is_worse=False),
            f"{gb:.1f} GB free ({d['free_percent']:.0f} %)",
        )
    ]
    if d["days_left"] is not None:
        level = graded(d["days_left"], limits["disk_days_left"], higher_is_worse=False)
        problems.append((level, f"full in {d['days_left']:.0f} days at the current rate"))
    left = f", {d['days_left']:.0f} days left" if d["days_left"] is not None else ""
    return _check(name, problems, f"{gb:.1f} GB free ({d['free_percent']:.0f} %){left}")


@dataclass
class Health:
    at: datetime
    checks: list[Check]
    facts: dict[str, Any]

    @property
    def level(self) -> str:
        return worst([c.level for c in self.checks])

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "level": self.level,
            "checks": [c.to_json() for c in self.checks],
            **self.facts,
        }

    def format(self) -> str:
        lines = [f"health: {self.level.upper()} at {self.at.isoformat(timespec='seconds')}"]
        lines += [f"  {c.level.upper():<8} {c.name}: {c.summary}" for c in self.checks]
        alerts = self.facts.get("alerts_24h") or []
        lines.append(f"  alerts in the last 24 h: {len(alerts)}")
        lines += [f"    {a['at']} {a.get('subject') or a.get('kind')}" for a in alerts[-10:]]
        return "\n".join(lines)


def assess(facts: dict[str, Any], limits: dict[str, Any], now: datetime) -> list[Check]:
    checks = [assess_collector(r, limits) for r in facts["collectors"]]
    checks.append(assess_workflow(facts["workflow"], limits, now))
    held = (facts.get("retention") or {}).get("raw_held") or 0
    checks += [assess_replica(r, held, now) for r in facts.get("replicas", [])]
    # One check per file system: raw, work and vault often share one.
    shared: dict[tuple, list[dict[str, Any]]] = {}
    for d in facts["disks"]:
        key = ("error", d["path"]) if "error" in d else (d["free_bytes"], d["total_bytes"])
        shared.setdefault(key, []).append(d)
    for group in shared.values():
        check = assess_disk(group[0], limits)
        check.name = "disk " + ", ".join(d["path"] for d in group)
        checks.append(check)
    return checks


def system_health(config: dict[str, Any], now: datetime) -> Health:
    facts = {
        "collectors": collectors(config, now),
        "workflow": workflow(config, now),
        "disks": disks(config, now),
        "alerts_24h": recent_alerts(config, now),
        "replicas": replica_facts(config),
        "retention": _read_json(state_file(config, "retention.json")),
    }
    return Health(now, assess(facts, config["health"], now), facts)


def is_primary(config: dict[str, Any]) -> bool:
    """The workflow runs here (it has recorded a run): the machine whose health is the system's."""
    return state_file(config, "last_run.json").exists()


# --- a failing state that lasts is mailed --------------------------------------------------


def mail_lasting_failures(config: dict[str, Any], health: Health, now: datetime) -> list[str]:
    """Track since when each check fails; mail those failing for ``health.mail_after_minutes``
    once (``notify_once``: again only after they recovered). Returns the lasting ones."""
    from ingest.notify import notify_once

    path = state_file(config, "health.json")
    old = (_read_json(path) or {}).get("failing_since", {})
    since = {c.name: old.get(c.name, now.isoformat()) for c in health.checks if c.level == FAILING}
    atomic_write_json(path, {"failing_since": since})
    after = timedelta(minutes=config["health"]["mail_after_minutes"])
    lasting = sorted(n for n, t in since.items() if now - datetime.fromisoformat(t) >= after)
    with contextlib.suppress(Exception):  # the mail must never fail the run
        notify_once(
            config,
            "health",
            lasting,
            f"health failing: {', '.join(lasting)}",
            f"These checks have been failing for {after.total_seconds() / 60:.0f}+ minutes:\n\n"
            f"{health.format()}\n\nNewly failing (each is mailed once until it recovers):",
            now,
        )
    return lasting
