"""What every output implements."""

from __future__ import annotations

from typing import Any, Protocol

from shipper.records import Batch, Framer


class Sink(Protocol):
    max_in_flight: int

    @property
    def framer(self) -> Framer:
        """How this output wants documents framed (the normalize stage applies it)."""

    def submit(self, batch: Batch) -> None:
        """Start delivering ``batch``. Callers keep at most ``max_in_flight`` batches pending."""

    def completed(self, timeout: float = 0.0) -> list[int]:
        """Seqs of batches now final (every document delivered, duplicate, or dead-lettered).

        Waits up to ``timeout`` for at least one when none is ready.
        """

    def committed(self) -> Any:
        """The output's own position to keep in the checkpoint (``None`` when not needed)."""

    def preflight(self, timeout: float) -> None:
        """Reach the output (and prepare it) within ``timeout`` seconds, or raise
        ``OutputError``/``OutputAuthError`` saying why: for batch runs, which must end."""

    def problem(self) -> str | None:
        """Why batches are not completing now (None: no known problem)."""

    def close(self) -> None: ...
