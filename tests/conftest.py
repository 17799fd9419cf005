"""Shared fixtures. ``SHARED`` is ../shared next to the project (absent in a user's checkout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# Wall-clock deadlines make property tests flaky on a loaded 2-core CI machine.
settings.register_profile("shipper", deadline=None)
settings.load_profile("shipper")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
# The acceptance suite builds wheels and venvs; .ci/run runs it on its own (README "Tests").
collect_ignore = [] if os.environ.get("SHIPPER_ACCEPTANCE") else ["acceptance"]
if not (SHARED / "logto").is_dir():
    # A clean clone in a temp dir: look for the shared folder next to the original checkout.
    SHARED = Path(os.environ.get("SHIPPER_SHARED_DIR", str(SHARED)))


def shared_or_skip(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (../shared is only next to the developers' checkout)")
    return path


# -- Elasticsearch: the project's test server, or a real cluster via SHIPPER_TEST_ES_URL ----------
# ``python -m tests.real_es start`` prints the variables (tests/real_es/__init__.py).

import os as _os  # noqa: E402
import uuid as _uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from functools import cache  # noqa: E402
from typing import Any  # noqa: E402

REAL_ES_URL = _os.environ.get("SHIPPER_TEST_ES_URL")
REAL_ES_USER = _os.environ.get("SHIPPER_TEST_ES_USERNAME", "")
REAL_ES_PASSWORD = _os.environ.get("SHIPPER_TEST_ES_PASSWORD", "")


def _real_url() -> str:
    """The real cluster's URL with the credentials as userinfo: both the official client and the
    shipper's config (which moves them into username/password) accept that form."""
    assert REAL_ES_URL
    if not REAL_ES_USER:
        return REAL_ES_URL
    from urllib.parse import quote

    scheme, rest = REAL_ES_URL.split("://", 1)
    return f"{scheme}://{quote(REAL_ES_USER, safe='')}:{quote(REAL_ES_PASSWORD, safe='')}@{rest}"


@cache
def _real_ilm() -> bool:
    from elasticsearch import Elasticsearch

    from shipper.sinks.elasticsearch.setup import ilm_available

    return ilm_available(Elasticsearch(_real_url(), request_timeout=30))


@dataclass
class EsTarget:
    url: str
    server: Any  # tests.es_server.EsTestServer, or None against a real cluster
    prefix: str  # unique index prefix for this test (real clusters are shared)

    def client(self, **kw: Any) -> Any:
        from elasticsearch import Elasticsearch

        return Elasticsearch(self.url, request_timeout=30, **kw)

    @property
    def ilm(self) -> bool:
        return self.server is not None or _real_ilm()

    def need_server(self) -> Any:
        if self.server is None:
            pytest.skip("fault injection needs the project's test server (SHIPPER_TEST_ES_URL is set)")
        return self.server

    @property
    def base_url(self) -> str:
        """The URL without credentials (for configs that set them separately)."""
        return REAL_ES_URL if self.server is None and REAL_ES_URL else self.url

    def api_key(self) -> str:
        """An encoded API key the target accepts: the server is taught one; a real node's comes
        from SHIPPER_TEST_ES_API_KEY (none on the integ-test build: no .security index)."""
        if self.server is not None:
            self.server.api_keys = {"kid": "ksecret"}
            return "a2lkOmtzZWNyZXQ="  # base64("kid:ksecret")
        key = _os.environ.get("SHIPPER_TEST_ES_API_KEY")
        if not key:
            pytest.skip("no API key on this cluster (the integ-test build cannot create .security)")
        return key

    def need_ilm(self) -> None:
        if not self.ilm:
            pytest.skip("ILM not available on this cluster (Elastic's integ-test distribution has none)")


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Against a real cluster, run only the tests that talk to Elasticsearch (the others would
    repeat the test-server run unchanged)."""
    if not REAL_ES_URL:
        return
    keep = [i for i in items if "es_target" in getattr(i, "fixturenames", ())]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep


def _cleanup(client: Any, prefix: str) -> None:
    es = client.options(ignore_status=404)
    es.indices.delete(index=f"{prefix}*", expand_wildcards="all")
    templates = es.indices.get_index_template(name=f"{prefix}*")
    for t in templates.body.get("index_templates", []) if templates.meta.status == 200 else []:
        es.indices.delete_index_template(name=t["name"])
    components = es.cluster.get_component_template(name=f"{prefix}*")
    for t in components.body.get("component_templates", []) if components.meta.status == 200 else []:
        es.cluster.delete_component_template(name=t["name"])


@pytest.fixture
def es_target() -> Iterator[EsTarget]:
    prefix = f"t{_uuid.uuid4().hex[:8]}"
    if REAL_ES_URL:
        target = EsTarget(_real_url(), None, prefix)
        yield target
        _cleanup(target.client(), prefix)
        return
    from tests.es_server import EsTestServer

    srv = EsTestServer().start()
    yield EsTarget(srv.url, srv, prefix)
    srv.stop()


# -- PostgreSQL -----------------------------------------------------------------------------------

_PG: Any = None


def _pg_server() -> Any:
    global _PG
    if _PG is None:
        from tests.pg import PgServer

        try:
            _PG = PgServer().start()
        except Exception as exc:
            _PG = exc
    return _PG


def pytest_report_header(config: Any) -> list[str]:
    version = _os.environ.get("SHIPPER_TEST_ES_VERSION", "")
    es = (
        f"elasticsearch: real node {version} at {REAL_ES_URL} (SHIPPER_TEST_ES_URL)"
        if REAL_ES_URL
        else "elasticsearch: the project's test server (tests/es_server), one per test"
    )
    srv = _pg_server()
    pg = f"postgres: unavailable ({srv})" if isinstance(srv, Exception) else f"postgres: {srv.how}"
    return [es, pg]


def pytest_unconfigure(config: Any) -> None:
    if _PG is not None and not isinstance(_PG, Exception):
        _PG.stop()


@pytest.fixture
def pg() -> Iterator[Any]:
    """(server, dsn of a fresh database with Logto's logs table)"""
    srv = _pg_server()
    if isinstance(srv, Exception):
        pytest.skip(f"no PostgreSQL: {srv}")
    dsn = srv.database()
    yield srv, dsn
    srv.drop(dsn)
