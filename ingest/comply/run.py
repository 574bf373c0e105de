"""``sampled-stream comply``: one compliance pass over the vault (issue 24).

1. **Ask** (no lock: builds go on meanwhile): the days' tweet IDs and author IDs, cut into
   chunks of ``comply.ids_per_job`` (``state.write_chunks``); for each chunk in turn a job
   (tweets chunks, then users: one job per type at a time, as X allows), its IDs uploaded,
   its status polled every ``comply.poll_seconds`` until ``complete``, its results saved.
   Each step is written to ``state.json`` first, so a killed run resumes the same job.
2. **Apply**, holding the workflow's run lock (builds, pulls and replication wait): the
   answers located in the vault (``scan.locate``), each day's ``{day}_compliance.tsv``
   written (the old entries and the new, each ID once), every affected hour rewritten as its
   next generation (``rewrite.rewrite_hour``), the raw minute files still held rewritten
   (``raw.scrub_raw``), the day reports written again (their removals by action: a day
   already mailed is mailed again, revised), the day manifests derived again, and the new
   generations copied to every replica (a replica that fails gets them from the next
   workflow run, which copies every record newer than its receipt). ``scrub_geo`` answers
   remove nothing: the hour's files hold no geo data.
3. The state goes; ``last.json`` keeps the pass's summary. An hour that could not be rewritten
   (its files differ from its record: scrub or restore it) keeps the pass open: the next run
   applies the same answers again, asking X nothing new.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from ingest import changed_hours, complied, layout
from ingest.atomic import XzError, atomic_write, atomic_write_json
from ingest.clock import Clock
from ingest.comply import scan, state
from ingest.comply.client import ComplyError, JobClient
from ingest.comply.raw import scrub_raw
from ingest.comply.rewrite import RewriteError, rewrite_hour
from ingest.hours.report import write_day_report
from ingest.hours.stats import day_stats_paths
from ingest.hours.vault_source import VaultError
from ingest.layout import Hour, work_paths
from ingest.locks import exclusive_lock
from ingest.secrets import read_secret
from ingest.vault.day import derive_manifest
from ingest.vault.records import RecordError
from ingest.vault.replicate import ReplicaError, hour_receipt, replicate_hour
from ingest.workflow_run import wait_for_run_lock

_log = logging.getLogger(__name__)
NOT_REMOVED = {"scrub_geo"}  # the hour's files hold no geo data: nothing to remove
MAX_JOB_ATTEMPTS = 3


@dataclass
class PassResult:
    started: str
    days: list[str]
    asked: dict[str, int] = field(default_factory=dict)  # type -> IDs sent
    jobs: list[str] = field(default_factory=list)
    answers: dict[str, dict[str, int]] = field(default_factory=dict)  # type -> reason -> IDs
    logged: dict[str, int] = field(default_factory=dict)  # day -> new log entries
    hours_rewritten: list[str] = field(default_factory=list)
    tweets_removed: dict[str, int] = field(default_factory=dict)  # action -> rows
    raw_files: int = 0
    errors: list[str] = field(default_factory=list)  # hours not rewritten: the pass stays open
    replica_errors: list[str] = field(default_factory=list)
    resumed: bool = False


def api_url(config: dict[str, Any]) -> str:
    """``comply.api_url``, else the origin of ``stream.url`` (the stand-in serves both)."""
    if config["comply"].get("api_url"):
        return config["comply"]["api_url"]
    url = urlsplit(config["stream"]["url"])
    return f"{url.scheme}://{url.netloc}"


def make_client(config: dict[str, Any], log: logging.Logger | None = None) -> JobClient:
    """The job client with the config's token (``stream.bearer_token_file`` or
    ``TWITTER_BEARER_TOKEN``), API URL and back-offs."""
    token = read_secret(
        config["stream"].get("bearer_token_file"),
        "TWITTER_BEARER_TOKEN",
        "stream.bearer_token_file",
    )
    cfg = config["comply"]
    return JobClient(
        token,
        api_url(config),
        retries=cfg["retries"],
        backoff_scale=cfg["backoff_scale"],
        log=log,
    )


def comply(
    config: dict[str, Any],
    client: JobClient,
    clock: Clock,
    *,
    days: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    log: logging.Logger | None = None,
) -> PassResult:
    """One pass (or the rest of a killed one). ``days``: only the newest N day folders.
    Raises ``LockBusy`` when another comply runs (or a workflow run holds the run lock past
    ``comply.lock_wait_minutes``), ``ComplyError`` when X refuses or fails a job."""
    log = log or _log
    work, vault = Path(config["work_dir"]), Path(config["vault_dir"])
    folder = state.pass_dir(work)
    state.comply_dir(work).mkdir(parents=True, exist_ok=True)
    with exclusive_lock(state.comply_dir(work) / "comply.lock", blocking=False):
        current = state.load(work)
        resumed = current is not None
        if current is None:
            current = _start(config, vault, folder, clock, days, log)
        result = PassResult(current.started, current.days, resumed=resumed)
        for chunk in current.chunks:
            result.asked[chunk.type] = result.asked.get(chunk.type, 0) + chunk.ids
            _ask(client, work, current, chunk, folder, config, sleep, log)
            result.jobs.append(chunk.job["id"] if chunk.job else "")
        _apply(config, vault, current, folder, clock, result, log)
        if result.errors:  # the next run applies the same answers again, once repaired
            return result
        atomic_write_json(state.comply_dir(work) / "last.json", _summary(result, clock))
        state.state_path(work).unlink()
        shutil.rmtree(folder, ignore_errors=True)
    return result


def _start(
    config: dict[str, Any],
    vault: Path,
    folder: Path,
    clock: Clock,
    days: int | None,
    log: logging.Logger,
) -> state.PassState:
    now = clock.now()
    chosen = scan.vault_days(vault, days)
    shutil.rmtree(folder, ignore_errors=True)  # a pass killed before its state was written
    stamp = now.strftime("%Y-%m-%dT%H%M%SZ")
    per_job = config["comply"]["ids_per_job"]
    chunks = state.write_chunks(folder, "tweets", scan.tweet_ids(vault, chosen), per_job, stamp)
    chunks += state.write_chunks(folder, "users", scan.author_ids(vault, chosen), per_job, stamp)
    current = state.PassState(now.isoformat(), chosen, chunks)
    state.save(config["work_dir"], current)
    log.info(
        "comply: %d day(s), %d tweet and %d user IDs in %d job(s)",
        len(chosen),
        sum(c.ids for c in chunks if c.type == "tweets"),
        sum(c.ids for c in chunks if c.type == "users"),
        len(chunks),
    )
    return current


def _ask(
    client: JobClient,
    work: Path,
    current: state.PassState,
    chunk: state.Chunk,
    folder: Path,
    config: dict[str, Any],
    sleep: Callable[[float], None],
    log: logging.Logger,
) -> None:
    """Take ``chunk`` through its job until its results are saved (each step saved first)."""
    poll = config["comply"]["poll_seconds"]
    while chunk.results is None:
        if chunk.job is None:
            chunk.job = _adopt(client, chunk) or _create(client, chunk, log)
            state.save(work, current)
        job = client.get(chunk.job["id"])
        status = job.get("status")
        if status == "created" and not chunk.uploaded:
            client.upload(chunk.job["upload_url"], (folder / chunk.file).read_bytes())
            chunk.uploaded = True
            state.save(work, current)
            log.info("comply: job %s (%s, %d IDs) uploaded", chunk.job["id"], chunk.type, chunk.ids)
        elif status == "complete":
            results = f"results-{chunk.file.removeprefix('ids-').removesuffix('.txt')}.jsonl"
            lines = [orjson.dumps(r) + b"\n" for r in client.download(chunk.job["download_url"])]
            atomic_write(folder / results, b"".join(lines))
            chunk.results = results
            state.save(work, current)
            log.info("comply: job %s complete, %d answer(s)", chunk.job["id"], len(lines))
        elif status in ("failed", "expired"):
            if chunk.attempts >= MAX_JOB_ATTEMPTS:
                raise ComplyError(f"job {chunk.job['id']} {status} {chunk.attempts} times")
            log.warning("comply: job %s %s; a new job for its IDs", chunk.job["id"], status)
            chunk.job, chunk.uploaded = None, False
            state.save(work, current)
        else:
            sleep(poll)


def _adopt(client: JobClient, chunk: state.Chunk) -> dict[str, Any] | None:
    """The chunk's job if X already has it (created before a kill, never saved)."""
    for job in client.active(chunk.type):
        if job.get("name") == chunk.name:
            return _job_fields(job)
    return None


def _create(client: JobClient, chunk: state.Chunk, log: logging.Logger) -> dict[str, Any]:
    chunk.attempts += 1
    job = _job_fields(client.create(chunk.type, chunk.name))
    log.info("comply: job %s created for %s (%d IDs)", job["id"], chunk.file, chunk.ids)
    return job


def _job_fields(job: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "upload_url", "download_url", "created_at", "name")
    return {k: job[k] for k in keys if k in job}


def _answers(
    folder: Path, current: state.PassState, result: PassResult
) -> tuple[dict[int, tuple[str, str]], dict[int, tuple[str, str]]]:
    """{ID: (action, job date)} of the posts and the accounts the jobs named."""
    found: dict[str, dict[int, tuple[str, str]]] = {"tweets": {}, "users": {}}
    seen: dict[str, Counter[str]] = {"tweets": Counter(), "users": Counter()}
    for chunk in current.chunks:
        job_date = str((chunk.job or {}).get("created_at", current.started))[:10]
        for line in (folder / (chunk.results or "")).read_bytes().splitlines():
            item = orjson.loads(line)
            reason = str(item.get("reason") or item.get("action") or "unknown")
            seen[chunk.type][reason] += 1
            if reason not in NOT_REMOVED and str(item["id"]).isdigit():
                found[chunk.type].setdefault(int(item["id"]), (reason, job_date))
    result.answers = {t: dict(sorted(c.items())) for t, c in seen.items()}
    return found["tweets"], found["users"]


def _apply(
    config: dict[str, Any],
    vault: Path,
    current: state.PassState,
    folder: Path,
    clock: Clock,
    result: PassResult,
    log: logging.Logger,
) -> None:
    posts, accounts = _answers(folder, current, result)
    lock = wait_for_run_lock(
        config,
        config["comply"]["lock_wait_minutes"] * 60,
        on_wait=lambda busy: log.info("comply: waiting for the run lock: %s", busy),
        what="comply",
    )
    try:
        located = scan.locate(vault, current.days, posts, accounts)
        result.errors += located.errors  # the pass stays open for them
        manifest_lock = work_paths(config["work_dir"])["state"] / "manifest.lock"
        for day, entries in located.entries.items():
            path = complied.log_path(vault, day)
            old = complied.read_log(path)
            text = complied.format_log([*old, *entries])
            if text != (path.read_text(encoding="utf-8") if path.exists() else None):
                atomic_write(path, text)
                result.logged[day] = text.count("\n") - 1 - len(old)
        removed: Counter[str] = Counter()
        rewritten: list[Hour] = []
        for day, hours in located.hours.items():
            day_complied = complied.for_day(vault, day)
            for hour in hours:
                try:
                    done = rewrite_hour(
                        vault,
                        hour,
                        day_complied,
                        xz_preset=config["xz_preset"],
                        xz_threads=config["xz_threads"],
                        log=log,
                    )
                except (RewriteError, VaultError, RecordError, OSError, XzError) as e:
                    # One damaged hour (or a full disk) holds back no other; the pass stays
                    # open for it.
                    log.error("comply: %s", e)
                    result.errors.append(str(e))
                    continue
                if done is not None:
                    rewritten.append(hour)
                    removed.update(done.removed)
        raw_dirs = [(s["name"], Path(s["raw_dir"])) for s in config["servers"]]
        raw = scrub_raw(raw_dirs, vault, list(located.entries), log)
        for s in config["servers"]:
            if s.get("imported") and raw.hours.get(s["name"]):
                # Its raw_dir is not walked: the marks make the plan parse and rebuild them.
                changed_hours.mark(config["work_dir"], s["name"], raw.hours[s["name"]])
        result.raw_files = raw.files
        servers = [s["name"] for s in config["servers"]]
        for day in sorted(set(located.entries) | {h.day for h in rewritten}):
            if any(h.day == day for h in rewritten):  # its removals by action (the stats)
                stats = day_stats_paths(vault / day, day)
                write_day_report(day, stats, layout.report_path(vault, day), servers)
            derive_manifest(vault / day, manifest_lock, log)
        result.hours_rewritten = [h.label for h in rewritten]
        result.tweets_removed = dict(sorted(removed.items()))
        _replicate(config, rewritten, located, clock.now(), result, log)
    finally:
        lock.release()


def _replicate(
    config: dict[str, Any],
    rewritten: list[Hour],
    located: scan.Located,
    now: datetime,
    result: PassResult,
    log: logging.Logger,
) -> None:
    """The new generations (and each changed day's log and manifest, with one of its hours)
    to every replica at once; what fails is left to the next workflow run."""
    hours = set(rewritten)
    for day in located.entries:
        if not any(h.day == day for h in hours) and located.hours.get(day):
            hours.add(located.hours[day][0])
    for replica in config.get("vault_replicas") or []:
        for hour in sorted(hours):
            try:
                replicate_hour(
                    config,
                    replica["name"],
                    hour,
                    now,
                    hour_receipt(config["work_dir"], replica["name"], hour),
                    log,
                )
            except (ReplicaError, OSError) as e:
                result.replica_errors.append(f"{replica['name']} {hour}: {e}")
                log.warning("comply: replica %s, hour %s: %s", replica["name"], hour, e)
                break


def _summary(result: PassResult, clock: Clock) -> dict[str, Any]:
    return {**asdict(result), "finished": clock.now().isoformat()}
