"""Split a byte stream into complete lines with their offsets, bounded in memory.

A line longer than ``max_bytes`` is not buffered whole: its first ``max_bytes`` bytes are kept
and the rest is skipped up to the next newline, and the frame says how long it really was, so
the caller can dead-letter it (with file and offset, where the whole line still is) and go on.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)  # not frozen: that costs a setattr call per field, per line
class Frame:
    raw: bytes  # the line without its newline (only the first max_bytes when too long)
    start: int  # offset of the line's first byte
    end: int  # offset just after its newline: where to resume
    length: int  # real length without newline; > len(raw) when the line was too long

    @property
    def too_long(self) -> bool:
        return self.length > len(self.raw)


class LineSplitter:
    """Stateful splitter: ``feed`` returns complete lines, ``flush`` the unterminated rest."""

    __slots__ = ("_buf", "_dropped", "_start", "max_bytes")

    def __init__(self, max_bytes: int, offset: int = 0) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._start = offset  # offset of _buf[0]
        self._dropped = 0  # bytes of the current over-long line not kept

    @property
    def pending(self) -> int:
        """Bytes of an incomplete line currently held (or skipped)."""
        return len(self._buf) + self._dropped

    @property
    def offset(self) -> int:
        """Offset just after the last complete line returned."""
        return self._start

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        pos = 0
        n = len(data)
        max_bytes = self.max_bytes
        while pos < n:
            nl = data.find(b"\n", pos)
            if nl < 0:
                room = max_bytes - len(self._buf)
                take = data[pos:]
                if self._dropped or len(take) > room:
                    keep = max(room, 0)
                    self._buf += take[:keep]
                    self._dropped += len(take) - keep
                else:
                    self._buf += take
                break
            if not self._buf and not self._dropped and nl - pos <= max_bytes:
                # Fast path: a whole line inside this chunk.
                end = self._start + nl - pos + 1
                frames.append(Frame(data[pos:nl], self._start, end, nl - pos))
                self._start = end
            else:
                piece = data[pos:nl]
                room = max(max_bytes - len(self._buf), 0)
                self._buf += piece[:room]
                self._dropped += len(piece) - min(room, len(piece))
                length = len(self._buf) + self._dropped
                end = self._start + length + 1
                frames.append(Frame(bytes(self._buf), self._start, end, length))
                self._buf.clear()
                self._dropped = 0
                self._start = end
            pos = nl + 1
        return frames

    def feed_block(self, data: bytes) -> tuple[bytes, int] | None:
        """The complete lines ``data`` ends (a buffered start included) as one block, with its
        offset, when none of them is over-long: the fast path, no frame per line. ``None``
        (nothing consumed): use ``feed``."""
        if self._dropped:
            return None
        last = data.rfind(b"\n")
        if last < 0:
            return None
        region = bytes(self._buf) + data[: last + 1] if self._buf else data[: last + 1]
        if len(region) > self.max_bytes and max(map(len, region.split(b"\n"))) > self.max_bytes:
            return None
        start = self._start
        self._start = start + len(region)
        self._buf.clear()
        rest = data[last + 1 :]
        if rest:
            self.feed(rest)  # no newline in it: buffered (or skipped past max_bytes) as usual
        return region, start

    def flush(self) -> Frame | None:
        """Return the unterminated final line, if any, as a frame ending at EOF."""
        if not self._buf and not self._dropped:
            return None
        length = len(self._buf) + self._dropped
        end = self._start + length
        frame = Frame(bytes(self._buf), self._start, end, length)
        self._buf.clear()
        self._dropped = 0
        self._start = end
        return frame


def frames_of(block: bytes, start: int) -> list[Frame]:
    """The frames of a block of complete lines (from ``feed_block``) starting at ``start``."""
    out = []
    pos = start
    for line in block.split(b"\n")[:-1]:
        end = pos + len(line) + 1
        out.append(Frame(line, pos, end, len(line)))
        pos = end
    return out
