"""Outputs without a network: NDJSON to a file, or to stdout."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from shipper.fsio import write_all
from shipper.logs import Throttle
from shipper.metrics import METRICS
from shipper.records import Batch

log = logging.getLogger(__name__)


class NdjsonFramer:
    """One JSON document per line (file and console outputs), uncompressed."""

    def action(self, day: int) -> None:
        return None

    def __call__(self, doc_id: str, epoch_ms: int, source: bytes) -> bytes:
        return source + b"\n"

    def seal(self, block: bytes) -> tuple[bytes, int | None]:
        return block, None


class _SyncSink:
    """Delivers inside ``submit``; completions are reported on the next ``completed`` call.

    A write the host refuses (full disk, I/O error) leaves the batch waiting: it is tried
    again at every ``completed`` call, the error logged once a minute and counted; with one
    batch in flight, reading pauses meanwhile (backpressure), nothing is lost.
    """

    max_in_flight = 1
    framer = NdjsonFramer()

    def __init__(self) -> None:
        self._done: list[int] = []
        self._waiting: list[tuple[int, bytes]] = []
        self._problem: str | None = None
        self._warn = Throttle(60.0)

    def _deliver(self, body: bytes) -> None:
        raise NotImplementedError

    def submit(self, batch: Batch) -> None:
        body = b"".join([seg.data for seg in batch.segments]) if batch.count else b""  # plain
        self._waiting.append((batch.seq, body))
        self._drain()

    def _drain(self) -> None:
        while self._waiting:
            seq, body = self._waiting[0]
            try:
                if body:
                    self._deliver(body)
            except OSError as exc:
                METRICS.inc("output_write_errors_total")
                self._problem = f"cannot write the output: {exc.strerror or exc}"
                if self._warn.due("write"):
                    log.error("%s; retrying%s", self._problem, self._warn.suppressed("write"))
                return
            if self._problem is not None:
                log.info("output written again")
                self._problem = None
            self._waiting.pop(0)
            self._done.append(seq)

    def completed(self, timeout: float = 0.0) -> list[int]:
        if self._waiting:
            if self._problem is not None and timeout > 0:
                time.sleep(min(timeout, 0.2))
            self._drain()
        done, self._done = self._done, []
        return done

    def committed(self) -> Any:
        return None

    def preflight(self, timeout: float) -> None:
        pass

    def problem(self) -> str | None:
        return self._problem

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

    def __init__(self, path: Path, committed_size: int | None, dedupe: bool = False) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # The registry was lost: the inputs start over, so what the output already holds is
        # the truth. Documents whose id it has are not written again.
        self._have: set[str] | None = _ids_in(path) if dedupe else None
        if self._have:
            log.warning(
                "output %s: the checkpoint was lost; %d documents already in it are not written again",
                path,
                len(self._have),
            )
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
        if self._have:
            body = self._without_known(body)
        try:
            write_all(self._fd, body)
        except OSError:
            with contextlib.suppress(OSError):  # no torn line: the whole batch is written again
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(body)

    def _without_known(self, body: bytes) -> bytes:
        assert self._have is not None
        keep = []
        for line in body.splitlines(keepends=True):
            doc_id = _doc_id(line)
            if doc_id is None or doc_id not in self._have:
                keep.append(line)
        return b"".join(keep)

    def committed(self) -> Any:
        return self._size

    def close(self) -> None:
        os.close(self._fd)


def _doc_id(line: bytes) -> str | None:
    try:
        doc = orjson.loads(line)
        value = doc["event"]["id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


def _ids_in(path: Path) -> set[str]:
    """The event ids of the documents an NDJSON output holds (read once, after a lost registry)."""
    have: set[str] = set()
    try:
        with open(path, "rb") as fh:
            for line in fh:
                doc_id = _doc_id(line)
                if doc_id is not None:
                    have.add(doc_id)
    except OSError:
        pass
    return have
