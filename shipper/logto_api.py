"""A client for Logto's Management API: one machine-to-machine token, cached, and GET requests.

The token comes from ``POST <endpoint>/oidc/token`` (client credentials, the Management API
``resource``, scope ``all``) and is kept until 30 s before it expires. A 401 on a request gets
one fresh token and one retry (a token revoked or expired early). Failures are typed so that
callers choose the wait: ``ApiBusy`` (429, 5xx, the network) carries the server's
``Retry-After`` when it sent one; ``ApiRefused`` (bad credentials, missing grants, 4xx) means
"check the configuration" and is retried slowly. No message ever holds the app secret or a token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

TOKEN_MARGIN = 30.0  # seconds before expiry a token is replaced
TIMEOUT = 10.0


class ApiError(Exception):
    """The Management API could not answer this request; ``str()`` is one safe line."""

    retry_after: float | None = None


class ApiBusy(ApiError):
    """Try again later: 429, 5xx or the network; ``retry_after`` is the server's wish (seconds)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ApiRefused(ApiError):
    """The request or the credentials are wrong (401 after a fresh token, 403, other 4xx)."""


def retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), capped at 1 h."""
    if not value:
        return None
    v = value.strip()
    if v.isdigit():
        return min(3600.0, float(v))
    try:
        when = parsedate_to_datetime(v)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(3600.0, max(0.0, when.timestamp() - now()))


def _why(resp: requests.Response) -> str:
    """The ``code`` Logto puts in error bodies, when there is one (never the body itself)."""
    try:
        body = resp.json()
    except ValueError:
        return ""
    code = body.get("code") or body.get("error") if isinstance(body, dict) else None
    return f" ({code})" if isinstance(code, str) and len(code) < 100 else ""


class ManagementApi:
    """Requests to ``<endpoint><path>`` with a bearer token; at most one per ``min_interval``."""

    def __init__(
        self,
        endpoint: str,
        app_id: str,
        app_secret: str,
        resource: str = "https://default.logto.app/api",
        min_interval: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = TIMEOUT,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.app_id, self._secret, self.resource = app_id, app_secret, resource
        self.secrets = [app_secret]
        self.min_interval, self.clock, self.timeout = min_interval, clock, timeout
        self._session = requests.Session()
        self._token: str | None = None
        self._expires = 0.0
        self._last_call = float("-inf")
        self.token_requests = 0

    def _pace(self) -> None:
        wait = self._last_call + self.min_interval - self.clock()
        if wait > 0:
            time.sleep(wait)
        self._last_call = self.clock()

    def _send(self, method: str, url: str, **kw: Any) -> requests.Response:
        self._pace()
        try:
            return self._session.request(method, url, timeout=self.timeout, **kw)
        except requests.RequestException as exc:
            # The exception text names the URL (no userinfo here) and the OS reason only.
            raise ApiBusy(f"{method} {url.split('?')[0]} failed: {type(exc).__name__}") from None

    def _bearer(self) -> str:
        if self._token is not None and self.clock() < self._expires:
            return self._token
        url = f"{self.endpoint}/oidc/token"
        resp = self._send(
            "POST",
            url,
            auth=(self.app_id, self._secret),
            data={"grant_type": "client_credentials", "resource": self.resource, "scope": "all"},
        )
        if resp.status_code == 429 or resp.status_code >= 500:
            raise ApiBusy(
                f"Logto token endpoint answered HTTP {resp.status_code}",
                retry_after(resp.headers.get("Retry-After")),
            )
        if resp.status_code != 200:
            raise ApiRefused(
                f"Logto token endpoint answered HTTP {resp.status_code}{_why(resp)}: check app_id, "
                "the app secret and resource (the M2M app needs the Management API role)"
            )
        try:
            body = resp.json()
            token, expires_in = str(body["access_token"]), float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise ApiRefused("Logto token endpoint answered without an access_token") from None
        self.token_requests += 1
        self._token = token
        self._expires = self.clock() + max(0.0, expires_in - min(TOKEN_MARGIN, expires_in / 2))
        return token

    def get(self, path: str, params: dict[str, Any] | None = None) -> requests.Response:
        """A 200 answer (or 404, which callers read as "no such entity"); else ``ApiError``."""
        return self.call("GET", path, params=params)

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        """``method`` on ``path``: a 200 answer (or 404); else ``ApiError``."""
        url = f"{self.endpoint}{path}"
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._bearer()}"}
            resp = self._send(method, url, headers=headers, **kw)
            if resp.status_code == 401 and attempt == 1:
                self._token = None  # revoked or expired early: one fresh token, then give up
                continue
            break
        status = resp.status_code
        if status in (200, 404):
            return resp
        if status == 429 or status >= 500:
            raise ApiBusy(
                f"{method} {path} answered HTTP {status}", retry_after(resp.headers.get("Retry-After"))
            )
        raise ApiRefused(f"{method} {path} answered HTTP {status}{_why(resp)}")

    def close(self) -> None:
        self._session.close()


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)
