"""Publish an hour's tweet IDs and the day's report to an OSF project, verified.

Remote layout (the seed's): ``{YYYY}/{MM}/{DD}/{file name}`` in the project's storage.

Only IDs files (``*_IDs.txt.xz``) and day reports (``*_report.txt``) may go to OSF: X's terms
allow sharing tweet IDs, not tweet text or user data. ``check_publishable`` enforces it by name
and by content, before any request is made.

Cost per upload is fixed: the seed used osfclient's ``create_file(..., force=True)``, which on
an existing name lists the *whole* storage (one request per folder and per page, rate limited to
one a second), hours once a year of hourly files is there. Here the remote path is walked: list
the storage root, then YYYY, then MM, then DD (each listing holds at most a few dozen entries),
creating missing folders, then one PUT (create, or update of the existing file), then one GET of
the file's metadata to compare its hashes with the local file's. Measured against the stand-in:
8 requests per upload whatever the project holds (node, storages, then per path level either a
listing or, below a folder just created, a creation; the PUT; the metadata GET). Retries and
conflicts with a parallel upload add a few.

Transient failures (HTTP 5xx, 429, connection errors, timeouts) are retried with exponential
backoff; any other 4xx fails at once with a message saying what OSF refused. The token is sent
only in the Authorization header and never appears in logs, messages or receipts.
"""

from __future__ import annotations

import hashlib
import logging
import lzma
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from osfclient.models.file import File, Folder, _WaterButlerFolder
from osfclient.models.project import Project
from osfclient.models.session import OSFSession
from osfclient.models.storage import Storage

from ingest.clock import Clock
from ingest.secrets import read_secret

TOKEN_ENV = "OSF_TOKEN"
# OSF pages listings 10 entries at a time by default and allows up to 100; a day folder holds
# 25 files and a month folder up to 31 day folders, so one page per listing suffices.
PAGE_SIZE = 100

_REMOTE = re.compile(r"^(\d{4})/(\d{2})/(\d{2})/([^/]+)$")
_DAY_PREFIX = re.compile(r"^(\d{4})-(\d{2})-(\d{2})_")
_ID_LINE = re.compile(rb"^[0-9]{1,20}$")


class OSFError(RuntimeError):
    """An upload that failed or could not be verified: the job fails, a later run retries."""


class OSFAuthError(OSFError):
    """OSF rejected the token (401) or its rights (403): retrying will not help."""


class OSFTransientError(OSFError):
    """OSF or the network kept failing after all retries."""


class OSFVerifyError(OSFError):
    """The file OSF stored differs from the local one (hash or size mismatch)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Production defaults; tests pass tiny delays and a recording ``sleep``."""

    attempts: int = 6  # tries per request, the first included
    base_delay: float = 2.0  # seconds before the first retry, doubled for each further one
    max_delay: float = 120.0
    connect_timeout: float = 15.0
    read_timeout: float = 300.0  # an hour's IDs file is a few MB; OSF can be slow to answer
    # osfclient paces its requests to one a second; kept as the default, to be kind to OSF.
    min_interval: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic


# ------------------------------------------------------------------------------------- guard
def check_publishable(local_path: str | Path, remote_name: str | None = None) -> str:
    """Refuse (ValueError) anything but an IDs file, a day report or a day manifest (hashes
    and names only); return which kind it is.

    Checked by name (local and remote) and by content, so a renamed tweets file cannot slip
    through: an IDs file must be xz of one numeric ID per line, a report must start with the
    report's header row.
    """
    path = Path(local_path)
    names = {path.name} | ({remote_name} if remote_name else set())
    kinds = {_kind_of(n) for n in names}
    if None in kinds or len(kinds) != 1:
        raise ValueError(
            f"refusing to publish {path.name!r}"
            + (f" as {remote_name!r}" if remote_name and remote_name != path.name else "")
            + ": only tweet IDs files (*_IDs.txt.xz), day reports (*_report.txt) and day "
            "manifests (*_SHA256SUMS) may go to OSF; X's terms allow sharing tweet IDs only"
        )
    kind = kinds.pop()
    if kind == "ids":
        _check_ids_content(path)
    elif kind == "manifest":
        _check_manifest_content(path)
    else:
        _check_report_content(path)
    return kind


def _kind_of(name: str) -> str | None:
    if name.endswith("_IDs.txt.xz"):
        return "ids"
    if name.endswith("_report.txt"):
        return "report"
    if name.endswith("_SHA256SUMS"):  # hashes and file names only (issue 15)
        return "manifest"
    return None


def _check_ids_content(path: Path) -> None:
    try:
        with lzma.open(path, "rb") as fh:
            for number, line in enumerate(fh, 1):
                if not _ID_LINE.match(line.rstrip(b"\n")):
                    raise ValueError(
                        f"refusing to publish {path.name}: line {number} is not a tweet ID "
                        "(an IDs file holds one numeric ID per line)"
                    )
    except (lzma.LZMAError, EOFError) as exc:
        raise ValueError(f"refusing to publish {path.name}: not a valid xz file ({exc})") from None


def _check_manifest_content(path: Path) -> None:
    """A manifest holds only ``<sha256>  <file name>`` lines (ManifestError names the line)."""
    from ingest.vault.manifest import ManifestError, read_manifest

    try:
        entries = read_manifest(path)
    except ManifestError as e:
        raise ValueError(f"refusing to publish {path.name}: {e}") from None
    if not entries:
        raise ValueError(f"refusing to publish {path.name}: an empty manifest")


def _check_report_content(path: Path) -> None:
    with path.open("rb") as fh:
        head = fh.readline()
    if not head.startswith(b"hour\t"):
        raise ValueError(
            f"refusing to publish {path.name}: it does not start with the day report's header "
            "(hour<TAB>...)"
        )


def remote_path_for(local_path: str | Path) -> str:
    """The seed's remote path ``YYYY/MM/DD/<name>`` for a vault file named ``YYYY-mm-dd_...``."""
    name = Path(local_path).name
    m = _DAY_PREFIX.match(name)
    if not m:
        raise ValueError(f"{name!r} does not start with a day (YYYY-mm-dd_)")
    return f"{m.group(1)}/{m.group(2)}/{m.group(3)}/{name}"


# ----------------------------------------------------------------------------------- session
class OSFAPISession(OSFSession):
    """osfclient's session, pointed at ``api_url``, with retries, timeouts and injectable pacing.

    Why a subclass of the session (not of the models): in osfclient 0.0.5 every model builds
    its first URL through ``session.build_url`` from ``session.base_url`` (hard-coded to
    https://api.osf.io/v2/ in ``OSFSession.__init__``), and follows absolute links from the
    responses after that. Setting ``base_url`` here redirects all of osfclient to the configured
    API (a loopback stand-in in tests) without patching module globals. (The one other
    hard-coded URL, ``_WaterButlerFolder.full_folder``, is not used here.)

    ``OSFSession.get/put`` pace requests with ``time.sleep`` (one a second, not injectable) and
    turn 401 into a bare ``UnauthorizedException``; they are replaced so that pacing uses the
    policy's clock and sleep, every request gets a timeout, and transient failures are retried
    for every request osfclient or this module makes.
    """

    def __init__(self, api_url: str, token: str, policy: RetryPolicy, log: logging.Logger):
        super().__init__()
        # build_url joins with "/" and appends "/": strip the base's own trailing slash
        self.base_url = api_url.rstrip("/")
        self.token_auth(token)
        self.policy = policy
        self.log = log
        self.sent = 0  # HTTP requests made, retries included (goes into the receipt)
        self._last_start: float | None = None

    def get(self, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        return self.request("GET", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        return self.request("DELETE", url, **kwargs)

    def _pace(self) -> None:
        p = self.policy
        if self._last_start is not None and p.min_interval > 0:
            wait = self._last_start + p.min_interval - p.monotonic()
            if wait > 0:
                p.sleep(wait)
        self._last_start = p.monotonic()

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        p = self.policy
        kwargs.setdefault("timeout", (p.connect_timeout, p.read_timeout))
        # the body must be bytes (not a stream) so that a retry resends all of it
        where = f"{method} {_short(url)}"
        for attempt in range(1, p.attempts + 1):
            self._pace()
            self.sent += 1
            retry_after = 0.0
            try:
                response = super().request(method, url, **kwargs)
            except requests.exceptions.SSLError as exc:
                raise OSFError(f"OSF {where}: TLS failure ({type(exc).__name__})") from None
            except (
                requests.exceptions.ConnectionError,
                requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                problem = _describe_exception(exc)
            else:
                status = response.status_code
                if status == 401:
                    raise OSFAuthError(
                        f"OSF token rejected (HTTP 401 on {where}): check the file in "
                        f"osf.token_file or the {TOKEN_ENV} variable; the token may be revoked "
                        "or expired"
                    )
                if status < 500 and status != 429:
                    return response
                problem = f"HTTP {status}"
                retry_after = _retry_after(response)
                response.close()
            if attempt == p.attempts:
                raise OSFTransientError(
                    f"OSF {where} failed {p.attempts} times; last: {problem}. "
                    "The next run will try again."
                )
            delay = min(p.max_delay, p.base_delay * 2 ** (attempt - 1))
            delay = max(delay, min(retry_after, p.max_delay))
            self.log.warning(
                "OSF %s: %s; retry %d/%d in %.3g s", where, problem, attempt, p.attempts - 1, delay
            )
            p.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises


def _short(url: str) -> str:
    """A URL for messages: path only, no query (names are in the path anyway)."""
    return url.split("?", 1)[0]


def _describe_exception(exc: Exception) -> str:
    if isinstance(exc, requests.exceptions.Timeout):
        return f"timed out ({type(exc).__name__})"
    return f"connection failed ({type(exc).__name__})"


def _retry_after(response: requests.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", 0)))
    except ValueError:
        return 0.0


def _detail(response: requests.Response) -> str:
    """OSF's error text (JSON-API ``errors[].detail`` or WaterButler ``message``), shortened."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("detail", ""))[:200]
        if "message" in body:
            return str(body["message"])[:200]
    return ""


def _expect(response: requests.Response, ok: int | tuple[int, ...], what: str) -> dict:
    """The JSON body if the status is one of ``ok``; a clear OSFError otherwise."""
    ok = (ok,) if isinstance(ok, int) else ok
    status = response.status_code
    if status in ok:
        return response.json() if response.content else {}
    where = f"{response.request.method} {_short(response.url)}"
    detail = _detail(response)
    detail = f": {detail}" if detail else ""
    if status == 403:
        raise OSFAuthError(
            f"OSF refused {what} (HTTP 403 on {where}){detail}. The token needs write access "
            "to the project (scope osf.full_write)"
        )
    raise OSFError(f"OSF could not {what} (HTTP {status} on {where}){detail}")


# -------------------------------------------------------------------------------------- walk
def _storage(s: OSFAPISession, project_id: str, provider: str) -> Storage:
    """The project's storage provider: 2 requests (node, providers)."""
    # The node is fetched directly rather than through OSF.project(), which first resolves
    # the id through /guids/ (one more request and a redirect): the configured id is a node.
    response = s.get(s.build_url("nodes", project_id))
    if response.status_code == 404:
        raise OSFError(
            f"OSF project {project_id!r} not found at {s.base_url}/ (HTTP 404): check osf.project"
        )
    project = Project(_expect(response, 200, f"read project {project_id}"), s)
    stores = _expect(s.get(project._storages_url), 200, f"list storages of {project_id}")
    for store in stores.get("data", []):
        if store["attributes"]["provider"] == provider:
            return Storage(store, s)
    raise OSFError(f"OSF project {project_id} has no storage {provider!r}: check osf.storage")


def _listable(s: OSFAPISession, folder: Any) -> Any:
    """A folder with a listing URL: WaterButler's answer to a create has none, the API's has."""
    if isinstance(folder, _WaterButlerFolder):
        fid = folder.osf_path.strip("/")
        data = _expect(s.get(s.build_url("files", fid)), 200, "read a folder's metadata")
        return Folder(data["data"], s)
    return folder


def _find(s: OSFAPISession, folder: Any, name: str) -> dict | None:
    """The entry called ``name`` directly in ``folder`` (one request per page of the listing)."""
    url: str | None = folder._files_url
    params: dict | None = {"page[size]": PAGE_SIZE}
    while url:
        page = _expect(s.get(url, params=params), 200, "list a folder")
        for item in page.get("data", []):
            if item["attributes"]["name"] == name:
                return item
        url, params = (page.get("links") or {}).get("next"), None
    return None


def _subfolder(s: OSFAPISession, parent: Any, name: str, parent_is_new: bool) -> tuple[Any, bool]:
    """Folder ``name`` in ``parent``, created if missing; and whether it was just created."""
    if not parent_is_new:  # a folder created a moment ago is empty: nothing to list
        item = _find(s, parent, name)
        if item is not None:
            _require_kind(item, "folder")
            return Folder(item, s), False
    response = s.put(parent._new_folder_url, params={"name": name})
    if response.status_code == 409:
        # made by someone else in the meantime (e.g. the report's upload running in parallel)
        item = _find(s, _listable(s, parent), name)
        if item is None:
            raise OSFError(f"OSF reported folder {name!r} as existing but does not list it")
        _require_kind(item, "folder")
        return Folder(item, s), False
    data = _expect(response, 201, f"create folder {name!r}")
    return _WaterButlerFolder(data["data"], s), True


def _require_kind(item: dict, kind: str) -> None:
    attrs = item["attributes"]
    if attrs["kind"] != kind:
        raise OSFError(
            f"OSF path {attrs.get('materialized_path', attrs['name'])} is a {attrs['kind']}, "
            f"expected a {kind}"
        )


def _put_file(
    s: OSFAPISession, folder: Any, name: str, data: bytes, folder_is_new: bool
) -> tuple[dict, str]:
    """Create ``name`` in ``folder`` or update it in place; WaterButler's entity and the action.

    osfclient's ``File.update`` / ``Storage.create_file`` are not used: they send a file object
    (not resendable on retry), discard the response (which names the stored file) and, on a
    conflict, list the whole storage.
    """
    headers = {"Content-Type": "application/octet-stream"}
    item = None if folder_is_new else _find(s, folder, name)
    if item is None:
        response = s.put(
            folder._new_file_url, params={"kind": "file", "name": name}, data=data, headers=headers
        )
        if response.status_code != 409:
            return _expect(response, 201, f"upload {name}"), "created"
        # exists after all: a retried create whose first answer was lost, or a parallel upload
        item = _find(s, _listable(s, folder), name)
        if item is None:
            raise OSFError(f"OSF reported {name} as existing but does not list it")
    _require_kind(item, "file")
    remote = File(item, s)
    response = s.put(remote._upload_url, params={"kind": "file"}, data=data, headers=headers)
    return _expect(response, 200, f"update {name}"), "updated"


# ------------------------------------------------------------------------------------ upload
def upload(
    local_path: str | Path,
    remote_path: str,
    osf_cfg: dict[str, Any],
    log: logging.Logger,
    clock: Clock,
    policy: RetryPolicy | None = None,
) -> dict[str, Any]:
    """Upload ``local_path`` to ``remote_path`` ("YYYY/MM/DD/name") in the configured project.

    Creates missing folders, overwrites an existing file (a new OSF version), then verifies
    the stored file's md5 and sha256 against the local file. Returns the receipt (JSON-ready).
    Raises ValueError (not publishable, bad path), ingest.secrets.SecretError (token file),
    OSFAuthError, OSFTransientError, OSFVerifyError or OSFError.
    """
    policy = policy or RetryPolicy()
    local = Path(local_path)
    m = _REMOTE.match(remote_path)
    if not m:
        raise ValueError(f"remote path {remote_path!r} is not YYYY/MM/DD/<name>")
    *folders, name = m.groups()
    check_publishable(local, name)
    data = local.read_bytes()
    md5 = hashlib.md5(data).hexdigest()
    sha256 = hashlib.sha256(data).hexdigest()

    project_id = osf_cfg.get("project")
    if not project_id:
        raise ValueError("osf.project is not set")
    provider = osf_cfg["storage"]
    api_url = osf_cfg["api_url"]
    token = read_secret(osf_cfg.get("token_file"), TOKEN_ENV, "OSF token")

    s = OSFAPISession(api_url, token, policy, log)
    try:
        log.info("OSF: uploading %s (%d bytes) to %s/%s", local, len(data), project_id, remote_path)
        folder: Any = _storage(s, project_id, provider)
        is_new = False
        for part in folders:
            folder, is_new = _subfolder(s, folder, part, is_new)
        entity, action = _put_file(s, folder, name, data, is_new)
        file_id = entity["data"]["attributes"]["path"].strip("/")
        meta = _expect(s.get(s.build_url("files", file_id)), 200, f"read metadata of {name}")
        remote = File(meta["data"], s)
        _verify(remote, remote_path, len(data), md5, sha256)
    finally:
        s.close()
    receipt = {
        "remote_path": remote_path,
        "project": project_id,
        "storage": provider,
        "local_path": str(local),
        "size": len(data),
        "md5": md5,
        "sha256": sha256,
        "osf_file_id": file_id,
        "osf_url": remote._html_url,
        "download_url": meta["data"]["links"].get("download"),
        "action": action,
        "version": meta["data"]["attributes"].get("current_version"),
        "requests": s.sent,
        "uploaded_at": clock.now().isoformat(),
    }
    log.info("OSF: %s %s (md5 %s verified, %d requests)", action, remote_path, md5, s.sent)
    return receipt


def _verify(remote: File, remote_path: str, size: int, md5: str, sha256: str) -> None:
    """The stored file must be where we put it, as long, and hash like the local one."""
    problems = []
    if remote.path.strip("/") != remote_path:
        problems.append(f"stored at {remote.path!r}")
    if remote.size is not None and int(remote.size) != size:
        problems.append(f"size {remote.size} != local {size}")
    hashes = remote.hashes or {}
    checked = 0
    for algo, local_value in (("md5", md5), ("sha256", sha256)):
        value = hashes.get(algo)
        if value:
            checked += 1
            if value.lower() != local_value:
                problems.append(f"{algo} {value} != local {local_value}")
    if not checked:
        problems.append("OSF reported no md5 or sha256 to compare")
    if problems:
        raise OSFVerifyError(
            f"OSF upload of {remote_path} failed verification: " + "; ".join(problems)
        )
