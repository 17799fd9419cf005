"""Bulk bodies as bytes: each document is serialized once; retries re-join the same lines."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from shipper.records import Segment
from shipper.sinks.compress import deflate, gzip, gzip_join, inflate
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


def items_body(items: list[Item], gzip_level: int = 0) -> bytes:
    """A request of single documents (retries, splits, readdressed ones), gzip'd at a level > 0."""
    plain = b"".join(i.lines for i in items)
    return gzip(plain, gzip_level) if gzip_level else plain


def blocks_body(segments: list[Segment], gzip_level: int = 0) -> bytes:
    """A request from framed blocks as they came: with gzip on, the fragments the workers
    deflated stitched into one gzip member (a block some path left plain is deflated here);
    else the plain blocks joined."""
    if not gzip_level:
        return b"".join([seg.data for seg in segments])
    return gzip_join(
        (*deflate(seg.data, gzip_level), seg.size) if seg.crc is None else (seg.data, seg.crc, seg.size)
        for seg in segments
    )
