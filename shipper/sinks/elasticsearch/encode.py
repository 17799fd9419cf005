"""Bulk bodies as bytes: each document is serialized once; retries re-join the same lines."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from shipper.records import Segment
from shipper.sinks.compress import inflate
from shipper.sinks.elasticsearch.indexing import IndexNamer


@dataclass(slots=True)
class Item:
    doc_id: str
    index: str
    lines: bytes  # action line + source line, both newline-terminated
    epoch_ms: int = 0

    def source(self) -> bytes:
        return self.lines.split(b"\n", 1)[1]

    def moved(self, index: str) -> Item:
        """The same document for another index (the ``create`` keeps its ``_id``)."""
        action = orjson.dumps({"create": {"_index": index, "_id": self.doc_id}}) + b"\n"
        return Item(self.doc_id, index, action + self.source(), self.epoch_ms)


def plain_block(seg: Segment) -> bytes:
    return seg.data if seg.crc is None else inflate(seg.data)


def items(segments: list[Segment], namer: IndexNamer) -> list[Item]:
    """The documents of framed blocks one by one (only needed when some were refused)."""
    out = []
    for seg in segments:
        data, off = plain_block(seg), 0
        for doc_id, epoch_ms, n in seg.docs:
            out.append(Item(doc_id, namer(epoch_ms), data[off : off + n], epoch_ms))
            off += n
    return out


def body(items: list[Item]) -> bytes:
    return b"".join(i.lines for i in items)
