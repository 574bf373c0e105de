"""A loopback stand-in of the OSF API parts that osfclient and ingest.publish.osf use.

A real HTTP server on 127.0.0.1 (random port) speaking two dialects, as OSF does:

- the OSF API v2 (``/v2/...``, api.osf.io): guids, nodes, a node's storage providers,
  folder listings (JSON-API, paginated: ``page``, ``page[size]``, ``links.next``) and file
  metadata with ``extra.hashes`` (md5, sha256);
- WaterButler v1 (``/v1/resources/{node}/providers/{provider}/...``, files.osf.io): create a
  folder (``PUT <folder>/?kind=folder&name=``), upload a new file (``PUT <folder>/?kind=file
  &name=`` -> 201, 409 if the name exists), update a file (``PUT <file>?kind=file`` -> 200),
  download, delete. Trailing slashes mark folders, as in WaterButler.

The JSON shapes follow osfclient's own test fixtures (osfclient/tests/fake_responses.py) and
WaterButler's docs (docs/api.rst), so osfclient's models parse them unchanged. Every link in a
response is absolute and points back here; clients only build the first URL from ``api_url``.

Test hooks: files live in memory (``add_file``, ``entry``, ``read``); every request is counted
per method and path (``counts``, ``requests``); ``inject`` makes the next N matching requests
fail (an HTTP status such as 503/429/401, ``"drop"``: close the connection without answering,
``"drop_after"``: do the work, then close without answering, ``"stall"``: answer nothing for
``stall_seconds``); ``corrupt_next_store`` stores altered bytes once (a broken upload).
The tests use it as the ``osf_standin`` fixture (tests/osf_standin.py), the soak in-process.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_PAGE_SIZE = 10  # OSF's default page size; clients may ask for up to MAX_PAGE_SIZE
MAX_PAGE_SIZE = 100


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


@dataclass(eq=False)
class Entry:
    """A file or folder in a provider's tree (the root folder has no parent)."""

    id: str
    kind: str  # "file" | "folder"
    name: str
    parent: Entry | None
    children: dict[str, Entry] = field(default_factory=dict)
    data: bytes = b""
    version: int = 0
    created: str = field(default_factory=_stamp)
    modified: str = field(default_factory=_stamp)

    @property
    def materialized(self) -> str:
        if self.parent is None:
            return "/"
        tail = "/" if self.kind == "folder" else ""
        return self.parent.materialized + self.name + tail

    @property
    def wb_path(self) -> str:
        """WaterButler id path: ``/`` (root), ``/<id>/`` (folder), ``/<id>`` (file)."""
        if self.parent is None:
            return "/"
        return f"/{self.id}/" if self.kind == "folder" else f"/{self.id}"

    @property
    def hashes(self) -> dict[str, str | None]:
        if self.kind != "file":
            return {"md5": None, "sha256": None}
        return {
            "md5": hashlib.md5(self.data).hexdigest(),
            "sha256": hashlib.sha256(self.data).hexdigest(),
        }


@dataclass
class _Fault:
    kind: int | str | Callable[[OSFStandIn], None]
    remaining: int
    method: str | None
    path_re: re.Pattern[str] | None
    query_re: re.Pattern[str] | None

    def matches(self, method: str, path: str, query: str) -> bool:
        if self.method and self.method != method:
            return False
        if self.path_re and not self.path_re.search(path):
            return False
        return not (self.query_re and not self.query_re.search(query))


class OSFStandIn:
    """The server's state and hooks; ``start()`` serves it on 127.0.0.1."""

    def __init__(
        self,
        token: str | None = None,
        project: str = "qx7st",
        providers: tuple[str, ...] = ("osfstorage",),
        page_size: int = DEFAULT_PAGE_SIZE,
        stall_seconds: float = 2.0,
    ) -> None:
        self.token = token or "standin-" + secrets.token_hex(16)
        self.project = project
        self.page_size = page_size
        self.stall_seconds = stall_seconds
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        self.roots: dict[str, Entry] = {
            p: Entry(id=p, kind="folder", name=p, parent=None) for p in providers
        }
        self.by_id: dict[str, Entry] = {}
        self.counts: Counter[str] = Counter()
        self.requests: list[tuple[str, str, str, int | str]] = []  # method, path, query, outcome
        self._faults: list[_Fault] = []
        self._corrupt = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> OSFStandIn:
        standin = self

        class Handler(_Handler):
            state = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def api_url(self) -> str:
        """What a config's ``osf.api_url`` is set to (OSF's is https://api.osf.io/v2/)."""
        return self.base_url + "/v2/"

    @property
    def wb_url(self) -> str:
        return self.base_url + "/v1/"

    # ----------------------------------------------------------------- test hooks
    def add_file(self, path: str, data: bytes, provider: str = "osfstorage") -> Entry:
        """Put a file at ``path`` ("2025/12/01/x.txt"), creating folders, without a request."""
        folders, _, name = path.strip("/").rpartition("/")
        with self.lock:
            parent = self.add_folder(folders, provider) if folders else self.roots[provider]
            existing = parent.children.get(name)
            if existing is not None:
                self._store(existing, data, allow_corrupt=False)
                return existing
            entry = self._new_entry("file", name, parent)
            self._store(entry, data, allow_corrupt=False)
            return entry

    def add_folder(self, path: str, provider: str = "osfstorage") -> Entry:
        """Create the folders of ``path`` ("2026/01"), without a request."""
        with self.lock:
            parent = self.roots[provider]
            for folder in path.strip("/").split("/"):
                child = parent.children.get(folder)
                parent = child if child is not None else self._new_entry("folder", folder, parent)
            return parent

    def entry(self, path: str, provider: str = "osfstorage") -> Entry | None:
        """The entry at a materialized path ("2026/01/14" or "2026/01/14/x"), or None."""
        with self.lock:
            node = self.roots[provider]
            for part in [p for p in path.strip("/").split("/") if p]:
                node = node.children.get(part)
                if node is None:
                    return None
            return node

    def read(self, path: str, provider: str = "osfstorage") -> bytes:
        entry = self.entry(path, provider)
        assert entry is not None and entry.kind == "file", f"no file at {path}"
        return entry.data

    def file_count(self, provider: str = "osfstorage") -> int:
        with self.lock:
            return sum(1 for e in self.by_id.values() if e.kind == "file")

    def inject(
        self,
        kind: int | str | Callable[[OSFStandIn], None],
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
        query: str | None = None,
    ) -> None:
        """Make the next ``times`` requests matching ``method`` and the ``path`` and ``query``
        regexes fail; a callable ``kind`` instead runs (on the stand-in) just before such a
        request is served normally, e.g. to let "someone else" create a folder first.
        """
        if not (callable(kind) or isinstance(kind, int) or kind in ("drop", "drop_after", "stall")):
            raise ValueError(f"unknown fault {kind!r}")
        with self.lock:
            self._faults.append(
                _Fault(
                    kind,
                    times,
                    method,
                    re.compile(path) if path else None,
                    re.compile(query) if query else None,
                )
            )

    def clear_faults(self) -> None:
        """Forget every pending ``inject`` (the end of an outage)."""
        with self.lock:
            self._faults.clear()

    def corrupt_next_store(self, times: int = 1) -> None:
        """The next ``times`` stored uploads keep altered bytes (hashes then differ)."""
        with self.lock:
            self._corrupt += times

    def reset_counts(self) -> None:
        with self.lock:
            self.counts.clear()
            self.requests.clear()

    @property
    def total_requests(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    # ----------------------------------------------------------------- internals
    def _new_entry(self, kind: str, name: str, parent: Entry) -> Entry:
        # OSF ids are 24 hex digits (Mongo-style object ids)
        entry = Entry(id=f"{next(self._ids):024x}", kind=kind, name=name, parent=parent)
        parent.children[name] = entry
        self.by_id[entry.id] = entry
        return entry

    def _store(self, entry: Entry, data: bytes, allow_corrupt: bool = True) -> None:
        if allow_corrupt and self._corrupt:
            self._corrupt -= 1
            data = (data[:-1] + bytes([data[-1] ^ 0xFF])) if data else b"\x00"
        entry.data = data
        entry.version += 1
        entry.modified = _stamp()

    def _take_fault(self, method: str, path: str, query: str) -> Any:
        with self.lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.matches(method, path, query):
                    fault.remaining -= 1
                    return fault.kind
            return None

    # JSON shapes ---------------------------------------------------------------
    def _node_json(self) -> dict:
        p, api = self.project, self.api_url
        return {
            "data": {
                "id": p,
                "type": "nodes",
                "attributes": {
                    "title": "Sampled stream tweet IDs (stand-in)",
                    "description": "loopback stand-in of an OSF project",
                    "category": "project",
                    "date_created": "2022-01-01T00:00:00.000000",
                    "date_modified": _stamp(),
                    "public": True,
                    "registration": False,
                    "fork": False,
                    "tags": [],
                    "current_user_permissions": ["read", "write", "admin"],
                },
                "relationships": {
                    "files": {"links": {"related": {"href": f"{api}nodes/{p}/files/", "meta": {}}}},
                    "root": {"links": {"related": {"href": f"{api}nodes/{p}/", "meta": {}}}},
                },
                "links": {"self": f"{api}nodes/{p}/", "html": f"{self.base_url}/{p}/"},
            }
        }

    def _provider_json(self, provider: str) -> dict:
        p, api, wb = self.project, self.api_url, self.wb_url
        return {
            "id": f"{p}:{provider}",
            "type": "files",
            "attributes": {
                "name": provider,
                "kind": "folder",
                "path": "/",
                "node": p,
                "provider": provider,
            },
            "relationships": {
                "files": {
                    "links": {"related": {"href": f"{api}nodes/{p}/files/{provider}/", "meta": {}}}
                }
            },
            "links": {
                "upload": f"{wb}resources/{p}/providers/{provider}/",
                "new_folder": f"{wb}resources/{p}/providers/{provider}/?kind=folder",
                "storage_addons": f"{api}addons/?filter%5Bcategories%5D=storage",
            },
        }

    def _provider_of(self, entry: Entry) -> str:
        while entry.parent is not None:
            entry = entry.parent
        return entry.name

    def _wb_link(self, entry: Entry) -> str:
        provider = self._provider_of(entry)
        return f"{self.wb_url}resources/{self.project}/providers/{provider}{entry.wb_path}"

    def _api_entity(self, entry: Entry) -> dict:
        """A file or folder as the OSF API v2 shows it (listings, /v2/files/{id}/)."""
        p, api = self.project, self.api_url
        provider = self._provider_of(entry)
        wb = self._wb_link(entry)
        is_file = entry.kind == "file"
        links = {
            "info": f"{api}files/{entry.id}/",
            "self": f"{api}files/{entry.id}/",
            "move": wb,
            "upload": wb,
            "delete": wb,
            "html": f"{self.base_url}/{p}/files/{provider}/{entry.id}",
        }
        relationships: dict = {
            "node": {"links": {"related": {"href": f"{api}nodes/{p}/", "meta": {}}}},
        }
        if is_file:
            links["download"] = wb
            relationships["versions"] = {
                "links": {"related": {"href": f"{api}files/{entry.id}/versions/", "meta": {}}}
            }
        else:
            links["new_folder"] = wb + "?kind=folder"
            relationships["files"] = {
                "links": {
                    "related": {"href": f"{api}nodes/{p}/files/{provider}/{entry.id}/", "meta": {}}
                }
            }
        return {
            "id": entry.id,
            "type": "files",
            "attributes": {
                "guid": None,
                "checkout": None,
                "name": entry.name,
                "kind": entry.kind,
                "path": entry.wb_path,
                "size": len(entry.data) if is_file else None,
                "provider": provider,
                "materialized_path": entry.materialized,
                "last_touched": None,
                "date_modified": entry.modified,
                "date_created": entry.created,
                "extra": {"hashes": entry.hashes, "downloads": 0},
                "tags": [],
                "current_user_can_comment": True,
                "current_version": entry.version if is_file else 1,
                "delete_allowed": True,
            },
            "relationships": relationships,
            "links": links,
        }

    def _wb_entity(self, entry: Entry) -> dict:
        """A file or folder as WaterButler answers a create/update PUT."""
        provider = self._provider_of(entry)
        wb = self._wb_link(entry)
        is_file = entry.kind == "file"
        attributes: dict = {
            "kind": entry.kind,
            "name": entry.name,
            "path": entry.wb_path,
            "provider": provider,
            "materialized": entry.materialized,
            "etag": hashlib.sha256(f"{provider}::{entry.id}:{entry.version}".encode()).hexdigest(),
            "resource": self.project,
            "extra": {},
        }
        links = {"move": wb, "upload": wb, "delete": wb}
        if is_file:
            attributes.update(
                {
                    "contentType": None,
                    "modified": entry.modified,
                    "modified_utc": entry.modified,
                    "created_utc": entry.created,
                    "size": len(entry.data),
                    "sizeInt": len(entry.data),
                    "extra": {
                        "guid": None,
                        "version": entry.version,
                        "downloads": 0,
                        "checkout": None,
                        "latestVersionSeen": None,
                        "hashes": entry.hashes,
                    },
                }
            )
            links["download"] = wb
        else:
            links["new_folder"] = wb + "?kind=folder"
        return {
            "data": {
                "id": f"{provider}{entry.wb_path}",
                "type": "files",
                "attributes": attributes,
                "links": links,
            }
        }

    def _page(self, items: list[dict], url_path: str, query: dict[str, list[str]]) -> dict:
        try:
            size = int(query.get("page[size]", [self.page_size])[0])
            page = int(query.get("page", ["1"])[0])
        except ValueError:
            size, page = self.page_size, 1
        size = max(1, min(size, MAX_PAGE_SIZE))
        pages = max(1, -(-len(items) // size))

        def link(n: int) -> str:
            return f"{self.base_url}{url_path}?page={n}&page%5Bsize%5D={size}"

        return {
            "data": items[(page - 1) * size : page * size],
            "links": {
                "first": link(1) if page > 1 else None,
                "last": link(pages) if page < pages else None,
                "prev": link(page - 1) if page > 1 else None,
                "next": link(page + 1) if page < pages else None,
                "meta": {"total": len(items), "per_page": size},
            },
            "meta": {"total": len(items), "per_page": size, "version": "2.20"},
        }


_API_NODE = re.compile(r"^/v2/nodes/([a-z0-9]+)/$")
_API_PROVIDERS = re.compile(r"^/v2/nodes/([a-z0-9]+)/files/$")
_API_LISTING = re.compile(r"^/v2/nodes/([a-z0-9]+)/files/([a-z0-9]+)/(?:([0-9a-f]+)/)?$")
_API_FILE = re.compile(r"^/v2/files/([0-9a-f]+)/$")
_API_GUID = re.compile(r"^/v2/guids/([a-z0-9]+)/$")
_WB = re.compile(r"^/v1/resources/([a-z0-9]+)/providers/([a-z0-9]+)/(?:([0-9a-f]+)(/?))?$")


class _Reply(Exception):
    """Raised inside a route to answer with a status and a JSON body."""

    def __init__(self, status: int, body: dict | None = None, headers: dict | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


def _api_error(status: int, detail: str) -> _Reply:
    return _Reply(status, {"errors": [{"detail": detail}], "meta": {"version": "2.20"}})


def _wb_error(status: int, message: str) -> _Reply:
    return _Reply(status, {"code": status, "message": message})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests' sessions expect
    # answer in one segment: headers and body written separately meet the client's delayed
    # ACK (~40 ms per request on keep-alive connections)
    disable_nagle_algorithm = True
    wbufsize = 1 << 16
    server_version = "OSFStandIn/1.0"
    state: OSFStandIn  # set by OSFStandIn.start

    def log_message(self, format: str, *args: object) -> None:  # quiet: the tests count
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    # -----------------------------------------------------------------------
    def _serve(self, method: str) -> None:
        st = self.state
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with st.lock:
            st.counts[f"{method} {path}"] += 1
        fault = st._take_fault(method, path, parts.query)
        if callable(fault):
            with st.lock:
                fault(st)
            fault = None
        outcome: int | str
        if fault in ("drop", "stall"):
            with st.lock:  # recorded first: a stalled answer may outlive the test
                st.requests.append((method, path, parts.query, str(fault)))
            if fault == "stall":
                time.sleep(st.stall_seconds)
            self._drop()
            return
        elif isinstance(fault, int):
            outcome = fault
            self._send(_api_error(fault, f"injected fault: HTTP {fault}"))
        else:
            reply = self._route(method, path, query, body)
            outcome = reply.status
            if fault == "drop_after":
                outcome = f"drop_after({reply.status})"
                self._drop()
            else:
                self._send(reply)
        with st.lock:
            st.requests.append((method, path, parts.query, outcome))

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, reply: _Reply) -> None:
        if isinstance(reply, _Download):
            payload, ctype = reply.data, "application/octet-stream"
        elif reply.body is not None:
            payload, ctype = json.dumps(reply.body).encode(), "application/vnd.api+json"
        else:
            payload, ctype = b"", None
        self.send_response(reply.status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> _Reply:
        st = self.state
        auth = self.headers.get("Authorization", "")
        if auth != f"Bearer {st.token}":
            detail = (
                "Authentication credentials were not provided."
                if not auth
                else "User provided an invalid OAuth2 access token"
            )
            return _api_error(401, detail)
        try:
            with st.lock:
                if path.startswith("/v2/"):
                    return self._api(method, path, query)
                if path.startswith("/v1/"):
                    return self._waterbutler(method, path, query, body)
                raise _api_error(404, "Not found.")
        except _Reply as reply:
            return reply

    # OSF API v2 ------------------------------------------------------------------
    def _api(self, method: str, path: str, query: dict[str, list[str]]) -> _Reply:
        st = self.state
        if method != "GET":
            raise _api_error(405, f'Method "{method}" not allowed.')
        if m := _API_GUID.match(path):
            self._node(m.group(1))
            # OSF resolves a guid by redirecting to its referent
            raise _Reply(302, None, {"Location": f"{st.api_url}nodes/{m.group(1)}/"})
        if m := _API_NODE.match(path):
            self._node(m.group(1))
            return _Reply(200, st._node_json())
        if m := _API_PROVIDERS.match(path):
            self._node(m.group(1))
            items = [st._provider_json(p) for p in st.roots]
            return _Reply(200, st._page(items, path, query))
        if m := _API_LISTING.match(path):
            self._node(m.group(1))
            folder = self._folder(m.group(2), m.group(3))
            items = [st._api_entity(c) for c in folder.children.values()]
            return _Reply(200, st._page(items, path, query))
        if m := _API_FILE.match(path):
            entry = st.by_id.get(m.group(1))
            if entry is None:
                raise _api_error(404, "Not found.")
            return _Reply(200, {"data": st._api_entity(entry), "meta": {"version": "2.20"}})
        raise _api_error(404, "Not found.")

    def _node(self, node: str) -> None:
        if node != self.state.project:
            raise _api_error(404, "Not found.")

    def _folder(self, provider: str, folder_id: str | None) -> Entry:
        st = self.state
        if provider not in st.roots:
            raise _api_error(404, "Not found.")
        if folder_id is None:
            return st.roots[provider]
        entry = st.by_id.get(folder_id)
        if entry is None or entry.kind != "folder" or st._provider_of(entry) != provider:
            raise _api_error(404, "Not found.")
        return entry

    # WaterButler v1 --------------------------------------------------------------
    def _waterbutler(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> _Reply:
        st = self.state
        m = _WB.match(path)
        if not m or m.group(1) != st.project or m.group(2) not in st.roots:
            raise _wb_error(404, "Not found")
        provider, ident, slash = m.group(2), m.group(3), m.group(4)
        if ident is None:
            target = st.roots[provider]
        else:
            target = st.by_id.get(ident)
            # trailing slashes are significant: folder ids end with one, file ids never
            if target is None or (target.kind == "folder") != (slash == "/"):
                raise _wb_error(404, f"Could not retrieve file or directory {path}")
        kind = query.get("kind", ["file"])[0]
        if method == "PUT" and target.kind == "folder":
            name = query.get("name", [""])[0]
            if not name or "/" in name:
                raise _wb_error(400, "Missing or invalid query parameter 'name'")
            if kind not in ("file", "folder"):
                raise _wb_error(400, f"Invalid kind {kind!r}")
            existing = target.children.get(name)
            if existing is not None:
                raise _wb_error(
                    409,
                    f'Cannot create {kind} "{name}", because a file or folder already exists '
                    f"with that name",
                )
            if kind == "folder":
                if body:
                    raise _wb_error(400, "Folder creation requests may not have a body")
                entry = st._new_entry("folder", name, target)
            else:
                entry = st._new_entry("file", name, target)
                st._store(entry, body)
            return _Reply(201, st._wb_entity(entry))
        if method == "PUT":  # update a file in place: a new version
            if kind != "file":
                raise _wb_error(400, "Updates need kind=file")
            st._store(target, body)
            return _Reply(200, st._wb_entity(target))
        if method == "GET" and target.kind == "file":
            return _Download(target.data)
        if method == "DELETE" and target.parent is not None:
            del target.parent.children[target.name]
            st.by_id.pop(target.id, None)
            return _Reply(204)
        raise _wb_error(405, "Method not allowed")


class _Download(_Reply):
    def __init__(self, data: bytes):
        super().__init__(200)
        self.data = data
