"""The batch compliance endpoints of the stream stand-in (``ingest.devtools.emulator``).

X's ``/2/compliance/jobs``, as the stand-in serves it on loopback: ``POST`` creates a job of
type ``tweets`` or ``users`` (one active job per type at a time, as X allows: a second is
refused with 400), ``GET /2/compliance/jobs[?type=&status=]`` lists jobs, ``GET
/2/compliance/jobs/{id}`` is its status: ``created`` until its IDs are uploaded (``PUT`` to its
``upload_url``, on the same port, no token, as X's signed URLs), then ``in_progress`` for
``polls`` status requests, then ``complete``; its ``download_url`` then gives one JSON line
per affected ID: ``id``, ``action`` (``delete``), ``created_at``, ``redacted_at``, ``reason``.

Which IDs are affected: each uploaded ID, independently, by a hash of (seed, type, ID) against
``shares`` ({type: {reason: share}}), so the same ID always gets the same answer and a test can
say what to expect (``verdict``).
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

JOBS_PATH = "/2/compliance/jobs"
UPLOAD_PREFIX = "/_compliance/upload/"
DOWNLOAD_PREFIX = "/_compliance/download/"
# X's reasons (the batch compliance docs): posts and accounts.
DEFAULT_SHARES = {
    "tweets": {"deleted": 0.03, "protected": 0.01, "suspended": 0.01, "scrub_geo": 0.005},
    "users": {"deleted": 0.01, "suspended": 0.01, "protected": 0.01, "deactivated": 0.005},
}
TWITTER_EPOCH_MS = 1288834974657


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Job:
    id: str
    type: str
    name: str | None
    created_at: datetime
    status: str = "created"
    polls_left: int = 0
    ids: list[str] = field(default_factory=list)

    def describe(self, base_url: str) -> dict[str, Any]:
        out = {
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "resumable": False,
            "created_at": _iso(self.created_at),
            "upload_url": f"{base_url}{UPLOAD_PREFIX}{self.id}",
            "upload_expires_at": _iso(self.created_at + timedelta(minutes=15)),
            "download_url": f"{base_url}{DOWNLOAD_PREFIX}{self.id}",
            "download_expires_at": _iso(self.created_at + timedelta(days=7)),
        }
        if self.name:
            out["name"] = self.name
        return out


class ComplianceJobs:
    """The jobs the stand-in knows, and how it answers them."""

    def __init__(
        self,
        seed: int = 0,
        shares: dict[str, dict[str, float]] | None = None,
        polls: int = 2,
    ) -> None:
        self.seed = seed
        self.shares = shares or DEFAULT_SHARES
        self.polls = polls  # status requests a job stays in_progress after its upload
        self.jobs: dict[str, Job] = {}
        self.created: list[tuple[str, str]] = []  # (type, id) of every job created
        self._ids = itertools.count(1_700_000_000_000_000_001)
        self._lock = threading.Lock()

    def verdict(self, job_type: str, tid: int | str) -> str | None:
        """The reason the stand-in gives for ID ``tid`` in a ``job_type`` job; None: none."""
        digest = hashlib.sha256(f"{self.seed}:{job_type}:{tid}".encode()).digest()
        x = int.from_bytes(digest[:8], "big") / 2**64
        for reason, share in self.shares.get(job_type, {}).items():
            if x < share:
                return reason
            x -= share
        return None

    def create(self, body: dict[str, Any], now: datetime) -> tuple[int, dict[str, Any]]:
        job_type = body.get("type")
        if job_type not in ("tweets", "users"):
            return 400, {"errors": [{"message": "type must be tweets or users"}]}
        with self._lock:
            if any(
                j.type == job_type and j.status in ("created", "in_progress")
                for j in self.jobs.values()
            ):
                return 400, {
                    "title": "Invalid Request",
                    "detail": f"You already have an active job of type {job_type}.",
                }
            job = Job(str(next(self._ids)), job_type, body.get("name") or None, now)
            self.jobs[job.id] = job
            self.created.append((job_type, job.id))
        return 200, {"data": job}

    def status(self, job_id: str) -> Job | None:
        """The job, one poll further along."""
        with self._lock:
            job = self.jobs.get(job_id)
            if job is not None and job.status == "in_progress":
                if job.polls_left <= 0:
                    job.status = "complete"
                job.polls_left -= 1
            return job

    def listing(self, job_type: str | None, status: str | None) -> list[Job]:
        with self._lock:
            return [
                j
                for j in self.jobs.values()
                if job_type in (None, j.type) and status in (None, j.status)
            ]

    def upload(self, job_id: str, data: bytes) -> bool:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None or job.status != "created":
                return False
            job.ids = [line.strip() for line in data.decode("ascii", "replace").splitlines()]
            job.ids = [i for i in job.ids if i]
            job.status, job.polls_left = "in_progress", self.polls
            return True

    def results(self, job_id: str, now: datetime) -> bytes | None:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None or job.status != "complete":
                return None
        lines = []
        for tid in job.ids:
            reason = self.verdict(job.type, tid)
            if reason is None:
                continue
            created = now
            if job.type == "tweets" and tid.isdigit():  # a snowflake tells when it was made
                ms = (int(tid) >> 22) + TWITTER_EPOCH_MS
                created = datetime.fromtimestamp(ms / 1000, UTC)
            lines.append(
                orjson.dumps(
                    {
                        "id": tid,
                        "action": "delete",
                        "created_at": _iso(created),
                        "redacted_at": _iso(job.created_at),
                        "reason": reason,
                    }
                )
                + b"\n"
            )
        return b"".join(lines)
