"""Ordered acknowledgements: a checkpoint never skips over a record still in flight.

Each batch registers, per stream, the position just after its last record. Batches may complete
in any order (concurrent bulk requests); a stream's safe position only advances over a contiguous
prefix of completed batches (Vector's ``OrderedFinalizer``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class _Entry:
    stream: str
    position: Any
    done: bool = False


class AckTracker:
    """Tracks in-flight batches; ``complete`` returns the positions that became safe."""

    def __init__(self) -> None:
        self._pending: dict[str, deque[_Entry]] = {}
        self._by_seq: dict[int, list[_Entry]] = {}

    @property
    def in_flight(self) -> int:
        return len(self._by_seq)

    def oldest(self, default: int) -> int:
        """The oldest batch not yet complete (``default`` when none is)."""
        return next(iter(self._by_seq), default)

    def register(self, seq: int, positions: dict[str, Any]) -> None:
        """Record that batch ``seq`` carries records of each stream up to ``positions[stream]``."""
        entries = [_Entry(stream, pos) for stream, pos in positions.items()]
        for e in entries:
            self._pending.setdefault(e.stream, deque()).append(e)
        self._by_seq[seq] = entries

    def complete(self, seq: int) -> dict[str, Any]:
        """Mark batch ``seq`` final (delivered or dead-lettered); return newly safe positions."""
        entries = self._by_seq.pop(seq)
        advanced: dict[str, Any] = {}
        for e in entries:
            e.done = True
            q = self._pending.get(e.stream)
            while q and q[0].done:
                advanced[e.stream] = q.popleft().position
            if q is not None and not q:
                del self._pending[e.stream]
        return advanced

    def pending_streams(self) -> set[str]:
        return set(self._pending)
