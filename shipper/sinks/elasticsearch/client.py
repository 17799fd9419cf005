"""The only module that builds an Elasticsearch client and knows its exception types.

The client's own retries are off: exactly one layer (``sink.py``) retries, with backoff and
only the failed items. Credentials come from config (files or environment), never argv, and
never appear in messages (the client's errors carry no auth headers).
"""

from __future__ import annotations

import http
import logging
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, NdjsonSerializer, OrjsonSerializer, TransportError
from elasticsearch import ApiError, AuthenticationException, AuthorizationException, Elasticsearch

from shipper.config import ElasticsearchOutputConfig
from shipper.errors import OutputAuthError, OutputError

log = logging.getLogger(__name__)

__all__ = [
    "ApiError",
    "AuthenticationException",
    "AuthorizationException",
    "ConnectionTimeout",
    "Elasticsearch",
    "TransportConnectionError",
    "TransportError",
    "describe",
    "error_parts",
    "make_client",
    "translate",
]


def _proxied(hosts: list[str]) -> bool:
    proxies = urllib.request.getproxies()
    for h in hosts:
        parts = urlsplit(h)
        if parts.scheme in proxies and not urllib.request.proxy_bypass(parts.hostname or ""):
            return True
    return False


class RawNdjsonSerializer(NdjsonSerializer):
    """NDJSON that passes bytes through untouched.

    The stock serializer appends a newline to bytes not ending with one, which corrupts a body
    the sink has already gzip-compressed; our bodies are always complete.
    """

    def dumps(self, data: Any) -> bytes:
        if isinstance(data, bytes):
            return data
        return super().dumps(data)


RAW_NDJSON: dict[str, Any] = {
    m: RawNdjsonSerializer() for m in ("application/x-ndjson", "application/vnd.elasticsearch+x-ndjson")
}
# Bulk answers carry one status per document: orjson parses them ~5x faster than json.
RAW_NDJSON |= {m: OrjsonSerializer() for m in ("application/json", "application/vnd.elasticsearch+json")}


def make_client(cfg: ElasticsearchOutputConfig, **overrides: Any) -> Elasticsearch:
    kw: dict[str, Any] = {
        "hosts": cfg.hosts,
        "request_timeout": cfg.request_timeout,
        "max_retries": 0,
        "retry_on_status": (),
        "retry_on_timeout": False,
        "http_compress": cfg.gzip,
        "verify_certs": cfg.verify_certs,
        "connections_per_node": cfg.max_in_flight + 2,
    }
    if cfg.ca_file:
        kw["ca_certs"] = str(cfg.ca_file)
    if not cfg.verify_certs:
        log.warning("TLS certificate verification is OFF for %s", ", ".join(cfg.hosts))
        kw["ssl_show_warn"] = False
    if cfg.api_key is not None:
        kw["api_key"] = cfg.api_key.get_secret_value()
    elif cfg.username:
        kw["basic_auth"] = (cfg.username, cfg.password.get_secret_value() if cfg.password else "")
    if _proxied(cfg.hosts):
        # urllib3 ignores https_proxy; requests (trust_env) honours it and no_proxy.
        kw["node_class"] = "requests"
        log.info("using the proxy from the environment (https_proxy/http_proxy)")
    kw.update(overrides)
    return Elasticsearch(**kw)


def error_parts(exc: ApiError) -> tuple[str, str]:
    """``(error.type, error.reason)`` from the cluster's answer; where it gave none (an empty
    body, a proxy's HTML page), the HTTP reason phrase and the start of the body instead."""
    body = exc.body
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        etype, reason = str(err.get("type") or ""), str(err.get("reason") or "")
        if etype or reason:
            return etype or "error", reason
    if isinstance(err, str) and err:
        return "error", err
    try:
        phrase = http.HTTPStatus(exc.meta.status).phrase
    except ValueError:
        phrase = "error"
    text = body if isinstance(body, str) else ""
    text = " ".join(text.split())[:200]
    return phrase.lower().replace(" ", "_"), text or phrase


def describe(exc: BaseException) -> str:
    """One line for logs: status and Elasticsearch's error type/reason, never headers."""
    if isinstance(exc, ApiError):
        etype, reason = error_parts(exc)
        return f"HTTP {exc.meta.status} {etype}: {reason}"
    if isinstance(exc, ConnectionTimeout):
        return "request timed out"
    if isinstance(exc, TransportConnectionError):
        return f"cannot connect: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def translate(exc: BaseException, what: str) -> OutputError:
    """Map client exceptions to the daemon's own (for one-shot commands)."""
    if isinstance(exc, AuthenticationException | AuthorizationException):
        return OutputAuthError(f"{what}: {describe(exc)}")
    return OutputError(f"{what}: {describe(exc)}")


def no_root_endpoint(exc: ApiError) -> bool:
    """405 on ``GET /``: a node built without the ``rest-root`` module (Elastic's integ-test
    distribution). It answered, so it is reachable; its version must come from elsewhere."""
    return exc.meta.status == 405


def indexed_ids(es: Any, index: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` an index (pattern) holds, as far as its last refresh shows."""
    resp = es.search(
        index=index,
        body={"query": {"ids": {"values": ids}}, "size": len(ids), "_source": False},
        ignore_unavailable=True,
        allow_no_indices=True,
    )
    return {h["_id"] for h in resp["hits"]["hits"]}
