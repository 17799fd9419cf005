"""How each output frames a document; runs in normalizer workers, so it imports little."""

from __future__ import annotations

import orjson

from shipper.indexing import IndexNamer

_CREATE = b'{"create":{"_index":"'


class NdjsonFramer:
    """One JSON document per line (file and console outputs)."""

    def __call__(self, doc_id: str, epoch_ms: int, source: bytes) -> bytes:
        return source + b"\n"


class BulkFramer:
    """A ``_bulk`` action line and the document: ``create`` into its event-time index, ``_id`` =
    event id, so a replay is answered 409 and never indexed twice."""

    def __init__(self, namer: IndexNamer) -> None:
        self.namer = namer
        self._prefixes: dict[str, bytes] = {}  # per index: the action line up to the id

    def __call__(self, doc_id: str, epoch_ms: int, source: bytes) -> bytes:
        index = self.namer(epoch_ms)
        prefix = self._prefixes.get(index)
        if prefix is None:
            if len(self._prefixes) > 4096:
                self._prefixes.clear()
            prefix = self._prefixes[index] = _CREATE + index.encode() + b'","_id":'
        return b"".join((prefix, orjson.dumps(doc_id), b"}}\n", source, b"\n"))
