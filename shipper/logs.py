"""Daemon logging: text (journald-friendly) or JSON lines on stderr."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

_STD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in _STD})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The ES client logs every request at INFO and every failed attempt at WARNING; the sink
    # logs changes of state itself, so keep the journal readable.
    logging.getLogger("elastic_transport").setLevel(logging.ERROR)


class Throttle:
    """Rate-limits a repeating warning per key: ``due(key)`` is True at most once per
    ``every`` seconds, and ``suppressed(key)`` says how many were held back since the last.

    Repeating problems (a file that cannot be opened, a full disk, a cluster that refuses us)
    must stay visible without flooding the journal: one line a minute with a count.
    """

    def __init__(self, every: float = 60.0, clock: Any = None) -> None:
        import time

        self.every = every
        self._clock = clock or time.monotonic
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def due(self, key: str) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        return True

    def held(self, key: str) -> int:
        """How many were held back since the last report, resetting the count."""
        return self._held.pop(key, 0)

    def suppressed(self, key: str) -> str:
        """`` (N more since the last report)`` or "", resetting the count."""
        n = self.held(key)
        return f" ({n} more since the last report)" if n else ""

    def reset(self, key: str) -> None:
        self._last.pop(key, None)
        self._held.pop(key, None)
