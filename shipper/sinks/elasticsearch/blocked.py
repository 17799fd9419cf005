"""Index-level write blocks (ILM ``readonly`` after ``warm_after``, or set by hand): the events
still arriving for such an index go to ``IndexNamer.late`` instead, unless an index of the
pattern already holds their ``_id`` (a replay, counted as a duplicate)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shipper.clock import Clock
from shipper.metrics import METRICS
from shipper.sinks.elasticsearch.client import ApiError, TransportError, describe, indexed_ids
from shipper.sinks.elasticsearch.encode import Item
from shipper.sinks.elasticsearch.indexing import IndexNamer

log = logging.getLogger(__name__)


class WriteBlocks:
    def __init__(self, client: Any, namer: IndexNamer, clock: Clock) -> None:
        self.client = client
        self.namer = namer
        self.clock = clock
        self._said: set[str] = set()  # blocked indices already logged

    def readdress(self, blocked: list[Item], note_error: Callable[[str], None]) -> list[Item] | None:
        """Write-blocked documents readdressed to the late index, minus those an index of the
        pattern already holds (a replay of what was indexed before the block); None when the
        cluster could not be asked."""
        late = self.namer.late(int(self.clock.wall() * 1000))
        try:
            # the late indices refreshed first: a replay minutes after the first write is seen
            self.client.options(ignore_status=(403, 404)).indices.refresh(
                index=late[: late.rindex("-")] + "-*", ignore_unavailable=True, allow_no_indices=True
            )
            there = indexed_ids(self.client, self.namer.pattern, [i.doc_id for i in blocked])
        except (ApiError, TransportError) as exc:
            note_error(f"write-blocked documents: cannot look them up: {describe(exc)}")
            return None
        METRICS.inc("docs_duplicate_total", len(there))
        moved = [i.moved(late) for i in blocked if i.doc_id not in there]
        METRICS.inc("docs_late_index_total", len(moved))
        for index in sorted({i.index for i in blocked} - self._said):
            self._said.add(index)
            log.warning(
                "index %s refuses writes (write block, e.g. ILM readonly after warm_after): its late "
                "events go to %s",
                index,
                late,
            )
        return moved
