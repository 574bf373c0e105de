"""X's batch compliance jobs through twarc's ``Twarc2`` (``compliance_job_create``, ``_get``,
``_list``), as ``twarc2 compliance-job`` drives them.

twarc's methods call ``https://api.twitter.com/2/compliance/jobs`` and raise ``ValueError``
for any status but 200, without waiting. This client:

- points them at ``comply.api_url`` (the stream stand-in on loopback in tests and the demo)
  with a transport adapter on twarc's session: twarc still builds every request;
- waits on 429 and 503 (and other 5xx, network errors) with the collector's back-off
  (``ingest.collect.reconnect``: exponential from a minute for 429, from 5 s for HTTP errors,
  linear from 250 ms for the network), up to ``retries`` times, then raises ``ComplyError``;
- uploads the IDs to the job's ``upload_url`` and downloads its results from
  ``download_url`` with plain ``requests``, as twarc's command does (signed URLs, no token).

The bearer token never reaches a log: ``protect_logs`` as the collector does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import requests
from requests.adapters import HTTPAdapter
from twarc.client2 import Twarc2

from ingest.collect.reconnect import Backoff
from ingest.collect.stream_client import protect_logs

TWITTER_API = "https://api.twitter.com"
USER_AGENT = "sampled-stream (comply)"
_log = logging.getLogger(__name__)


class ComplyError(RuntimeError):
    """A compliance job that cannot go on (refused, failed, expired, retries used up)."""


class _Rebase(HTTPAdapter):
    """Sends twarc's ``https://api.twitter.com/...`` requests to another base URL, and keeps
    the last status (twarc's compliance methods raise ValueError without it)."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base.rstrip("/")
        self.last_status: int | None = None

    def send(self, request, **kwargs):  # noqa: ANN001 - requests' signature
        request.url = self.base + request.url[len(TWITTER_API) :]
        kwargs.setdefault("timeout", (10, 60))
        response = super().send(request, **kwargs)
        self.last_status = response.status_code
        return response


class JobClient:
    """Create, poll, upload to and download from compliance jobs."""

    def __init__(
        self,
        bearer_token: str,
        api_url: str = TWITTER_API,
        *,
        retries: int = 8,
        backoff_scale: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        log: logging.Logger | None = None,
    ) -> None:
        protect_logs(bearer_token)
        self.twarc = Twarc2(bearer_token=bearer_token, metadata=False)
        self.adapter = _Rebase(api_url)
        self.retries = retries
        self.backoff = Backoff(backoff_scale)
        self.sleep = sleep
        self.log = log or _log

    def _session(self) -> requests.Session:
        # twarc makes a new session when it reconnects: the adapter goes on each one.
        session = self.twarc.client
        if session.get_adapter(TWITTER_API) is not self.adapter:
            session.mount(TWITTER_API, self.adapter)
            session.headers["User-Agent"] = USER_AGENT
        return session

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """``fn()`` (a twarc call), waiting and retrying on 429, 5xx and network errors."""
        for attempt in range(self.retries + 1):
            self._session()
            self.adapter.last_status = None
            try:
                result = fn()
                self.backoff.reset()
                return result
            except requests.RequestException as e:
                kind, detail = "network", f"{type(e).__name__}: {e}"
            except ValueError as e:
                status = self.adapter.last_status
                if status == 429:
                    kind = "rate_limit"
                elif status is not None and status >= 500:
                    kind = "http"
                else:
                    raise ComplyError(f"{what}: {e}") from None
                detail = f"HTTP {status}"
            if attempt == self.retries:
                raise ComplyError(f"{what}: {detail}, {self.retries} retries used up")
            wait = self.backoff.next(kind)
            self.log.warning("%s: %s; again in %.1f s", what, detail, wait)
            self.sleep(wait)
        raise AssertionError("unreachable")

    def create(self, job_type: str, name: str) -> dict[str, Any]:
        return self._call(
            f"create a {job_type} job",
            lambda: self.twarc.compliance_job_create(job_type, name)["data"],
        )

    def get(self, job_id: str) -> dict[str, Any]:
        return self._call(f"job {job_id}", lambda: self.twarc.compliance_job_get(job_id)["data"])

    def active(self, job_type: str) -> list[dict[str, Any]]:
        """The jobs of ``job_type`` not finished yet (created or in progress)."""
        out = []
        for status in ("created", "in_progress"):
            found = self._call(
                f"list {job_type} jobs",
                lambda s=status: self.twarc.compliance_job_list(job_type, s),
            )
            out += (found or {}).get("data", [])
        return out

    def upload(self, url: str, data: bytes) -> None:
        def put() -> None:
            r = requests.put(url, data=data, headers={"Content-Type": "text/plain"}, timeout=600)
            if r.status_code != 200:
                self.adapter.last_status = r.status_code
                raise ValueError(f"upload: HTTP {r.status_code}")

        self._call("upload", put)

    def download(self, url: str) -> Iterator[dict[str, Any]]:
        """The job's result lines (one JSON object each); a broken line is logged, skipped."""

        def get() -> bytes:
            r = requests.get(url, timeout=600)
            if r.status_code != 200:
                self.adapter.last_status = r.status_code
                raise ValueError(f"download: HTTP {r.status_code}")
            return r.content

        body = self._call("download", get)
        for number, line in enumerate(body.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError:
                self.log.warning("compliance results line %d is not JSON; skipped", number)
                continue
            if isinstance(item, dict) and "id" in item:
                yield item
