"""A strict Elasticsearch test server (see README.md in this folder)."""

from tests.es_server.server import EsTestServer, Faults, Recorded

__all__ = ["EsTestServer", "Faults", "Recorded"]
