"""Which bulk outcomes to retry, and how long to wait (capped exponential, full jitter)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum


class Outcome(Enum):
    DELIVERED = "delivered"  # 2xx
    DUPLICATE = "duplicate"  # 409 on create: already indexed (exactly-once)
    RETRY = "retry"  # 429, 5xx
    REJECTED = "rejected"  # other 4xx: the document itself is refused -> dead letter


def classify(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status == 409:
        return Outcome.DUPLICATE
    if status == 429 or status >= 500:
        return Outcome.RETRY
    return Outcome.REJECTED


@dataclass
class Backoff:
    """``delay(n)`` is uniform in [0, min(cap, initial * 2**n)] (AWS "full jitter")."""

    initial: float = 0.1
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.cap, self.initial * (2 ** min(attempt, 30))))
