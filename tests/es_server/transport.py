"""The HTTP layer of the test server: requests, parameters, content negotiation helpers,
filter_path, and the socket handler."""

from __future__ import annotations

import contextlib
import gzip
import re
import socket
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from tests.es_server.faults import Recorded

if TYPE_CHECKING:
    from tests.es_server.server import EsTestServer

from tests.es_server.errors import EsError, bad_request

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
