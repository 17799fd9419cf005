"""The Elasticsearch sink's retries on a manual clock: a scripted client answers each ``_bulk``,
so whole-request retries, per-item retries, dead letters, 413 splits and shutdown are tested
without a server, a socket or a sleep (every backoff is exactly what the seeded rng drew)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.clock import ManualClock
from shipper.config import ElasticsearchOutputConfig, IndexConfig
from shipper.normalize import Normalizer
from shipper.normalize.loop import encode
from shipper.records import Batch, Segment
from shipper.sinks.elasticsearch.client import ApiError, TransportConnectionError
from shipper.sinks.elasticsearch.retry import Backoff
from shipper.sinks.elasticsearch.sink import ElasticsearchSink

Step = Callable[[list[dict[str, Any]]], dict[str, Any]]


class ScriptedClient:
    """``bulk`` answers from ``script`` (one step per request; the last one repeats)."""

    def __init__(self, *script: Step) -> None:
        self.script = list(script)
        self.requests: list[list[dict[str, Any]]] = []  # per request, the actions sent

    def options(self, **_: Any) -> ScriptedClient:
        return self

    def bulk(self, operations: bytes, filter_path: str | None = None) -> dict[str, Any]:
        lines = [orjson.loads(x) for x in operations.splitlines()]
        actions = [lines[i] for i in range(0, len(lines), 2)]
        self.requests.append(actions)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return step(actions)


def statuses(*codes: int) -> Step:
    def answer(actions: list[dict[str, Any]]) -> dict[str, Any]:
        assert len(actions) == len(codes)
        items = [
            {
                "create": {
                    "status": c,
                    **({"error": {"type": "mapper_parsing_exception", "reason": "x"}} if c == 400 else {}),
                }
            }
            for c in codes
        ]
        return {"errors": any(c >= 300 for c in codes), "items": items}

    return answer


def all_ok(actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"errors": False, "items": [{"create": {"status": 201}} for _ in actions]}


def unreachable(actions: list[dict[str, Any]]) -> dict[str, Any]:
    raise TransportConnectionError("connection refused")


def too_large(actions: list[dict[str, Any]]) -> dict[str, Any]:
    if len(actions) > 2:
        meta = type("Meta", (), {"status": 413, "headers": {}})()
        raise ApiError("Request Entity Too Large", meta, {})  # type: ignore[arg-type]
    return all_ok(actions)


def ids_of(actions: list[dict[str, Any]]) -> list[str]:
    return [a["create"]["_id"] for a in actions]


def make(tmp_path: Path, client: ScriptedClient, seed: int = 3) -> tuple[ElasticsearchSink, ManualClock]:
    clock = ManualClock()
    out = ElasticsearchOutputConfig(type="elasticsearch", gzip=False, max_in_flight=1)
    sink = ElasticsearchSink(client, IndexConfig(), out, tmp_path / "dl.jsonl", run_setup=False, clock=clock)
    sink.backoff = Backoff(out.retry_initial_backoff, out.retry_max_backoff, random.Random(seed))
    return sink, clock


def batch(sink: ElasticsearchSink, n: int) -> Batch:
    lines = [
        orjson.dumps({"id": f"d{i}", "key": "Interaction.SignIn.Submit", "createdAt": 1_764_583_200_000 + i})
        for i in range(n)
    ]
    data, crc, size, docs, rejects, *_ = encode(lines, Normalizer(native=None).line, sink.framer)
    assert not rejects
    b = Batch(1)
    b.add(Segment(data, docs, size, crc))
    return b


def deliver(sink: ElasticsearchSink, b: Batch) -> list[int]:
    sink.submit(b)
    done = sink.completed(timeout=10)
    sink.close()
    return done


def delays(seed: int, n: int) -> float:
    backoff = Backoff(0.1, 30.0, random.Random(seed))
    return sum(backoff.delay(i) for i in range(n))


def test_an_unreachable_cluster_is_retried_with_backoff_then_the_batch_completes(tmp_path):
    client = ScriptedClient(unreachable, unreachable, unreachable, all_ok)
    sink, clock = make(tmp_path, client)
    start = clock.now
    assert deliver(sink, batch(sink, 3)) == [1]
    assert [ids_of(r) for r in client.requests] == [["d0", "d1", "d2"]] * 4  # the whole batch each time
    assert clock.now - start == pytest.approx(delays(3, 3))  # waited exactly the three backoffs
    assert sink.problem() is None  # "delivering again" clears it


def test_only_the_refused_items_are_sent_again_and_bad_ones_dead_lettered(tmp_path):
    client = ScriptedClient(statuses(201, 429, 400, 409), all_ok)
    sink, clock = make(tmp_path, client)
    start = clock.now
    assert deliver(sink, batch(sink, 4)) == [1]
    first, dead, retried = client.requests
    assert ids_of(first) == ["d0", "d1", "d2", "d3"]
    assert dead == [{"create": {"_index": "logto-audit-deadletter-default", "_id": "d2"}}]
    assert ids_of(retried) == ["d1"]  # the 429 only: 201 and 409 (already indexed) are done
    assert clock.now - start == pytest.approx(delays(3, 1))


def test_a_request_too_large_is_split_until_the_halves_fit(tmp_path):
    client = ScriptedClient(too_large)
    sink, clock = make(tmp_path, client)
    assert deliver(sink, batch(sink, 5)) == [1]
    sent = [ids_of(r) for r in client.requests]
    assert sent[0] == ["d0", "d1", "d2", "d3", "d4"]
    assert sorted(i for r in sent[1:] if len(r) <= 2 for i in r) == ["d0", "d1", "d2", "d3", "d4"]
    assert clock.now == 1_000.0  # a split is no failure: no backoff


def test_close_abandons_a_batch_still_retrying_and_it_is_not_acknowledged(tmp_path):
    client = ScriptedClient(unreachable)
    sink, _ = make(tmp_path, client)
    sink.submit(batch(sink, 2))
    deadline = time.monotonic() + 10
    while len(client.requests) < 3 and time.monotonic() < deadline:  # retrying: the clock never blocks
        pass
    assert len(client.requests) >= 3
    sink.close()
    assert sink.completed() == []  # read again after a restart
    assert "connection refused" in (sink.problem() or "")


class Drawn:
    """An rng whose draws are given (the last one repeats); ``drawn`` counts them."""

    def __init__(self, *draws: float) -> None:
        self.draws, self.drawn = list(draws), 0

    def uniform(self, a: float, b: float) -> float:
        self.drawn += 1
        return self.draws.pop(0) if len(self.draws) > 1 else self.draws[0]


def test_a_request_that_goes_through_wakes_the_batches_waiting_out_a_backoff(tmp_path):
    # The output comes back while the oldest batch waits out a long backoff: the newer batch
    # goes through at once, and must not leave the older one (which holds the checkpoint) asleep.
    up = threading.Event()

    def gated(actions: list[dict[str, Any]]) -> dict[str, Any]:
        if not up.is_set():
            raise TransportConnectionError("connection refused")
        return all_ok(actions)

    client = ScriptedClient(gated)
    out = ElasticsearchOutputConfig(type="elasticsearch", gzip=False, max_in_flight=2)
    index = IndexConfig(ship_expired=True)  # the documents are from 2025; this clock is the system's
    sink = ElasticsearchSink(client, index, out, tmp_path / "dl.jsonl", run_setup=False)
    rng = Drawn(60.0, 0.01)
    sink.backoff = Backoff(0.1, 30.0, rng)  # type: ignore[arg-type]
    sink.submit(batch(sink, 2))
    deadline = time.monotonic() + 10
    while rng.drawn < 1 and time.monotonic() < deadline:  # failed once, now waiting 60 s
        time.sleep(0.01)
    second = batch(sink, 3)
    second.seq = 2
    up.set()
    started = time.monotonic()
    sink.submit(second)
    done: list[int] = []
    while len(done) < 2 and time.monotonic() - started < 10:
        done += sink.completed(timeout=0.2)
    took = time.monotonic() - started
    sink.close()
    assert sorted(done) == [1, 2] and took < 10  # not the 60 s backoff
    assert [ids_of(r) for r in client.requests] == [["d0", "d1"], ["d0", "d1", "d2"], ["d0", "d1"]]
