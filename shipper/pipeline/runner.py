"""The daemon loop: source -> normalize -> batch -> sink -> ack -> checkpoint.

One thread drives everything; outputs may deliver on their own threads (``Sink``). Reading
stops while ``max_in_flight`` batches are pending, or while the oldest unfinished batch is
``max_in_flight + REORDER_SLACK`` batches behind the next: what is read past a batch still
being retried is held (the checkpoint cannot pass it), so both bound memory, during an outage
and after it.
Shutdown has two phases: stop reading, then drain in-flight batches and force a checkpoint.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipper.clock import SYSTEM, Clock
from shipper.deadletter import DeadLetterFile, entry
from shipper.metrics import METRICS
from shipper.normalize import Normalizer
from shipper.normalize.loop import Encoded, encode
from shipper.normalize.pool import NormalizerPool, Ticket
from shipper.pipeline.acks import AckTracker
from shipper.pipeline.checkpoint import CheckpointStore
from shipper.pipeline.progress import Progress
from shipper.records import Batch, Segment, Stage, is_blank, too_long
from shipper.sinks.base import Sink
from shipper.sources import Chunk, Lag, Source
from shipper.sources.lines import Frame
from shipper.wake import Wake

if TYPE_CHECKING:
    from shipper.enrich import Enricher

log = logging.getLogger(__name__)
RELOAD = -1  # run() result: a reload was requested; the runner is still live
# run_once() results (the CLI's exit codes): everything delivered; some records refused
# (dead-lettered); the output or an input could not be reached within the timeout.
ONCE_OK, ONCE_REFUSED, ONCE_UNREACHABLE = 0, 1, 3
# Requests queued per normalizer worker. Answers are merged in order, so a worker that is done
# waits while the oldest request (another worker's) is still running: a deeper queue keeps
# every worker busy through such waits. Each request is at most one file read (READ_SIZE).
QUEUE_PER_WORKER = 4
# Batches may finish out of order, up to this many past the oldest unfinished one and the
# other slots (a fixed slack, not per slot: detection remembers the ids of every event that may
# be read past the checkpoint). When the output came back, the oldest batch could still be
# waiting out its backoff while the others went through: nothing past it could be
# checkpointed, and the detection's log of signals not yet written grew with every event read.
REORDER_SLACK = 4


@dataclass(frozen=True)
class BatchLimits:
    """A batch is sent at ``max_docs`` or ``max_bytes``, after ``max_wait`` at the latest, and
    with ``flush_when_idle`` as soon as the inputs have nothing more to read (and the output has
    a free slot): a quiet log's event leaves at once, a busy one's in full batches, since while
    requests are in flight the next batch fills."""

    max_docs: int = 2000
    max_bytes: int = 5 << 20
    max_wait: float = 1.0
    flush_when_idle: bool = True


@dataclass(slots=True)
class _Pending:
    """A chunk whose lines are being normalized by the pool."""

    chunk: Chunk
    ticket: Ticket | None
    sent: list[Frame] | None  # the frames in the request (None: the chunk's block, whole)
    dead: list[dict[str, Any]]  # lines refused before normalizing (too long)


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
        wake: Wake | None = None,
        pool: NormalizerPool | None = None,
        *,
        clock: Clock = SYSTEM,
        tick: Callable[[], None] | None = None,
        enricher: Enricher | None = None,
        progress: Progress | None = None,
        stages: Sequence[Stage] = (),
        line_limit: int | None = None,
    ) -> None:
        """``tick`` runs every iteration (systemd watchdog); ``enricher`` adds names to the
        lines before they are normalized; ``progress`` writes progress lines
        and status.json; ``stages`` see every segment between normalize and the sink;
        ``line_limit`` the inputs' line limit that dead letters name (default: the normalizer's)."""
        self.sources = sources
        self.sink = sink
        self.normalizer = normalizer
        self.store = store
        self.deadletter = deadletter
        store.hold = lambda: deadletter.pending > 0  # no checkpoint past dead letters not yet durable
        self.limits = limits
        self.drain_timeout = drain_timeout
        self.acks = AckTracker()
        self.pool = pool  # None: normalize on this thread
        self._pending: deque[_Pending] = deque()
        self._source_of: dict[str, Source] = {}
        self._seq = 0
        self._batch = Batch(0)
        self._batch_started: float | None = None
        self._docs_of: dict[int, int] = {}  # documents per batch in flight
        self.clock = clock
        self._last_completion = clock.monotonic()
        self.progress = progress
        self.failure = ""  # run_once: why it gave up (unreachable output or input)
        # Set from signal handlers: Wake, not threading.Event, whose lock a handler can deadlock on.
        self.stop = Wake()
        self.reload = Wake()  # run() returns so the daemon can swap the config
        self.tick = tick
        self.enricher = enricher
        # What the inputs hold lines to (the normalizer's limit may add room for names).
        self._line_limit = line_limit or normalizer.max_line_bytes
        self.stages = list(stages)
        self.wake = wake or Wake()  # set by sources (inotify) and by request_stop

    @staticmethod
    def unacked_bound(limits: BatchLimits, max_in_flight: int) -> int:
        """At most this many records are read past the checkpoint: the batches that may finish
        out of order (REORDER_SLACK), and the open one."""
        return (max_in_flight + REORDER_SLACK + 1) * limits.max_docs

    def _free_slot(self) -> bool:
        """The output takes another batch now (see REORDER_SLACK)."""
        room, behind = self.sink.max_in_flight, self._seq - self.acks.oldest(self._seq)
        return self.acks.in_flight < room and behind < room + REORDER_SLACK

    def lags(self) -> list[Lag]:
        return [lag for src in self.sources for lag in src.lag()]

    def request_stop(self) -> None:
        """Ask the loop to drain and exit (safe from a signal handler)."""
        self.stop.set()
        self.wake.set()

    # -- stages ----------------------------------------------------------------------------

    def _screen(self, chunk: Chunk, dead: list[dict[str, Any]]) -> list[Frame]:
        """The frames worth normalizing; over-long lines go to ``dead``, blank ones nowhere."""
        keep = []
        for f in chunk.frames:
            if f.too_long:
                dead.append(
                    entry(
                        chunk.name,
                        f.start if chunk.offsets else None,
                        *too_long(f.length, self._line_limit),
                        f.raw,
                        f.length,
                    )
                )
            elif not is_blank(f.raw):
                keep.append(f)
        return keep

    def _lines(self, chunk: Chunk, frames: list[Frame]) -> list[bytes]:
        """What the normalizer takes: the lines, with their names when names are on (dead
        letters keep the frames' own bytes)."""
        if self.enricher is None or chunk.named:
            return [f.raw for f in frames]
        annotate = self.enricher.annotate
        return [annotate(f.raw) for f in frames]

    def _normalize(self, chunk: Chunk, dead: list[dict[str, Any]]) -> None:
        """In this thread (no pool)."""
        mark = len(dead)
        if chunk.block:
            chunk.frames, chunk.block = chunk.lines(), b""
        sent = self._screen(chunk, dead)
        frame = self.sink.framer
        if sent:
            lines, n = self._lines(chunk, sent), self.normalizer
            encoded = encode(lines, n.line, frame, native=n.native, detect=bool(self.stages))
            offsets = chunk.offsets
            self._place(
                chunk, encoded, dead, mark, lambda i: (sent[i].start if offsets else None, sent[i].raw)
            )
        self._batch.positions[chunk.stream] = chunk.position

    def _place(
        self,
        chunk: Chunk,
        encoded: Encoded,
        dead: list[dict[str, Any]],
        mark: int,
        locate: Callable[[int], tuple[int | None, bytes]],
    ) -> None:
        """Documents into the batch; rejections into ``dead[mark:]``, this chunk's, in input
        order; ``locate(i)`` is the offset and raw bytes of input ``i``."""
        data, crc, size, docs, rejects, left, signals = encoded
        if left:
            METRICS.inc("records_left_to_python_total", left)
        if docs:
            seg = Segment(data, docs, size, crc, signals)
            for stage in self.stages:
                stage.segment(seg, chunk.stream)
            self._batch.add(seg)
        for i, reason, detail in rejects:
            offset, raw = locate(i)
            dead.append(entry(chunk.name, offset, reason, detail, raw))
        if rejects and len(dead) > mark + len(rejects) and chunk.offsets:  # over-long lines set aside first
            dead[mark:] = sorted(dead[mark:], key=lambda d: d["offset"])

    def _ingest(self, chunks: list[Chunk], source: Source) -> None:
        dead: list[dict[str, Any]] = []
        for chunk in chunks:
            self._source_of[chunk.stream] = source
            if self._batch_started is None:
                self._batch_started = self.clock.monotonic()
            if chunk.block and self.enricher is not None and not chunk.named:  # names go into each line
                chunk.frames, chunk.block = chunk.lines(), b""
            if self.pool is not None and chunk.block:
                block = self.pool.submit_block(chunk.block, chunk.count())
                self._pending.append(_Pending(chunk, block, None, []))
            elif self.pool is not None:
                own: list[dict[str, Any]] = []
                sent = self._screen(chunk, own)
                ticket = self.pool.submit(self._lines(chunk, sent)) if sent else None
                self._pending.append(_Pending(chunk, ticket, sent, own))
            else:
                self._normalize(chunk, dead)
        self._dead_letter(dead)

    def _merge(self, p: _Pending) -> None:
        """Put a chunk's pool results into the batch, in line order, and its position after them."""
        chunk, dead, sent = p.chunk, p.dead, p.sent
        if p.ticket is not None:
            assert self.pool is not None

            def locate(i: int) -> tuple[int | None, bytes]:
                nonlocal sent
                if sent is None:
                    sent = chunk.lines()  # a block: framed only now, for the lines refused
                return (sent[i].start if chunk.offsets else None), sent[i].raw

            self._place(chunk, self.pool.result(), dead, 0, locate)
        self._dead_letter(dead)
        self._batch.positions[chunk.stream] = chunk.position
        if self._batch_started is None:
            self._batch_started = self.clock.monotonic()

    def _drain_pool(self, block: bool) -> bool:
        """Merge answered chunks while the batch has room; True when any was merged."""
        merged, pool = False, self.pool
        assert pool is not None
        while self._pending:
            p = self._pending[0]
            if p.ticket is not None and not block and not pool.ready():
                break
            count = p.ticket.count if p.ticket is not None else 0
            if self._batch.count and self._batch.count + count > self.limits.max_docs:
                if not self._free_slot():
                    break  # the output is full: leave answers in the pipe (backpressure)
                self._submit()
            self._merge(self._pending.popleft())
            merged = True
            block = False  # waited once; take the rest only as far as they are ready
            if self._batch_due(self.clock.monotonic()) and self._free_slot():
                self._submit()
        return merged

    def _dead_letter(self, dead: list[dict[str, Any]]) -> None:
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
            b.count >= self.limits.max_docs
            or b.size >= self.limits.max_bytes
            or (self._batch_started is not None and now - self._batch_started >= self.limits.max_wait)
        )

    def _submit(self) -> None:
        batch = self._batch
        self.acks.register(batch.seq, batch.positions)
        self._docs_of[batch.seq] = batch.count
        METRICS.inc("records_normalized_total", batch.count)
        self.sink.submit(batch)
        self._seq += 1
        self._batch = Batch(self._seq)
        self._batch_started = None

    def _settle(self, timeout: float = 0.0) -> int:
        """Process finished batches; returns how many finished."""
        done = self.sink.completed(timeout)
        if done:
            self._last_completion = self.clock.monotonic()
            METRICS.inc("docs_acknowledged_total", sum(self._docs_of.pop(seq, 0) for seq in done))
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
        pool = self.pool
        if self.deadletter.pending:
            self.deadletter.retry()  # a full disk: try again each step, cheap while it fails
        if self._free_slot():
            if pool is None:
                room = self.limits.max_docs - self._batch.count
            else:
                read = self._drain_pool(block=False)
                # Half-batch requests, a few queued per worker: workers never wait for this
                # thread, and a merged request never overfills a batch by much.
                room = max(1, self.limits.max_docs // 2) if len(pool) < QUEUE_PER_WORKER * pool.size else 0
            polled = room or pool is None
            for src in self.sources if polled else ():
                chunks = src.poll(max(room, 1))
                if chunks:
                    read = True
                    self._ingest(chunks, src)
                    if self._batch_due(self.clock.monotonic()) or (
                        pool and len(pool) >= QUEUE_PER_WORKER * pool.size
                    ):
                        break
            if pool is not None and self._drain_pool(block=not read and bool(self._pending)):
                read = True
            idle = polled and not read and not self._pending and self.limits.flush_when_idle
            due = (idle and bool(self._batch.positions)) or self._batch_due(self.clock.monotonic())
            if due and self._free_slot():
                self._submit()
            self._settle()
        elif self._settle(timeout=0.2):  # backpressure: wait for the output, read nothing
            read = True  # a slot is free again: go straight back to reading
        for src in self.sources:
            src.housekeeping()
        if pool is not None:
            pool.stop_idle()
        self.store.flush()
        return read

    def run(self) -> int:
        log.info("shipping started")
        while not self.stop.is_set() and not self.reload.is_set():
            if self.tick is not None:
                self.tick()
            if self.progress is not None:
                self.progress.tick(self.lags)
            if not self.step() and self._free_slot():
                wait = 0.25
                if self._batch_started is not None:
                    wait = max(
                        0.0,
                        min(wait, self._batch_started + self.limits.max_wait - self.clock.monotonic()),
                    )
                if wait > 0:
                    self.clock.wait(self.wake, wait)
                    self.wake.clear()
        if self.reload.is_set() and not self.stop.is_set():
            return RELOAD  # the caller decides: new config (then shutdown) or keep running
        return self.shutdown()

    def shutdown(self) -> int:
        """Stop reading, deliver what was read, write the final checkpoint.

        All within ``drain_timeout``, also while the output is down: what is not final by then
        is simply not checkpointed, and is read again at the next start.
        """
        deadline = self.clock.monotonic() + self.drain_timeout

        def wait() -> None:
            self._settle(timeout=min(0.2, max(0.0, deadline - self.clock.monotonic())))

        while self._pending and self.clock.monotonic() < deadline:
            if not self._drain_pool(block=True):
                wait()  # the output is full: wait for a free slot
        if self._batch.positions:
            while not self._free_slot() and self.clock.monotonic() < deadline:
                wait()
            if self._free_slot():
                self._submit()
        while self.acks.in_flight and self.clock.monotonic() < deadline:
            wait()
        drained = self.acks.in_flight == 0 and not self._pending and not self._batch.positions
        self.store.flush(force=True)
        if self.progress is not None:
            self.progress.write_status(self.lags())  # where it stopped, for `status`
        self.sink.close()
        for src in self.sources:
            src.close()
        if self.enricher is not None:
            self.enricher.stop()
        for stage in self.stages:
            stage.close()
        self.deadletter.close()
        if self.pool is not None:
            self.pool.close()
        if not drained:
            log.error(
                "drain timeout: %d batches undelivered; they will be re-read on restart",
                self.acks.in_flight,
            )
            return 1
        log.info("shipping stopped cleanly")
        return 0

    def run_once(self, timeout: float = 60.0) -> int:
        """Ship everything readable now, then shut down (``run --once``, a batch job).

        ``ONCE_OK`` when all was delivered, ``ONCE_REFUSED`` when some records were rejected
        or dead-lettered, ``ONCE_UNREACHABLE`` when for ``timeout`` seconds batches stopped
        completing or an input could not be read (``failure`` says why): it always ends.
        """
        idle = 0
        stuck_since: float | None = None
        while not self.stop.is_set() and idle < 2:
            read = self.step()
            if self.progress is not None:
                self.progress.tick(self.lags)
            if self._batch.positions and not read and self._free_slot():
                self._submit()
            self._settle(timeout=0.05 if self.acks.in_flight else 0.0)
            lags = self.lags() if not read else []
            down = [lag for lag in lags if lag.unavailable]
            under_way = any(lag.busy for lag in lags)
            now = self.clock.monotonic()
            waiting = bool(self.acks.in_flight) and now - self._last_completion >= timeout
            if down or waiting:
                stuck_since = now if stuck_since is None else stuck_since
                if waiting or now - stuck_since >= timeout:
                    self.failure = self._why_stuck(down, timeout)
                    break
                self.clock.sleep(0.1)  # the source backs off itself; do not spin
            else:
                stuck_since = None
            busy = read or self.acks.in_flight or self._batch.positions or self._pending or down
            if under_way and not down:
                self.clock.sleep(0.02)  # a source fetching in the background: wait for its answer
            idle = 0 if busy or under_way else idle + 1
        if self.failure:
            log.error("giving up: %s", self.failure)
            self.drain_timeout = min(self.drain_timeout, 1.0)
            self.shutdown()
            return ONCE_UNREACHABLE
        code = self.shutdown()
        if code != 0:
            return ONCE_UNREACHABLE
        t = self.progress.totals() if self.progress else None
        return ONCE_REFUSED if t is not None and (t.rejected or t.dead_lettered) else ONCE_OK

    def _why_stuck(self, down: list[Lag], timeout: float) -> str:
        if down:
            return "; ".join(f"input {d.source} unavailable for {timeout:g} s: {d.unavailable}" for d in down)
        return f"output not accepting batches for {timeout:g} s: {self.sink.problem() or 'no answer'}"
