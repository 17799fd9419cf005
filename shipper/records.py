"""The records that travel between stages: blocks of framed documents and their batches.

Sources produce lines with positions, the normalize stage turns them into ``Segment``s (one
framed block with the ``DocRefs`` of its documents, maybe compressed), the runner groups
segments into a ``Batch`` for the sink, and the sink acknowledges batches by ``seq``. Every
stage imports this module; none imports another stage for these types.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

DAY_MS = 86_400_000  # one UTC day: documents are framed and indexed per event day
TOO_LONG = "line_too_long"


def exact(data: bytes) -> bytes:
    """``data`` copied at its length, for bytes kept beyond the call that made them:
    ``orjson.dumps`` reserves room for the worst case and keeps it (a 156-byte line holds 4 KB,
    an 866-byte record 4.5 KB, a 5,000-character string 65 KB)."""
    return bytes(memoryview(data))


def is_blank(line: bytes) -> bool:
    """Blank lines carry no record: they are neither normalized nor rejected (the native path's
    ``blank`` is the same test, ``bytes.isspace``)."""
    return not line or line.isspace()


def too_long(length: int, limit: int) -> tuple[str, str]:
    """The rejection of a line over ``max_line_bytes``: (reason, detail)."""
    return TOO_LONG, f"line of {length} bytes exceeds {limit}"


DocRef = tuple[str, int, int]  # (id, epoch_ms, length of its framed bytes)


@dataclass(slots=True)
class DocRefs:
    """The ``DocRef`` of each document of a block, packed: a worker's answer unpickles as a few
    objects instead of a tuple per document (that alone cost the main process ~1 µs a record)."""

    ids: bytes  # UTF-8 ids back to back
    id_lens: array[int]
    times: array[int]
    sizes: array[int]

    @classmethod
    def pack(cls, ids: list[str], times: list[int], sizes: list[int]) -> DocRefs:
        encoded = [i.encode() for i in ids]
        return cls(b"".join(encoded), array("I", map(len, encoded)), array("q", times), array("I", sizes))

    def __len__(self) -> int:
        return len(self.sizes)

    def __iter__(self) -> Iterator[DocRef]:
        off = 0
        for n, ms, size in zip(self.id_lens, self.times, self.sizes, strict=True):
            yield self.ids[off : off + n].decode(), ms, size
            off += n


@dataclass(slots=True)
class Segment:
    """Documents framed for the output, back to back in one block.

    Outputs send blocks as they are; ``docs`` finds one document again (id, time, where) only
    when it alone is refused or must be retried. Built by the normalize stage, possibly in a
    worker process, so the main process never touches documents one by one. With ``crc`` set,
    ``data`` is a raw-deflate fragment of the block (see ``shipper.sinks.compress.deflate``).
    """

    data: bytes
    docs: DocRefs
    size: int  # bytes of the framed block, before any compression
    crc: int | None = None  # CRC-32 of the framed block when ``data`` is its deflate fragment
    signals: list[Any] = field(default_factory=list)  # what detections read (shipper.detect)


class Framer(Protocol):
    """How an output wants documents framed (picklable: workers get a copy).

    A framed document is ``source + b"\\n"``, or with an action line
    ``before + json(id) + after + source + b"\\n"`` where ``(before, after) = action(day)``;
    ``shipper.normalize.loop.encode`` frames them so, in compiled code, caching ``action`` per day.
    """

    def action(self, day: int) -> tuple[bytes, bytes] | None:
        """What goes before and after the JSON-encoded id of a document of UTC day ``day`` (days
        since the epoch), before its source; None: documents go without an action line."""

    def __call__(self, doc_id: str, epoch_ms: int, source: bytes) -> bytes:
        """One document, framed (as ``encode`` frames it)."""

    def seal(self, block: bytes) -> tuple[bytes, int | None]:
        """A block of framed documents as it travels: ``(block, None)``, or compressed
        ``(fragment, crc32)``."""


@dataclass(slots=True)
class Batch:
    """Documents sent together; ``positions`` is, per stream, where to resume once it is final."""

    seq: int
    segments: list[Segment] = field(default_factory=list)
    count: int = 0  # documents
    size: int = 0  # framed bytes
    positions: dict[str, Any] = field(default_factory=dict)

    def add(self, seg: Segment) -> None:
        self.segments.append(seg)
        self.count += len(seg.docs)
        self.size += seg.size


class Stage(Protocol):
    """A step between normalize and the sink (detection): sees every segment, in order, before
    it joins a batch. It must not block: it runs on the pipeline's thread."""

    def segment(self, seg: Segment, stream: str) -> None:
        """The documents of ``seg`` came from ``stream`` and are about to be sent."""

    def close(self) -> None:
        """Shipping stopped: flush what is held."""
