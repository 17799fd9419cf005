"""Dead-letter records: what could not be indexed, kept whole so nothing is lost.

One JSON object per line: ``source``, ``offset``, ``reason``, ``detail``, ``length`` and the raw
line as ``raw`` (UTF-8 text) or ``raw_base64`` (when it is not valid UTF-8).

A host fault (full disk, I/O error, read-only filesystem) never raises out of ``write``: the
entries wait in memory (``pending``), the error is logged once a minute and counted, and every
later ``write``/``retry`` tries again. While entries wait, the checkpoint is held (see
``CheckpointStore.hold``), so the lines behind them are read again after a crash. A record
that cannot fit (``MAX_WAITING_RAW`` while the disk is full) keeps its first bytes, its
length and ``raw_truncated: true``, so each waiting record costs at most that much memory.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import orjson

from shipper.fsio import write_all
from shipper.logs import Throttle
from shipper.metrics import METRICS

log = logging.getLogger(__name__)
MAX_WAITING_RAW = 64 << 10  # raw bytes kept of one record once the disk has refused it


def entry(
    source: str, offset: int | None, reason: str, detail: str, raw: bytes, length: int | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"source": source, "offset": offset, "reason": reason, "detail": detail}
    out["length"] = len(raw) if length is None else length
    try:
        out["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        out["raw_base64"] = base64.b64encode(raw).decode("ascii")
    return out


def _truncated(e: dict[str, Any]) -> dict[str, Any]:
    for key in ("raw", "raw_base64"):
        if key in e and len(e[key]) > MAX_WAITING_RAW:
            return {**e, key: e[key][:MAX_WAITING_RAW], "raw_truncated": True}
    return e


class DeadLetterFile:
    """Append-only NDJSON file; what ``write`` accepted is fsync'd once ``pending`` is 0."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._waiting: list[bytes] = []
        self._waiting_bytes = 0
        self._warn = Throttle(60.0)
        self._failing = False
        self.count = 0
        self._open()

    def _open(self) -> int | None:
        if self._fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError as exc:
                self._failed(exc)
        return self._fd

    @property
    def pending(self) -> int:
        """Entries accepted but not yet durable (a host fault)."""
        return len(self._waiting)

    def write(self, entries: list[dict[str, Any]]) -> None:
        lines = [orjson.dumps(e) + b"\n" for e in entries]
        self._waiting.extend(lines)
        self._waiting_bytes += sum(map(len, lines))
        self.count += len(entries)
        self.retry()

    def retry(self) -> bool:
        """Write what waits; True when nothing waits any more."""
        if not self._waiting:
            return True
        fd = self._open()
        if fd is None:
            self._shrink()
            return False
        data = b"".join(self._waiting)
        start = os.fstat(fd).st_size
        try:
            write_all(fd, data)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)  # no torn line: the whole set is written again later
            self._failed(exc)
            self._shrink()
            return False
        if self._warn.held("write") or self._failing:
            log.info("dead letters written again to %s", self.path)
        self._failing = False
        self._waiting, self._waiting_bytes = [], 0
        return True

    def _failed(self, exc: OSError) -> None:
        METRICS.inc("state_write_errors_total")
        self._failing = True
        if self._warn.due("write"):
            log.error(
                "cannot write dead letters to %s: %s; %d kept in memory, checkpoints held until written",
                self.path,
                exc.strerror or exc,
                len(self._waiting),
            )

    def _shrink(self) -> None:
        """While the disk refuses them: records too big to fit keep their first bytes."""
        self._waiting = [
            orjson.dumps(_truncated(orjson.loads(x))) + b"\n" if len(x) > MAX_WAITING_RAW else x
            for x in self._waiting
        ]
        self._waiting_bytes = sum(map(len, self._waiting))

    def size(self) -> int:
        fd = self._open()
        return os.fstat(fd).st_size if fd is not None else 0

    def truncate(self, size: int) -> None:
        """Drop what was appended after ``size`` (recovery after a crash, see checkpoint)."""
        fd = self._open()
        if fd is not None and self.size() > size:
            os.ftruncate(fd, size)
            os.fsync(fd)

    def close(self) -> None:
        self.retry()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
