"""The daemon loop: source -> normalize -> batch -> sink -> ack -> checkpoint.

One thread drives everything; outputs may deliver on their own threads (``Sink``). Reading
stops while ``max_in_flight`` batches are pending, which bounds memory during an outage.
Shutdown has two phases: stop reading, then drain in-flight batches and force a checkpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson

from shipper.deadletter import DeadLetterFile, entry
from shipper.metrics import METRICS
from shipper.normalize import Document, Normalizer, Rejection
from shipper.pipeline.acks import AckTracker
from shipper.pipeline.checkpoint import CheckpointStore
from shipper.sinks.base import Batch, Sink
from shipper.sources import Chunk, Source

log = logging.getLogger(__name__)
RELOAD = -1  # run() result: a reload was requested; the runner is still live


@dataclass(frozen=True)
class BatchLimits:
    max_docs: int = 1000
    max_bytes: int = 5 << 20
    max_wait: float = 1.0


class Runner:
    """Owns the loop; ``run`` returns an exit status (0 drained cleanly, 1 drain timed out)."""

    def __init__(
        self,
        sources: list[Source],
        sink: Sink,
        normalizer: Normalizer,
        store: CheckpointStore,
        deadletter: DeadLetterFile,
        limits: BatchLimits = BatchLimits(),
        drain_timeout: float = 30.0,
        wake: threading.Event | None = None,
    ) -> None:
        self.sources = sources
        self.sink = sink
        self.normalizer = normalizer
        self.store = store
        self.deadletter = deadletter
        self.limits = limits
        self.drain_timeout = drain_timeout
        self.acks = AckTracker()
        self._source_of: dict[str, Source] = {}
        self._seq = 0
        self._batch = Batch(0)
        self._batch_bytes = 0
        self._batch_started: float | None = None
        self.stop = threading.Event()
        self.reload = threading.Event()  # run() returns so the daemon can swap the config
        self.tick: Any = None  # called every iteration (systemd watchdog, status)
        self.enricher: Any = None  # shipper.enrich.Enricher: names next to ids
        self.wake = wake or threading.Event()  # set by sources (inotify) and by request_stop

    def request_stop(self) -> None:
        """Ask the loop to drain and exit (safe from a signal handler)."""
        self.stop.set()
        self.wake.set()

    # -- stages ----------------------------------------------------------------------------

    def _normalize(self, chunk: Chunk, dead: list[dict[str, Any]]) -> None:
        docs = self._batch.docs
        line = self.normalizer.line
        for f in chunk.frames:
            if f.too_long:
                dead.append(
                    entry(
                        chunk.name,
                        f.start,
                        "line_too_long",
                        f"line of {f.length} bytes exceeds {self.normalizer.max_line_bytes}",
                        f.raw,
                        f.length,
                    )
                )
                continue
            if not f.raw or f.raw.isspace():
                continue
            result = line(f.raw)
            if type(result) is Document:
                if self.enricher is not None:
                    self.enricher.apply(result.body)
                docs.append(result)
                self._batch_bytes += f.length
            else:
                assert isinstance(result, Rejection)
                dead.append(entry(chunk.name, f.start, result.reason, result.detail, result.raw))
        for rec in chunk.records:
            result = self.normalizer.record(rec)
            if isinstance(result, Document):
                if self.enricher is not None:
                    self.enricher.apply(result.body)
                docs.append(result)
            else:
                raw = orjson.dumps(rec, default=str)
                dead.append(entry(chunk.name, None, result.reason, result.detail, raw))
        self._batch.positions[chunk.stream] = chunk.position

    def _ingest(self, chunks: list[Chunk], source: Source) -> None:
        dead: list[dict[str, Any]] = []
        for chunk in chunks:
            self._source_of[chunk.stream] = source
            if self._batch_started is None:
                self._batch_started = time.monotonic()
            self._normalize(chunk, dead)
        if dead:
            # Durable before the positions covering these lines can be acknowledged.
            self.deadletter.write(dead)
            METRICS.inc("records_rejected_total", len(dead))
            for d in dead:
                log.warning(
                    "dead-lettered a line from %s at offset %s: %s",
                    d["source"],
                    d["offset"],
                    d["detail"],
                )

    def _batch_due(self, now: float) -> bool:
        b = self._batch
        if not b.positions:
            return False
        return (
            len(b.docs) >= self.limits.max_docs
            or self._batch_bytes >= self.limits.max_bytes
            or (self._batch_started is not None and now - self._batch_started >= self.limits.max_wait)
        )

    def _submit(self) -> None:
        batch = self._batch
        self.acks.register(batch.seq, batch.positions)
        METRICS.inc("records_normalized_total", len(batch.docs))
        self.sink.submit(batch)
        self._seq += 1
        self._batch = Batch(self._seq)
        self._batch_bytes = 0
        self._batch_started = None

    def _settle(self, timeout: float = 0.0) -> int:
        """Process finished batches; returns how many finished."""
        done = self.sink.completed(timeout)
        for seq in done:
            for stream, pos in self.acks.complete(seq).items():
                src = self._source_of.get(stream)
                if src is not None:
                    src.acked(stream, pos)
        committed = self.sink.committed()
        if committed is not None:
            self.store.stage_output("sink", committed)
        METRICS.set("batches_in_flight", self.acks.in_flight)
        return len(done)

    # -- loop ------------------------------------------------------------------------------

    def step(self) -> bool:
        """One iteration; True when it made progress (read lines or finished batches)."""
        read = False
        if self.acks.in_flight < self.sink.max_in_flight:
            room = self.limits.max_docs - len(self._batch.docs)
            for src in self.sources:
                chunks = src.poll(max(room, 1))
                if chunks:
                    read = True
                    self._ingest(chunks, src)
                    if self._batch_due(time.monotonic()):
                        break
            if self._batch_due(time.monotonic()):
                self._submit()
            self._settle()
        elif self._settle(timeout=0.2):  # backpressure: wait for the output, read nothing
            read = True  # a slot is free again: go straight back to reading
        for src in self.sources:
            src.housekeeping()
        self.store.flush()
        return read

    def run(self) -> int:
        log.info("shipping started")
        while not self.stop.is_set() and not self.reload.is_set():
            if self.tick is not None:
                self.tick()
            if not self.step() and self.acks.in_flight < self.sink.max_in_flight:
                wait = 0.25
                if self._batch_started is not None:
                    wait = max(
                        0.0,
                        min(wait, self._batch_started + self.limits.max_wait - time.monotonic()),
                    )
                if wait > 0:
                    self.wake.wait(wait)
                    self.wake.clear()
        if self.reload.is_set() and not self.stop.is_set():
            return RELOAD  # the caller decides: new config (then shutdown) or keep running
        return self.shutdown()

    def shutdown(self) -> int:
        """Stop reading, deliver what was read, write the final checkpoint."""
        if self._batch.positions:
            while self.acks.in_flight >= self.sink.max_in_flight:
                self._settle(timeout=0.2)
            self._submit()
        deadline = time.monotonic() + self.drain_timeout
        while self.acks.in_flight and time.monotonic() < deadline:
            self._settle(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
        drained = self.acks.in_flight == 0
        self.store.flush(force=True)
        self.sink.close()
        for src in self.sources:
            src.close()
        if self.enricher is not None:
            self.enricher.stop()
        self.deadletter.close()
        if not drained:
            log.error(
                "drain timeout: %d batches undelivered; they will be re-read on restart",
                self.acks.in_flight,
            )
            return 1
        log.info("shipping stopped cleanly")
        return 0

    def run_once(self) -> int:
        """Ship everything readable now, then shut down (``run --once``)."""
        idle = 0
        while not self.stop.is_set() and idle < 2:
            read = self.step()
            if self._batch.positions and not read:
                while self.acks.in_flight >= self.sink.max_in_flight:
                    self._settle(timeout=0.2)
                self._submit()
                self._settle()
            idle = 0 if read or self.acks.in_flight or self._batch.positions else idle + 1
        return self.shutdown()
