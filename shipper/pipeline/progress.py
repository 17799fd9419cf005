"""What the daemon has done and how far behind it is: progress lines, ``status.json``, the
``--once`` summary. One set of counters (``METRICS``), read three ways.

``shipped`` counts documents the output acknowledged and kept (for Elasticsearch: indexed, or
already there, 409); ``expired`` events not shipped because their day is past the retention;
``rejected`` records the normalizer refused (dead-lettered with their raw
bytes); ``dead_lettered`` documents the output refused (mapping errors, to the dead-letter
index or file). Rates are per second since the previous line.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from shipper.logs import Throttle
from shipper.metrics import METRICS
from shipper.sources import Lag

log = logging.getLogger(__name__)
STATUS_FILE = "status.json"


@dataclass(frozen=True, slots=True)
class Totals:
    shipped: int
    duplicates: int
    rejected: int
    dead_lettered: int
    expired: int = 0

    @staticmethod
    def now() -> Totals:
        v = METRICS.snapshot()
        dead = int(v.get("docs_dead_lettered_total", 0))
        expired = int(v.get("docs_expired_total", 0))
        return Totals(
            int(v.get("docs_acknowledged_total", 0)) - dead - expired,
            int(v.get("docs_duplicate_total", 0)),
            int(v.get("records_rejected_total", 0)),
            dead,
            expired,
        )

    def __sub__(self, other: Totals) -> Totals:
        return Totals(
            self.shipped - other.shipped,
            self.duplicates - other.duplicates,
            self.rejected - other.rejected,
            self.dead_lettered - other.dead_lettered,
            self.expired - other.expired,
        )


def expired_text(t: Totals) -> str:
    """``, 12 expired (older than the retention, oldest 2025-08-20)`` or nothing."""
    if not t.expired:
        return ""
    oldest = METRICS.snapshot().get("docs_expired_oldest_timestamp_seconds")
    day = f", oldest {time.strftime('%Y-%m-%d', time.gmtime(oldest))}" if oldest else ""
    return f", {t.expired:,} expired (older than the retention{day})"


def _eta(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def describe_lag(lag: Lag, rate: float = 0.0) -> str:
    """``pg0:default 3600 s and 120,000 rows behind, ETA 5m`` and the like."""
    if lag.unavailable:
        return f"{lag.source} unavailable ({lag.unavailable})"
    if lag.note:
        return f"{lag.source}: {lag.note}"
    if lag.unit == "bytes":
        return f"{lag.source} {int(lag.value):,} bytes behind"
    text = f"{lag.source} {lag.value:.0f} s"
    if lag.records is not None:
        text += f" and {'≥' if lag.records_capped else ''}{lag.records:,} rows"
        if lag.records and rate > 0:
            text += f" behind, ETA {_eta(lag.records / rate)}"
            return text
    return text + " behind"


class Progress:
    """Counts since start; ``tick`` logs a line every ``interval`` s (0: never) and refreshes
    ``<state>/status.json`` every ``status_every`` s for ``logto-shipper status``."""

    def __init__(
        self,
        state_dir: Path | None,
        interval: float = 30.0,
        status_every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.interval = interval
        self.status_every = status_every
        self.path = state_dir / STATUS_FILE if state_dir is not None else None
        self.started = clock()
        self.started_wall = time.time()
        self.base = Totals.now()
        self._last_line = self.started
        self._last_totals = Totals(0, 0, 0, 0)
        self._last_status = float("-inf")
        self._warn = Throttle(60.0, clock)
        self._shipped_seen, self._shipped_at = 0, 0.0  # last_shipped_at: see report()

    def totals(self) -> Totals:
        return Totals.now() - self.base

    def tick(self, lags: Callable[[], Iterable[Lag]]) -> None:
        now = self.clock()
        line_due = self.interval > 0 and now - self._last_line >= self.interval
        status_due = self.path is not None and now - self._last_status >= self.status_every
        if not (line_due or status_due):
            return
        current = list(lags())
        if status_due:
            self._last_status = now
            self.write_status(current)
        if line_due:
            self.log_line(now, current)

    def log_line(self, now: float, lags: list[Lag]) -> None:
        t = self.totals()
        span = max(1e-9, now - self._last_line)
        rate = (t.shipped - self._last_totals.shipped) / span
        self._last_line, self._last_totals = now, t
        behind = "; ".join(describe_lag(lag, rate) for lag in lags)
        log.info(
            "progress: %s shipped (%.0f/s), %s rejected, %s dead-lettered%s since start%s",
            f"{t.shipped:,}",
            rate,
            f"{t.rejected:,}",
            f"{t.dead_lettered:,}",
            expired_text(t),
            f"; {behind}" if behind else "",
        )

    def report(self, lags: list[Lag]) -> dict[str, Any]:
        t = self.totals()
        elapsed = max(1e-9, self.clock() - self.started)
        oldest = METRICS.snapshot().get("docs_expired_oldest_timestamp_seconds")
        if t.shipped > self._shipped_seen:
            # When shipping was last seen (to the status period): ``search`` says that events
            # this recent may not be searchable until the index refreshes.
            self._shipped_seen, self._shipped_at = t.shipped, time.time()
        return {
            "last_shipped_at": self._shipped_at or None,
            "pid": os.getpid(),
            "expired_oldest": time.strftime("%Y-%m-%d", time.gmtime(oldest)) if oldest else None,
            "updated": time.time(),
            "started": self.started_wall,
            "totals": asdict(t),
            "per_second": round(t.shipped / elapsed, 1),
            "inputs": [asdict(lag) for lag in lags],
        }

    def write_status(self, lags: list[Lag]) -> None:
        """Best effort, atomic (rename), not fsynced: a lost update is harmless; a full disk
        is said once a minute and never stops shipping."""
        if self.path is None:
            return
        tmp = self.path.with_name(STATUS_FILE + ".tmp")
        try:
            tmp.write_bytes(orjson.dumps(self.report(lags)))
            os.replace(tmp, self.path)
        except OSError as exc:
            METRICS.inc("state_write_errors_total")
            if self._warn.due("status"):
                log.warning("cannot write %s: %s%s", self.path, exc.strerror, self._warn.suppressed("status"))

    def summary(self) -> str:
        t = self.totals()
        elapsed = self.clock() - self.started
        dup = f" ({t.duplicates:,} already indexed)" if t.duplicates else ""
        return (
            f"shipped {t.shipped:,} records{dup}, {t.rejected:,} rejected, "
            f"{t.dead_lettered:,} dead-lettered{expired_text(t)} in {elapsed:.1f} s"
        )


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """The daemon's last ``status.json`` (None: none, or unreadable)."""
    try:
        data = orjson.loads((state_dir / STATUS_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
