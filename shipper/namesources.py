"""Where names come from: Logto's ``applications``/``users`` tables or its Management API.

``Enricher`` (enrich.py) asks these in the background; ``current_names`` asks them at once, for
display (``search --resolve-names``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

AppInfo = tuple[str, str | None]  # (name, type)
UserInfo = tuple[str | None, str | None]  # (display name, email)


class NameSource(Protocol):
    def applications(self, tenant: str) -> dict[str, AppInfo]: ...

    def users(self, tenant: str, ids: list[str]) -> dict[str, UserInfo]: ...


class DatabaseNames:
    """Logto's ``applications`` and ``users`` tables."""

    def __init__(self, dsn: str) -> None:
        from shipper.redact import dsn_secrets

        self.dsn = dsn
        self.secrets = dsn_secrets(dsn)  # scrubbed from any error text that is logged
        self._conn: Any = None
        # refresh() may run on the enricher's thread and another at once (tests, a reload): one
        # connection, never two racing to replace it (the loser would leak, open).
        self._lock = threading.Lock()

    def _cursor(self) -> Any:
        import psycopg

        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(
                    self.dsn,
                    autocommit=True,
                    connect_timeout=5,
                    options="-c statement_timeout=5000 -c default_transaction_read_only=on",
                )
            return self._conn.cursor()

    def applications(self, tenant: str) -> dict[str, AppInfo]:
        with self._cursor() as cur:
            cur.execute("select id, name, type from applications where tenant_id = %s", (tenant,))
            return {r[0]: (r[1], r[2]) for r in cur.fetchall()}

    def users(self, tenant: str, ids: list[str]) -> dict[str, UserInfo]:
        with self._cursor() as cur:
            cur.execute(
                "select id, username, name, primary_email from users where tenant_id = %s and id = any(%s)",
                (tenant, ids),
            )
            return {r[0]: (r[1] or r[2], r[3]) for r in cur.fetchall()}

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()


class ManagementApiNames:
    """Logto's Management API (Logto Cloud, or hosts without database access):
    ``GET /api/applications`` (paginated, ``Total-Number``) and ``GET /api/users/{id}`` through
    ``shipper.logto_api.ManagementApi`` (its token cache and retry rules)."""

    def __init__(
        self,
        endpoint: str,
        app_id: str,
        app_secret: str,
        resource: str = "https://default.logto.app/api",
        min_interval: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from shipper.logto_api import ManagementApi

        self.api = ManagementApi(endpoint, app_id, app_secret, resource, min_interval, clock)
        self.secrets = self.api.secrets

    @property
    def token_requests(self) -> int:
        return self.api.token_requests

    def applications(self, tenant: str) -> dict[str, AppInfo]:
        out: dict[str, AppInfo] = {}
        page = 1
        while True:
            resp = self.api.get("/api/applications", {"page": page, "page_size": 100})
            if resp.status_code != 200:
                raise RuntimeError(f"GET /api/applications answered HTTP {resp.status_code}")
            items = resp.json()
            for a in items:
                out[a["id"]] = (a["name"], a.get("type"))
            total = int(resp.headers.get("Total-Number", len(out)))
            if not items or len(out) >= total:
                return out
            page += 1

    def users(self, tenant: str, ids: list[str]) -> dict[str, UserInfo]:
        out: dict[str, UserInfo] = {}
        for uid in ids:
            resp = self.api.get(f"/api/users/{uid}")
            if resp.status_code == 404:
                continue
            u = resp.json()
            out[uid] = (u.get("username") or u.get("name"), u.get("primaryEmail"))
        return out

    def close(self) -> None:
        self.api.close()


def current_names(sources: list[NameSource], docs: list[dict[str, Any]]) -> int:
    """Replace the names in ``docs`` (for display) with what the sources say now; returns how many."""
    wanted: dict[str, tuple[set[str], set[str]]] = {}
    for d in docs:
        logto = d.get("logto") or {}
        tenant = logto.get("tenant_id") or "default"
        apps, users = wanted.setdefault(tenant, (set(), set()))
        if logto.get("application_id"):
            apps.add(logto["application_id"])
        if (d.get("user") or {}).get("id"):
            users.add(d["user"]["id"])
    app_names: dict[tuple[str, str], AppInfo] = {}
    user_names: dict[tuple[str, str], UserInfo] = {}
    for tenant, (apps, users) in wanted.items():
        for src in sources:
            if apps:
                app_names.update({(tenant, k): v for k, v in src.applications(tenant).items() if k in apps})
            if users:
                user_names.update({(tenant, k): v for k, v in src.users(tenant, sorted(users)).items()})
    changed = 0
    for d in docs:
        logto = d.get("logto") or {}
        tenant = logto.get("tenant_id") or "default"
        app = app_names.get((tenant, logto.get("application_id", "")))
        if app is not None:
            logto["application_name"] = app[0]
            changed += 1
        user = d.get("user") or {}
        info = user_names.get((tenant, user.get("id", "")))
        if info is not None and info[0]:
            user["name"] = info[0]
            changed += 1
    return changed
