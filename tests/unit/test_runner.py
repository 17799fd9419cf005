"""The pipeline loop on its own: a list source, the memory sink and a manual clock, so batching
by size and by time, backpressure, ordered acknowledgements, dead letters, stages and the
drain timeout are tested without a process, a socket or a sleep."""

from __future__ import annotations

from typing import Any

import orjson

from shipper.clock import ManualClock
from shipper.deadletter import DeadLetterFile
from shipper.normalize import Normalizer
from shipper.pipeline.checkpoint import CheckpointStore
from shipper.pipeline.progress import Progress
from shipper.pipeline.runner import ONCE_OK, ONCE_REFUSED, REORDER_SLACK, BatchLimits, Runner
from shipper.records import Segment
from shipper.sinks.memory import MemorySink
from shipper.sources import Chunk, Lag
from shipper.sources.lines import Frame


def record(i: int) -> bytes:
    return orjson.dumps(
        {
            "id": f"r{i:05d}",
            "key": "Interaction.SignIn.Submit",
            "createdAt": 1_764_583_200_000 + i,
            "payload": {"result": "Success", "userId": f"u{i % 3}"},
        }
    )


class ListSource:
    """Lines in memory; its position is the number of lines read, acknowledged in order."""

    def __init__(self, lines: list[bytes], stream: str = "mem") -> None:
        self.lines, self.stream, self.read, self.acks = lines, stream, 0, []
        self.polls = 0
        self.closed = False

    def poll(self, max_records: int) -> list[Chunk]:
        self.polls += 1
        take = self.lines[self.read : self.read + max_records]
        if not take:
            return []
        frames, offset = [], self.read * 1000
        for raw in take:
            frames.append(Frame(raw, offset, offset + len(raw) + 1, len(raw)))
            offset += 1000
        self.read += len(take)
        return [Chunk(self.stream, self.stream, frames, self.read)]

    def acked(self, stream: str, position: Any) -> None:
        assert stream == self.stream
        self.acks.append(position)

    def housekeeping(self) -> None:
        pass

    def lag(self) -> list[Lag]:
        return [Lag(self.stream, "records", len(self.lines) - self.read)]

    def close(self) -> None:
        self.closed = True


TEN = BatchLimits(10, 1 << 20, 1.0)


def make(tmp_path, lines, sink, clock, limits=TEN, **kw) -> Runner:
    return Runner(
        [ListSource(lines)],
        sink,
        Normalizer(max_line_bytes=kw.pop("max_line", 1 << 20)),
        CheckpointStore(tmp_path / "state"),
        DeadLetterFile(tmp_path / "state" / "dead-letter" / "records.jsonl"),
        limits,
        kw.pop("drain", 30.0),
        clock=clock,
        **kw,
    )


def ids(sink: MemorySink) -> list[str]:
    return [d["event"]["id"] for d in sink.documents()]


def test_batches_by_size_in_order_and_acks_every_position(tmp_path):
    clock = ManualClock()
    sink = MemorySink(clock=clock)
    r = make(tmp_path, [record(i) for i in range(25)], sink, clock)
    assert r.run_once(timeout=5) == ONCE_OK
    assert [b.count for b in sink.batches] == [10, 10, 5]
    assert ids(sink) == [f"r{i:05d}" for i in range(25)]
    src = r.sources[0]
    assert src.acks == sorted(src.acks) and src.acks[-1] == 25 and src.closed and sink.closed


def test_a_quiet_inputs_events_leave_as_soon_as_it_has_nothing_more(tmp_path):
    clock = ManualClock()
    sink = MemorySink(clock=clock)
    r = make(tmp_path, [record(i) for i in range(3)], sink, clock, BatchLimits(100, 1 << 20, 1.0))
    r.step()
    assert sink.batches == []  # read this step: more may follow at once
    r.step()
    assert [b.count for b in sink.batches] == [3] and clock.now == 1_000.0  # no wait at all


class Trickle(ListSource):
    """One line per poll: an input that always has more."""

    def poll(self, max_records: int) -> list[Chunk]:
        return super().poll(min(1, max_records))


def test_a_busy_input_still_fills_batches_while_it_keeps_delivering(tmp_path):
    clock = ManualClock()
    sink = MemorySink(clock=clock)
    r = make(tmp_path, [], sink, clock)
    r.sources = [Trickle([record(i) for i in range(25)])]
    for _ in range(30):
        r.step()
    assert [b.count for b in sink.batches] == [10, 10, 5]  # by size; the rest once it went quiet


def test_a_small_batch_waits_for_max_wait_without_flush_when_idle(tmp_path):
    clock = ManualClock()
    sink = MemorySink(clock=clock)
    limits = BatchLimits(100, 1 << 20, 1.0, flush_when_idle=False)
    r = make(tmp_path, [record(i) for i in range(3)], sink, clock, limits)
    r.step()
    r.step()
    assert sink.batches == []  # three documents, not due yet
    clock.advance(0.99)
    r.step()
    assert sink.batches == []
    clock.advance(0.01)
    r.step()
    assert [b.count for b in sink.batches] == [3]


def test_backpressure_stops_reading_until_the_output_answers(tmp_path):
    clock = ManualClock()
    sink = MemorySink(max_in_flight=1, auto=False, clock=clock)
    r = make(tmp_path, [record(i) for i in range(40)], sink, clock, BatchLimits(5, 1 << 20, 0.0))
    src = r.sources[0]
    for _ in range(20):
        r.step()
    assert len(sink.batches) == 1 and src.read <= 10  # one in flight; reading paused
    polls = src.polls
    started = clock.monotonic()
    for _ in range(5):
        r.step()
    assert src.polls == polls and clock.monotonic() - started >= 0.9  # waited on the output
    assert src.acks == []  # nothing final yet: nothing acknowledged
    sink.deliver()
    for _ in range(3):
        r.step()
    assert len(sink.batches) >= 2 and src.acks[0] == sink.batches[0].positions["mem"]


def test_acknowledgements_follow_input_order_whatever_the_output_finishes_first(tmp_path):
    clock = ManualClock()
    sink = MemorySink(max_in_flight=2, auto=False, clock=clock)
    r = make(tmp_path, [record(i) for i in range(10)], sink, clock, BatchLimits(5, 1 << 20, 0.0))
    src = r.sources[0]
    for _ in range(6):
        r.step()
    assert [b.seq for b in sink.batches] == [0, 1]
    sink.deliver(seqs=[1])  # the second batch first
    r.step()
    assert src.acks == []  # batch 0 is not final: its lines come first
    sink.deliver(seqs=[0])
    r.step()
    assert src.acks == [10]  # both, as one position


def test_a_batch_retried_for_long_stops_reading_once_the_newer_ones_are_reorder_window_ahead(tmp_path):
    # The output is back, but batch 0 waits out its backoff while the newer ones go through:
    # nothing can be checkpointed past it, so reading must not run on without bound.
    clock = ManualClock()
    sink = MemorySink(max_in_flight=2, auto=False, clock=clock)
    r = make(tmp_path, [record(i) for i in range(200)], sink, clock, BatchLimits(5, 1 << 20, 0.0))
    src = r.sources[0]
    window = sink.max_in_flight + REORDER_SLACK
    for _ in range(100):
        r.step()
        sink.deliver(seqs=[b.seq for b in sink.batches if b.seq])  # all but the oldest
    assert [b.seq for b in sink.batches] == list(range(window))  # then reading paused
    assert src.read <= (window + 1) * 5 and src.acks == []
    assert src.read <= Runner.unacked_bound(BatchLimits(5, 1 << 20, 0.0), sink.max_in_flight)
    sink.deliver(seqs=[0])  # the old batch goes through: reading resumes, every line ships
    for _ in range(100):
        r.step()
        sink.deliver()
    assert sorted(ids(sink)) == [f"r{i:05d}" for i in range(200)] and src.acks[-1] == 200


def test_refused_lines_are_dead_lettered_in_order_and_the_rest_ships(tmp_path):
    clock = ManualClock()
    sink = MemorySink(clock=clock)
    lines = [record(0), b"{not json", record(2), b"x" * 3000, record(4)]
    progress = Progress(None, 0, clock=clock.monotonic)
    r = make(tmp_path, lines, sink, clock, max_line=2048, progress=progress)
    assert r.run_once(timeout=5) == ONCE_REFUSED
    assert ids(sink) == ["r00000", "r00002", "r00004"]
    dead = [orjson.loads(x) for x in (tmp_path / "state/dead-letter/records.jsonl").read_bytes().splitlines()]
    assert [(d["offset"], d["reason"]) for d in dead] == [(1000, "invalid_json"), (3000, "line_too_long")]
    assert r.sources[0].acks[-1] == 5  # dead letters are durable, so their lines are passed


def test_a_stage_sees_every_segment_before_the_sink(tmp_path):
    clock = ManualClock()
    sink = MemorySink(clock=clock)
    seen: list[tuple[str, int]] = []
    closed: list[bool] = []

    class Recorder:
        def segment(self, seg: Segment, stream: str) -> None:
            assert not any(seg is s for b in sink.batches for s in b.segments)  # before the sink
            seen.append((stream, len(seg.docs)))

        def close(self) -> None:
            closed.append(True)

    r = make(tmp_path, [record(i) for i in range(12)], sink, clock, stages=[Recorder()])
    assert r.run_once(timeout=5) == ONCE_OK
    assert sum(n for _, n in seen) == 12 and {s for s, _ in seen} == {"mem"} and closed == [True]


def test_drain_timeout_with_the_output_down_checkpoints_nothing_undelivered(tmp_path):
    clock = ManualClock()
    sink = MemorySink(clock=clock)
    sink.down = "cluster unreachable"
    r = make(tmp_path, [record(i) for i in range(7)], sink, clock, drain=30.0)
    for _ in range(3):
        r.step()
    started = clock.monotonic()
    assert r.shutdown() == 1  # drain timed out ...
    assert 30.0 <= clock.monotonic() - started < 31.0  # ... after exactly its timeout, on the clock
    assert r.sources[0].acks == []
    registry = tmp_path / "state" / "registry.json"  # nothing acknowledged: read again at the next start
    assert not registry.exists() or orjson.loads(registry.read_bytes())["streams"] == {}


def test_names_reach_the_documents_and_dead_letters_keep_the_lines_as_read(tmp_path):
    """The enricher splices names into the line the normalizer takes; a refused line is
    dead-lettered with the bytes the source read, not the spliced ones."""
    from shipper.enrich import Enricher

    clock = ManualClock()
    sink = MemorySink(clock=clock)
    e = Enricher([])
    e.users.put(("default", "u1"), ("alice", None))
    timeless = orjson.dumps({"id": "r-x", "key": "Interaction.SignIn.Submit", "payload": {"userId": "u1"}})
    progress = Progress(None, 0, clock=clock.monotonic)
    r = make(tmp_path, [record(0), record(1), timeless], sink, clock, enricher=e, progress=progress)
    assert r.run_once(timeout=5) == ONCE_REFUSED
    docs = {d["event"]["id"]: d for d in sink.documents()}
    assert docs["r00001"]["user"] == {"id": "u1", "name": "alice"} and "name" not in docs["r00000"]["user"]
    (dead,) = [
        orjson.loads(x) for x in (tmp_path / "state/dead-letter/records.jsonl").read_bytes().splitlines()
    ]
    assert dead["raw"] == timeless.decode() and "_names" not in dead["raw"]
