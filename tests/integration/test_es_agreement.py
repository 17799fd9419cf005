"""Behaviours where the test server once parted from Elasticsearch, each asserted as a real node
answers (measured on 8.19.21 and 9.5.4 from tests/real_es) and citing the source or page it
follows. The ``es_target`` fixture runs every case against the test server in the main suite and
against the real node when SHIPPER_TEST_ES_URL is set (.ci/run does both), so the expectations
themselves are checked against Elasticsearch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class Case:
    name: str
    cite: str  # the Elasticsearch source file or reference page the expectation follows
    run: Callable[[Any, str], Any]  # (client ignoring error statuses, index) -> final response
    status: int
    error: str | None = None  # error.type (or the caused_by type after "/")
    check: Callable[[Any], bool] | None = None


def nest(depth: int) -> Any:
    value: Any = "v"
    for _ in range(depth):
        value = {"a": value}
    return value


def cause(body: Any) -> str:
    err = body["error"]
    inner = err.get("caused_by") or {}
    return f"{err['type']}/{inner.get('type', '')}"


def _index_doc(field: str, value: Any) -> Callable[[Any, str], Any]:
    return lambda es, ix: es.index(index=ix, id="d", document={field: value})


def _mapping(props: dict[str, Any]) -> Callable[[Any, str], Any]:
    return lambda es, ix: es.indices.create(index=f"{ix}-m", mappings={"properties": props})


def _bulk_ids(*ids: str) -> Callable[[Any, str], Any]:
    return lambda es, ix: es.bulk(
        operations=[x for i in ids for x in ({"create": {"_index": ix, "_id": i}}, {})]
    )


def _search(**body: Any) -> Callable[[Any, str], Any]:
    return lambda es, ix: es.search(index=ix, **body)


def _write_blocked(es: Any, ix: str) -> Any:
    es.indices.put_settings(index=ix, settings={"index.blocks.write": True})
    try:
        return es.bulk(operations=[{"create": {"_index": ix, "_id": "blocked"}}, {"k": "x"}])
    finally:
        es.indices.put_settings(index=ix, settings={"index.blocks.write": False})


def _buckets(body: Any, name: str = "a") -> list[Any]:
    return [b["key"] for b in body["aggregations"][name]["buckets"]]


FLAT = "FlattenedFieldParser.java (server/.../index/mapper/flattened)"
CASES = [
    Case("flattened depth 20", FLAT, _index_doc("p", nest(20)), 201),
    Case(
        "flattened depth 21",
        FLAT,
        _index_doc("p", nest(21)),
        400,
        "document_parsing_exception/illegal_argument_exception",
    ),
    Case(
        "flattened depth_limit 3",
        FLAT,
        _index_doc("q", nest(4)),
        400,
        "document_parsing_exception/illegal_argument_exception",
    ),
    Case(
        "flattened key with \\0",
        FLAT,
        _index_doc("p", {"a\0b": "v"}),
        400,
        "document_parsing_exception/illegal_argument_exception",
    ),
    Case("flattened keyed term 32766", FLAT, _index_doc("p", {"a": "x" * 32764}), 201),
    Case(
        "flattened keyed term 32767",
        FLAT,
        _index_doc("p", {"a": "x" * 32765}),
        400,
        "document_parsing_exception/illegal_argument_exception",
    ),
    Case(
        "flattened ignore_above", "flattened.asciidoc: ignore_above", _index_doc("r", {"a": "x" * 40000}), 201
    ),
    Case("keyword 32766 bytes", "Lucene IndexWriter.MAX_TERM_LENGTH", _index_doc("k", "x" * 32766), 201),
    Case(
        "keyword 32767 bytes",
        "Lucene IndexWriter.MAX_TERM_LENGTH",
        _index_doc("k", "x" * 32767),
        400,
        "document_parsing_exception/illegal_argument_exception",
    ),
    Case(
        "keyword 16384 two-byte chars",
        "Lucene IndexWriter.MAX_TERM_LENGTH (UTF-8 bytes)",
        _index_doc("k", "é" * 16384),
        400,
        "document_parsing_exception/illegal_argument_exception",
    ),
    Case(
        "unknown mapping parameter",
        "FieldMapper.java: Builder.parse",
        _mapping({"k": {"type": "keyword", "ignore_abov": 5}}),
        400,
        "mapper_parsing_exception/mapper_parsing_exception",
    ),
    Case(
        "empty field name",
        "ObjectMapper.java: TypeParser (field name cannot be an empty string)",
        _mapping({"": {"type": "keyword"}}),
        400,
        "mapper_parsing_exception/illegal_argument_exception",
    ),
    Case(
        "_id of 512 bytes",
        "IndexRequest.java: validate (MAX_DOCUMENT_ID_LENGTH_IN_BYTES)",
        _bulk_ids("i" * 512),
        200,
    ),
    Case(
        "_id of 513 bytes fails the bulk",
        "IndexRequest.java: validate; BulkRequest.validate",
        _bulk_ids("ok", "i" * 513),
        400,
        "action_request_validation_exception/",
    ),
    Case(
        "write block: item 403",
        "index-modules-blocks.asciidoc; ReadOnlyAction.java (ILM readonly adds it)",
        _write_blocked,
        200,
        check=lambda b: (
            b["items"][0]["create"]["status"] == 403
            and b["items"][0]["create"]["error"]["type"] == "cluster_block_exception"
        ),
    ),
    Case(
        "max_buckets across the request",
        "MultiBucketConsumerService.java (search.max_buckets)",
        _search(size=0, aggs={n: {"date_histogram": {"field": "t", "fixed_interval": "30s"}} for n in "ab"}),
        400,
        "search_phase_execution_exception/too_many_buckets_exception",
    ),
    Case(
        "terms include regex",
        "search-aggregations-bucket-terms-aggregation.asciidoc: Filtering Values",
        _search(size=0, aggs={"a": {"terms": {"field": "k", "include": "k1|k2"}}}),
        200,
        check=lambda b: _buckets(b) == ["k1", "k2"],
    ),
    Case(
        "terms exclude list",
        "search-aggregations-bucket-terms-aggregation.asciidoc: Filtering Values",
        _search(size=0, aggs={"a": {"terms": {"field": "k", "exclude": ["k1"], "size": 20}}}),
        200,
        check=lambda b: "k1" not in _buckets(b) and "k2" in _buckets(b),
    ),
    Case(
        "terms unknown option",
        "ObjectParser.java (unknown field ... did you mean)",
        _search(size=0, aggs={"a": {"terms": {"field": "k", "sizee": 3}}}),
        400,
        "x_content_parse_exception/",
    ),
    Case(
        "date_histogram time_zone",
        "search-aggregations-bucket-datehistogram-aggregation.asciidoc: Time zone",
        _search(
            size=0,
            aggs={"a": {"date_histogram": {"field": "t", "calendar_interval": "1d", "time_zone": "+05:00"}}},
        ),
        200,
        check=lambda b: (
            b["aggregations"]["a"]["buckets"][0]["key_as_string"].endswith("T00:00:00.000+05:00")
            and b["aggregations"]["a"]["buckets"][0]["key"] % 86_400_000 == 19 * 3_600_000
        ),
    ),
    Case(
        "date_histogram offset",
        "search-aggregations-bucket-datehistogram-aggregation.asciidoc: Offset",
        _search(
            size=0, aggs={"a": {"date_histogram": {"field": "t", "calendar_interval": "1d", "offset": "+6h"}}}
        ),
        200,
        check=lambda b: all(
            k["key"] % 86_400_000 == 6 * 3_600_000 for k in b["aggregations"]["a"]["buckets"]
        ),
    ),
    Case(
        "sort format",
        "sort-search-results.asciidoc: Use format for date fields",
        _search(
            size=1, _source=False, sort=[{"t": {"order": "desc", "format": "strict_date_optional_time"}}]
        ),
        200,
        check=lambda b: b["hits"]["hits"][0]["sort"] == ["2023-11-27T09:13:20.000Z"],
    ),
    Case(
        "cardinality precision_threshold < 0",
        "CardinalityAggregationBuilder.java",
        _search(size=0, aggs={"c": {"cardinality": {"field": "k", "precision_threshold": -1}}}),
        400,
    ),
    Case(
        "filters keyed: sorted by name, other bucket last",
        "FiltersAggregationBuilder.java (keyed filters sorted by key); search-aggregations-bucket-filters-aggregation",
        _search(
            size=0,
            aggs={
                "f": {
                    "filters": {
                        "filters": {"z": {"term": {"k": "k1"}}, "a": {"term": {"k": "k2"}}},
                        "other_bucket_key": "rest",
                    }
                }
            },
        ),
        200,
        check=lambda b: (
            list(b["aggregations"]["f"]["buckets"].items())
            == [("a", {"doc_count": 43}), ("z", {"doc_count": 43}), ("rest", {"doc_count": 214})]
        ),
    ),
    Case(
        "filters anonymous: in request order",
        "search-aggregations-bucket-filters-aggregation: Anonymous filters",
        _search(
            size=0,
            aggs={
                "f": {
                    "filters": {"filters": [{"term": {"k": "k3"}}, {"range": {"t": {"lt": 1700000000001}}}]}
                }
            },
        ),
        200,
        check=lambda b: b["aggregations"]["f"]["buckets"] == [{"doc_count": 43}, {"doc_count": 1}],
    ),
    Case(
        "unknown data stream",
        "indices-get-data-stream.asciidoc; GetDataStreamsTransportAction.java",
        lambda es, ix: es.indices.get_data_stream(name=f"{ix}-nope"),
        404,
    ),
]
# The integ-test distribution has no data-streams module: GET /_data_stream answers 405 there.
NEEDS_FULL_DISTRIBUTION = {"unknown data stream"}


@pytest.fixture
def loaded(es_target):
    es = es_target.client().options(ignore_status=list(range(400, 600)))
    ix = f"{es_target.prefix}-agree"
    props = {
        "p": {"type": "flattened"},
        "q": {"type": "flattened", "depth_limit": 3},
        "r": {"type": "flattened", "ignore_above": 10},
        "k": {"type": "keyword"},
        "t": {"type": "date"},
    }
    r = es.indices.create(index=ix, mappings={"properties": props}, settings={"number_of_replicas": 0})
    assert r.meta.status == 200, r.body
    ops: list[Any] = []
    for i in range(300):
        ops += [
            {"create": {"_index": ix, "_id": f"h{i}"}},
            {"t": 1700000000000 + i * 3_600_000, "k": f"k{i % 7}"},
        ]
    r = es.bulk(operations=ops, refresh=True)
    assert not r["errors"]
    return es, ix


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_agrees_with_elasticsearch(case, loaded, es_target):
    if es_target.server is None and case.name in NEEDS_FULL_DISTRIBUTION and not _has_data_streams(loaded[0]):
        pytest.skip("this node has no data-streams module (Elastic's integ-test distribution)")
    es, ix = loaded
    r = case.run(es, ix)
    assert r.meta.status == case.status, (case.cite, r.body)
    if case.error is not None:
        got = cause(r.body)
        want = case.error if "/" in case.error else case.error + "/"
        assert got == want or (want.endswith("/") and got.startswith(want)), (case.cite, r.body)
    if case.check is not None:
        assert case.check(r.body), (case.cite, r.body)


def _has_data_streams(es: Any) -> bool:
    return es.indices.get_data_stream(name="*").meta.status == 200


def test_ilm_readonly_blocks_writes(es_target):
    """ILM's readonly action (optional warm phase) puts the write block on the index: later
    writes are 403 per item (ReadOnlyAction.java; ilm-readonly.asciidoc)."""
    srv = es_target.need_server()
    es = es_target.client()
    es.ilm.put_lifecycle(
        name="ro",
        policy={"phases": {"warm": {"min_age": "1d", "actions": {"readonly": {}}}}},
    )
    es.indices.create(index="ro-1", settings={"index.lifecycle.name": "ro", "number_of_replicas": 0})
    ok = es.bulk(operations=[{"create": {"_index": "ro-1", "_id": "a"}}, {}])
    assert ok["items"][0]["create"]["status"] == 201
    srv.advance(2 * 86400)
    r = es.bulk(operations=[{"create": {"_index": "ro-1", "_id": "b"}}, {}])
    item = r["items"][0]["create"]
    assert r["errors"] and item["status"] == 403 and item["error"]["type"] == "cluster_block_exception"
    assert "FORBIDDEN/8/index write (api)" in item["error"]["reason"]
    assert es.ilm.explain_lifecycle(index="ro-1")["indices"]["ro-1"]["phase"] == "warm"
