"""Dead-letter records: what could not be indexed, kept whole so nothing is lost.

One JSON object per line: ``source``, ``offset``, ``reason``, ``detail``, ``length`` and the raw
line as ``raw`` (UTF-8 text) or ``raw_base64`` (when it is not valid UTF-8).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson


def entry(
    source: str, offset: int | None, reason: str, detail: str, raw: bytes, length: int | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"source": source, "offset": offset, "reason": reason, "detail": detail}
    out["length"] = len(raw) if length is None else length
    try:
        out["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        import base64

        out["raw_base64"] = base64.b64encode(raw).decode("ascii")
    return out


class DeadLetterFile:
    """Append-only NDJSON file; ``write`` returns only after the data is fsync'd."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.count = 0

    def write(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        data = b"".join(orjson.dumps(e) + b"\n" for e in entries)
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        self.count += len(entries)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def truncate(self, size: int) -> None:
        """Drop what was appended after ``size`` (recovery after a crash, see checkpoint)."""
        if self.size() > size:
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)
