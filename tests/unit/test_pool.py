"""The normalizer worker pool: same answers as in-process, in order, through worker deaths."""

from __future__ import annotations

import os
import signal
import sys

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.generate import lines as generated_lines
from shipper.metrics import METRICS
from shipper.normalize import Normalizer
from shipper.normalize.loop import encode
from shipper.normalize.mask import DEFAULT_RULES
from shipper.normalize.pool import NormalizerPool
from shipper.sinks.compress import inflate
from shipper.sinks.elasticsearch.framing import BulkFramer
from shipper.sinks.elasticsearch.indexing import IndexNamer

RULES = DEFAULT_RULES.extended(contain=["ssn"])  # extra rules must reach the workers
LOCAL = Normalizer(RULES, 4096)
FRAME = BulkFramer(IndexNamer("logto-audit", "default"), gzip_level=1)  # workers compress too


def local(lines):
    return encode(lines, LOCAL.line, FRAME, skip_blank=True)


@pytest.fixture(scope="module")
def pool():
    p = NormalizerPool(2, RULES, 4096, FRAME, start_lines=0)
    yield p
    p.close()


def mixed_lines(n: int) -> list[bytes]:
    good = [ln.rstrip(b"\n") for ln in generated_lines(n, seed=7)]
    bad = [b"{oops", b"\xff\xfe", b"[]", b'{"id":"x","key":"K","createdAt":"never"}', b"x" * 5000]
    secret = orjson.dumps(
        {"id": "s1", "key": "Interaction.Create", "createdAt": 1, "payload": {"ssn": "123-45-6789"}}
    )
    out = good + bad + [secret]
    return out[::2] + out[1::2]  # interleave good and bad


def test_same_answers_as_in_process_and_in_order(pool):
    lines = mixed_lines(300)
    chunks = [lines[i : i + 37] for i in range(0, len(lines), 37)]
    for c in chunks:
        pool.submit(c)
    assert len(pool) == len(chunks) and pool.pending_lines == len(lines)
    got = [pool.result() for _ in chunks]
    assert got == [local(c) for c in chunks]
    assert len(pool) == 0 and pool.pending_lines == 0
    data = b"".join(inflate(g[0]) for g in got if g[3])
    assert all(len(inflate(g[0])) == g[2] for g in got if g[3])
    assert b"123-45-6789" not in data and data.count(b'{"create":') == sum(len(g[3]) for g in got)
    assert sum(len(g[3]) + len(g[4]) for g in got) == len(lines)
    assert {r[1] for g in got for r in g[4]} >= {"invalid_json", "invalid_utf8", "not_an_object"}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.binary(max_size=60).filter(lambda b: b"\n" not in b), max_size=8), max_size=6))
def test_any_bytes_answered_like_in_process(pool, requests):
    for r in requests:
        pool.submit(r)
    assert [pool.result() for _ in requests] == [local(r) for r in requests]


def test_killed_worker_is_restarted_and_its_requests_answered():
    p = NormalizerPool(2, RULES, 4096, FRAME, start_lines=0)
    try:
        lines = mixed_lines(200)
        chunks = [lines[i : i + 20] for i in range(0, len(lines), 20)]
        before = METRICS.get("worker_restarts_total")
        p._ensure()  # workers start with the first request; the victim is picked before it
        victim = p._workers[0].proc
        os.kill(victim.pid, signal.SIGSTOP)  # cannot answer anything sent to it
        for c in chunks:
            p.submit(c)
        os.kill(victim.pid, signal.SIGKILL)
        got = [p.result() for _ in chunks]
        assert got == [local(c) for c in chunks]
        assert METRICS.get("worker_restarts_total") - before == 1
        assert p._workers[0].proc.pid != victim.pid and p._workers[0].proc.poll() is None
    finally:
        p.close()


def test_requests_that_keep_killing_workers_fall_back_in_process():
    # A request that kills workers twice is normalized in-process; workers that die at once,
    # whatever they are given, are given up after a few restarts (no endless respawning).
    p = NormalizerPool(
        2, RULES, 4096, FRAME, command=[sys.executable, "-c", "import os; os._exit(3)"], start_lines=0
    )
    try:
        lines = mixed_lines(50)
        before = METRICS.get("worker_restarts_total")
        parts = [lines[i : i + 13] for i in range(0, 52, 13)]
        for part in parts:
            p.submit(part)
        assert [p.result() for _ in parts] == [local(part) for part in parts]  # retried, then in-process
        p.submit(parts[0])
        assert p.result() == local(parts[0])
        assert p.broken and p.size == 2
        restarts = METRICS.get("worker_restarts_total") - before
        assert 0 < restarts <= 5
        for i in range(0, 50, 5):  # from now on: answered in-process, nothing started
            p.submit(lines[i : i + 5])
        assert [p.result() for _ in range(10)] == [local(lines[i : i + 5]) for i in range(0, 50, 5)]
        assert METRICS.get("worker_restarts_total") - before == restarts
    finally:
        p.close()


def test_close_stops_every_worker():
    p = NormalizerPool(2, RULES, 4096, FRAME, start_lines=0)
    procs = [w.proc for w in p._workers]
    p.submit([b"{}"])
    p.close()
    assert all(pr.poll() is not None for pr in procs)


def test_workers_run_only_while_there_is_a_backlog():
    from shipper.clock import ManualClock

    clock = ManualClock()
    p = NormalizerPool(2, RULES, 4096, FRAME, start_lines=50, idle_stop=60.0, clock=clock)
    try:
        few, many = mixed_lines(10), mixed_lines(200)
        t = p.submit(few)
        assert p.running == 0 and t.result is not None  # a trickle: normalized in-process, at once
        assert p.result() == local(few)
        p.submit(many)
        assert p.running == 2  # a backlog: workers started
        p.submit(few)  # while they run, small requests go to them too (answers stay in order)
        assert [p.result(), p.result()] == [local(many), local(few)]
        clock.advance(59)
        assert not p.stop_idle() and p.running == 2
        clock.advance(1)
        assert p.stop_idle() and p.running == 0
        p.submit(many)
        assert p.running == 2 and p.result() == local(many)  # started again for the next backlog
    finally:
        p.close()
