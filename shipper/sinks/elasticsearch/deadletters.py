"""Refused documents kept whole: in the dead-letter index ``<prefix>-deadletter-<namespace>``,
or where that refuses them too, in ``<state>/dead-letter/elasticsearch.jsonl``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from shipper.clock import Clock
from shipper.deadletter import DeadLetterFile
from shipper.metrics import METRICS
from shipper.sinks.elasticsearch.client import ApiError, TransportError, describe
from shipper.sinks.elasticsearch.encode import Item
from shipper.sinks.elasticsearch.retry import Outcome, classify

log = logging.getLogger(__name__)


class DeadLetterIndex:
    """``keep`` returns once every refused document is safe (the index, else the file); on a
    full disk it retries with ``sleep`` (the batch stays unacknowledged meanwhile)."""

    def __init__(self, client: Any, index: str, path: Path, clock: Clock) -> None:
        self.client = client
        self.index = index
        self.path = path
        self.clock = clock
        self._file: DeadLetterFile | None = None

    def keep(self, rejected: list[tuple[Item, dict[str, Any]]], sleep: Callable[[int], None]) -> None:
        """Keep refused documents whole; only after they are safe do they count as done."""
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.clock.wall())) + ".000Z"
        lines = []
        entries = []
        for item, res in rejected:
            err = res.get("error") or {}
            source = item.lines.split(b"\n", 1)[1].rstrip(b"\n").decode()
            log.warning("dead-lettering %s: %s %s", item.doc_id, err.get("type"), err.get("reason"))
            entry = {
                "@timestamp": now,
                "event": {"id": item.doc_id},
                "error": {"type": err.get("type"), "message": err.get("reason")},
                "http": {"response": {"status_code": res.get("status")}},
                "logto_shipper": {"target_index": item.index, "original": source},
            }
            entries.append(entry)
            lines.append(
                orjson.dumps({"create": {"_index": self.index, "_id": item.doc_id}})
                + b"\n"
                + orjson.dumps(entry)
                + b"\n"
            )
        METRICS.inc("docs_dead_lettered_total", len(rejected))
        failed = list(range(len(entries)))
        try:
            resp = self.client.bulk(operations=b"".join(lines), filter_path="items.*.status")
            statuses = [next(iter(i.values())).get("status", 500) for i in resp.get("items", [])]
            if len(statuses) == len(entries):
                failed = [
                    i
                    for i, st in enumerate(statuses)
                    if classify(st) not in (Outcome.DELIVERED, Outcome.DUPLICATE)
                ]
        except (ApiError, TransportError) as exc:
            log.warning("dead-letter index unavailable (%s); using the dead-letter file", describe(exc))
        if failed:
            if self._file is None:
                self._file = DeadLetterFile(self.path)
            self._file.write([entries[i] for i in failed])
            attempt = 0
            while not self._file.retry():  # a full disk: the batch stays unacknowledged
                sleep(attempt)
                attempt += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
