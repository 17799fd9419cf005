"""An output that keeps batches in memory: for tests and simulations of the pipeline.

It answers like a real output, asynchronously: a submitted batch is final only once
``deliver`` says so (or at once with ``auto``), ``down`` makes every batch wait as during an
outage, and ``completed(timeout)`` waits on the injected clock, so a test of backpressure or
drain timeouts runs without sleeping.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson

from shipper.clock import SYSTEM, Clock
from shipper.records import Batch, Framer
from shipper.sinks.local import NdjsonFramer


class MemorySink:
    def __init__(self, max_in_flight: int = 2, auto: bool = True, clock: Clock = SYSTEM) -> None:
        self.max_in_flight = max_in_flight
        self.auto = auto
        self.down = ""  # non-empty: nothing completes, and ``problem`` says this
        self.clock = clock
        self.batches: list[Batch] = []  # every batch submitted, in order
        self.delivered: list[int] = []  # seqs delivered, in order
        self._pending: list[int] = []
        self._ready: list[int] = []
        self._event = threading.Event()
        self.closed = False

    @property
    def framer(self) -> Framer:
        return NdjsonFramer()

    def submit(self, batch: Batch) -> None:
        self.batches.append(batch)
        self._pending.append(batch.seq)
        if self.auto and not self.down:
            self.deliver()

    def deliver(self, n: int | None = None, seqs: list[int] | None = None) -> None:
        """Make the ``n`` oldest pending batches (all: None), or those in ``seqs``, final."""
        if seqs is None:
            seqs = self._pending if n is None else self._pending[:n]
        take = [s for s in self._pending if s in set(seqs)]
        self._ready += take
        self.delivered += take
        self._pending = [s for s in self._pending if s not in set(take)]
        self._event.set()

    def completed(self, timeout: float = 0.0) -> list[int]:
        if self.auto and not self.down and self._pending:
            self.deliver()
        if not self._ready and timeout > 0:
            self.clock.wait(self._event, timeout)
        self._event.clear()
        done, self._ready = self._ready, []
        return done

    def committed(self) -> Any:
        return None

    def preflight(self, timeout: float) -> None:
        return None

    def problem(self) -> str | None:
        return self.down or None

    def close(self) -> None:
        self.closed = True

    def documents(self) -> list[dict[str, Any]]:
        """The documents of the delivered batches, in order."""
        by_seq = {b.seq: b for b in self.batches}
        out = []
        for seq in self.delivered:
            for seg in by_seq[seq].segments:
                out += [orjson.loads(line) for line in seg.data.splitlines() if line]
        return out
