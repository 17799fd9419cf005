"""Sources produce ``Chunk``s of framed records and learn about acknowledged positions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from shipper.framing import Frame


@dataclass(slots=True)
class Chunk:
    """Consecutive records of one stream; ``position`` is where to resume after all of them."""

    stream: str
    name: str  # human-readable origin (path) for dead letters and logs
    frames: list[Frame] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)  # pre-decoded (postgres)
    position: Any = None


class Source(Protocol):
    def poll(self, max_records: int) -> list[Chunk]:
        """Return what is available now without blocking (possibly nothing)."""

    def acked(self, stream: str, position: Any) -> None:
        """Everything of ``stream`` before ``position`` is final; the source may checkpoint it."""

    def housekeeping(self) -> None:
        """Time-based upkeep that must run even while reading is paused (backpressure)."""

    def close(self) -> None: ...
