"""Compression of framed blocks, in the normalizer workers (so this module imports little).

Each block becomes a raw-deflate fragment ending on a full flush (byte-aligned, no
back-references across blocks), and the output stitches fragments into one gzip member with
the CRC-32s combined, the way pigz compresses in parallel. One member, because servers
(Netty's decoder in Elasticsearch among them) need not read past the first member of a multi-member gzip body.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

from isal import isal_zlib

_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, OS unknown
_FINAL_BLOCK = b"\x03\x00"  # an empty final block with fixed Huffman codes


def deflate(block: bytes, level: int) -> tuple[bytes, int]:
    """``(fragment, crc32)``: levels 1-3 with ISA-L (~4x less CPU than zlib), 4-9 with zlib."""
    if level <= isal_zlib.ISAL_BEST_COMPRESSION:
        c = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
        frag = c.compress(block) + c.flush(isal_zlib.Z_FULL_FLUSH)
    else:
        z = zlib.compressobj(level, zlib.DEFLATED, -15)
        frag = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
    return frag, isal_zlib.crc32(block)


def inflate(fragment: bytes) -> bytes:
    return zlib.decompressobj(-15).decompress(fragment)


def gzip_join(parts: Iterable[tuple[bytes, int, int]]) -> bytes:
    """One gzip member from ``(fragment, crc32, size)`` parts, in order."""
    crc = total = 0
    frags = [_GZIP_HEADER]
    for frag, part_crc, size in parts:
        frags.append(frag)
        crc = isal_zlib.crc32_combine(crc, part_crc, size)
        total += size
    frags.append(_FINAL_BLOCK + struct.pack("<II", crc, total & 0xFFFFFFFF))
    return b"".join(frags)


def gzip(block: bytes, level: int) -> bytes:
    frag, crc = deflate(block, level)
    return gzip_join([(frag, crc, len(block))])
