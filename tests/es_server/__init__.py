"""A strict Elasticsearch test server (see README.md in this folder)."""

from tests.es_server.faults import Faults, Recorded
from tests.es_server.server import EsTestServer

__all__ = ["EsTestServer", "Faults", "Recorded"]
