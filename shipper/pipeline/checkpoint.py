"""Durable checkpoints (the registry) in ``<state dir>/registry.json``.

Format ``{"version": 1, "streams": {id: {...}}, "outputs": {...}}``. ``stage`` changes memory
only; ``flush`` writes a temp file, fsyncs it, renames it over the registry and fsyncs the
directory, so a crash leaves either the old or the new registry, never a torn one. A corrupt
registry is moved aside (``registry.json.corrupt-<time>``), reported, and shipping starts over
from the inputs' ``start_at`` rule; it never crashes the daemon.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError

from shipper.fsio import write_all
from shipper.logs import Throttle
from shipper.metrics import METRICS
from shipper.sources import Lag

log = logging.getLogger(__name__)
VERSION = 1
NonNegative = Annotated[StrictInt, Field(ge=0)]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileStream(_Entry):
    """A file's identity and acknowledged offset."""

    path: StrictStr | None = None
    dev: NonNegative | None = None
    ino: NonNegative | None = None
    fp_len: NonNegative | None = None
    fp: StrictStr | None = None
    offset: NonNegative = 0
    seen: StrictInt = 0


class PgPosition(_Entry):
    ts: StrictStr
    id: StrictStr
    epoch: StrictFloat | StrictInt | None = None
    seen: list[tuple[StrictStr, StrictFloat | StrictInt]] = []
    ahead: list[StrictStr] = []


class PgStream(_Entry):
    """A postgres tenant's cursor (``[ts, id]`` in registries before the position object)."""

    position: PgPosition | tuple[StrictStr, StrictStr]
    seen: StrictInt = 0


class ApiPosition(_Entry):
    """A Management API input's cursor: every row before ``from`` (epoch ms) is shipped, and
    the rows at ``from`` itself whose ids are in ``edge``."""

    from_: NonNegative = Field(alias="from")
    edge: list[StrictStr] = []


class ApiStream(_Entry):
    position: ApiPosition
    seen: StrictInt = 0


class SpoolPosition(_Entry):
    """A webhook spool's read point: segment number and byte offset in it."""

    segment: NonNegative
    offset: NonNegative


class SpoolStream(_Entry):
    position: SpoolPosition
    seen: StrictInt = 0


class Registry(_Entry):
    """``registry.json``, validated like any input: a wrong shape or type is not used."""

    version: Literal[1]
    streams: dict[str, FileStream | PgStream | ApiStream | SpoolStream] = {}
    outputs: dict[str, NonNegative] = {}


def read_registry(state_dir: Path) -> Registry | None:
    """The registry as it is on disk, for readers (``status``); None when absent or unusable.
    Never moves anything aside: that is the daemon's job."""
    try:
        return Registry.model_validate_json((state_dir / "registry.json").read_bytes())
    except (OSError, ValueError):
        return None


def offline_lag(reg: Registry, now: float) -> list[Lag]:
    """Each stream's lag from its checkpoint alone, while no daemon reports it: bytes for a file
    still there (same inode), seconds since the acknowledged row for postgres and the
    Management API; a webhook spool's backlog needs the daemon and is not guessed."""
    out: list[Lag] = []
    for name, entry in reg.streams.items():
        if isinstance(entry, FileStream):
            if entry.path is None:
                continue
            try:
                st = os.stat(entry.path)
            except OSError:
                continue
            if st.st_ino == entry.ino:
                out.append(Lag(entry.path, "bytes", max(0, st.st_size - entry.offset)))
        elif isinstance(entry, PgStream):
            ts = entry.position.ts if isinstance(entry.position, PgPosition) else entry.position[0]
            try:
                when = datetime.fromisoformat(ts).timestamp()
            except ValueError:
                continue
            out.append(Lag(name, "seconds", max(0.0, now - when)))
        elif isinstance(entry, ApiStream):
            out.append(Lag(name, "seconds", max(0.0, now - entry.position.from_ / 1000)))
    return out


class CheckpointStore:
    """In-memory registry with throttled atomic persistence."""

    def __init__(self, state_dir: Path, interval: float = 1.0) -> None:
        self.path = state_dir / "registry.json"
        self.interval = interval
        self.streams: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, Any] = {}
        self._dirty = False
        self._last_flush = float("-inf")
        self._failing = False
        self._warn = Throttle(60.0)
        self.hold: Callable[[], bool] = lambda: False  # set by the runner: dead letters pending
        # State kept beside the positions (detection), written just before them: False from
        # one (it could not write) holds the checkpoint, so that state is never older.
        self.before_write: list[Callable[[], bool]] = []
        self.corrupt = False
        self._load()

    def _load(self) -> None:
        try:
            reg = Registry.model_validate_json(self.path.read_bytes())
            self.streams = {
                k: v.model_dump(mode="json", exclude_unset=True, by_alias=True)
                for k, v in reg.streams.items()
            }
            self.outputs = dict(reg.outputs)
        except FileNotFoundError:
            return
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            self._aside(f"{where}: {first['msg']}" if where else first["msg"])
        except (OSError, ValueError) as exc:
            self._aside(str(exc))

    def _aside(self, why: str) -> None:
        """Move an unusable registry aside and start without it (never fatal)."""
        aside = self.path.with_name(f"registry.json.corrupt-{int(time.time())}")
        try:
            self.path.rename(aside)
        except OSError:
            aside = self.path
        self.corrupt = True
        METRICS.inc("registry_corrupt_total")
        log.error("registry %s is unusable (%s); moved to %s, starting without it", self.path, why, aside)

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
        """Persist when dirty and the interval has passed (or ``force``); True if written.

        A host fault (full disk, I/O error, read-only filesystem) is a pause, not a crash: the
        checkpoint stays in memory, the error is logged once a minute and counted
        (``state_write_errors_total``), and the next flush tries again. ``hold()`` true (dead
        letters not yet durable) also defers the write: a checkpoint must never cover records
        whose dead letters could still be lost.
        """
        now = time.monotonic()
        if not self._dirty or (not force and now - self._last_flush < self.interval):
            return False
        if self.hold():
            return False
        if not all([write() for write in self.before_write]):
            self._last_flush = now  # retried at the next interval
            return False
        data = orjson.dumps({"version": VERSION, "streams": self.streams, "outputs": self.outputs})
        tmp = self.path.with_name("registry.json.tmp")
        try:
            _write_durably(tmp, data)
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except OSError as exc:
            METRICS.inc("state_write_errors_total")
            self._last_flush = now  # retried at the next interval, not on every step
            with contextlib.suppress(OSError):
                tmp.unlink()
            self._failing = True
            if self._warn.due("flush"):
                log.error(
                    "cannot write checkpoint %s: %s; keeping it in memory and retrying%s",
                    self.path,
                    exc.strerror or exc,
                    self._warn.suppressed("flush"),
                )
            return False
        if self._failing:
            log.info("checkpoint %s written again", self.path)
        self._failing = False
        self._dirty = False
        self._last_flush = now
        return True


def _write_durably(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    dfd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
