"""The HTTP front of the Elasticsearch test server.

Start in-process: ``EsTestServer(version="8.15.0").start()`` (free loopback port, background
thread); standalone: ``python -m tests.es_server --port 9200``. See tests/es_server/README.md for
what is implemented and what is deliberately not.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import random
import re
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from tests.es_server.errors import EsError, bad_request, index_not_found, resource_missing
from tests.es_server.query import search
from tests.es_server.store import (
    OPTIONAL_MODULES,
    Clock,
    Cluster,
    Index,
    check_id_length,
    check_writable,
    nest_settings,
    normalize_settings,
)

# Options of most index-reading APIs (multi-target syntax, local/master reads).
INDEX_READ_OPTS = frozenset(
    {"ignore_unavailable", "allow_no_indices", "expand_wildcards", "local", "master_timeout"}
)
COMMON_PARAMS = {
    "pretty",
    "human",
    "error_trace",
    "filter_path",
    "format",
    "source",
    "source_content_type",
}
_VND = re.compile(
    r"application/vnd\.elasticsearch\+(json|x-ndjson|yaml|smile|cbor)\s*;\s*compatible-with\s*=\s*(\d+)",
    re.I,
)


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes  # decompressed
    status: int = 0  # the answer, filled in once sent (0: dropped or not answered yet)
    response: bytes = b""


@dataclass
class Faults:
    """Programmable failures. All counters are consumed by matching requests."""

    reject_bulk: int = 0  # next N _bulk requests answered 429 es_rejected_execution_exception
    item_fail_rate: float = 0.0  # share of bulk index/create items failing
    item_fail_status: int = 429  # 429 or 503 for those items
    fail_all: tuple[int, str, str] | None = None  # (status, type, reason) for every request
    fail_next: list[tuple[int, str, str]] = field(default_factory=list)  # one per request, any path
    delay: float = 0.0  # seconds before answering
    drop_next: int = 0  # next N requests: connection closed mid-response
    max_body: int | None = None  # bodies larger than this get 413
    rng: random.Random = field(default_factory=lambda: random.Random(7))


class Request:
    def __init__(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        vars_: dict[str, str],
    ) -> None:
        self.method, self.path, self.params, self.headers, self.body, self.vars = (
            method,
            path,
            params,
            headers,
            body,
            vars_,
        )

    def json(self, required: bool = False) -> Any:
        if not self.body.strip():
            if required:
                raise EsError(400, "parse_exception", "request body is required")
            return {}
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise EsError(400, "x_content_parse_exception", f"[1:1] Unexpected character: {exc}") from None

    def flag(self, name: str, default: bool = False) -> bool:
        v = self.params.get(name)
        if v is None:
            return default
        if v in ("", "true"):
            return True
        if v == "false":
            return False
        raise bad_request(f"Failed to parse value [{v}] as only [true] or [false] are allowed.")


Handler = Callable[[Request], tuple[int, Any]]


class EsTestServer:
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
            ("GET HEAD", r"/", self.h_info, set()),
            (
                "GET",
                r"/_nodes(?:/(?P<node_id>[^/_][^/]*|_all|_local|_master))?(?:/(?P<metric>[^/]+))?",
                self.h_nodes_info,
                {"flat_settings", "timeout"},
            ),
            (
                "GET",
                r"/_data_stream(?:/(?P<name>[^/]+))?",
                self.h_get_data_stream,
                {"expand_wildcards", "include_defaults", "master_timeout", "verbose"},
            ),
            (
                "GET",
                r"/_cluster/health(?:/" + IX + ")?",
                self.h_health,
                {
                    "wait_for_status",
                    "timeout",
                    "level",
                    "wait_for_no_relocating_shards",
                    "wait_for_active_shards",
                    "wait_for_events",
                    "wait_for_no_initializing_shards",
                    "wait_for_nodes",
                    "local",
                    "master_timeout",
                    "expand_wildcards",
                },
            ),
            (
                "POST PUT",
                r"(?:/" + IX + ")?/_bulk",
                self.h_bulk,
                {
                    "refresh",
                    "routing",
                    "timeout",
                    "wait_for_active_shards",
                    "pipeline",
                    "require_alias",
                    "_source",
                    "_source_includes",
                    "_source_excludes",
                    "require_data_stream",
                    "list_executed_pipelines",
                },
            ),
            (
                "GET POST",
                r"(?:/" + IX + ")?/_search",
                self.h_search,
                {
                    "q",
                    "size",
                    "from",
                    "sort",
                    "_source",
                    "_source_includes",
                    "_source_excludes",
                    "track_total_hits",
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "rest_total_hits_as_int",
                    "timeout",
                    "typed_keys",
                    "search_type",
                    "request_cache",
                    "preference",
                    "routing",
                    "allow_partial_search_results",
                    "batched_reduce_size",
                    "ccs_minimize_roundtrips",
                    "max_concurrent_shard_requests",
                    "seq_no_primary_term",
                    "version",
                    "track_scores",
                    "terminate_after",
                    "stats",
                    "ignore_throttled",
                },
            ),
            (
                "GET POST",
                r"(?:/" + IX + ")?/_count",
                self.h_count,
                {
                    "q",
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "min_score",
                    "terminate_after",
                    "routing",
                    "preference",
                    "default_operator",
                    "df",
                    "analyzer",
                    "lenient",
                    "analyze_wildcard",
                },
            ),
            (
                "GET POST",
                r"(?:/" + IX + ")?/_refresh",
                self.h_refresh,
                {"ignore_unavailable", "allow_no_indices", "expand_wildcards"},
            ),
            (
                "GET",
                r"/_cat/indices(?:/" + IX + ")?",
                self.h_cat_indices,
                {
                    "format",
                    "h",
                    "s",
                    "v",
                    "bytes",
                    "health",
                    "pri",
                    "expand_wildcards",
                    "help",
                    "time",
                    "local",
                    "master_timeout",
                    "include_unloaded_segments",
                },
            ),
            (
                "GET",
                r"/_index_template(?:/(?P<name>[^/]+))?",
                self.h_get_index_template,
                {"flat_settings", "local", "master_timeout", "include_defaults"},
            ),
            (
                "HEAD",
                r"/_index_template/(?P<name>[^/]+)",
                self.h_exists_index_template,
                {"flat_settings", "local", "master_timeout"},
            ),
            (
                "PUT POST",
                r"/_index_template/(?P<name>[^/_][^/]*)",
                self.h_put_index_template,
                {"create", "master_timeout", "cause"},
            ),
            (
                "DELETE",
                r"/_index_template/(?P<name>[^/]+)",
                self.h_delete_index_template,
                {"master_timeout", "timeout"},
            ),
            (
                "POST",
                r"/_index_template/_simulate",
                self.h_simulate_template,
                {"master_timeout", "include_defaults", "create", "cause"},
            ),
            (
                "POST",
                r"/_index_template/_simulate_index/(?P<name>[^/]+)",
                self.h_simulate_index,
                {"master_timeout", "include_defaults"},
            ),
            (
                "GET",
                r"/_component_template(?:/(?P<name>[^/]+))?",
                self.h_get_component_template,
                {"flat_settings", "local", "master_timeout", "include_defaults"},
            ),
            (
                "HEAD",
                r"/_component_template/(?P<name>[^/]+)",
                self.h_exists_component_template,
                {"local", "master_timeout"},
            ),
            (
                "PUT POST",
                r"/_component_template/(?P<name>[^/]+)",
                self.h_put_component_template,
                {"create", "master_timeout", "timeout"},
            ),
            (
                "DELETE",
                r"/_component_template/(?P<name>[^/]+)",
                self.h_delete_component_template,
                {"master_timeout", "timeout"},
            ),
            (
                "GET",
                r"/_ilm/policy(?:/(?P<name>[^/]+))?",
                self.h_get_policy,
                {"master_timeout", "timeout"},
            ),
            (
                "PUT",
                r"/_ilm/policy/(?P<name>[^/]+)",
                self.h_put_policy,
                {"master_timeout", "timeout"},
            ),
            (
                "DELETE",
                r"/_ilm/policy/(?P<name>[^/]+)",
                self.h_delete_policy,
                {"master_timeout", "timeout"},
            ),
            ("GET", r"/_ilm/status", self.h_ilm_status, set()),
            (
                "GET",
                r"/" + IX + "/_ilm/explain",
                self.h_ilm_explain,
                {"only_managed", "only_errors", "master_timeout"},
            ),
            ("POST", r"/" + IX + "/_ilm/remove", self.h_ilm_remove, set()),
            (
                "GET",
                r"(?:/" + IX + ")?/_alias(?:/(?P<name>[^/]+))?",
                self.h_get_alias,
                INDEX_READ_OPTS,
            ),
            (
                "HEAD",
                r"(?:/" + IX + ")?/_alias/(?P<name>[^/]+)",
                self.h_exists_alias,
                INDEX_READ_OPTS,
            ),
            (
                "PUT POST",
                r"/" + IX + "/_alias(?:es)?/(?P<name>[^/]+)",
                self.h_put_alias,
                {"master_timeout", "timeout"},
            ),
            (
                "DELETE",
                r"/" + IX + "/_alias(?:es)?/(?P<name>[^/]+)",
                self.h_delete_alias,
                {"master_timeout", "timeout"},
            ),
            ("POST", r"/_aliases", self.h_aliases, {"master_timeout", "timeout"}),
            (
                "GET",
                r"(?:/" + IX + ")?/_mapping",
                self.h_get_mapping,
                INDEX_READ_OPTS,
            ),
            (
                "PUT POST",
                r"/" + IX + "/_mapping",
                self.h_put_mapping,
                {
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "master_timeout",
                    "timeout",
                    "write_index_only",
                },
            ),
            (
                "GET",
                r"(?:/" + IX + ")?/_settings(?:/(?P<name>[^/]+))?",
                self.h_get_settings,
                {
                    "flat_settings",
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "local",
                    "master_timeout",
                    "include_defaults",
                },
            ),
            (
                "PUT",
                r"(?:/" + IX + ")?/_settings",
                self.h_put_settings,
                {
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "preserve_existing",
                    "master_timeout",
                    "timeout",
                    "flat_settings",
                    "reopen",
                },
            ),
            (
                "PUT POST",
                r"/" + IX + "/_doc/(?P<id>[^/]+)",
                self.h_index,
                {
                    "op_type",
                    "refresh",
                    "routing",
                    "timeout",
                    "version",
                    "version_type",
                    "if_seq_no",
                    "if_primary_term",
                    "pipeline",
                    "wait_for_active_shards",
                    "require_alias",
                },
            ),
            (
                "POST",
                r"/" + IX + "/_doc",
                self.h_index,
                {
                    "op_type",
                    "refresh",
                    "routing",
                    "timeout",
                    "pipeline",
                    "wait_for_active_shards",
                    "require_alias",
                },
            ),
            (
                "PUT POST",
                r"/" + IX + "/_create/(?P<id>[^/]+)",
                self.h_create,
                {
                    "refresh",
                    "routing",
                    "timeout",
                    "version",
                    "version_type",
                    "pipeline",
                    "wait_for_active_shards",
                },
            ),
            (
                "GET HEAD",
                r"/" + IX + "/_doc/(?P<id>[^/]+)",
                self.h_get,
                {
                    "_source",
                    "_source_includes",
                    "_source_excludes",
                    "realtime",
                    "refresh",
                    "routing",
                    "preference",
                    "stored_fields",
                    "version",
                    "version_type",
                },
            ),
            (
                "DELETE",
                r"/" + IX + "/_doc/(?P<id>[^/]+)",
                self.h_delete_doc,
                {
                    "refresh",
                    "routing",
                    "timeout",
                    "version",
                    "version_type",
                    "if_seq_no",
                    "if_primary_term",
                    "wait_for_active_shards",
                },
            ),
            (
                "POST",
                r"/" + IX + "/_close",
                self.h_close,
                {
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "master_timeout",
                    "timeout",
                    "wait_for_active_shards",
                },
            ),
            (
                "POST",
                r"/" + IX + "/_open",
                self.h_open,
                {
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "master_timeout",
                    "timeout",
                    "wait_for_active_shards",
                },
            ),
            ("GET", r"/_security/_authenticate", self.h_authenticate, set()),
            ("GET POST", r"/_security/user/_has_privileges", self.h_has_privileges, set()),
            (
                "PUT",
                r"/(?P<index>[^/_][^/]*)",
                self.h_create_index,
                {"master_timeout", "timeout", "wait_for_active_shards"},
            ),
            (
                "GET",
                r"/" + IX,
                self.h_get_index,
                {
                    "flat_settings",
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "local",
                    "master_timeout",
                    "include_defaults",
                    "features",
                },
            ),
            (
                "HEAD",
                r"/" + IX,
                self.h_exists_index,
                {
                    "flat_settings",
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "local",
                    "include_defaults",
                },
            ),
            (
                "DELETE",
                r"/" + IX,
                self.h_delete_index,
                {
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "master_timeout",
                    "timeout",
                },
            ),
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

    # -- handlers: cluster -----------------------------------------------------------------

    def h_info(self, r: Request) -> tuple[int, Any]:
        return 200, {
            "name": "es-test-server",
            "cluster_name": "logto-shipper-test",
            "cluster_uuid": self.cluster_uuid,
            "version": {
                "number": self.version,
                "build_flavor": "default",
                "build_type": "tar",
                "build_hash": "0" * 40,
                "build_date": "2025-01-01T00:00:00.000Z",
                "build_snapshot": False,
                "lucene_version": "9.11.1",
                "minimum_wire_compatibility_version": f"{self.major - 1}.17.0",
                "minimum_index_compatibility_version": f"{self.major - 1}.0.0",
            },
            "tagline": "You Know, for Search",
        }

    NODE_ID = "es-test-server-node-0000"

    def h_nodes_info(self, r: Request) -> tuple[int, Any]:
        """``GET /_nodes[/{node_id}[/{metric}]]``: the one node, with ``plugins`` (its modules)
        when asked; other metrics are refused, never answered empty."""
        node_ids = (r.vars.get("node_id") or "_all").split(",")
        if not any(n in ("_all", "_local", "_master", self.NODE_ID, "*") for n in node_ids):
            return 200, {
                "_nodes": {"total": 0, "successful": 0, "failed": 0},
                "cluster_name": "logto-shipper-test",
                "nodes": {},
            }
        metrics = set((r.vars.get("metric") or "_none").split(","))
        unknown = metrics - {"_none", "plugins", "_all"}
        if unknown:
            raise bad_request(f"test server: nodes info metric {sorted(unknown)} is not implemented")
        node: dict[str, Any] = {
            "name": "es-test-server",
            "transport_address": f"{self.host}:9300",
            "host": self.host,
            "ip": self.host,
            "version": self.version,
            "roles": ["data", "ingest", "master"],
        }
        if metrics & {"plugins", "_all"}:
            from tests.es_server.store import OPTIONAL_MODULES

            present = OPTIONAL_MODULES if self.modules is None else sorted(self.modules)
            names = ["transport-netty4", "x-pack-core", "x-pack-security", *present]
            node["plugins"] = []
            node["modules"] = [{"name": n} for n in sorted(names)]
        return 200, {
            "_nodes": {"total": 1, "successful": 1, "failed": 0},
            "cluster_name": "logto-shipper-test",
            "nodes": {self.NODE_ID: node},
        }

    def h_health(self, r: Request) -> tuple[int, Any]:
        n = len(self.cluster.indices)
        status = (
            "green"
            if all(i.settings.get("index.number_of_replicas") == "0" for i in self.cluster.indices.values())
            else "yellow"
        )
        return 200, {
            "cluster_name": "logto-shipper-test",
            "status": status,
            "timed_out": False,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "active_primary_shards": n,
            "active_shards": n,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": 0 if status == "green" else n,
            "unassigned_primary_shards": 0,
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0 if status == "green" else 50.0,
        }

    def h_authenticate(self, r: Request) -> tuple[int, Any]:
        who = self.authenticate(r.headers, r.path) or "anonymous"
        return 200, {
            "username": who.split(":", 1)[-1],
            "roles": ["superuser"],
            "enabled": True,
            "authentication_type": "api_key" if who.startswith("apikey:") else "realm",
        }

    def h_has_privileges(self, r: Request) -> tuple[int, Any]:
        body = r.json()
        cluster = {p: True for p in body.get("cluster", [])}
        index = {}
        for entry in body.get("index", []):
            for name in entry.get("names", []):
                index[name] = {p: True for p in entry.get("privileges", [])}
        who = self.authenticate(r.headers, r.path) or "anonymous"
        return 200, {
            "username": who.split(":", 1)[-1],
            "has_all_requested": True,
            "cluster": cluster,
            "index": index,
            "application": {},
        }

    # -- handlers: documents ---------------------------------------------------------------

    def _refresh_flag(self, r: Request) -> bool:
        v = r.params.get("refresh")
        if v is None or v == "false":
            return False
        if v in ("", "true", "wait_for"):
            return True
        raise bad_request(f"Unknown value for refresh: [{v}].")

    def _write_result(self, ix: Index, doc: Any, result: str, refreshed: bool = False) -> dict[str, Any]:
        replicas = int(ix.settings.get("index.number_of_replicas", "1"))
        out = {"_index": ix.name, "_id": doc.id, "_version": doc.version, "result": result}
        if refreshed:
            out["forced_refresh"] = True
        out.update(
            {
                "_shards": {"total": replicas + 1, "successful": 1, "failed": 0},
                "_seq_no": doc.seq_no,
                "_primary_term": 1,
            }
        )
        return out

    def h_index(self, r: Request) -> tuple[int, Any]:
        op = r.params.get("op_type", "index")
        if op not in ("index", "create"):
            raise bad_request(f"opType must be 'create' or 'index', found: [{op}]")
        doc_id = r.vars.get("id") or uuid.uuid4().hex[:20]
        ix = self.cluster.prepare(r.vars["index"])
        seq = r.params.get("if_seq_no")
        doc, result = self.cluster.index_doc(
            ix,
            doc_id,
            r.json(required=True),
            op,
            self._refresh_flag(r),
            int(seq) if seq is not None else None,
            int(r.params["if_primary_term"]) if "if_primary_term" in r.params else None,
        )
        refreshed = r.params.get("refresh") in ("", "true")
        return (201 if result == "created" else 200), self._write_result(ix, doc, result, refreshed)

    def h_create(self, r: Request) -> tuple[int, Any]:
        ix = self.cluster.prepare(r.vars["index"])
        doc, result = self.cluster.index_doc(
            ix, r.vars["id"], r.json(required=True), "create", self._refresh_flag(r)
        )
        return 201, self._write_result(ix, doc, result, r.params.get("refresh") in ("", "true"))

    def h_get(self, r: Request) -> tuple[int, Any]:
        from tests.es_server.query import filter_source, source_spec

        names = self.cluster.resolve(r.vars["index"])
        if len(names) != 1:
            raise bad_request(
                f"alias [{r.vars['index']}] has more than one index associated with it, can't execute a single index op"
            )
        ix = self.cluster.get_index(names[0])
        doc = ix.docs.get(r.vars["id"])
        if doc is None:
            return 404, {"_index": ix.name, "_id": r.vars["id"], "found": False}
        out: dict[str, Any] = {
            "_index": ix.name,
            "_id": doc.id,
            "_version": doc.version,
            "_seq_no": doc.seq_no,
            "_primary_term": 1,
            "found": True,
        }
        enabled, inc, exc = source_spec(None, r.params)
        if enabled:
            out["_source"] = filter_source(doc.source, inc, exc)
        return 200, out

    def h_delete_doc(self, r: Request) -> tuple[int, Any]:
        ix = self.cluster.prepare(r.vars["index"], auto_create=True)
        doc = ix.docs.pop(r.vars["id"], None)
        ix.seq += 1
        replicas = int(ix.settings.get("index.number_of_replicas", "1"))
        base = {
            "_index": ix.name,
            "_id": r.vars["id"],
            "_version": (doc.version + 1) if doc else 1,
            "_shards": {"total": replicas + 1, "successful": 1, "failed": 0},
            "_seq_no": ix.seq - 1,
            "_primary_term": 1,
        }
        return (200, {**base, "result": "deleted"}) if doc else (404, {**base, "result": "not_found"})

    def h_bulk(self, r: Request) -> tuple[int, Any]:
        started = time.monotonic()
        if self.faults.reject_bulk > 0:
            self.faults.reject_bulk -= 1
            raise EsError(
                429,
                "es_rejected_execution_exception",
                "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, "
                "replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, max_coordinating_and_primary_bytes=0]",
            )
        body = r.body
        if not body.strip():
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: no requests added;",
            )
        if not body.endswith(b"\n"):
            raise bad_request("The bulk request must be terminated by a newline [\\n]")
        lines = body.split(b"\n")[:-1]
        default_index = r.vars.get("index")
        refresh = self._refresh_flag(r)
        require_alias = r.flag("require_alias")
        ops: list[tuple[str, dict[str, Any], Any]] = []
        i = 0
        line_no = 0
        while i < len(lines):
            line_no += 1
            raw = lines[i]
            if not raw.strip():
                i += 1
                continue
            try:
                action = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise bad_request(
                    f"Malformed action/metadata line [{line_no}], expected START_OBJECT or END_OBJECT but found [VALUE_STRING]"
                ) from None
            if not isinstance(action, dict) or len(action) != 1:
                raise bad_request(
                    f"Malformed action/metadata line [{line_no}], expected START_OBJECT but found [{type(action).__name__}]"
                )
            ((op, meta),) = action.items()
            if op not in ("index", "create", "delete", "update"):
                raise bad_request(
                    f"Malformed action/metadata line [{line_no}], expected field [create], [delete], [index] or [update] but found [{op}]"
                )
            if not isinstance(meta, dict):
                raise bad_request(
                    f"Malformed action/metadata line [{line_no}], expected START_OBJECT but found [{type(meta).__name__}]"
                )
            for k in meta:
                if k not in (
                    "_index",
                    "_id",
                    "routing",
                    "if_seq_no",
                    "if_primary_term",
                    "version",
                    "version_type",
                    "pipeline",
                    "require_alias",
                    "dynamic_templates",
                    "retry_on_conflict",
                    "_source",
                    "op_type",
                    "list_executed_pipelines",
                ):
                    raise bad_request(f"Action/metadata line [{line_no}] contains an unknown parameter [{k}]")
            if op == "update":
                raise bad_request("test server: bulk [update] actions are not implemented")
            if meta.get("_id") is not None:
                check_id_length(str(meta["_id"]))
            if "_index" not in meta and default_index is None:
                raise EsError(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: index is missing;",
                )
            doc = None
            if op != "delete":
                i += 1
                line_no += 1
                if i >= len(lines):
                    raise bad_request(
                        f"Malformed action/metadata line [{line_no - 1}], expected a document source"
                    )
                try:
                    doc = orjson.loads(lines[i])
                except orjson.JSONDecodeError:
                    doc = _BadJson(lines[i])
            ops.append((op, meta, doc))
            i += 1
        items = []
        errors = False
        for op, meta, doc in ops:
            index = meta.get("_index", default_index)
            doc_id = meta.get("_id")
            item: dict[str, Any]
            try:
                item_requires = meta.get("require_alias", require_alias)
                if item_requires and index not in self.cluster.all_aliases():
                    raise EsError(
                        404,
                        "index_not_found_exception",
                        f"no such index [{index}] and [require_alias] request flag is [true] and [{index}] is not an alias",
                        **{
                            "resource.type": "index_expression",
                            "resource.id": index,
                            "index_uuid": "_na_",
                            "index": index,
                        },
                    )
                if op == "delete":
                    ix = self.cluster.prepare(index)
                    check_writable(ix)
                    existing = ix.docs.pop(str(doc_id), None)
                    ix.seq += 1
                    replicas = int(ix.settings.get("index.number_of_replicas", "1"))
                    item = {
                        "_index": ix.name,
                        "_id": str(doc_id),
                        "_version": (existing.version + 1) if existing else 1,
                        "result": "deleted" if existing else "not_found",
                        "_shards": {"total": replicas + 1, "successful": 1, "failed": 0},
                        "_seq_no": ix.seq - 1,
                        "_primary_term": 1,
                        "status": 200 if existing else 404,
                    }
                else:
                    if self.faults.item_fail_rate and self.faults.rng.random() < self.faults.item_fail_rate:
                        st = self.faults.item_fail_status
                        raise EsError(
                            st,
                            "es_rejected_execution_exception"
                            if st == 429
                            else "unavailable_shards_exception",
                            "rejected execution of primary operation"
                            if st == 429
                            else f"[{index}][0] primary shard is not active Timeout: [1m]",
                        )
                    ix = self.cluster.prepare(index)
                    if isinstance(doc, _BadJson):
                        raise EsError(
                            400,
                            "document_parsing_exception",
                            "[1:2] failed to parse",
                            caused_by={
                                "type": "x_content_parse_exception",
                                "reason": "[1:2] Unexpected character",
                            },
                        )
                    d, result = self.cluster.index_doc(
                        ix,
                        str(doc_id) if doc_id is not None else uuid.uuid4().hex[:20],
                        doc,
                        "create" if op == "create" else meta.get("op_type", "index"),
                        refresh,
                        meta.get("if_seq_no"),
                        meta.get("if_primary_term"),
                    )
                    item = {
                        **self._write_result(ix, d, result),
                        "status": 201 if result == "created" else 200,
                    }
            except EsError as exc:
                errors = True
                item = {
                    "_index": index,
                    "_id": str(doc_id) if doc_id is not None else None,
                    "status": exc.status,
                    "error": exc.cause(),
                }
                if exc.status == 409:
                    item["error"] = {**exc.cause()}
            items.append({op: item})
        return 200, {
            "errors": errors,
            "took": int((time.monotonic() - started) * 1000),
            "items": items,
        }

    # -- handlers: search ------------------------------------------------------------------

    def _search_names(self, r: Request) -> list[str]:
        return self.cluster.resolve(
            r.vars.get("index", "_all"),
            ignore_unavailable=r.flag("ignore_unavailable"),
            allow_no_indices=r.flag("allow_no_indices", True),
        )

    def h_search(self, r: Request) -> tuple[int, Any]:
        body = r.json()
        if not isinstance(body, dict):
            raise EsError(400, "x_content_parse_exception", "[1:1] request body must be an object")
        return 200, search(self.cluster, self._search_names(r), body, r.params)

    def h_count(self, r: Request) -> tuple[int, Any]:
        body = r.json()
        for k in body:
            if k != "query":
                raise EsError(400, "x_content_parse_exception", f"[1:2] request does not support [{k}]")
        return 200, search(self.cluster, self._search_names(r), body, r.params, count_only=True)

    def h_refresh(self, r: Request) -> tuple[int, Any]:
        names = self.cluster.resolve(
            r.vars.get("index", "_all"), ignore_unavailable=r.flag("ignore_unavailable")
        )
        for n in names:
            for d in self.cluster.indices[n].docs.values():
                d.visible_at = 0
        # total counts every copy (primaries x (1 + replicas)); one node holds only primaries.
        shards = total = 0
        for n in names:
            st = self.cluster.indices[n].settings
            primaries = int(st["index.number_of_shards"])
            shards += primaries
            total += primaries * (1 + int(st.get("index.number_of_replicas", "1")))
        return 200, {"_shards": {"total": total, "successful": shards, "failed": 0}}

    # -- handlers: indices -----------------------------------------------------------------

    def h_create_index(self, r: Request) -> tuple[int, Any]:
        name = r.vars["index"]
        if name.startswith("_"):
            raise EsError(
                400,
                "invalid_index_name_exception",
                f"Invalid index name [{name}], must not start with '_', '-', or '+'",
                index=name,
                index_uuid="_na_",
            )
        body = r.json()
        ix = self.cluster.create_index(name, body)
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": ix.name}

    def h_delete_index(self, r: Request) -> tuple[int, Any]:
        self.cluster.delete_index(r.vars["index"], r.flag("ignore_unavailable"))
        return 200, {"acknowledged": True}

    def h_exists_index(self, r: Request) -> tuple[int, Any]:
        try:
            names = self.cluster.resolve(
                r.vars["index"],
                ignore_unavailable=r.flag("ignore_unavailable"),
                allow_no_indices=r.flag("allow_no_indices", False),
            )
        except EsError:
            return 404, None
        return (200 if names else 404), None

    def _index_view(self, ix: Index, flat: bool) -> dict[str, Any]:
        settings = {k: v for k, v in ix.settings.items() if v is not None}
        return {
            "aliases": ix.aliases,
            "mappings": ix.mappings,
            "settings": settings if flat else nest_settings(settings),
        }

    def h_get_index(self, r: Request) -> tuple[int, Any]:
        names = self.cluster.resolve(
            r.vars["index"],
            ignore_unavailable=r.flag("ignore_unavailable"),
            allow_no_indices=r.flag("allow_no_indices", True),
        )
        return 200, {n: self._index_view(self.cluster.indices[n], r.flag("flat_settings")) for n in names}

    def h_get_mapping(self, r: Request) -> tuple[int, Any]:
        names = self.cluster.resolve(
            r.vars.get("index", "_all"), ignore_unavailable=r.flag("ignore_unavailable")
        )
        return 200, {n: {"mappings": self.cluster.indices[n].mappings} for n in names}

    def h_put_mapping(self, r: Request) -> tuple[int, Any]:
        from tests.es_server.mapping import merge_properties, validate_properties

        body = r.json(required=True)
        validate_properties(body.get("properties", {}))
        for n in self.cluster.resolve(r.vars["index"]):
            ix = self.cluster.indices[n]
            ix.mappings = {
                **ix.mappings,
                **{k: v for k, v in body.items() if k != "properties"},
                "properties": merge_properties(ix.mappings.get("properties", {}), body.get("properties", {})),
            }
            ix.types_cache = None
        return 200, {"acknowledged": True}

    def h_get_settings(self, r: Request) -> tuple[int, Any]:
        import fnmatch

        names = self.cluster.resolve(
            r.vars.get("index", "_all"), ignore_unavailable=r.flag("ignore_unavailable")
        )
        out = {}
        for n in names:
            s = {k: v for k, v in self.cluster.indices[n].settings.items() if v is not None}
            if r.vars.get("name"):
                s = {
                    k: v
                    for k, v in s.items()
                    if any(fnmatch.fnmatchcase(k, p) for p in r.vars["name"].split(","))
                }
            out[n] = {"settings": s if r.flag("flat_settings") else nest_settings(s)}
        return 200, out

    def h_put_settings(self, r: Request) -> tuple[int, Any]:
        body = r.json(required=True)
        settings = normalize_settings(
            body.get("settings", body) if isinstance(body, dict) else {}, self.cluster.refused_settings
        )
        for static in ("index.number_of_shards", "index.lifecycle.parse_origination_date"):
            if static in settings and static == "index.number_of_shards":
                raise bad_request(f"Can't update non dynamic settings [[{static}]] for open indices")
        for n in self.cluster.resolve(r.vars.get("index", "_all")):
            ix = self.cluster.indices[n]
            for k, v in settings.items():
                if v is None:
                    ix.settings.pop(k, None)
                else:
                    ix.settings[k] = v
        return 200, {"acknowledged": True}

    def h_close(self, r: Request) -> tuple[int, Any]:
        names = self.cluster.resolve(r.vars["index"])
        for n in names:
            self.cluster.indices[n].closed = True
        return 200, {
            "acknowledged": True,
            "shards_acknowledged": True,
            "indices": {n: {"closed": True} for n in names},
        }

    def h_open(self, r: Request) -> tuple[int, Any]:
        for n in self.cluster.resolve(r.vars["index"]):
            self.cluster.indices[n].closed = False
        return 200, {"acknowledged": True, "shards_acknowledged": True}

    def h_cat_indices(self, r: Request) -> tuple[int, Any]:
        names = self.cluster.resolve(
            r.vars.get("index", "*"),
            expand_hidden=r.params.get("expand_wildcards") in ("all", "hidden"),
        )
        rows = []
        for n in names:
            ix = self.cluster.indices[n]
            size = sum(len(orjson.dumps(d.source)) for d in ix.docs.values())
            replicas = int(ix.settings.get("index.number_of_replicas", "1"))
            rows.append(
                {
                    "health": "green" if replicas == 0 else "yellow",
                    "status": "close" if ix.closed else "open",
                    "index": n,
                    "uuid": ix.uuid,
                    "pri": ix.settings.get("index.number_of_shards", "1"),
                    "rep": str(replicas),
                    "docs.count": None if ix.closed else str(len(ix.docs)),
                    "docs.deleted": None if ix.closed else "0",
                    "store.size": None if ix.closed else _size(size, r.params.get("bytes")),
                    "pri.store.size": None if ix.closed else _size(size, r.params.get("bytes")),
                    "dataset.size": None if ix.closed else _size(size, r.params.get("bytes")),
                }
            )
        if r.params.get("health"):
            if r.params["health"] not in ("green", "yellow", "red", "unknown", "unavailable"):
                raise bad_request(f"Invalid health status [{r.params['health']}]")
            rows = [x for x in rows if x["health"] == r.params["health"]]
        if r.params.get("s"):
            key = r.params["s"].split(":")[0]
            rows.sort(key=lambda x: str(x.get(key)), reverse=r.params["s"].endswith(":desc"))
        if r.params.get("h"):
            cols = r.params["h"].split(",")
            rows = [{c: x.get(c) for c in cols} for x in rows]
        if r.params.get("format") == "json":
            return 200, rows
        if r.params.get("format") not in (None, "txt", "text"):
            raise bad_request(f"test server: _cat format [{r.params['format']}] is not implemented")
        cols = list(rows[0]) if rows else (r.params.get("h", "").split(",") if r.params.get("h") else [])
        if not rows and not r.flag("v"):
            return 200, _Text("")
        lines = []
        if r.flag("v"):
            lines.append(cols)
        lines += [[("" if x[c] is None else str(x[c])) for c in cols] for x in rows]
        widths = [max((len(line[i]) for line in lines), default=0) for i in range(len(cols))]
        text = "".join(
            " ".join(v.ljust(widths[i]) for i, v in enumerate(line)).rstrip() + "\n" for line in lines
        )
        return 200, _Text(text)

    # -- handlers: templates ---------------------------------------------------------------

    def h_put_index_template(self, r: Request) -> tuple[int, Any]:
        before = self.cluster.index_templates.get(r.vars["name"])
        self.cluster.put_index_template(r.vars["name"], r.json(required=True), r.flag("create"))
        self._stamp(self.cluster.index_templates[r.vars["name"]], before)
        return 200, {"acknowledged": True}

    def _stamp(self, stored: dict[str, Any], before: dict[str, Any] | None) -> None:
        """9.x records when a template was created and last changed (and echoes both)."""
        if self.major < 9:
            return
        now = self.clock.now_ms()
        stored["created_date_millis"] = (before or {}).get("created_date_millis", now)
        stored["modified_date_millis"] = now

    def _template_names(self, store: dict[str, Any], name: str | None, kind: str) -> list[str]:
        import fnmatch

        if name is None:
            return sorted(store)
        out = []
        for part in name.split(","):
            matched = [n for n in store if fnmatch.fnmatchcase(n, part)]
            if not matched and "*" not in part:
                raise resource_missing(
                    "resource_not_found_exception",
                    f"{kind} [{part}] not found"
                    if kind == "index template"
                    else f"{kind} matching [{part}] not found",
                )
            out += matched
        return sorted(set(out))

    def _get_templates(self, r: Request, store: dict[str, Any], kind: str, key: str) -> tuple[int, Any]:
        names = self._template_names(store, r.vars.get("name"), kind)
        item = key.removesuffix("s")
        flat = r.flag("flat_settings")
        return 200, {key: [{"name": n, item: self._tpl_view(store[n], flat)} for n in names]}

    def h_get_index_template(self, r: Request) -> tuple[int, Any]:
        return self._get_templates(r, self.cluster.index_templates, "index template", "index_templates")

    def _tpl_view(self, t: dict[str, Any], flat: bool) -> dict[str, Any]:
        out = dict(t)
        tpl = dict(out.get("template", {}))
        if "settings" in tpl:
            s = normalize_settings(tpl["settings"])
            tpl["settings"] = s if flat else nest_settings(s)
        out["template"] = tpl
        if "index_patterns" in out:  # index templates echo composed_of; component templates have none
            out.setdefault("composed_of", [])
        return out

    def h_exists_index_template(self, r: Request) -> tuple[int, Any]:
        return (200 if r.vars["name"] in self.cluster.index_templates else 404), None

    def h_delete_index_template(self, r: Request) -> tuple[int, Any]:
        names = self._template_names(self.cluster.index_templates, r.vars["name"], "index template")
        for n in names:
            del self.cluster.index_templates[n]
        return 200, {"acknowledged": True}

    def h_refuse(self, r: Request) -> tuple[int, Any]:
        raise bad_request(f"test server: {r.method} {r.path} is not implemented")

    def h_get_data_stream(self, r: Request) -> tuple[int, Any]:
        """The test server holds no data streams (README): wildcards match none; a concrete
        name is 404 index_not_found_exception, as GetDataStreamsTransportAction resolves it."""
        names = [n for n in (r.vars.get("name") or "*").split(",") if n]
        for n in names:
            if "*" not in n and n != "_all":
                raise index_not_found(n)
        return 200, {"data_streams": []}

    def h_simulate_template(self, r: Request) -> tuple[int, Any]:
        composed = self.cluster.simulate_template(r.json(required=True))
        return 200, {
            "template": {
                "settings": nest_settings(dict(composed["settings"])),
                "mappings": composed["mappings"],
                "aliases": composed["aliases"],
            },
            "overlapping": [],
        }

    def h_simulate_index(self, r: Request) -> tuple[int, Any]:
        composed = self.cluster.compose(r.vars["name"])
        settings = dict(composed["settings"])
        return 200, {
            "template": {
                "settings": nest_settings(settings),
                "mappings": composed["mappings"],
                "aliases": composed["aliases"],
            },
            "overlapping": [],
        }

    def h_put_component_template(self, r: Request) -> tuple[int, Any]:
        before = self.cluster.component_templates.get(r.vars["name"])
        self.cluster.put_component_template(r.vars["name"], r.json(required=True), r.flag("create"))
        self._stamp(self.cluster.component_templates[r.vars["name"]], before)
        return 200, {"acknowledged": True}

    def h_get_component_template(self, r: Request) -> tuple[int, Any]:
        return self._get_templates(
            r, self.cluster.component_templates, "component template", "component_templates"
        )

    def h_exists_component_template(self, r: Request) -> tuple[int, Any]:
        return (200 if r.vars["name"] in self.cluster.component_templates else 404), None

    def h_delete_component_template(self, r: Request) -> tuple[int, Any]:
        names = self._template_names(self.cluster.component_templates, r.vars["name"], "component template")
        for n in names:
            users = [t for t, b in self.cluster.index_templates.items() if n in b.get("composed_of", [])]
            if users:
                raise bad_request(
                    f"component templates [{n}] cannot be removed as they are still in use by index templates [{', '.join(users)}]"
                )
            del self.cluster.component_templates[n]
        return 200, {"acknowledged": True}

    # -- handlers: ILM ---------------------------------------------------------------------

    def h_put_policy(self, r: Request) -> tuple[int, Any]:
        self.cluster.put_policy(r.vars["name"], r.json(required=True))
        return 200, {"acknowledged": True}

    def h_get_policy(self, r: Request) -> tuple[int, Any]:
        name = r.vars.get("name")
        if name is None:
            names = sorted(self.cluster.policies)
        else:
            if "*" in name and "," in name:
                raise bad_request(
                    "wildcard only supports a single value, please use comma-separated values or a single wildcard value"
                )
            import fnmatch

            names = []
            for part in name.split(","):
                matched = [n for n in self.cluster.policies if fnmatch.fnmatchcase(n, part)]
                if not matched and "*" not in part:
                    raise resource_missing(
                        "resource_not_found_exception", f"Lifecycle policy not found: [{part}]"
                    )
                names += matched
        out = {}
        for n in names:
            p = self.cluster.policies[n]
            used = sorted(
                i.name for i in self.cluster.indices.values() if i.settings.get("index.lifecycle.name") == n
            )
            out[n] = {
                **p,
                "in_use_by": {
                    "indices": used,
                    "data_streams": [],
                    "composable_templates": sorted(
                        t
                        for t, b in self.cluster.index_templates.items()
                        if normalize_settings(b.get("template", {}).get("settings", {})).get(
                            "index.lifecycle.name"
                        )
                        == n
                    ),
                },
            }
        return 200, out

    def h_delete_policy(self, r: Request) -> tuple[int, Any]:
        self.cluster.delete_policy(r.vars["name"])
        return 200, {"acknowledged": True}

    def h_ilm_status(self, r: Request) -> tuple[int, Any]:
        return 200, {"operation_mode": "RUNNING"}

    def h_ilm_explain(self, r: Request) -> tuple[int, Any]:
        names = self.cluster.resolve(r.vars["index"])
        out = {}
        for n in names:
            e = self.cluster.explain(self.cluster.indices[n])
            if (r.flag("only_managed") or r.flag("only_errors")) and not e["managed"]:
                continue
            if r.flag("only_errors") and e.get("step") != "ERROR":
                continue
            out[n] = e
        return 200, {"indices": out}

    def h_ilm_remove(self, r: Request) -> tuple[int, Any]:
        for n in self.cluster.resolve(r.vars["index"]):
            self.cluster.indices[n].settings.pop("index.lifecycle.name", None)
        return 200, {"has_failures": False, "failed_indexes": []}

    # -- handlers: aliases -----------------------------------------------------------------

    def h_put_alias(self, r: Request) -> tuple[int, Any]:
        body = r.json()
        names = self.cluster.resolve(r.vars["index"])
        if not names:
            raise index_not_found(r.vars["index"])
        alias = r.vars["name"]
        from tests.es_server.store import validate_index_name

        try:
            validate_index_name(alias)
        except EsError as exc:
            raise EsError(
                400,
                "invalid_alias_name_exception",
                exc.reason.replace("Invalid index name", "Invalid alias name"),
            ) from None
        if alias in self.cluster.indices:
            raise EsError(
                400,
                "invalid_alias_name_exception",
                f"Invalid alias name [{alias}]: an index or data stream exists with the same name as the alias",
            )
        for n in names:
            self.cluster.indices[n].aliases[alias] = {
                k: v
                for k, v in body.items()
                if k
                in (
                    "filter",
                    "routing",
                    "is_write_index",
                    "is_hidden",
                    "index_routing",
                    "search_routing",
                )
            }
        return 200, {"acknowledged": True}

    def h_delete_alias(self, r: Request) -> tuple[int, Any]:
        removed = False
        for n in self.cluster.resolve(r.vars["index"]):
            for a in list(self.cluster.indices[n].aliases):
                import fnmatch

                if (
                    any(fnmatch.fnmatchcase(a, p) for p in r.vars["name"].split(","))
                    or r.vars["name"] == "_all"
                ):
                    del self.cluster.indices[n].aliases[a]
                    removed = True
        if not removed:
            raise resource_missing("aliases_not_found_exception", f"aliases [{r.vars['name']}] missing")
        return 200, {"acknowledged": True}

    def h_aliases(self, r: Request) -> tuple[int, Any]:
        body = r.json(required=True)
        for action in body.get("actions", []):
            ((kind, spec),) = action.items()
            indices = spec.get("indices") or [spec.get("index")]
            aliases = spec.get("aliases") or [spec.get("alias")]
            for expr in indices:
                names = self.cluster.resolve(expr)
                for n in names:
                    for a in aliases:
                        if kind == "add":
                            self.cluster.indices[n].aliases[a] = {
                                k: v
                                for k, v in spec.items()
                                if k in ("filter", "is_write_index", "routing", "is_hidden")
                            }
                        elif kind == "remove":
                            self.cluster.indices[n].aliases.pop(a, None)
                        elif kind == "remove_index":
                            self.cluster.indices.pop(n, None)
                        else:
                            raise bad_request(f"test server: alias action [{kind}] is not implemented")
        return 200, {"acknowledged": True, "errors": False}

    def _alias_view(self, r: Request) -> dict[str, Any]:
        import fnmatch

        pats = r.vars.get("name", "*").split(",")
        names = self.cluster.resolve(
            r.vars.get("index", "_all"),
            ignore_unavailable=r.flag("ignore_unavailable"),
            expand_hidden="index" not in r.vars,
        )
        out = {}
        for n in names:
            al = {
                a: v
                for a, v in self.cluster.indices[n].aliases.items()
                if any(fnmatch.fnmatchcase(a, p) or p == "_all" for p in pats)
            }
            if al or "name" not in r.vars:
                out[n] = {"aliases": al}
        return out

    def h_get_alias(self, r: Request) -> tuple[int, Any]:
        out = self._alias_view(r)
        name = r.vars.get("name")
        if name:
            found = {a for v in out.values() for a in v["aliases"]}
            missing = sorted(p for p in name.split(",") if "*" not in p and p not in found and p != "_all")
            if missing:
                word = "alias" if len(missing) == 1 else "aliases"
                return 404, {"error": f"{word} [{','.join(missing)}] missing", "status": 404, **out}
        return 200, out

    def h_exists_alias(self, r: Request) -> tuple[int, Any]:
        try:
            out = self._alias_view(r)
        except EsError:
            return 404, None
        return (200 if any(v["aliases"] for v in out.values()) else 404), None


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return  # a client that went away (killed, timed out): nothing to report
        super().handle_error(request, client_address)


class _BadJson:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw


class _Text(str):
    """A plain-text response body (``_cat`` without ``format=json``)."""


def _size(n: int, unit: str | None) -> str:
    if unit == "b":
        return str(n)
    if unit == "kb":
        return str(n // 1024)
    if n < 1024:
        return f"{n}b"
    return f"{n / 1024:.1f}kb"


def filter_path(obj: Any, spec: str) -> Any:
    """Elasticsearch's ``filter_path``: dotted paths with ``*``/``**``, ``-`` to exclude."""
    import fnmatch

    includes = [p.split(".") for p in spec.split(",") if p and not p.startswith("-")]
    excludes = [p[1:].split(".") for p in spec.split(",") if p.startswith("-")]

    def match(path: list[str], pats: list[list[str]], prefix_ok: bool) -> tuple[bool, bool]:
        full = partial = False
        for pat in pats:
            f, p = _match_parts(path, pat, fnmatch.fnmatchcase)
            full |= f
            partial |= p
        return full, partial

    def walk(o: Any, path: list[str]) -> Any:
        if isinstance(o, list):
            items = [walk(x, path) for x in o]
            return [x for x in items if x is not _DROP]
        if not isinstance(o, dict):
            return o if not path or (not includes or match(path, includes, False)[0]) else _DROP
        out = {}
        for k, v in o.items():
            p = [*path, k]
            if excludes and match(p, excludes, False)[0]:
                continue
            if includes:
                full, partial = match(p, includes, True)
                if full:
                    out[k] = walk_excl(v, p)
                elif partial:
                    sub = walk(v, p)
                    if sub is not _DROP and sub != {} and sub != []:
                        out[k] = sub
            else:
                out[k] = walk_excl(v, p)
        return out if out or not path else _DROP

    def walk_excl(o: Any, path: list[str]) -> Any:
        if not excludes:
            return o
        if isinstance(o, dict):
            return {
                k: walk_excl(v, [*path, k]) for k, v in o.items() if not match([*path, k], excludes, False)[0]
            }
        if isinstance(o, list):
            return [walk_excl(x, path) for x in o]
        return o

    res = walk(obj, [])
    return {} if res is _DROP else res


_DROP = object()


def _match_parts(path: list[str], pat: list[str], fm: Callable[[str, str], bool]) -> tuple[bool, bool]:
    """(path fully matched by pat, path is a prefix that could still match)"""
    if not pat:
        return True, False
    if not path:
        return False, True
    head = pat[0]
    if head == "**":
        f1, _p1 = _match_parts(path, pat[1:], fm)
        f2, _p2 = _match_parts(path[1:], pat, fm)
        return f1 or f2, True
    if fm(path[0], head):
        if len(path) == 1:
            return len(pat) == 1, len(pat) > 1
        return _match_parts(path[1:], pat[1:], fm)
    return False, False


class _Handler(BaseHTTPRequestHandler):
    es: EsTestServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.es.lock:
            self.es._conns.add(self.connection)

    def finish(self) -> None:
        with self.es.lock:
            self.es._conns.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _handle(self) -> None:
        es = self.es
        headers = {k.lower(): v for k, v in self.headers.items()}
        rec: Recorded | None = None
        status: int
        extra: dict[str, str] = {}
        ctype = "application/json"
        try:
            body = self._read_body()
            if headers.get("content-encoding", "").lower() == "gzip":
                try:
                    body = gzip.decompress(body)
                except (OSError, EOFError, zlib.error):
                    raise bad_request("request body is not valid gzip") from None
            url = urlsplit(self.path)
            rec = Recorded(
                self.command, url.path, dict(parse_qsl(url.query, keep_blank_values=True)), headers, body
            )
            with es.lock:
                es.requests.append(rec)
            if es.faults.max_body is not None and len(body) > es.faults.max_body:
                raise EsError(413, "request_entity_too_large", f"Request entity too large: {len(body)} bytes")
            if es.faults.delay:
                time.sleep(es.faults.delay)
            ctype = es.negotiate(headers)
            if (body and self.command not in ("GET", "HEAD", "DELETE")) or (
                body and headers.get("content-type")
            ):
                ct = headers.get("content-type", "")
                if ct and not re.match(
                    r"application/(json|x-ndjson|vnd\.elasticsearch\+(json|x-ndjson))", ct, re.I
                ):
                    status, resp = (
                        406,
                        {"error": f"Content-Type header [{ct}] is not supported", "status": 406},
                    )
                    raise _Done(status, resp)
            status, resp, extra = es.dispatch(self.command, self.path, headers, body)
        except _Done as d:
            status, resp = d.status, d.resp
        except EsError as exc:
            status, resp, extra = exc.status, exc.body(), exc.headers
        except Exception as exc:  # a bug in the test server must be loud, never a silent success
            status, resp = (
                500,
                EsError(500, "test_server_bug", f"{type(exc).__name__}: {exc}").body(),
            )
        with es.lock:
            if es.faults.drop_next > 0:
                es.faults.drop_next -= 1
                self.wfile.write(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"took"')
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
        if isinstance(resp, _Text):
            data = resp.encode()
            ctype = "text/plain; charset=UTF-8"
        else:
            fp = self._query_param("filter_path")
            if fp and resp is not None:
                resp = filter_path(resp, fp)
            data = b"" if resp is None else orjson.dumps(resp)
        if rec is not None:
            rec.status, rec.response = status, data
        self.send_response(status)
        self.send_header("X-elastic-product", "Elasticsearch")
        self.send_header("Content-Type", ctype)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _query_param(self, name: str) -> str | None:
        return dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True)).get(name)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


class _Done(Exception):
    def __init__(self, status: int, resp: Any) -> None:
        self.status, self.resp = status, resp
