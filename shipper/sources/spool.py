"""A durable queue on disk for pushed records: append-only segment files, fsynced per append.

``<dir>/<n>.jsonl`` (``n`` zero-padded, increasing). ``append`` returns only once the line and
its newline are on disk, so a receiver may acknowledge what it appended (the webhook input
answers 200 after it). A process start always opens a new segment: one torn by a crash is
never appended to, and its unterminated tail is handed to the reader as one more line (which
the normalizer then dead-letters with its bytes). Segments are removed once a checkpoint lies
past them. A failed append is undone (truncated back), so no partial line follows it.

``SpoolReader`` reads complete lines from a position ``(segment, offset)``; a segment is final
once a later one exists, because the writer only moves forward.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from shipper.fsio import write_all
from shipper.sources.lines import Frame

SEGMENT_BYTES = 4 << 20
READ_BYTES = 1 << 20


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, directory: Path, after_segment: int = 0) -> None:
        """``after_segment``: the checkpoint's segment; new segments are numbered past it."""
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self.current = max([after_segment, *self.segments()]) + 1
        self._fd = self._open(self.current)
        self._size = 0

    def path(self, segment: int) -> Path:
        return self.dir / f"{segment:010d}.jsonl"

    def segments(self) -> list[int]:
        out = []
        for p in self.dir.glob("*.jsonl"):
            with contextlib.suppress(ValueError):
                out.append(int(p.stem))
        return sorted(out)

    def _open(self, segment: int) -> int:
        fd = os.open(self.path(segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _fsync_dir(self.dir)
        return fd

    def append(self, line: bytes) -> None:
        """``line`` (without newline) durably at the end; ``OSError`` when the disk refuses."""
        with self._lock:
            if self._size >= SEGMENT_BYTES:
                fd = self._open(self.current + 1)
                os.close(self._fd)
                self._fd, self.current, self._size = fd, self.current + 1, 0
            try:
                write_all(self._fd, line + b"\n")
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._size)
                raise
            self._size += len(line) + 1

    def remove_before(self, segment: int) -> None:
        """Delete the segments before ``segment`` (checkpointed past them)."""
        for s in self.segments():
            if s >= min(segment, self.current):
                break
            with contextlib.suppress(OSError):
                self.path(s).unlink()

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)


class SpoolReader:
    """Reads lines of at most ``max_line`` bytes (longer ones cannot be in a spool)."""

    def __init__(self, spool: Spool, segment: int, offset: int, max_line: int = READ_BYTES) -> None:
        self.spool, self.segment, self.offset = spool, segment, offset
        self.read_bytes = max(READ_BYTES, max_line + 1)  # a whole line always fits in one read

    def bytes_after(self, segment: int, offset: int) -> int:
        """Spooled bytes after ``(segment, offset)`` (e.g. the acknowledged position)."""
        total = 0
        for s in self.spool.segments():
            if s >= segment:
                with contextlib.suppress(OSError):
                    total += self.spool.path(s).stat().st_size - (offset if s == segment else 0)
        return max(0, total)

    def read(self, max_lines: int) -> list[Frame]:
        """Complete lines from the read position (at most ``max_lines``), moving it past them."""
        frames: list[Frame] = []
        while len(frames) < max_lines:
            # Before reading: a segment with a later one is final, so what is read is all of it.
            final = any(s > self.segment for s in self.spool.segments())
            try:
                with open(self.spool.path(self.segment), "rb") as fh:
                    fh.seek(self.offset)
                    data = fh.read(self.read_bytes)
            except FileNotFoundError:
                data = b""
            eof = len(data) < self.read_bytes
            end = data.rfind(b"\n") + 1
            if final and eof and end < len(data):
                end = len(data)  # a torn tail (a crash mid-append): one more line, refused downstream
            i = 0
            while i < end and len(frames) < max_lines:
                nl = data.find(b"\n", i, end)
                j = end if nl < 0 else nl
                frames.append(Frame(data[i:j], self.offset + i, self.offset + j + 1, j - i))
                i = j + 1 if nl >= 0 else end
            self.offset += i
            if i < len(data) or not eof:
                if i < end or i == 0:
                    break  # max_lines reached, or only an unterminated line so far
                continue
            if not final:
                break
            later = [s for s in self.spool.segments() if s > self.segment]
            self.segment, self.offset = later[0], 0
        return frames
