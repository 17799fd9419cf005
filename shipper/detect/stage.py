"""Detection as a pipeline stage: the signals of every segment, before it joins a batch.

``DetectStage.segment`` feeds the ``Detector`` (skipping events it has already seen: after a
restart the inputs re-read what was not checkpointed), logs each alert as one line and hands it
to ``Delivery``; counts that grow are re-indexed every ``update_every`` seconds.

State survives ``kill -9`` as a snapshot plus a write-ahead log of signals, in ``<state>/``:
every signal observed is appended to ``detect-<gen>.wal``, which is written and fsynced just
before each checkpoint (``CheckpointStore.before_write``: a checkpoint waits while it cannot
be), so the state on disk is never older than the inputs' positions. Every ``snapshot_every``
seconds (and at shutdown) the whole state (windows, open alerts, undelivered alerts, the ids
seen) goes to ``detect.json`` with the next generation, and older logs are deleted; a start
loads the snapshot and replays the logs of its generation onwards. Alerts a replay raises
again have the same ids: the delivery journal (and the index's 409) keeps them from being told
twice. Writing the log costs one short line per signal; a snapshot of a full state (100,000
keys per rule) is ~15 MB, written once a minute rather than with every checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from shipper.clock import SYSTEM, Clock
from shipper.detect.alerts import document, reason
from shipper.detect.deliver import Delivery
from shipper.detect.rules import Alert, Detector
from shipper.detect.signals import Signal
from shipper.fsio import write_all
from shipper.metrics import METRICS
from shipper.records import Segment

log = logging.getLogger(__name__)
VERSION = 2
# Event ids remembered to skip what the inputs re-read after a restart: those read past the last
# checkpoint, at most ``Runner.unacked_bound`` (the daemon passes it when larger than this).
SEEN_KEEP = 20_000
# Window state is forgotten for keys whose newest event is a window older than every input's
# newest event (each input's events come in about event-time order), less LATE_MS for those
# that do not: the postgres input's late commits (its overlap), a file's lines a little out of
# order. Without it, keys seen once (a source address) stayed until max_keys pushed them out: a
# long-running daemon's window of sign-ins per address grew to 65 MB at the default 100,000
# keys, idle or not. An input without relevant events for STREAM_IDLE_S no longer holds the
# others back.
LATE_MS = 3_600_000
STREAM_IDLE_S = 600.0
Respond = Callable[[Alert], dict[str, Any] | None]  # what the response did (None: nothing)


def _line(s: Signal) -> bytes:
    return orjson.dumps(tuple(s))  # the fields in order (orjson takes no tuple subclass)


def _signal(f: list[Any]) -> Signal:
    ms, event_id, action, failed, succeeded, actor, user_id, ip, code, to, country, loc = f
    where = (float(loc[0]), float(loc[1])) if loc else None
    return Signal(int(ms), event_id, action, failed, succeeded, actor, user_id, ip, code, to, country, where)


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
        snapshot_every: float = 60.0,
        seen_keep: int = SEEN_KEEP,
    ) -> None:
        """``index_of``: the alerts index for an alert's time (epoch ms); ``state_path``: the
        snapshot (its logs beside it); ``seen_keep``: event ids remembered (SEEN_KEEP)."""
        self.detector, self.delivery, self.index_of = detector, delivery, index_of
        self.path, self.clock, self.respond, self.update_every = state_path, clock, respond, update_every
        self.snapshot_every, self.seen_keep = snapshot_every, seen_keep
        # event id -> ms, oldest first, at most seen_keep. Ordered: a dict's oldest entry is
        # found by skipping the deleted ones before it (deleting from the front of a plain dict
        # made each new event cost a scan: a fifth of the detection's CPU).
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._latest = 0
        self._last_update = clock.monotonic()
        # Signals observed, not yet written, as the log's lines (one buffer: orjson's bytes
        # of a ~160-byte line hold 4 KB each, and a second of a flood is ~50,000 of them).
        self._wal = bytearray()
        self._inputs: dict[str, tuple[int, float]] = {}  # stream -> (newest event ms, when seen)
        self._gen = 0
        self._replaying = False
        self._load()
        self._snapshot_at = float("-inf")
        self._snapshot()  # the replayed logs folded into one snapshot; a new log from here

    # -- the stage -------------------------------------------------------------------------

    def segment(self, seg: Segment, stream: str) -> None:
        if not seg.signals:
            return
        for s in seg.signals:
            self._observe(s)
        newest, before = max(s.ms for s in seg.signals), self._inputs.get(stream)
        if before is not None:
            newest = max(newest, before[0])
        self._inputs[stream] = (newest, self.clock.monotonic())
        METRICS.set("detect_keys_tracked", self.detector.tracked)
        METRICS.set("detect_keys_evicted", self.detector.evicted)
        if self.clock.monotonic() - self._last_update >= self.update_every:
            self._updates()

    def _observe(self, s: Signal) -> None:
        seen = self._seen
        if s.event_id in seen:
            if not self._replaying:
                METRICS.inc("detect_events_seen_again_total")
            return
        seen[s.event_id] = s.ms
        if len(seen) > self.seen_keep:
            seen.popitem(last=False)
        if not self._replaying:
            self._wal += _line(s)
            self._wal += b"\n"
        self._latest = max(self._latest, s.ms)
        for alert in self.detector.observe(s):
            self._fire(alert)

    def _fire(self, a: Alert) -> None:
        self.detector.updated.pop(a.id, None)
        action = self.respond(a) if self.respond is not None and not self._replaying else None
        if not self._replaying:  # a replayed alert was logged when it was raised
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
        self._forget()

    def _forget(self) -> None:
        now = self.clock.monotonic()
        for stream in [k for k, (_, seen) in self._inputs.items() if now - seen > STREAM_IDLE_S]:
            del self._inputs[stream]
        if self._inputs:
            self.detector.forget(min(ms for ms, _ in self._inputs.values()) - LATE_MS)

    def close(self) -> None:
        self._updates()
        self.delivery.close()
        self.save()
        self._snapshot()

    # -- state -----------------------------------------------------------------------------

    def _log_path(self, gen: int) -> Path:
        return self.path.with_name(f"detect-{gen}.wal")

    def save(self) -> bool:
        """Append the signals observed since the last call to the log (fsynced), and take a
        snapshot when one is due; False when the log could not be written (the checkpoint
        waits, the signals stay queued)."""
        if self._wal:
            try:
                fd = os.open(self._log_path(self._gen), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    write_all(fd, self._wal)
                finally:
                    os.close(fd)
            except OSError as exc:
                METRICS.inc("state_write_errors_total")
                log.error(
                    "cannot write detection log %s: %s; the checkpoint waits",
                    self._log_path(self._gen),
                    exc.strerror or exc,
                )
                return False
            self._wal.clear()
        if self.clock.monotonic() - self._snapshot_at >= self.snapshot_every:
            self._snapshot()
        return True

    def _snapshot(self) -> bool:
        """The whole state into ``detect.json`` as generation ``gen + 1``, then the older logs
        deleted (a crash in between leaves logs the next start ignores)."""
        if self._wal:
            return False  # what is queued goes to the log first (save)
        gen = self._gen + 1
        data = orjson.dumps(
            {
                "version": VERSION,
                "gen": gen,
                "detector": self.detector.snapshot(),
                "seen": list(self._seen.items()),
                "pending": self.delivery.records(),
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
                "cannot write detection state %s: %s; the log keeps growing", self.path, exc.strerror or exc
            )
            self._snapshot_at = self.clock.monotonic()  # tried again at the next interval
            return False
        old, self._gen = self._gen, gen
        self._snapshot_at = self.clock.monotonic()
        for g in self._logs():
            if g <= old:
                with contextlib.suppress(OSError):
                    self._log_path(g).unlink()
        return True

    def _logs(self) -> list[int]:
        out = []
        for p in self.path.parent.glob("detect-*.wal"):
            g = p.name[len("detect-") : -len(".wal")]
            if g.isdigit():
                out.append(int(g))
        return sorted(out)

    def _load(self) -> None:
        gen = 0
        try:
            state = orjson.loads(self.path.read_bytes())
            if not isinstance(state, dict) or state.get("version") != VERSION:
                raise ValueError("not a detection state of this version")
            fresh = Detector(self.detector.rules, self.detector.max_keys)
            fresh.restore(state["detector"])
            seen = OrderedDict((str(k), int(v)) for k, v in state["seen"])
            pending = list(state["pending"])
            if not all(isinstance(x, dict) and "id" in x and "doc" in x for x in pending):
                raise ValueError("undelivered alerts malformed")
            gen = int(state["gen"])
            self.detector, self._seen = fresh, seen
            self._latest = max(seen.values(), default=0)
            self.delivery.restore(pending)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            with contextlib.suppress(OSError):
                self.path.rename(aside)
            METRICS.inc("detect_state_corrupt_total")
            log.error(
                "detection state %s is unusable (%s); moved to %s, replaying its log", self.path, exc, aside
            )
        self._gen = max([gen, *self._logs()])
        self._replay(gen)

    def _replay(self, since: int) -> None:
        """The signals logged since the snapshot, observed again (alerts they raise again are
        delivered only where the journal says they were not)."""
        self._replaying = True
        bad = 0
        try:
            for g in self._logs():
                if g < since:
                    continue
                try:
                    data = self._log_path(g).read_bytes()
                except OSError:
                    continue
                for line in data.splitlines():
                    try:
                        self._observe(_signal(orjson.loads(line)))
                    except (orjson.JSONDecodeError, TypeError, ValueError, IndexError):
                        bad += 1  # a line cut short by the crash
        finally:
            self._replaying = False
        if bad:
            log.warning("detection log: %d unreadable lines skipped (written while the daemon died)", bad)
