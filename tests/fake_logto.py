"""A fake Logto Management API, built from Logto's source (see shipper/sources/logto_api.py).

- ``POST /oidc/token``: client credentials (HTTP basic), ``resource`` must match, tokens expire
  after ``expires_in`` seconds of this server's clock (then 401 ``auth.unauthorized``).
- ``GET /api/logs``: ``page`` (from 1), ``page_size`` (1..100, else 400
  ``guard.invalid_pagination``), ``start_time``/``end_time`` epoch ms, both inclusive (start >
  end: 400 ``log.invalid_time_window``), ``logKey``, ``userId``, ``applicationId``; rows
  ``created_at desc`` with LIMIT/OFFSET, never ``TriggerHook.*``; headers ``Total-Number``
  (with ``enableCap=true``: counted up to 10,001, ``Total-Number-Is-Capped: true`` above
  10,000) and ``Link`` (first, prev, next).
- ``GET /api/applications`` (paged) and ``GET /api/users/{id}`` for names;
  ``PATCH /api/users/{id}/is-suspended``.

Faults: ``fail(n, status, retry_after)`` answers the next ``n`` API requests with ``status``;
``on_logs`` runs before each ``/api/logs`` answer (e.g. to insert rows while a window is paged).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

RESOURCE = "https://default.logto.app/api"
COUNT_CAP = 10_000
AUDIT_PREFIXES = (
    "ExchangeTokenBy",
    "RevokeToken",
    "RevokeGrants",
    "Interaction",
    "JwtCustomizer",
    "SamlApplication",
    "Action",
    "Unknown",
)


class FakeLogto:
    def __init__(
        self, app_id: str = "m2m-id", app_secret: str = "m2m-secret", expires_in: int = 3600
    ) -> None:
        self.app_id, self.app_secret, self.expires_in = app_id, app_secret, expires_in
        self.logs: list[dict[str, Any]] = []
        self.applications: list[dict[str, Any]] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, float] = {}  # token -> expiry (this server's clock)
        self.token_requests = 0
        self.requests: list[str] = []
        self.suspended: list[tuple[str, bool]] = []
        self.clock: Callable[[], float] = time.monotonic
        self.on_logs: Callable[[dict[str, list[str]]], None] | None = None
        self.delay = 0.0  # seconds each /api/logs answer takes (a slow tenant)
        self._faults: list[tuple[int, str | None]] = []
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # -- test controls ---------------------------------------------------------------------

    def add_logs(self, rows: list[dict[str, Any]]) -> None:
        with self.lock:
            self.logs.extend(rows)

    def fail(self, n: int, status: int = 429, retry_after: str | None = "1") -> None:
        with self.lock:
            self._faults.extend([(status, retry_after)] * n)

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, float("-inf"))

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeLogto:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- the API ---------------------------------------------------------------------------

    def token(self, auth: str | None, form: dict[str, list[str]]) -> tuple[int, Any]:
        basic = "Basic " + base64.b64encode(f"{self.app_id}:{self.app_secret}".encode()).decode()
        if auth != basic:
            return 401, {"error": "invalid_client", "error_description": "client authentication failed"}
        if form.get("grant_type") != ["client_credentials"] or form.get("resource") != [RESOURCE]:
            return 400, {"error": "invalid_target"}
        with self.lock:
            self.token_requests += 1
            tok = f"tok-{self.token_requests}"
            self.tokens[tok] = self.clock() + self.expires_in
        return 200, {
            "access_token": tok,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
            "scope": "all",
        }

    def authorized(self, auth: str | None) -> bool:
        tok = (auth or "").removeprefix("Bearer ")
        with self.lock:
            return self.tokens.get(tok, float("-inf")) > self.clock()

    def fault(self) -> tuple[int, str | None] | None:
        with self.lock:
            return self._faults.pop(0) if self._faults else None

    def list_logs(self, q: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        def one(name: str) -> str | None:
            return q[name][0] if name in q else None

        try:
            page = int(one("page") or 1)
            size = int(one("page_size") or 20)
            if page < 1 or not 0 < size <= 100:
                raise ValueError
        except ValueError:
            return 400, {"code": "guard.invalid_pagination"}, {}
        try:
            start = float(one("start_time")) if one("start_time") is not None else None  # type: ignore[arg-type]
            end = float(one("end_time")) if one("end_time") is not None else None  # type: ignore[arg-type]
        except ValueError:
            return 400, {"code": "guard.invalid_input"}, {}
        if start is not None and end is not None and start > end:
            return 400, {"code": "log.invalid_time_window"}, {}
        if self.on_logs is not None:
            self.on_logs(q)
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            rows = [
                r
                for r in self.logs
                if r["key"].startswith(AUDIT_PREFIXES)
                and (start is None or r["createdAt"] >= start)
                and (end is None or r["createdAt"] <= end)
                and (one("logKey") is None or r["key"] == one("logKey"))
                and (one("userId") is None or r["payload"].get("userId") == one("userId"))
                and (
                    one("applicationId") is None or r["payload"].get("applicationId") == one("applicationId")
                )
            ]
        rows.sort(key=lambda r: r["createdAt"], reverse=True)
        count, capped = len(rows), False
        if one("enableCap") in ("true", "1", "yes"):
            count = min(count, COUNT_CAP + 1)
            capped = count > COUNT_CAP
        body = rows[(page - 1) * size : page * size]
        headers = {"Total-Number": str(count)}
        if capped:
            headers["Total-Number-Is-Capped"] = "true"
        links = [self._link(q, 1, "first")]
        if page > 1:
            links.append(self._link(q, page - 1, "prev"))
        if not capped and page * size < count:
            links.append(self._link(q, page + 1, "next"))
        headers["Link"] = ", ".join(links)
        return 200, body, headers

    @staticmethod
    def _link(q: dict[str, list[str]], page: int, rel: str) -> str:
        query = urllib.parse.urlencode({**{k: v[0] for k, v in q.items()}, "page": page})
        return f'</api/logs?{query}>; rel="{rel}"'


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLogto
    protocol_version = "HTTP/1.1"

    def log_message(self, *a: Any) -> None:
        pass

    def reply(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_POST(self) -> None:
        form = urllib.parse.parse_qs(self._body().decode())
        if self.path != "/oidc/token":
            return self.reply(404, {"code": "route.not_found"})
        status, body = self.fake.token(self.headers.get("Authorization"), form)
        self.reply(status, body)

    def _api(self) -> tuple[urllib.parse.SplitResult, dict[str, list[str]]] | None:
        self.fake.requests.append(f"{self.command} {self.path}")
        fault = self.fake.fault()
        if fault is not None:
            status, retry_after = fault
            self.reply(status, {"code": "fault"}, {"Retry-After": retry_after} if retry_after else {})
            return None
        if not self.fake.authorized(self.headers.get("Authorization")):
            self.reply(401, {"code": "auth.unauthorized"})
            return None
        url = urllib.parse.urlsplit(self.path)
        return url, urllib.parse.parse_qs(url.query)

    def do_GET(self) -> None:
        got = self._api()
        if got is None:
            return
        url, q = got
        fake = self.fake
        if url.path == "/api/logs":
            status, body, headers = fake.list_logs(q)
            return self.reply(status, body, headers)
        if url.path == "/api/applications":
            page, size = int(q.get("page", ["1"])[0]), int(q.get("page_size", ["20"])[0])
            items = fake.applications[(page - 1) * size : page * size]
            return self.reply(200, items, {"Total-Number": str(len(fake.applications))})
        if url.path.startswith("/api/users/"):
            u = fake.users.get(url.path.rsplit("/", 1)[1])
            return self.reply(200, u) if u else self.reply(404, {"code": "entity.not_exists_with_id"})
        self.reply(404, {"code": "route.not_found"})

    def do_PATCH(self) -> None:
        body = self._body()
        got = self._api()
        if got is None:
            return
        url, _ = got
        parts = url.path.split("/")
        if len(parts) == 5 and parts[:3] == ["", "api", "users"] and parts[4] == "is-suspended":
            u = self.fake.users.get(parts[3])
            if u is None:
                return self.reply(404, {"code": "entity.not_exists_with_id"})
            flag = bool(json.loads(body or b"{}").get("isSuspended"))
            self.fake.suspended.append((parts[3], flag))
            u["isSuspended"] = flag
            return self.reply(200, u)
        self.reply(404, {"code": "route.not_found"})


def log_row(
    i: int, created_at: int, key: str = "Interaction.SignIn.Submit", tag: str = "api"
) -> dict[str, Any]:
    """A row as ``GET /api/logs`` returns it (``Logs.guard``)."""
    return {
        "tenantId": "default",
        "id": f"{tag}{i:07d}",
        "key": key,
        "payload": {
            "key": key,
            "result": "Success" if i % 5 else "Error",
            "ip": f"203.0.113.{i % 250}",
            "userId": f"u{i % 40}",
            "applicationId": "app-web",
            "userAgent": "Mozilla/5.0",
            **({"error": {"code": "session.invalid_credentials"}} if i % 5 == 0 else {}),
        },
        "createdAt": created_at,
    }
