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

import os as _os  # noqa: E402
import uuid as _uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

REAL_ES_URL = _os.environ.get("SHIPPER_TEST_ES_URL")


@dataclass
class EsTarget:
    url: str
    server: Any  # tests.es_server.EsTestServer, or None against a real cluster
    prefix: str  # unique index prefix for this test (real clusters are shared)

    def client(self, **kw: Any) -> Any:
        from elasticsearch import Elasticsearch

        return Elasticsearch(self.url, request_timeout=30, **kw)

    def need_server(self) -> Any:
        if self.server is None:
            pytest.skip("fault injection needs the project's test server (SHIPPER_TEST_ES_URL is set)")
        return self.server


@pytest.fixture
def es_target() -> Iterator[EsTarget]:
    prefix = f"t{_uuid.uuid4().hex[:8]}"
    if REAL_ES_URL:
        target = EsTarget(REAL_ES_URL, None, prefix)
        yield target
        client = target.client()
        client.options(ignore_status=404).indices.delete(index=f"{prefix}*", expand_wildcards="all")
        for _name in ("_index_template", "_component_template"):
            pass
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


def pytest_report_header(config: Any) -> str:
    srv = _pg_server()
    if isinstance(srv, Exception):
        return f"postgres: unavailable ({srv})"
    return f"postgres: {srv.how}"


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
