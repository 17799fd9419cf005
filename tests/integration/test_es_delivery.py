"""The elasticsearch output end to end, against the test server or SHIPPER_TEST_ES_URL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from bench.generate import records
from shipper.metrics import METRICS
from shipper.sources.file.source import READ_SIZE
from tests.integration.harness import Pipeline, expected, record, write_lines


def es_pipeline(tmp_path, target, **out):
    output = {
        "type": "elasticsearch",
        "hosts": [target.url],
        "batch_max_docs": 200,
        "max_in_flight": 2,
        "retry_initial_backoff": 0.02,
        "retry_max_backoff": 0.2,
        "drain_timeout": 5,
        **out,
    }
    return Pipeline(tmp_path, output=output, index={"prefix": target.prefix, "replicas": 0})


def all_ids(es, index):
    es.indices.refresh(index=index)
    ids = []
    resp = es.search(index=index, size=1000, sort=["event.id"], _source=False)
    while resp["hits"]["hits"]:
        ids += [h["_id"] for h in resp["hits"]["hits"]]
        resp = es.search(
            index=index,
            size=1000,
            sort=["event.id"],
            _source=False,
            search_after=resp["hits"]["hits"][-1]["sort"],
        )
    return ids


def wait_count(es, index, n, p=None, timeout=20.0):
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        if p is not None:
            step_until = time.monotonic() + 0.2
            while time.monotonic() < step_until:
                p.runner.step()
        # A real node answers 503 while a just-created index's primary initializes: not yet.
        es503 = es.options(ignore_status=503)
        es503.indices.refresh(index=index, ignore_unavailable=True, allow_no_indices=True)
        r = es503.count(index=index, allow_no_indices=True, ignore_unavailable=True)
        count = r["count"] if r.meta.status == 200 else count
        if count >= n:
            return count
        time.sleep(0.02)
    raise AssertionError(f"{count} of {n} documents after {timeout}s")


def test_end_to_end_daily_indices_and_mappings(tmp_path, es_target):
    es = es_target.client()
    p = es_pipeline(tmp_path, es_target).start()
    log = p.logs / "app.jsonl"
    recs = list(records(300, seed=9, start=datetime(2025, 8, 20, tzinfo=UTC), span=timedelta(days=3)))
    log.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    pattern = f"{es_target.prefix}-default-*"
    wait_count(es, pattern, 300, p)
    assert p.stop() == 0
    if es_target.server is not None:  # bulks went out gzip-compressed (the server decodes them)
        bulks = [r for r in es_target.server.requests if r.path.endswith("/_bulk")]
        assert bulks and all(r.headers.get("content-encoding") == "gzip" for r in bulks)
        assert all(r.body.startswith(b'{"create"') for r in bulks)
    indices = sorted(es.indices.get(index=pattern))
    assert indices == [f"{es_target.prefix}-default-2025.08.{d}" for d in (20, 21, 22)]
    assert sorted(all_ids(es, f"{es_target.prefix}-default")) == sorted(
        r["id"] for r in recs
    )  # via the alias
    props = es.indices.get_mapping(index=indices[0])[indices[0]]["mappings"]["properties"]
    assert props["source"]["properties"]["ip"]["type"] == "ip"
    assert props["@timestamp"]["type"] == "date"
    assert props["logto"]["properties"]["payload"]["type"] == "flattened"
    settings = es.indices.get_settings(index=indices[0])[indices[0]]["settings"]["index"]
    if es_target.ilm:
        assert settings["lifecycle"]["name"] == f"{es_target.prefix}-policy"
    else:  # the templates leave index.lifecycle.* out (the cluster would refuse it)
        assert "lifecycle" not in settings
    one = recs[5]
    hit = es.search(index=pattern, query={"term": {"event.id": one["id"]}})["hits"]["hits"][0]["_source"]
    assert hit["event"]["action"] == one["key"]
    day = datetime.fromisoformat(hit["@timestamp"].replace("Z", "+00:00")).strftime("%Y.%m.%d")
    assert es.search(index=pattern, query={"term": {"event.id": one["id"]}})["hits"]["hits"][0][
        "_index"
    ].endswith(day)
    r = es.search(index=pattern, size=0, query={"term": {"logto.payload.params.grant_type": "refresh_token"}})
    assert r["hits"]["total"]["value"] > 0
    assert b'refresh_token":"' not in orjson.dumps(
        es.search(index=pattern, size=300)["hits"]["hits"]
    ).replace(b'"refresh_token":"******"', b"")


def test_replay_is_absorbed_by_409(tmp_path, es_target):
    es = es_target.client()
    p = es_pipeline(tmp_path, es_target).start()
    write_lines(p.logs / "a.jsonl", range(50))
    pattern = f"{es_target.prefix}-default-*"
    wait_count(es, pattern, 50, p)
    p.stop()
    (p.state / "registry.json").unlink()  # lose the checkpoint: everything is sent again
    before = METRICS.get("docs_duplicate_total")
    p.start()
    deadline = time.monotonic() + 10
    while METRICS.get("docs_duplicate_total") - before < 50 and time.monotonic() < deadline:
        p.runner.step()
    assert METRICS.get("docs_duplicate_total") - before == 50
    assert sorted(all_ids(es, pattern)) == expected(range(50))


def test_server_down_then_back_nothing_lost_memory_bounded(tmp_path, es_target):
    srv = es_target.need_server()
    es = es_target.client()
    p = es_pipeline(tmp_path, es_target, batch_max_docs=100).start()
    log = p.logs / "a.jsonl"
    write_lines(log, range(100))
    pattern = f"{es_target.prefix}-default-*"
    wait_count(es, pattern, 100, p)
    srv.stop()
    write_lines(log, range(100, 15000))
    assert log.stat().st_size > 2 * READ_SIZE
    p.pump(min_time=1.0, until=lambda: True)
    tf = next(iter(p.runner.sources[0].files.values()))
    # Reading paused once max_in_flight batches were pending: memory is bounded by those
    # batches plus one read, whatever the backlog on disk.
    assert p.runner.acks.in_flight == 2
    assert tf.read_pos <= len(record(0)) * 100 + 2 * READ_SIZE
    srv.start()
    wait_count(es, pattern, 15000, p, timeout=60)
    assert sorted(all_ids(es, pattern)) == expected(range(15000))


def test_sustained_item_429_and_request_429(tmp_path, es_target):
    srv = es_target.need_server()
    es = es_target.client()
    srv.faults.item_fail_rate, srv.faults.item_fail_status = 0.6, 429
    srv.faults.reject_bulk = 3
    p = es_pipeline(tmp_path, es_target).start()
    write_lines(p.logs / "a.jsonl", range(600))
    p.pump(min_time=1.0, until=lambda: True)
    srv.faults.item_fail_rate = 0.0
    wait_count(es, f"{es_target.prefix}-default-*", 600, p)
    assert sorted(all_ids(es, f"{es_target.prefix}-default-*")) == expected(range(600))
    # Only failed items were retried: later requests carried fewer items than the first ones.
    bulks = [r for r in srv.requests if r.path.endswith("/_bulk") and b'"create"' in r.body]
    assert min(r.body.count(b'{"create"') for r in bulks) < 200


def test_mapping_conflicts_go_to_dead_letter_index(tmp_path, es_target):
    es = es_target.client()
    p = es_pipeline(tmp_path, es_target).start()
    # An operator created the day's index by hand with a conflicting mapping.
    bad = f"{es_target.prefix}-default-2025.08.21"
    p.runner.sink._ensure_setup()
    es.indices.create(
        index=bad, mappings={"properties": {"event": {"properties": {"outcome": {"type": "long"}}}}}
    )
    write_lines(p.logs / "a.jsonl", range(20))
    dl = f"{es_target.prefix}-deadletter-default"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        p.runner.step()
        if not es.indices.exists(index=dl):
            continue
        # A real node answers 503 to a count until the new index's primary has started (health
        # already says yellow while a new index's primary initializes).
        es.cluster.health(index=dl, wait_for_active_shards="all", timeout="10s")
        if es.count(index=dl)["count"] >= 20:
            break
    es.indices.refresh(index=dl)
    hits = es.search(index=dl, size=50)["hits"]["hits"]
    assert len(hits) == 20
    h = hits[0]["_source"]
    assert h["error"]["type"] == "document_parsing_exception"
    assert h["http"]["response"]["status_code"] == 400
    assert h["logto_shipper"]["target_index"] == bad
    assert orjson.loads(h["logto_shipper"]["original"])["event"]["id"] == h["event"]["id"]
    # ...and processing continued: the checkpoint moved past those lines.
    write_lines(p.logs / "b.jsonl", range(5), tag="ok")
    p.pump(
        min_time=0.5,
        until=lambda: all(e.get("offset", 0) > 0 for e in p.runner.store.streams.values()),
    )


def test_413_splits_batches(tmp_path, es_target):
    srv = es_target.need_server()
    es = es_target.client()
    p = es_pipeline(tmp_path, es_target, gzip=False).start()
    p.runner.sink._ensure_setup()
    srv.faults.max_body = 20_000
    write_lines(p.logs / "a.jsonl", range(300))
    wait_count(es, f"{es_target.prefix}-default-*", 300, p)
    bulks = [r for r in srv.requests if r.path.endswith("_bulk")]
    assert any(len(r.body) > 20_000 for r in bulks)  # refused with 413, then split
    assert sorted(all_ids(es, f"{es_target.prefix}-default-*")) == expected(range(300))


def test_setup_idempotent_and_reconciles_drift(tmp_path, es_target):
    from shipper.sinks.elasticsearch import setup as es_setup

    es_target.need_ilm()
    es = es_target.client()
    p = es_pipeline(tmp_path, es_target)
    idx = p.cfg.index
    first = es_setup.setup(es, idx)
    assert {c.action for c in first} == {"create"}
    assert {c.action for c in es_setup.setup(es, idx)} == {"unchanged"}
    es.ilm.put_lifecycle(
        name=f"{idx.prefix}-policy",
        policy={"phases": {"delete": {"min_age": "1d", "actions": {"delete": {}}}}},
    )
    plan = es_setup.plan(es, idx)
    assert [c.action for c in plan if c.desired.kind == "ilm_policy"] == ["update"]
    es_setup.apply(es, plan)
    assert {c.action for c in es_setup.plan(es, idx)} == {"unchanged"}
    assert (
        es.ilm.get_lifecycle(name=f"{idx.prefix}-policy")[f"{idx.prefix}-policy"]["policy"]["phases"][
            "delete"
        ]["min_age"]
        == "90d"
    )


def test_ilm_deletes_indices_past_retention(tmp_path, es_target):
    srv = es_target.need_server()
    es = es_target.client()
    p = es_pipeline(tmp_path, es_target)
    p.cfg = p.cfg.model_copy(update={"index": p.cfg.index.model_copy(update={"retention": "30d"})})
    p.start()
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=40), now - timedelta(days=2)
    lines = [
        orjson.dumps(
            {
                "id": f"old{i}",
                "key": "RevokeToken",
                "createdAt": int(old.timestamp() * 1000),
                "payload": {"result": "Success"},
            }
        )
        for i in range(5)
    ]
    lines += [
        orjson.dumps(
            {
                "id": f"new{i}",
                "key": "RevokeToken",
                "createdAt": int(recent.timestamp() * 1000),
                "payload": {"result": "Success"},
            }
        )
        for i in range(5)
    ]
    (p.logs / "backfill.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    pattern = f"{es_target.prefix}-default-*"
    wait_count(es, pattern, 10, p)
    old_ix = f"{es_target.prefix}-default-{old:%Y.%m.%d}"
    new_ix = f"{es_target.prefix}-default-{recent:%Y.%m.%d}"
    assert es.indices.exists(index=old_ix) and es.indices.exists(index=new_ix)
    assert srv.advance(0) == [old_ix]  # its day is already past the 30-day retention
    assert not es.indices.exists(index=old_ix) and es.indices.exists(index=new_ix)
    assert srv.advance(27 * 86400) == []
    assert srv.advance(2 * 86400) == [new_ix]


def test_week_and_month_granularity_names():
    from shipper.sinks.elasticsearch.indexing import IndexNamer

    ms = int(datetime(2025, 8, 21, 23, 59, tzinfo=UTC).timestamp() * 1000)  # a Thursday
    assert IndexNamer("p", "n")(ms) == "p-n-2025.08.21"
    assert IndexNamer("p", "n", "week")(ms) == "p-n-2025.08.18"
    assert IndexNamer("p", "n", "month")(ms) == "p-n-2025.08.01"


@pytest.mark.parametrize("version", ["8.15.0", "9.1.0"])
def test_client_line_works_against_8_and_9(tmp_path, version):
    from tests.es_server import EsTestServer

    srv = EsTestServer(version=version).start()
    try:

        class T:
            url, prefix = srv.url, "v"

        p = es_pipeline(tmp_path, T).start()
        write_lines(p.logs / "a.jsonl", range(10))
        from elasticsearch import Elasticsearch

        wait_count(Elasticsearch(srv.url), "v-default-*", 10, p)
        assert all("compatible-with=8" in r.headers.get("accept", "") for r in srv.requests)
    finally:
        srv.stop()


def test_dead_letter_file_when_the_dead_letter_index_refuses(tmp_path, es_target):
    es = es_target.client()
    p = es_pipeline(tmp_path, es_target).start()
    p.runner.sink._ensure_setup()
    es.indices.create(
        index=f"{es_target.prefix}-default-2025.08.21",
        mappings={"properties": {"event": {"properties": {"outcome": {"type": "long"}}}}},
    )
    # The dead-letter index itself cannot take these entries either.
    es.indices.create(
        index=f"{es_target.prefix}-deadletter-default",
        mappings={"properties": {"error": {"properties": {"type": {"type": "long"}}}}},
    )
    write_lines(p.logs / "a.jsonl", range(5))
    dl_file = p.state / "dead-letter" / "elasticsearch.jsonl"
    p.pump(until=lambda: dl_file.exists() and len(dl_file.read_bytes().splitlines()) >= 5, timeout=15)
    entries = [orjson.loads(x) for x in dl_file.read_bytes().splitlines()]
    assert {e["event"]["id"] for e in entries} == set(expected(range(5)))
    assert all(e["http"]["response"]["status_code"] == 400 for e in entries)
    # Dead-lettered is final: the checkpoint moves past those lines.
    p.pump(until=lambda: any(e.get("offset", 0) > 0 for e in p.runner.store.streams.values()))
    assert p.stop() == 0
