"""Sources produce ``Chunk``s of framed records and learn about acknowledged positions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from shipper.sources.lines import Frame, frames_of


@dataclass(slots=True)
class Chunk:
    """Consecutive records of one stream; ``position`` is where to resume after all of them."""

    stream: str
    name: str  # human-readable origin (path) for dead letters and logs
    frames: list[Frame] = field(default_factory=list)
    position: Any = None
    # Or, instead of frames, complete lines in one block (``LineSplitter.feed_block``), starting
    # at offset ``block_start``: what normalizer workers take as it is.
    block: bytes = b""
    block_start: int = 0
    n: int = 0  # lines in the block
    offsets: bool = True  # frames carry byte offsets in ``name`` (files); rows do not (postgres)
    named: bool = False  # the lines carry their names already (the postgres input read them)

    def count(self) -> int:
        return self.n if self.block else len(self.frames)

    def lines(self) -> list[Frame]:
        """The frames, made from the block when there is one (only when needed: it costs)."""
        return frames_of(self.block, self.block_start) if self.block else self.frames


@dataclass(frozen=True, slots=True)
class Lag:
    """How far one input is behind: what ``status``, metrics, sd_notify and progress lines show.

    ``unit`` is ``bytes`` (files: size minus acknowledged offset) or ``seconds`` (postgres:
    now minus the acknowledged row's time); ``records`` counts rows not yet read where the
    source can tell cheaply (capped: ``records_capped``); ``note`` says why nothing is read
    (no file matches); ``unavailable`` why the source cannot be read now (database down);
    ``busy`` that the source has work under way it has not handed over yet (a Management API
    window being paged in the background): ``run --once`` waits for it.
    """

    source: str
    unit: str
    value: float
    records: int | None = None
    records_capped: bool = False
    note: str = ""
    unavailable: str = ""
    busy: bool = False


class Source(Protocol):
    def poll(self, max_records: int) -> list[Chunk]:
        """Return what is available now without blocking (possibly nothing)."""

    def acked(self, stream: str, position: Any) -> None:
        """Everything of ``stream`` before ``position`` is final; the source may checkpoint it."""

    def housekeeping(self) -> None:
        """Time-based upkeep that must run even while reading is paused (backpressure)."""

    def lag(self) -> list[Lag]:
        """Where each of this source's streams stands (cheap; called every few seconds)."""

    def close(self) -> None: ...
