"""Detection as a pipeline stage: the signals of every segment, before it joins a batch.

``DetectStage.segment`` feeds the ``Detector`` (skipping events it has already seen: after a
restart the inputs re-read what was not checkpointed), logs each alert as one line and hands it
to ``Delivery``; counts that grow are re-indexed every ``update_every`` seconds. Its state
(windows, open alerts, undelivered alerts, the ids seen) is written to ``<state>/detect.json``
just before each checkpoint (``CheckpointStore.before_write``), so the state on disk is never
older than the positions: a ``kill -9`` neither loses an alert nor raises one twice (the
alerts' ids are deterministic, the index answers 409 to a replay).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from shipper.clock import SYSTEM, Clock
from shipper.detect.alerts import document, reason
from shipper.detect.deliver import Delivery
from shipper.detect.rules import Alert, Detector
from shipper.fsio import write_all
from shipper.metrics import METRICS
from shipper.records import Segment

log = logging.getLogger(__name__)
VERSION = 1
Respond = Callable[[Alert], dict[str, Any] | None]  # what the response did (None: nothing)


class DetectStage:
    def __init__(
        self,
        detector: Detector,
        delivery: Delivery,
        index_of: Callable[[int], str],
        state_path: Path,
        clock: Clock = SYSTEM,
        respond: Respond | None = None,
        update_every: float = 5.0,
    ) -> None:
        """``index_of``: the alerts index for an alert's time (epoch ms)."""
        self.detector, self.delivery, self.index_of = detector, delivery, index_of
        self.path, self.clock, self.respond, self.update_every = state_path, clock, respond, update_every
        self._seen: dict[str, int] = {}  # event id -> ms, oldest first, at most max_keys
        self._latest = 0
        self._last_update = clock.monotonic()
        self._dirty = False
        self._load()

    # -- the stage -------------------------------------------------------------------------

    def segment(self, seg: Segment, stream: str) -> None:
        if not seg.signals:
            return
        seen, cap = self._seen, self.detector.max_keys
        for s in seg.signals:
            if s.event_id in seen:
                METRICS.inc("detect_events_seen_again_total")
                continue
            seen[s.event_id] = s.ms
            if len(seen) > cap:
                del seen[next(iter(seen))]
            self._latest = max(self._latest, s.ms)
            for alert in self.detector.observe(s):
                self._fire(alert)
        self._dirty = True
        METRICS.set("detect_keys_tracked", self.detector.tracked)
        METRICS.set("detect_keys_evicted", self.detector.evicted)
        if self.clock.monotonic() - self._last_update >= self.update_every:
            self._updates()

    def _fire(self, a: Alert) -> None:
        self.detector.updated.pop(a.id, None)
        action = self.respond(a) if self.respond is not None else None
        log.warning("alert %s", reason(a))
        METRICS.inc("alerts_total")
        self.delivery.add(a.id, self.index_of(a.at_ms), document(a, int(self.clock.wall() * 1000), action))

    def _updates(self) -> None:
        self._last_update = self.clock.monotonic()
        changed, self.detector.updated = self.detector.updated, {}
        now = int(self.clock.wall() * 1000)
        for a in changed.values():
            self.delivery.update(a.id, self.index_of(a.at_ms), document(a, now))
        self.detector.expire(self._latest)

    def close(self) -> None:
        self._updates()
        self.delivery.close()
        self._dirty = True
        self.save()

    # -- state -----------------------------------------------------------------------------

    def save(self) -> bool:
        """Write the state if it changed; False when it could not be (the checkpoint waits)."""
        pending = self.delivery.records()
        if not self._dirty and not pending:
            return True
        data = orjson.dumps(
            {
                "version": VERSION,
                "detector": self.detector.snapshot(),
                "seen": list(self._seen.items()),
                "pending": pending,
            }
        )
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            METRICS.inc("state_write_errors_total")
            with contextlib.suppress(OSError):
                tmp.unlink()
            log.error(
                "cannot write detection state %s: %s; the checkpoint waits", self.path, exc.strerror or exc
            )
            return False
        self._dirty = False
        return True

    def _load(self) -> None:
        try:
            state = orjson.loads(self.path.read_bytes())
            if not isinstance(state, dict) or state.get("version") != VERSION:
                raise ValueError("not a detection state of this version")
            fresh = Detector(self.detector.rules, self.detector.max_keys)
            fresh.restore(state["detector"])
            seen = {str(k): int(v) for k, v in state["seen"]}
            pending = list(state["pending"])
            if not all(isinstance(x, dict) and "id" in x and "doc" in x for x in pending):
                raise ValueError("undelivered alerts malformed")
            self.detector, self._seen = fresh, seen
            self._latest = max(seen.values(), default=0)
            self.delivery.restore(pending)
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            with contextlib.suppress(OSError):
                self.path.rename(aside)
            METRICS.inc("detect_state_corrupt_total")
            log.error(
                "detection state %s is unusable (%s); moved to %s, starting without it", self.path, exc, aside
            )
