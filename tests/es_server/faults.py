"""What a test can make the server do wrong, and what it recorded."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes  # decompressed
    status: int = 0  # the answer, filled in once sent (0: dropped or not answered yet)
    response: bytes = b""


@dataclass
class Faults:
    """Programmable failures. All counters are consumed by matching requests."""

    reject_bulk: int = 0  # next N _bulk requests answered 429 es_rejected_execution_exception
    item_fail_rate: float = 0.0  # share of bulk index/create items failing
    item_fail_status: int = 429  # 429 or 503 for those items
    fail_all: tuple[int, str, str] | None = None  # (status, type, reason) for every request
    fail_next: list[tuple[int, str, str]] = field(default_factory=list)  # one per request, any path
    delay: float = 0.0  # seconds before answering
    drop_next: int = 0  # next N requests: connection closed mid-response
    max_body: int | None = None  # bodies larger than this get 413
    rng: random.Random = field(default_factory=lambda: random.Random(7))
