"""The Elasticsearch test server, pinned with examples from Elasticsearch's documentation,
driven by the official client (8.x line) and its helpers over a real socket."""

from __future__ import annotations

import gzip
import http.client
import json

import pytest
from elasticsearch import (
    ApiError,
    AuthenticationException,
    BadRequestError,
    ConflictError,
    Elasticsearch,
    NotFoundError,
    helpers,
)
from elasticsearch import ConnectionError as EsConnectionError

from tests.es_server import EsTestServer


@pytest.fixture
def srv():
    s = EsTestServer().start()
    yield s
    s.stop()


@pytest.fixture
def es(srv):
    return Elasticsearch(srv.url, retry_on_timeout=False, max_retries=0)


def raw(srv, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), (json.loads(data) if data else None)


class TestProtocol:
    def test_info_and_product_header(self, srv, es):
        info = es.info()
        assert info["version"]["number"] == "8.15.0"
        assert info["tagline"] == "You Know, for Search"
        status, headers, _ = raw(srv, "GET", "/")
        assert status == 200 and headers["X-elastic-product"] == "Elasticsearch"

    def test_9x_server_accepts_8x_client_line(self):
        s = EsTestServer(version="9.1.0").start()
        try:
            assert Elasticsearch(s.url).info()["version"]["number"] == "9.1.0"
            h = s.requests[-1].headers
            assert "compatible-with=8" in h["accept"]
        finally:
            s.stop()

    def test_8x_server_rejects_compatible_with_9(self, srv):
        vnd = "application/vnd.elasticsearch+json; compatible-with=9"
        status, _, body = raw(srv, "GET", "/", headers={"Accept": vnd, "Content-Type": vnd})
        assert status == 400
        assert body["error"]["type"] == "media_type_header_exception"
        assert body["error"]["caused_by"]["reason"].startswith(
            "Accept version must be either version 8 or 7, but found 9"
        )

    def test_unknown_endpoint_and_wrong_method(self, srv):
        status, _, body = raw(srv, "GET", "/_nope")
        assert status == 400 and body["error"] == "no handler found for uri [/_nope] and method [GET]"
        status, _headers, body = raw(srv, "GET", "/_bulk")
        assert status == 405 and "allowed: [POST, PUT]" in body["error"]

    def test_unknown_parameter_rejected(self, es):
        with pytest.raises(BadRequestError, match="unrecognized parameter: \\[bogus\\]"):
            es.perform_request(
                "GET", "/_search", params={"bogus": "1"}, headers={"accept": "application/json"}
            )

    def test_error_shape(self, es):
        with pytest.raises(NotFoundError) as ei:
            es.get(index="missing", id="1")
        body = ei.value.body
        assert body["status"] == 404
        assert body["error"]["root_cause"][0]["type"] == "index_not_found_exception"
        assert body["error"]["reason"] == "no such index [missing]"


class TestBulk:
    def test_statuses_conflict_and_mapping_errors(self, es):
        es.indices.create(
            index="logs",
            mappings={"properties": {"ts": {"type": "date"}, "ip": {"type": "ip"}, "n": {"type": "long"}}},
        )
        r = es.bulk(
            operations=[
                {"create": {"_index": "logs", "_id": "1"}},
                {"ts": "2025-08-21T08:00:00Z"},
                {"create": {"_index": "logs", "_id": "1"}},
                {"ts": "2025-08-21T08:00:00Z"},
                {"index": {"_index": "logs", "_id": "2"}},
                {"ip": "not-an-ip"},
                {"index": {"_index": "logs", "_id": "3"}},
                {"n": "ten"},
                {"index": {"_index": "logs", "_id": "4"}},
                {"ts": "yesterday"},
                {"delete": {"_index": "logs", "_id": "1"}},
            ]
        )
        assert r["errors"] is True
        items = [next(iter(i.values())) for i in r["items"]]
        assert [i["status"] for i in items] == [201, 409, 400, 400, 400, 200]
        assert items[1]["error"]["type"] == "version_conflict_engine_exception"
        assert (
            items[1]["error"]["reason"]
            == "[1]: version conflict, document already exists (current version [1])"
        )
        assert {i["error"]["type"] for i in items[2:5]} == {"document_parsing_exception"}
        assert "failed to parse field [ip] of type [ip]" in items[2]["error"]["reason"]

    def test_malformed_ndjson_rejects_whole_request(self, srv):
        body = b'{"index":{"_index":"x"}}\n{"a":1}\n{"bogus":{}}\n{}\n'
        status, _, resp = raw(srv, "POST", "/_bulk", body, {"Content-Type": "application/x-ndjson"})
        assert status == 400 and "Malformed action/metadata line [3]" in resp["error"]["reason"]
        status, _, resp = raw(
            srv,
            "POST",
            "/_bulk",
            b'{"index":{"_index":"x"}}\n{"a":1}',
            {"Content-Type": "application/x-ndjson"},
        )
        assert status == 400 and "terminated by a newline" in resp["error"]["reason"]
        assert "x" not in srv.cluster.indices

    def test_gzip_filter_path_and_refresh(self, srv):
        es = Elasticsearch(srv.url, http_compress=True)
        r = es.options().bulk(
            operations=[{"index": {"_index": "g", "_id": "a"}}, {"v": 1}],
            refresh="wait_for",
            filter_path="errors,items.*.status",
        )
        assert r.body == {"errors": False, "items": [{"index": {"status": 201}}]}
        assert srv.requests[-1].headers.get("content-encoding") == "gzip"
        assert es.count(index="g")["count"] == 1

    def test_without_refresh_search_does_not_see_it_yet(self, es):
        es.indices.create(index="r", settings={"refresh_interval": "-1"})
        es.index(index="r", id="1", document={"a": 1})
        assert es.count(index="r")["count"] == 0
        assert es.get(index="r", id="1")["found"] is True  # get is real-time
        es.indices.refresh(index="r")
        assert es.count(index="r")["count"] == 1

    def test_streaming_bulk_helper(self, es):
        ok = [
            ok
            for ok, _ in helpers.streaming_bulk(
                es, ({"_index": "h", "_id": str(i), "v": i} for i in range(250)), chunk_size=100
            )
        ]
        assert all(ok) and len(ok) == 250


class TestIndicesAndTemplates:
    def test_composable_template_with_components_and_priority(self, es):
        es.cluster.put_component_template(
            name="base",
            template={
                "settings": {"number_of_replicas": 0},
                "mappings": {"properties": {"@timestamp": {"type": "date"}}},
            },
        )
        es.indices.put_index_template(
            name="low",
            index_patterns=["logs-*"],
            priority=1,
            template={"mappings": {"properties": {"msg": {"type": "text"}}}},
        )
        es.indices.put_index_template(
            name="high",
            index_patterns=["logs-app-*"],
            priority=5,
            composed_of=["base"],
            template={
                "mappings": {"dynamic": "strict", "properties": {"user": {"type": "keyword"}}},
                "aliases": {"logs-app": {}},
            },
        )
        assert es.indices.exists_index_template(name="high")
        es.index(index="logs-app-1", id="1", document={"@timestamp": "2025-01-01T00:00:00Z", "user": "u"})
        m = es.indices.get_mapping(index="logs-app-1")["logs-app-1"]["mappings"]
        assert m["properties"]["user"] == {"type": "keyword"} and "msg" not in m["properties"]
        assert (
            es.indices.get_settings(index="logs-app-1")["logs-app-1"]["settings"]["index"][
                "number_of_replicas"
            ]
            == "0"
        )
        with pytest.raises(BadRequestError, match="strict_dynamic_mapping_exception"):
            es.index(index="logs-app-1", id="2", document={"other": 1})
        assert es.indices.exists_alias(name="logs-app")

    def test_same_priority_overlap_rejected(self, es):
        es.indices.put_index_template(name="a", index_patterns=["x-*"])
        with pytest.raises(BadRequestError, match="same priority"):
            es.indices.put_index_template(name="b", index_patterns=["x-y*"])

    def test_missing_component_rejected(self, es):
        with pytest.raises(BadRequestError, match="that do not exist"):
            es.indices.put_index_template(name="t", index_patterns=["q-*"], composed_of=["nope"])

    def test_dynamic_mapping(self, es):
        es.index(
            index="d",
            id="1",
            document={"s": "text", "n": 1, "f": 1.5, "b": True, "t": "2025-01-01T00:00:00Z"},
            refresh=True,
        )
        p = es.indices.get_mapping(index="d")["d"]["mappings"]["properties"]
        assert p["s"] == {
            "type": "text",
            "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
        }
        assert (p["n"]["type"], p["f"]["type"], p["b"]["type"], p["t"]["type"]) == (
            "long",
            "float",
            "boolean",
            "date",
        )

    def test_create_delete_cat(self, es):
        es.indices.create(index="c1")
        with pytest.raises(BadRequestError, match="resource_already_exists_exception"):
            es.indices.create(index="c1")
        with pytest.raises(BadRequestError, match="must be lowercase"):
            es.indices.create(index="Bad")
        rows = es.cat.indices(format="json")
        assert [r["index"] for r in rows] == ["c1"]
        es.indices.delete(index="c1")
        assert not es.indices.exists(index="c1")


class TestIlm:
    POLICY = {"phases": {"hot": {"actions": {}}, "delete": {"min_age": "30d", "actions": {"delete": {}}}}}

    def test_policy_validation(self, es):
        with pytest.raises(BadRequestError, match="does not support phase"):
            es.ilm.put_lifecycle(name="p", policy={"phases": {"lukewarm": {"actions": {}}}})
        with pytest.raises(BadRequestError, match="invalid action \\[delete\\] defined in phase \\[hot\\]"):
            es.ilm.put_lifecycle(name="p", policy={"phases": {"hot": {"actions": {"delete": {}}}}})
        with pytest.raises(BadRequestError, match="without an accompanying \\[rollover\\]"):
            es.ilm.put_lifecycle(
                name="p",
                policy={"phases": {"hot": {"actions": {"forcemerge": {"max_num_segments": 1}}}}},
            )
        es.ilm.put_lifecycle(name="p", policy=self.POLICY)
        assert es.ilm.get_lifecycle(name="p")["p"]["version"] == 1

    def test_origination_date_requires_dated_name(self, es):
        settings = {"index.lifecycle.name": "p", "index.lifecycle.parse_origination_date": True}
        with pytest.raises(BadRequestError, match="does not match pattern"):
            es.indices.create(index="logs-nodate", settings=settings)
        es.indices.create(index="logs-default-2025.08.21", settings=settings)

    def test_clock_advance_deletes_expired_daily_indices(self, srv, es):
        es.ilm.put_lifecycle(name="p", policy=self.POLICY)
        es.indices.put_index_template(
            name="t",
            index_patterns=["logs-*"],
            template={
                "settings": {
                    "index.lifecycle.name": "p",
                    "index.lifecycle.parse_origination_date": True,
                }
            },
        )
        from datetime import UTC, datetime, timedelta

        today = datetime.now(UTC)
        old = (today - timedelta(days=40)).strftime("%Y.%m.%d")
        new = (today - timedelta(days=2)).strftime("%Y.%m.%d")
        es.index(index=f"logs-{old}", document={"a": 1})
        es.index(index=f"logs-{new}", document={"a": 1})
        explain = es.ilm.explain_lifecycle(index="logs-*")["indices"]
        assert explain[f"logs-{old}"]["phase"] == "delete" and explain[f"logs-{new}"]["phase"] == "hot"
        assert srv.advance(0) == [f"logs-{old}"]
        assert es.indices.exists(index=f"logs-{new}")
        assert srv.advance(29 * 86400) == [f"logs-{new}"]

    def test_policy_in_use_cannot_be_deleted(self, es):
        es.ilm.put_lifecycle(name="p", policy=self.POLICY)
        es.indices.create(index="i", settings={"index.lifecycle.name": "p"})
        with pytest.raises(BadRequestError, match="It is in use by one or more indices: \\[i\\]"):
            es.ilm.delete_lifecycle(name="p")


@pytest.fixture
def docs(es):
    es.indices.create(
        index="ev",
        mappings={
            "properties": {
                "@timestamp": {"type": "date"},
                "event": {"properties": {"action": {"type": "keyword"}, "outcome": {"type": "keyword"}}},
                "source": {"properties": {"ip": {"type": "ip"}}},
                "msg": {"type": "match_only_text"},
                "payload": {"type": "flattened"},
            }
        },
    )
    rows = [
        (
            "1",
            "2025-08-20T10:00:00Z",
            "Interaction.SignIn.Submit",
            "success",
            "10.0.0.5",
            "user signed in",
            {"userId": "u1"},
        ),
        (
            "2",
            "2025-08-20T11:00:00Z",
            "Interaction.SignIn.Submit",
            "failure",
            "10.0.1.7",
            "wrong password",
            {"userId": "u2"},
        ),
        (
            "3",
            "2025-08-21T09:00:00Z",
            "ExchangeTokenBy.RefreshToken",
            "success",
            "192.168.1.1",
            "token",
            {"userId": "u1"},
        ),
        ("4", "2025-08-21T12:00:00Z", "RevokeToken", "failure", "2001:db8::1", "revoked", {}),
    ]
    ops = []
    for i, ts, action, outcome, ip, msg, payload in rows:
        ops += [
            {"create": {"_index": "ev", "_id": i}},
            {
                "@timestamp": ts,
                "event": {"action": action, "outcome": outcome},
                "source": {"ip": ip},
                "msg": msg,
                "payload": payload,
            },
        ]
    es.bulk(operations=ops, refresh=True)
    return es


def ids(resp):
    return [h["_id"] for h in resp["hits"]["hits"]]


class TestSearch:
    def test_bool_term_terms_range_prefix_wildcard(self, docs):
        q = {
            "bool": {
                "filter": [
                    {"term": {"event.outcome": "success"}},
                    {"range": {"@timestamp": {"gte": "2025-08-20", "lt": "2025-08-21||+1d/d"}}},
                ],
                "must_not": [{"prefix": {"event.action": "Exchange"}}],
            }
        }
        assert ids(docs.search(index="ev", query=q)) == ["1"]
        assert sorted(ids(docs.search(index="ev", query={"terms": {"_id": ["1", "4"]}}))) == [
            "1",
            "4",
        ]
        assert sorted(
            ids(docs.search(index="ev", query={"wildcard": {"event.action": "Interaction.SignIn.*"}}))
        ) == ["1", "2"]
        q = {
            "bool": {
                "should": [{"term": {"event.action": "RevokeToken"}}, {"ids": {"values": ["3"]}}],
                "minimum_should_match": 1,
            }
        }
        assert sorted(ids(docs.search(index="ev", query=q))) == ["3", "4"]

    def test_ip_cidr_and_flattened_and_text(self, docs):
        assert sorted(ids(docs.search(index="ev", query={"term": {"source.ip": "10.0.0.0/16"}}))) == [
            "1",
            "2",
        ]
        assert ids(docs.search(index="ev", query={"term": {"source.ip": "2001:db8::/32"}})) == ["4"]
        assert sorted(ids(docs.search(index="ev", query={"term": {"payload.userId": "u1"}}))) == [
            "1",
            "3",
        ]
        assert ids(docs.search(index="ev", query={"match": {"msg": "Password"}})) == ["2"]
        assert (
            ids(
                docs.search(
                    index="ev",
                    query={
                        "exists": {"field": "payload.userId"},
                    },
                    sort=["@timestamp"],
                )
            )[0]
            == "1"
        )

    def test_query_string_subset(self, docs):
        r = docs.search(
            index="ev",
            query={"query_string": {"query": "event.outcome:failure AND NOT event.action:Revoke*"}},
        )
        assert ids(r) == ["2"]

    def test_date_math_relative_to_now(self, srv, docs):
        from datetime import UTC, datetime

        srv.clock.offset_ms = int(
            (datetime(2025, 8, 21, 13, 0, tzinfo=UTC).timestamp() - __import__("time").time()) * 1000
        )
        r = docs.search(index="ev", query={"range": {"@timestamp": {"gte": "now-24h"}}})
        assert sorted(ids(r)) == ["3", "4"]
        r = docs.search(index="ev", query={"range": {"@timestamp": {"gte": "now/d"}}})
        assert sorted(ids(r)) == ["3", "4"]

    def test_sort_search_after_source_and_totals(self, docs):
        r = docs.search(
            index="ev",
            sort=[{"@timestamp": "desc"}],
            size=2,
            _source=["event.action"],
            track_total_hits=True,
        )
        assert ids(r) == ["4", "3"] and r["hits"]["total"] == {"value": 4, "relation": "eq"}
        assert r["hits"]["hits"][0]["_source"] == {"event": {"action": "RevokeToken"}}
        r2 = docs.search(
            index="ev",
            sort=[{"@timestamp": "desc"}],
            size=2,
            search_after=r["hits"]["hits"][-1]["sort"],
        )
        assert ids(r2) == ["2", "1"]
        r3 = docs.search(index="ev", size=0, track_total_hits=2)
        assert r3["hits"]["total"] == {"value": 2, "relation": "gte"}

    def test_aggregations(self, docs):
        r = docs.search(
            index="ev",
            size=0,
            aggs={
                "by_outcome": {
                    "terms": {"field": "event.outcome"},
                    "aggs": {"ips": {"cardinality": {"field": "source.ip"}}},
                },
                "per_day": {"date_histogram": {"field": "@timestamp", "calendar_interval": "day"}},
                "n": {"value_count": {"field": "event.action"}},
                "latest": {"top_hits": {"size": 1, "sort": [{"@timestamp": "desc"}]}},
            },
        )
        a = r["aggregations"]
        assert [(b["key"], b["doc_count"], b["ips"]["value"]) for b in a["by_outcome"]["buckets"]] == [
            ("failure", 2, 2),
            ("success", 2, 2),
        ]
        assert [(b["key_as_string"], b["doc_count"]) for b in a["per_day"]["buckets"]] == [
            ("2025-08-20T00:00:00.000Z", 2),
            ("2025-08-21T00:00:00.000Z", 2),
        ]
        assert a["n"]["value"] == 4
        assert a["latest"]["hits"]["hits"][0]["_id"] == "4"

    def test_unknown_query_and_aggregation_fail_loudly(self, docs):
        with pytest.raises(BadRequestError, match="unknown query \\[fuzzy_magic\\]"):
            docs.search(index="ev", query={"fuzzy_magic": {"a": 1}})
        with pytest.raises(BadRequestError, match="unknown aggregation type \\[geohash_grid\\]"):
            docs.search(index="ev", aggs={"g": {"geohash_grid": {"field": "x"}}})
        with pytest.raises(BadRequestError, match="Fielddata is disabled"):
            docs.search(index="ev", aggs={"m": {"terms": {"field": "msg"}}})

    def test_wildcard_and_alias_targets(self, docs):
        docs.indices.put_alias(index="ev", name="evs")
        assert docs.count(index="evs")["count"] == 4
        assert docs.count(index="e*,nomatch*")["count"] == 4
        with pytest.raises(NotFoundError):
            docs.count(index="nothere")


class TestFaults:
    def test_reject_next_bulk_with_429(self, srv, es):
        srv.faults.reject_bulk = 1
        with pytest.raises(ApiError) as ei:
            es.bulk(operations=[{"index": {"_index": "f"}}, {"a": 1}])
        assert ei.value.meta.status == 429 and ei.value.error == "es_rejected_execution_exception"
        assert es.bulk(operations=[{"index": {"_index": "f"}}, {"a": 1}])["errors"] is False

    def test_item_failures(self, srv, es):
        srv.faults.item_fail_rate, srv.faults.item_fail_status = 1.0, 503
        r = es.bulk(operations=[{"create": {"_index": "f", "_id": "1"}}, {"a": 1}])
        assert r["items"][0]["create"]["status"] == 503

    def test_cluster_block_and_recording(self, srv, es):
        srv.faults.fail_all = (
            503,
            "cluster_block_exception",
            "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered /initialized];",
        )
        with pytest.raises(ApiError) as ei:
            es.info()
        assert ei.value.meta.status == 503
        srv.faults.fail_all = None
        assert srv.requests[-1].method == "GET" and srv.requests[-1].path == "/"

    def test_down_and_up(self, srv):
        es = Elasticsearch(srv.url, max_retries=0, request_timeout=2)
        srv.stop()
        with pytest.raises(EsConnectionError):
            es.info()
        srv.start()
        assert es.info()["version"]["number"]

    def test_connection_dropped_mid_response(self, srv):
        es = Elasticsearch(srv.url, max_retries=0)
        srv.faults.drop_next = 1
        with pytest.raises(EsConnectionError):
            es.info()
        assert es.info()

    def test_413_for_big_bodies(self, srv, es):
        srv.faults.max_body = 100
        with pytest.raises(ApiError) as ei:
            es.bulk(operations=[{"index": {"_index": "f"}}, {"a": "x" * 200}])
        assert ei.value.meta.status == 413


class TestAuth:
    def test_api_key_and_basic(self):
        s = EsTestServer(api_keys={"kid": "ksecret"}, users={"elastic": "pw"}).start()
        try:
            assert Elasticsearch(s.url, api_key=("kid", "ksecret")).info()
            assert Elasticsearch(s.url, basic_auth=("elastic", "pw")).info()
            with pytest.raises(AuthenticationException) as ei:
                Elasticsearch(s.url, api_key=("kid", "wrong")).info()
            assert ei.value.meta.status == 401
            status, headers, body = raw(s, "GET", "/")
            assert status == 401 and "ApiKey" in headers["WWW-Authenticate"]
            assert body["error"]["type"] == "security_exception"
        finally:
            s.stop()


def test_gzip_body_decoded_in_recording(srv):
    payload = gzip.compress(b'{"index":{"_index":"z"}}\n{"a":1}\n')
    status, _, body = raw(
        srv,
        "POST",
        "/_bulk",
        payload,
        {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"},
    )
    assert status == 200 and body["errors"] is False
    assert srv.requests[-1].body.startswith(b'{"index"')


def test_conflict_error_class(es):
    es.create(index="cc", id="1", document={"a": 1})
    with pytest.raises(ConflictError):
        es.create(index="cc", id="1", document={"a": 1})
