"""Time as the pipeline sees it, injected so tests can run the loop without sleeping.

``SYSTEM`` is the real clock. ``ManualClock`` (for tests and simulations) only moves when told
to, or by exactly the time a caller sleeps or waits, so a test of "a batch is sent after
``max_wait``" takes no time and cannot be flaky.
"""

from __future__ import annotations

import time
from typing import Protocol


class Waitable(Protocol):
    """``threading.Event`` or ``shipper.wake.Wake``."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (intervals, deadlines)."""

    def wall(self) -> float:
        """Seconds since the epoch (what is written down for people and other processes)."""

    def sleep(self, seconds: float) -> None: ...

    def wait(self, event: Waitable, timeout: float) -> bool:
        """``event.wait(timeout)``: True when the event was set."""


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait(self, event: Waitable, timeout: float) -> bool:
        return event.wait(timeout)


SYSTEM: Clock = SystemClock()


class ManualClock:
    """A clock that advances only by ``advance``, ``sleep`` and unanswered ``wait``s."""

    def __init__(self, start: float = 1_000.0, wall_offset: float = 1_764_547_200.0) -> None:
        self.now = start
        self.wall_offset = wall_offset  # wall() = now + offset (2025-12-01 by default)

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self.wall_offset

    def advance(self, seconds: float) -> None:
        self.now += max(0.0, seconds)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def wait(self, event: Waitable, timeout: float) -> bool:
        if event.is_set():
            return True
        self.advance(timeout)
        return False
