"""The ``_bulk`` framing: runs in normalizer workers (pickled there), so it imports little."""

from __future__ import annotations

import orjson

from shipper.records import DAY_MS
from shipper.sinks.compress import deflate
from shipper.sinks.elasticsearch.indexing import IndexNamer

_CREATE = b'{"create":{"_index":"'


class BulkFramer:
    """A ``_bulk`` action line and the document: ``create`` into its event-time index, ``_id`` =
    event id, so a replay is answered 409 and never indexed twice. ``gzip_level`` 0: plain."""

    def __init__(self, namer: IndexNamer, gzip_level: int = 0) -> None:
        self.namer = namer
        self.gzip_level = gzip_level

    def action(self, day: int) -> tuple[bytes, bytes]:
        return _CREATE + self.namer(day * DAY_MS).encode() + b'","_id":', b"}}\n"

    def __call__(self, doc_id: str, epoch_ms: int, source: bytes) -> bytes:
        before, after = self.action(epoch_ms // DAY_MS)
        return b"".join((before, orjson.dumps(doc_id), after, source, b"\n"))

    def seal(self, block: bytes) -> tuple[bytes, int | None]:
        if not self.gzip_level:
            return block, None
        return deflate(block, self.gzip_level)
