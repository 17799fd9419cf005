"""Outputs without a network: NDJSON to a file, or to stdout."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

from shipper.sinks.base import Batch
from shipper.sinks.framers import NdjsonFramer

log = logging.getLogger(__name__)


class _SyncSink:
    """Delivers inside ``submit``; completions are reported on the next ``completed`` call."""

    max_in_flight = 1
    framer = NdjsonFramer()

    def __init__(self) -> None:
        self._done: list[int] = []

    def _deliver(self, body: bytes) -> None:
        raise NotImplementedError

    def submit(self, batch: Batch) -> None:
        if batch.count:
            self._deliver(b"".join([seg.data for seg in batch.segments]))  # NdjsonFramer: plain
        self._done.append(batch.seq)

    def completed(self, timeout: float = 0.0) -> list[int]:
        done, self._done = self._done, []
        return done

    def committed(self) -> Any:
        return None

    def preflight(self, timeout: float) -> None:
        pass

    def problem(self) -> str | None:
        return None

    def close(self) -> None:
        pass


class ConsoleSink(_SyncSink):
    """Documents as NDJSON on stdout (``[output] type = "console"``)."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        super().__init__()
        self.stream = stream or sys.stdout.buffer

    def _deliver(self, body: bytes) -> None:
        self.stream.write(body)
        self.stream.flush()


class FileSink(_SyncSink):
    """NDJSON appended to ``path``, fsync'd before a batch counts as delivered.

    Exactly-once across crashes: the file size after the last delivered batch is kept in the
    checkpoint together with the sources' offsets; on start the file is cut back to that size,
    dropping documents whose source lines were not checkpointed (they are read again).
    """

    def __init__(self, path: Path, committed_size: int | None) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        size = os.fstat(self._fd).st_size
        if committed_size is not None and size > committed_size:
            log.info(
                "output %s: dropping %d bytes written after the last checkpoint",
                path,
                size - committed_size,
            )
            os.ftruncate(self._fd, committed_size)
            os.fsync(self._fd)
        elif committed_size is not None and size < committed_size:
            log.warning("output %s is shorter than checkpointed (rotated by someone?)", path)
        self._size = os.fstat(self._fd).st_size

    def _deliver(self, body: bytes) -> None:
        view = memoryview(body)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)
        self._size += len(body)

    def committed(self) -> Any:
        return self._size

    def close(self) -> None:
        os.close(self._fd)
