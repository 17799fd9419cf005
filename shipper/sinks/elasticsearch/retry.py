"""What ``_bulk`` answered (typed results), which outcomes to retry, and how long to wait
(capped exponential, full jitter)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


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


@dataclass(frozen=True, slots=True)
class AllDelivered:
    """``_bulk``: every item answered 2xx (``errors: false``), nothing to look at per item."""


@dataclass(frozen=True, slots=True)
class RetryAll:
    """``_bulk``: the request as a whole failed (unreachable, 429/5xx, a short answer)."""


@dataclass(frozen=True, slots=True)
class PerItem:
    """``_bulk``: one result per item sent, in order, to be classified one by one."""

    results: list[dict[str, Any]]


BulkResult = AllDelivered | RetryAll | PerItem


def write_blocked(res: dict[str, Any]) -> bool:
    """An index-level write block (``index.blocks.write``/``read_only``: 403 FORBIDDEN/8 or /5);
    the flood-stage disk block is a 429 and retried like any 429."""
    err = res.get("error") or {}
    return (
        res.get("status") == 403
        and err.get("type") == "cluster_block_exception"
        and str(err.get("reason", "")).startswith("index [")
    )
