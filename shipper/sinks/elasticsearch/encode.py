"""Bulk bodies as bytes: each document is serialized once; retries re-join the same lines."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from shipper.indexing import IndexNamer
from shipper.normalize import Document

_CREATE = b'{"create":{"_index":"'


@dataclass(slots=True)
class Item:
    doc_id: str
    index: str
    lines: bytes  # action line + source line, both newline-terminated

    @property
    def size(self) -> int:
        return len(self.lines)


def encode(docs: list[Document], namer: IndexNamer) -> list[Item]:
    out = []
    dumps = orjson.dumps
    for d in docs:
        index = namer(d.epoch_ms)
        # op_type create + _id = event.id: a replay is answered 409, never indexed twice.
        action = _CREATE + index.encode() + b'","_id":' + dumps(d.id) + b"}}\n"
        out.append(Item(d.id, index, action + dumps(d.body) + b"\n"))
    return out


def body(items: list[Item]) -> bytes:
    return b"".join(i.lines for i in items)
