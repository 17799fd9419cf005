"""The ``logto-api`` input: Logto's audit log through the Management API (``GET /api/logs``).

For Logto Cloud tenants, which have no database access and whose logs expire after 3 or 14
days. Facts this relies on (Logto's ``routes/log.ts``, ``queries/log.ts``,
``middleware/koa-pagination.ts``): ``page`` from 1, ``page_size`` at most 100, ``start_time``
and ``end_time`` in epoch ms, both inclusive (Logto 1.40+), rows ordered ``created_at desc``
with ``LIMIT/OFFSET``, ``Total-Number`` (a lower bound when ``Total-Number-Is-Capped`` answers
``enableCap=true``); items ``{tenantId, id, key, payload, createdAt}``; ``TriggerHook.*`` rows
never appear.

How nothing is lost or repeated:

- **Closed windows.** A window is ``[from, end]`` with ``end`` at most ``now - safety_lag``
  and fixed while its pages are read, so rows written meanwhile (dated now) cannot shift the
  offsets. A window holds at most ``WINDOW_MAX`` rows: wider ones are halved (the count
  comes with the first page) down to 1 ms; the width that fitted is tried again next.
- **Ordered hand-over.** Rows of a window are sorted oldest first and handed over whole; the
  position after them is ``{"from": end, "edge": ids dated end}``: the next window starts at
  ``end`` again (so a Logto whose ``end_time`` was exclusive loses nothing) and skips ``edge``.
  Ids repeated across pages of one window (offsets moved) count once.
- **Checkpoint after acknowledgement**, as for the other inputs; ``_id`` is the log id, so a
  window read again after a crash is indexed once.
- **Never in the pipeline's way**: pages are fetched on a thread of their own; ``poll`` only
  takes finished windows. 429/5xx/network -> backoff honouring ``Retry-After``; bad
  credentials -> a line a minute and a slow retry; ``status`` and ``run --once`` see why.
- **Retention**: when the acknowledged cursor is within an hour of the tenant's retention
  (``retention``, Logto Cloud: 3 or 14 days), rows are about to expire unshipped: a warning,
  the metric ``logto_api_retention_margin_seconds`` and a note in ``status``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from shipper.config import LogtoApiInputConfig
from shipper.logs import Throttle
from shipper.logto_api import ApiBusy, ApiError, ApiRefused, ManagementApi
from shipper.metrics import METRICS
from shipper.pipeline.checkpoint import CheckpointStore
from shipper.records import exact
from shipper.redact import one_line
from shipper.sources import Chunk, Lag
from shipper.sources.lines import Frame
from shipper.timespec import instant, parse_duration
from shipper.wake import Wake

log = logging.getLogger(__name__)
PAGE_SIZE = 100  # Logto's maximum
WINDOW_MAX = 1000  # rows held for one window (ten pages)
READY_MAX = 4  # finished windows waiting for the pipeline (memory bound)
RETENTION_WARN = 3600.0  # seconds of margin left before rows expire that start the warning
REFUSED_RETRY = 60.0


def since_ms(text: str, now_ms: int) -> int:
    """The first cursor from ``since``: a duration back from now, or an ISO time."""
    at = instant(text, datetime.fromtimestamp(now_ms / 1000, UTC))
    return max(0, round(at.timestamp() * 1000))


class LogtoApiSource:
    """One ``logto-api`` input = one stream (``prefix``); positions are ``{"from", "edge"}``."""

    def __init__(
        self,
        cfg: LogtoApiInputConfig,
        store: CheckpointStore,
        prefix: str = "api",
        wake: Wake | None = None,
        api: Any = None,
        wall: Callable[[], float] = time.time,
        start: bool = True,
    ) -> None:
        assert cfg.app_secret is not None  # the config's validator insists
        self.cfg, self.store, self.stream = cfg, store, prefix
        self.api = api or ManagementApi(
            cfg.endpoint, cfg.app_id, cfg.app_secret.get_secret_value(), cfg.resource
        )
        self.wall = wall
        self.wake = wake or Wake()
        self.name = f"logto-api:{cfg.endpoint.rstrip('/')}"
        self._lag_ms = int(parse_duration(cfg.safety_lag) * 1000)
        self._retention = parse_duration(cfg.retention) if cfg.retention else None
        pos = store.streams.get(prefix, {}).get("position")
        if isinstance(pos, dict) and isinstance(pos.get("from"), int):
            self._from, self._edge = int(pos["from"]), {str(i): None for i in pos.get("edge") or []}
        else:
            self._from, self._edge = since_ms(cfg.since, self._now_ms()), {}
        self._handed = self._position()  # position of the last window handed over whole
        self._ready: deque[tuple[list[Frame], dict[str, Any]]] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._width: int | None = None  # ms of the last window that fitted
        self._attempt = 0
        self._warn = Throttle(60.0)
        self._retention_warned = 0.0
        self.unavailable = ""
        self.fetching = True  # until the first time the cursor reaches now - safety_lag
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._loop, name=f"{prefix}-fetch", daemon=True)
            self._thread.start()

    def _now_ms(self) -> int:
        return int(self.wall() * 1000)

    def _position(self) -> dict[str, Any]:
        return {"from": self._from, "edge": list(self._edge)}

    # -- the fetching thread -------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                full = len(self._ready) >= READY_MAX
            if full:
                self._stop.wait(0.05)
                continue
            try:
                caught_up = self.fetch_window()
            except ApiError as exc:
                self._failed(exc)
                continue
            except Exception as exc:  # a bug must not end the thread silently
                log.exception("logto-api: unexpected error")
                self._failed(ApiBusy(one_line(exc, self.api.secrets)))
                continue
            if caught_up:
                self.fetching = False
                self._stop.wait(self.cfg.poll_interval)

    def _failed(self, exc: ApiError) -> None:
        METRICS.inc("logto_api_errors_total")
        why = self.unavailable = one_line(exc, self.api.secrets)
        if isinstance(exc, ApiRefused):
            delay = REFUSED_RETRY
        else:
            backoff = random.uniform(0.5, 1.0) * min(60.0, 2.0 ** min(self._attempt, 6))
            delay = max(backoff, exc.retry_after or 0.0)
        self._attempt += 1
        if self._warn.due("down"):
            log.warning(
                "logto-api %s unavailable (%s); retrying in %.0f s%s",
                self.cfg.endpoint,
                why,
                delay,
                self._warn.suppressed("down"),
            )
        self._stop.wait(delay)

    def _page(self, start: int, end: int, page: int) -> tuple[list[dict[str, Any]], int, bool]:
        """One page of ``[start, end]``: (items, total, total is a lower bound)."""
        params = {
            "page": page,
            "page_size": PAGE_SIZE,
            "start_time": start,
            "end_time": end,
            "enableCap": "true",
        }
        resp = self.api.get("/api/logs", params)
        METRICS.inc("logto_api_requests_total")
        if resp.status_code != 200:
            raise ApiRefused(f"GET /api/logs answered HTTP {resp.status_code}")
        try:
            items = resp.json()
        except ValueError:
            raise ApiBusy("GET /api/logs answered with a body that is not JSON") from None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ApiBusy("GET /api/logs answered with something other than a list of logs")
        for it in items:
            ms = it.get("createdAt")
            if not isinstance(ms, int) or isinstance(ms, bool) or not start <= ms <= end + 1:
                raise ApiRefused(
                    "GET /api/logs ignores start_time/end_time (a log outside the window came back): "
                    "this input needs Logto 1.40 or newer"
                )
        try:
            total = int(resp.headers.get("Total-Number", len(items)))
        except ValueError:
            total = len(items)
        return items, total, resp.headers.get("Total-Number-Is-Capped") == "true"

    def fetch_window(self) -> bool:
        """Read the next window and queue it; True when it reached ``now - safety_lag``."""
        start, now_end = self._from, self._now_ms() - self._lag_ms
        if now_end <= start:
            return True
        end = now_end if self._width is None else min(now_end, start + 2 * self._width)
        items, total, capped = self._page(start, end, 1)
        while (capped or total > WINDOW_MAX) and end > start + 1:
            end = start + (end - start) // 2
            items, total, capped = self._page(start, end, 1)
        self._width = max(1, end - start)
        rows = {str(it.get("id")): it for it in items}
        page, last = 1, (total // PAGE_SIZE + 2 if not capped else None)
        while len(items) == PAGE_SIZE and not self._stop.is_set():
            page += 1
            if last is not None and page > last + WINDOW_MAX // PAGE_SIZE:
                raise ApiRefused("GET /api/logs keeps answering full pages past Total-Number")
            items, _, _ = self._page(start, end, page)
            for it in items:
                rows.setdefault(str(it.get("id")), it)
        if self._stop.is_set():
            return True
        fresh = sorted(
            (r for i, r in rows.items() if i not in self._edge),
            key=lambda r: (r["createdAt"], str(r.get("id"))),
        )
        self._from = end
        self._edge = {i: None for i, r in rows.items() if r["createdAt"] >= end}
        frames = [self._frame(r) for r in fresh]
        with self._lock:
            self._ready.append((frames, self._position()))
        METRICS.inc("logto_api_rows_read_total", len(frames))
        self._attempt = 0
        if self.unavailable:
            log.info("logto-api %s: available again", self.cfg.endpoint)
        self.unavailable = ""
        self.wake.set()
        return end >= now_end

    def _frame(self, row: dict[str, Any]) -> Frame:
        line = exact(orjson.dumps(row))  # kept with the page until it is normalized
        if len(line) > self.cfg.max_row_bytes:  # dead-lettered with its first bytes and real length
            return Frame(line[: self.cfg.max_row_bytes], 0, 0, len(line))
        return Frame(line, 0, 0, len(line))

    # -- Source protocol -----------------------------------------------------------------

    def poll(self, max_records: int) -> list[Chunk]:
        with self._lock:
            if not self._ready:
                return []
            frames, position = self._ready[0]
            if len(frames) <= max_records:
                self._ready.popleft()
                self._handed = position
            else:  # the window's rest stays; this part resumes where the window started
                self._ready[0] = (frames[max_records:], position)
                frames, position = frames[:max_records], self._handed
        return [Chunk(self.stream, self.name, frames, position=position, offsets=False)]

    def acked(self, stream: str, position: Any) -> None:
        self.store.stage(stream, position=position, seen=int(self.wall()))

    def housekeeping(self) -> None:
        pass

    def _acked_from(self) -> int:
        pos = self.store.streams.get(self.stream, {}).get("position")
        if isinstance(pos, dict) and isinstance(pos.get("from"), int):
            return int(pos["from"])
        return int(self._handed["from"])

    def retention_note(self) -> str:
        """Why rows are about to expire unshipped ("" when they are not)."""
        if self._retention is None:
            return ""
        now = self.wall()
        margin = self._acked_from() / 1000 - (now - self._retention)
        METRICS.set("logto_api_retention_margin_seconds", margin)
        if margin >= RETENTION_WARN:
            return ""
        note = (
            f"shipped up to {time.strftime('%Y-%m-%d %H:%M', time.gmtime(self._acked_from() / 1000))} UTC: "
            f"rows older than the tenant's retention ({self.cfg.retention}) expire "
            + ("before they are shipped" if margin < 0 else f"in {max(0, int(margin // 60))} min")
        )
        if now - self._retention_warned >= 600:
            self._retention_warned = now
            log.warning("logto-api %s: %s", self.cfg.endpoint, note)
        return note

    def lag(self) -> list[Lag]:
        secs = max(0.0, self.wall() - self._acked_from() / 1000)
        with self._lock:
            waiting = sum(len(f) for f, _ in self._ready)
        return [
            Lag(
                self.stream,
                "seconds",
                secs,
                waiting,
                note=self.retention_note(),
                unavailable=self.unavailable,
                busy=self.fetching or waiting > 0,
            )
        ]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.api.close()
