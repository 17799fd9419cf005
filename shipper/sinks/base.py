"""What every output implements, and the batch it receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class Encoded:
    """A normalized document as outputs receive it: serialized once, by the normalize stage
    (possibly in a worker process), so sinks only frame bytes."""

    id: str
    epoch_ms: int
    source: bytes  # the JSON body, exactly what is indexed under ``_id = id``


@dataclass(slots=True)
class Batch:
    """Documents sent together; ``positions`` is, per stream, where to resume once it is final."""

    seq: int
    docs: list[Encoded] = field(default_factory=list)
    positions: dict[str, Any] = field(default_factory=dict)


class Sink(Protocol):
    max_in_flight: int

    def submit(self, batch: Batch) -> None:
        """Start delivering ``batch``. Callers keep at most ``max_in_flight`` batches pending."""

    def completed(self, timeout: float = 0.0) -> list[int]:
        """Seqs of batches now final (every document delivered, duplicate, or dead-lettered).

        Waits up to ``timeout`` for at least one when none is ready.
        """

    def committed(self) -> Any:
        """The output's own position to keep in the checkpoint (``None`` when not needed)."""

    def close(self) -> None: ...
