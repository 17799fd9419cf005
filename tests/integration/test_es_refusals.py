"""What a real cluster refuses or deletes, the shipper handles: payloads the ``flattened`` mapping
cannot take, values over Lucene's term limit, write-blocked (read-only) indices, days already
past the retention. Against the test server and, in CI, the real nodes (SHIPPER_TEST_ES_URL)."""

from __future__ import annotations

import time

import orjson

from shipper.metrics import METRICS
from tests.integration.test_es_delivery import all_ids, es_pipeline, wait_count


def nest(depth: int, leaf: object = "deep") -> object:
    v = leaf
    for i in range(depth):
        v = {f"k{i}": v}
    return v


def line(log_id: str, payload: dict[str, object], ms: int = 1755763200000) -> bytes:
    return orjson.dumps({"id": log_id, "key": "TriggerHook.PostSignIn", "createdAt": ms, "payload": payload})


HUGE = "x" * 40_000  # over Lucene's 32,766-byte term limit as a keyword


def test_shapes_flattened_and_keyword_refuse_are_indexed_not_dead_lettered(tmp_path, es_target):
    es = es_target.client()
    p = es_pipeline(tmp_path, es_target).start()
    rows = {
        "deep25": {"body": nest(25), "password": "hunter2"},
        "deep-in-arrays": {"a": [[{"b": nest(19, {"secret": "s3", "x": 1})}]]},
        "nul-key": {"a\0b": "v", "result": "Error"},
        "long-key": {"k" * 5000: "v"},
        "huge-user": {"userId": HUGE, "userAgent": HUGE, "error": {"message": HUGE, "code": HUGE}},
        "plain": {"userId": "u1"},
    }
    (p.logs / "a.jsonl").write_bytes(b"".join(line(k, v) + b"\n" for k, v in rows.items()))
    pattern = f"{es_target.prefix}-default-*"
    dead = METRICS.get("docs_dead_lettered_total")
    wait_count(es, pattern, len(rows), p)
    assert p.stop() == 0
    assert METRICS.get("docs_dead_lettered_total") == dead
    assert sorted(all_ids(es, pattern)) == sorted(rows)
    src = {h["_id"]: h["_source"] for h in es.search(index=pattern, size=10)["hits"]["hits"]}
    # 20 keys deep stays an object; what is deeper is its JSON text, masked
    deep = src["deep25"]["logto"]["payload"]["body"]
    for i in range(24, 6, -1):  # body, k24 ... k7: 19 keys
        deep = deep[f"k{i}"]
    assert deep["k6"] == orjson.dumps(nest(6)).decode()  # the object at 20 keys, as text
    assert src["deep25"]["logto"]["payload"]["password"] == "******"
    assert '"secret":"******"' in orjson.dumps(src["deep-in-arrays"]).decode().replace("\\", "")
    assert src["nul-key"]["logto"]["payload"] == {"a\\u0000b": "v", "result": "Error"}
    assert all(d["tags"] == ["logto_payload_reshaped"] for k, d in src.items() if k in ("deep25", "nul-key"))
    assert "tags" not in src["plain"]
    # the huge values are kept in _source, only not searchable as keywords
    assert src["huge-user"]["user"]["id"] == HUGE and src["huge-user"]["user_agent"]["original"] == HUGE
    r = es.search(index=pattern, query={"term": {"tags": "logto_payload_reshaped"}}, size=0)
    assert r["hits"]["total"]["value"] == 4
    r = es.search(index=pattern, query={"term": {"logto.payload.a\\u0000b": "v"}}, size=0)
    assert r["hits"]["total"]["value"] == 1


def test_write_blocked_day_goes_to_the_late_index_exactly_once(tmp_path, es_target):
    """ILM's readonly (warm_after) or a block by hand: late events of that day are written to
    ``<prefix>-<namespace>-late-<today>``, found by the same pattern; a replay adds nothing."""
    es = es_target.client()
    p = es_pipeline(tmp_path, es_target).start()
    pattern = f"{es_target.prefix}-default-*"
    day_index = f"{es_target.prefix}-default-2025.08.21"
    (p.logs / "a.jsonl").write_bytes(b"".join(line(f"a{i}", {}) + b"\n" for i in range(5)))
    wait_count(es, pattern, 5, p)
    es.indices.put_settings(index=day_index, settings={"index.blocks.write": True})
    try:
        late_before = METRICS.get("docs_late_index_total")
        dead = METRICS.get("docs_dead_lettered_total")
        with open(p.logs / "a.jsonl", "ab") as fh:  # late events of the blocked day
            fh.write(b"".join(line(f"b{i}", {}, 1755763200000 + i) + b"\n" for i in range(3)))
        wait_count(es, pattern, 8, p)
        assert p.stop() == 0
        assert METRICS.get("docs_late_index_total") - late_before == 3
        assert METRICS.get("docs_dead_lettered_total") == dead
        late = f"{es_target.prefix}-default-late-{time.strftime('%Y.%m.%d', time.gmtime())}"
        assert sorted(all_ids(es, late)) == ["b0", "b1", "b2"]
        # the alias covers it too (the template applies to the late index)
        assert es.count(index=f"{es_target.prefix}-default")["count"] == 8
        # a replay from the start: the blocked day answers 403 again; nothing is written twice
        (p.state / "registry.json").unlink()
        dup = METRICS.get("docs_duplicate_total")
        p.start()
        deadline = time.monotonic() + 15
        while METRICS.get("docs_duplicate_total") - dup < 8 and time.monotonic() < deadline:
            p.runner.step()
        assert p.stop() == 0
        assert METRICS.get("docs_duplicate_total") - dup == 8
        assert sorted(all_ids(es, pattern)) == ["a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2"]
    finally:
        es.indices.put_settings(index=day_index, settings={"index.blocks.write": False})


def test_days_past_the_retention_are_counted_not_shipped(tmp_path, es_target):
    es = es_target.client()
    p = es_pipeline(tmp_path, es_target)
    p.cfg = p.cfg.model_copy(
        update={"index": p.cfg.index.model_copy(update={"ship_expired": False, "retention": "30d"})}
    )
    p.start()
    now = int(time.time() * 1000)
    old = [line(f"old{i}", {}, now - (40 + i) * 86_400_000) for i in range(3)]
    new = [line(f"new{i}", {}, now - i * 86_400_000) for i in range(2)]
    expired = METRICS.get("docs_expired_total")
    (p.logs / "a.jsonl").write_bytes(b"".join(x + b"\n" for x in [*old, *new]))
    pattern = f"{es_target.prefix}-default-*"
    wait_count(es, pattern, 2, p)
    deadline = time.monotonic() + 10
    while METRICS.get("docs_expired_total") - expired < 3 and time.monotonic() < deadline:
        p.runner.step()
    assert p.stop() == 0
    assert METRICS.get("docs_expired_total") - expired == 3
    assert sorted(all_ids(es, pattern)) == ["new0", "new1"]
    oldest = METRICS.get("docs_expired_oldest_timestamp_seconds")
    assert oldest <= (now - 42 * 86_400_000) / 1000
    status = orjson.loads((p.state / "status.json").read_bytes())
    assert status["totals"]["expired"] == 3 and status["expired_oldest"]


def test_write_block_mixed_with_item_429s_loses_and_doubles_nothing(tmp_path, es_target):
    """Fault injection: a blocked day and random 429 items in the same requests."""
    srv = es_target.need_server()
    es = es_target.client()
    p = es_pipeline(tmp_path, es_target).start()
    pattern = f"{es_target.prefix}-default-*"
    (p.logs / "a.jsonl").write_bytes(line("first", {}) + b"\n")
    wait_count(es, pattern, 1, p)
    es.indices.put_settings(
        index=f"{es_target.prefix}-default-2025.08.21", settings={"index.blocks.write": True}
    )
    srv.faults.item_fail_rate, srv.faults.item_fail_status = 0.4, 429
    now = int(time.time() * 1000)
    with open(p.logs / "a.jsonl", "ab") as fh:  # blocked day and today, interleaved
        fh.write(b"".join(line(f"m{i}", {}, 1755763200000 + i if i % 2 else now) + b"\n" for i in range(300)))
    p.pump(min_time=1.0, until=lambda: True)
    srv.faults.item_fail_rate = 0.0
    wait_count(es, pattern, 301, p)
    assert p.stop() == 0
    ids = all_ids(es, pattern)
    assert sorted(ids) == sorted(["first", *(f"m{i}" for i in range(300))])  # each exactly once
    late = f"{es_target.prefix}-default-late-{time.strftime('%Y.%m.%d', time.gmtime())}"
    assert sorted(all_ids(es, late)) == sorted(f"m{i}" for i in range(1, 300, 2))
