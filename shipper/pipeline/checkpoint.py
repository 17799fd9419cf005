"""Durable checkpoints (the registry) in ``<state dir>/registry.json``.

Format ``{"version": 1, "streams": {id: {...}}, "outputs": {...}}``. ``stage`` changes memory
only; ``flush`` writes a temp file, fsyncs it, renames it over the registry and fsyncs the
directory, so a crash leaves either the old or the new registry, never a torn one. A corrupt
registry is moved aside (``registry.json.corrupt-<time>``), reported, and shipping starts over
from the inputs' ``start_at`` rule; it never crashes the daemon.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)
VERSION = 1


class CheckpointStore:
    """In-memory registry with throttled atomic persistence."""

    def __init__(self, state_dir: Path, interval: float = 1.0) -> None:
        self.path = state_dir / "registry.json"
        self.interval = interval
        self.streams: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, Any] = {}
        self._dirty = False
        self._last_flush = float("-inf")
        self.corrupt = False
        self._load()

    def _load(self) -> None:
        try:
            data = orjson.loads(self.path.read_bytes())
            if not isinstance(data, dict) or data.get("version") != VERSION:
                raise ValueError(f"unsupported registry version {data.get('version')!r}")
            streams, outputs = data.get("streams", {}), data.get("outputs", {})
            if not isinstance(streams, dict) or not isinstance(outputs, dict):
                raise ValueError("registry sections are not objects")
            self.streams, self.outputs = streams, outputs
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            aside = self.path.with_name(f"registry.json.corrupt-{int(time.time())}")
            try:
                self.path.rename(aside)
            except OSError:
                aside = self.path
            self.corrupt = True
            log.error(
                "registry %s is unreadable (%s); moved to %s, starting without it",
                self.path,
                exc,
                aside,
            )

    def stage(self, stream: str, **fields: Any) -> None:
        self.streams.setdefault(stream, {}).update(fields)
        self._dirty = True

    def stage_output(self, name: str, value: Any) -> None:
        self.outputs[name] = value
        self._dirty = True

    def remove(self, stream: str) -> None:
        if self.streams.pop(stream, None) is not None:
            self._dirty = True

    def flush(self, force: bool = False) -> bool:
        """Persist when dirty and the interval has passed (or ``force``); True if written."""
        now = time.monotonic()
        if not self._dirty or (not force and now - self._last_flush < self.interval):
            return False
        data = orjson.dumps({"version": VERSION, "streams": self.streams, "outputs": self.outputs})
        tmp = self.path.with_name("registry.json.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        self._dirty = False
        self._last_flush = now
        return True
