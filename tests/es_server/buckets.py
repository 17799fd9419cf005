"""Buckets: building one (with its sub-aggregations), search.max_buckets and the count of a
response's buckets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.es_server.errors import EsError, bad_request
from tests.es_server.model import Doc, Index

if TYPE_CHECKING:
    from tests.es_server.store import Cluster

MAX_BUCKETS = 65536


def _check_buckets(n: int) -> None:
    """search.max_buckets counts every bucket of the request (MultiBucketConsumerService), empty
    histogram buckets and sub-aggregations' included. A real single-shard node fails the reduce:
    search_phase_execution_exception (phase fetch, no root cause) caused by too_many_buckets."""
    if n > MAX_BUCKETS:
        err = EsError(
            400,
            "search_phase_execution_exception",
            "",
            caused_by={
                "type": "too_many_buckets_exception",
                "reason": f"Trying to create too many buckets. Must be less than or equal to: [{MAX_BUCKETS}] "
                "but this number of buckets was exceeded. This limit can be set by changing the "
                "[search.max_buckets] cluster level setting.",
                "max_buckets": MAX_BUCKETS,
            },
            phase="fetch",
            grouped=True,
            failed_shards=[],
        )
        err.root_causes = []
        raise err


def count_buckets(aggs: Any) -> int:
    n = 0
    if isinstance(aggs, dict):
        for v in aggs.values():
            if isinstance(v, dict):
                buckets = v.get("buckets")
                if isinstance(buckets, list):
                    n += len(buckets)
                    n += sum(count_buckets(b) for b in buckets)
                elif isinstance(v, dict) and "doc_count" in v:
                    n += count_buckets(v)  # single-bucket aggregations (filter) hold sub-aggs
    return n


def _bucket(
    key: Any,
    docs: list[tuple[Index, Doc, float]],
    t: str | None,
    now: int,
    cluster: Cluster,
    subs: Any,
    key_as_string: str | None = None,
) -> dict[str, Any]:
    b: dict[str, Any] = {"key": key}
    if key_as_string is not None:
        b["key_as_string"] = key_as_string
    b["doc_count"] = len(docs)
    if subs:
        from tests.es_server.aggs import run_aggs  # sub-aggregations: aggs.py is above this module

        b.update(run_aggs(subs, docs, now, cluster))
    return b


def _field_of(body: Any, kind: str) -> str:
    if not isinstance(body, dict) or "field" not in body:
        if isinstance(body, dict) and "script" in body:
            raise bad_request("test server: scripts are not implemented")
        raise bad_request("Required one of fields [field, script], but none were specified.")
    return str(body["field"])
