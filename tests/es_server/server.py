"""The Elasticsearch test server: state, lifecycle, authentication and dispatch.

Start in-process: ``EsTestServer(version="8.15.0").start()`` (free loopback port, background
thread); standalone: ``python -m tests.es_server --port 9200``. See tests/es_server/README.md for
what is implemented and what is deliberately not. The API families are in ``api/``, the HTTP
layer in ``transport.py``, the documents and indices in ``store.py``.
"""

from __future__ import annotations

import base64
import contextlib
import re
import socket
import threading
import uuid
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.es_server.api.aliases import AliasesApi
from tests.es_server.api.cluster import ClusterApi
from tests.es_server.api.documents import DocumentsApi
from tests.es_server.api.ilm import IlmApi
from tests.es_server.api.indices import IndicesApi
from tests.es_server.api.search import SearchApi
from tests.es_server.api.templates import TemplatesApi
from tests.es_server.errors import EsError, bad_request
from tests.es_server.faults import Faults, Recorded
from tests.es_server.model import Clock
from tests.es_server.store import OPTIONAL_MODULES, Cluster
from tests.es_server.transport import (
    _VND,
    COMMON_PARAMS,
    Handler,
    Request,
    _Handler,
    _Server,
)


class EsTestServer(ClusterApi, DocumentsApi, SearchApi, IndicesApi, TemplatesApi, IlmApi, AliasesApi):
    """A strict, in-memory Elasticsearch 8.x/9.x HTTP API for tests."""

    def __init__(
        self,
        version: str = "8.15.0",
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: dict[str, str] | None = None,
        users: dict[str, str] | None = None,
        modules: frozenset[str] | None = None,
    ) -> None:
        """``modules``: the optional modules this node has (default: all of OPTIONAL_MODULES);
        ``frozenset()`` behaves as Elastic's integ-test distribution (no ILM, no match_only_text,
        no GET /, no data streams), so a session recorded here matches a real node of that kind."""
        self.version = version
        self.modules = modules
        self.major = int(version.split(".")[0])
        self.host, self.port = host, port
        self.api_keys = api_keys or {}  # id -> key
        self.users = users or {}  # name -> password
        self.clock = Clock()
        self.cluster = Cluster(self.clock, modules)
        self.faults = Faults()
        self.requests: list[Recorded] = []
        self.lock = threading.RLock()
        self.cluster_uuid = uuid.uuid4().hex[:22]
        self._httpd: ThreadingHTTPServer | None = None
        self._conns: set[socket.socket] = set()  # open client connections, cut by stop()
        self._thread: threading.Thread | None = None
        self.routes = self._routes()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EsTestServer:
        server = self

        class H(_Handler):
            es = server

        httpd = _Server((self.host, self.port), H)
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down: close every connection and refuse new ones until ``start`` (same port and data)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self.lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)

    def advance(self, seconds: float) -> list[str]:
        """Move the cluster clock forward and run ILM; returns indices ILM deleted."""
        with self.lock:
            self.clock.offset_ms += int(seconds * 1000)
            return self.cluster.run_ilm()

    def reset(self) -> None:
        with self.lock:
            self.cluster = Cluster(self.clock, self.modules)
            self.faults = Faults()
            self.requests.clear()

    # -- request handling ------------------------------------------------------------------

    def negotiate(self, headers: dict[str, str]) -> str:
        """Check compatible-with like Elasticsearch; returns the response Content-Type."""
        accept = headers.get("accept", "")
        ctype = headers.get("content-type", "")
        versions = {}
        for name, value in (("Accept", accept), ("Content-Type", ctype)):
            m = _VND.search(value)
            if m:
                v = int(m.group(2))
                if v not in (self.major, self.major - 1):
                    raise EsError(
                        400,
                        "media_type_header_exception",
                        "Invalid media-type value on headers [Accept, Content-Type]",
                        caused_by={
                            "type": "status_exception",
                            "reason": f"{name} version must be either version {self.major} or "
                            f"{self.major - 1}, but found {v}. {name}={value}",
                        },
                    )
                versions[name] = v
        if len(versions) == 2 and versions["Accept"] != versions["Content-Type"]:
            raise EsError(
                400,
                "media_type_header_exception",
                "Invalid media-type value on headers [Accept, Content-Type]",
                caused_by={
                    "type": "status_exception",
                    "reason": "A compatible version is required on both Content-Type and Accept headers if "
                    "either one has requested a compatible version and the compatible versions "
                    f"must match. Accept={accept}, Content-Type={ctype}",
                },
            )
        v = versions.get("Accept")
        return f"application/vnd.elasticsearch+json;compatible-with={v}" if v else "application/json"

    def authenticate(self, headers: dict[str, str], path: str) -> str | None:
        if not self.api_keys and not self.users:
            return "anonymous"
        auth = headers.get("authorization", "")
        scheme, _, cred = auth.partition(" ")
        challenge = {"WWW-Authenticate": 'Basic realm="security", charset="UTF-8", ApiKey'}
        try:
            decoded = base64.b64decode(cred, validate=True).decode() if cred else ""
        except (ValueError, UnicodeDecodeError):
            decoded = ""
        if scheme.lower() == "apikey":
            kid, _, key = decoded.partition(":")
            if self.api_keys.get(kid) == key and key:
                return f"apikey:{kid}"
            raise EsError(
                401,
                "security_exception",
                "unable to authenticate with provided credentials and anonymous access "
                "is not allowed for this request",
                headers=challenge,
                **{"additional_unsuccessful_credentials": "API key: invalid"},
            )
        if scheme.lower() == "basic":
            user, _, pw = decoded.partition(":")
            if self.users.get(user) == pw and pw:
                return user
            raise EsError(
                401,
                "security_exception",
                f"unable to authenticate user [{user}] for REST request [{path}]",
                headers=challenge,
            )
        raise EsError(
            401,
            "security_exception",
            f"missing authentication credentials for REST request [{path}]",
            headers=challenge,
        )

    def dispatch(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        url = urlsplit(raw_path)
        path = url.path
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        extra_headers: dict[str, str] = {}
        with self.lock:
            if self.faults.fail_next:
                status, type_, reason = self.faults.fail_next.pop(0)
                raise EsError(status, type_, reason)
            if self.faults.fail_all:
                raise EsError(*self.faults.fail_all)
        self.authenticate(headers, path)
        for route_methods, rx, handler, allowed in self.routes:
            m = rx.fullmatch(path)
            if not m:
                continue
            if method not in route_methods:
                continue
            unknown = [p for p in params if p not in allowed and p not in COMMON_PARAMS]
            if unknown:
                raise bad_request(
                    f"request [{path}] contains unrecognized parameter{'s' if len(unknown) > 1 else ''}: "
                    + ", ".join(f"[{p}]" for p in unknown)
                )
            vars_ = {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
            with self.lock:
                status, resp = handler(Request(method, path, params, headers, body, vars_))
            return status, resp, extra_headers
        allowed_methods = sorted({m for ms, rx, _, _ in self.routes if rx.fullmatch(path) for m in ms})
        if allowed_methods:
            return (
                405,
                {
                    "error": f"Incorrect HTTP method for uri [{raw_path}] and method [{method}], allowed: "
                    f"[{', '.join(allowed_methods)}]",
                    "status": 405,
                },
                {"Allow": ",".join(allowed_methods)},
            )
        return 400, {"error": f"no handler found for uri [{raw_path}] and method [{method}]"}, {}

    # -- routes ----------------------------------------------------------------------------

    def _routes(self) -> list[tuple[set[str], re.Pattern[str], Handler, set[str]]]:
        IX = r"(?P<index>[^/_][^/]*|_all|\*[^/]*)"  # an index expression (not an _endpoint)
        table: list[tuple[str, str, Handler, set[str]]] = [
            *self.routes_cluster(IX),
            *self.routes_documents(IX),
            *self.routes_search(IX),
            *self.routes_indices(IX),
            *self.routes_templates(IX),
            *self.routes_ilm(IX),
            *self.routes_aliases(IX),
        ]
        if self.modules is not None:
            # Endpoints of an absent module are not registered: Elasticsearch then answers 400
            # "no handler found" (or 405 where another method of the path exists, as for GET /).
            absent = set(OPTIONAL_MODULES) - self.modules
            gone = [("x-pack-ilm", "_ilm"), ("data-streams", "_data_stream")]
            table = [
                t
                for t in table
                if not any(m in absent and key in t[1] for m, key in gone)
                and not ("rest-root" in absent and t[1] == r"/" and "GET" in t[0])
            ]
            if "rest-root" in absent:
                table.append(("DELETE", r"/", self.h_refuse, set()))  # for the 405's "allowed" list
        return [(set(ms.split()), re.compile(rx), h, allowed) for ms, rx, h, allowed in table]
