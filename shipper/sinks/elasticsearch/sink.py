"""Deliver batches with ``_bulk``: exactly-once results, retries of failed items only, dead letters.

Per item: 2xx and 409 are delivered (409 means "already indexed", the exactly-once guarantee
of ``op_type: create`` with ``_id = event.id``); 429/5xx are retried with backoff, only those
items; other 4xx go to the dead-letter index ``<prefix>-deadletter-<namespace>`` (falling back
to ``<state>/dead-letter/elasticsearch.jsonl``) and then count as delivered. Whole-request
failures (connection, timeout, 429, 5xx) retry the batch; 413 splits it. Retries go on forever
while running; ``close`` abandons them (the batch is then not acknowledged and is read again).

Two refusals are not the document's fault and are answered before that:
- events whose day is already past ``retention`` are not sent (``ship_expired`` sends them): ILM
  would delete their index at once. Counted (``docs_expired_total``), said once per run.
- 403 ``cluster_block_exception`` of an index-level write block (ILM ``readonly`` after
  ``warm_after``, or by hand): the documents go to ``IndexNamer.late`` instead, unless an index
  of the pattern already holds their ``_id`` (a replay: counted as a duplicate).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from shipper.clock import SYSTEM, Clock
from shipper.config import ElasticsearchOutputConfig, IndexConfig
from shipper.errors import OutputError
from shipper.logs import Throttle
from shipper.metrics import METRICS
from shipper.records import DAY_MS, Batch, Segment
from shipper.sinks.elasticsearch.blocked import WriteBlocks
from shipper.sinks.elasticsearch.client import (
    RAW_NDJSON,
    ApiError,
    AuthenticationException,
    AuthorizationException,
    ConnectionTimeout,
    TransportConnectionError,
    TransportError,
    describe,
    error_parts,
    make_client,
    no_root_endpoint,
    translate,
)
from shipper.sinks.elasticsearch.deadletters import DeadLetterIndex
from shipper.sinks.elasticsearch.encode import Item, blocks_body, items, items_body
from shipper.sinks.elasticsearch.framing import BulkFramer
from shipper.sinks.elasticsearch.indexing import Expiry, IndexNamer
from shipper.sinks.elasticsearch.retry import (
    AllDelivered,
    Backoff,
    BulkResult,
    Outcome,
    PerItem,
    RetryAll,
    classify,
    write_blocked,
)
from shipper.sinks.elasticsearch.setup import setup
from shipper.timespec import parse_duration

log = logging.getLogger(__name__)
FILTER = "errors,items.*.status,items.*.error.type,items.*.error.reason"


class Abandoned(Exception):
    """The sink is closing: stop retrying this batch."""


class ElasticsearchSink:
    """Delivers on ``max_in_flight`` worker threads; ``completed`` reports finished batches."""

    def __init__(
        self,
        client: Any,
        index: IndexConfig,
        out: ElasticsearchOutputConfig,
        deadletter_path: Path,
        run_setup: bool = True,
        clock: Clock = SYSTEM,
    ) -> None:
        """``clock``: every wait (backoff), deadline and timestamp of the sink (tests: ManualClock)."""
        self.client = client
        self.clock = clock
        self.index_cfg = index
        self.max_in_flight = out.max_in_flight
        self.namer = IndexNamer(index.prefix, index.namespace, index.granularity)
        self.framer = BulkFramer(self.namer, out.gzip_level if out.gzip else 0)
        self.dead_letters = DeadLetterIndex(
            client, f"{index.prefix}-deadletter-{index.namespace}", deadletter_path, clock
        )
        self.backoff = Backoff(out.retry_initial_backoff, out.retry_max_backoff)
        self.gzip_level = out.gzip_level if out.gzip else 0
        self._gzip_client = (
            client.options(headers={"content-encoding": "gzip"}) if self.gzip_level else client
        )
        self._pool = ThreadPoolExecutor(out.max_in_flight, thread_name_prefix="bulk")
        self._done: queue.Queue[int] = queue.Queue()
        self._closing = threading.Event()
        # Set (and replaced) when a request goes through after failures, and at close: batches
        # waiting out a backoff then retry at once. Otherwise the output came back and the
        # oldest batch (which waited longest: the longest backoff) held the checkpoint for up
        # to retry_max_backoff while the newer ones were delivered.
        self._woken = threading.Event()
        self._woken_lock = threading.Lock()
        self._setup_lock = threading.Lock()
        self._setup_done = not run_setup
        self._last_error: str | None = None
        self._failing_since: float | None = None
        self._warn = Throttle(60.0, clock.monotonic)
        self.hosts = ", ".join(out.hosts)  # as configured: credentials are never in them
        retention = parse_duration(index.retention)
        self.expiry = None if index.ship_expired else Expiry(retention, index.granularity)
        self._expired_said = False
        self.write_blocks = WriteBlocks(client, self.namer, clock)

    @classmethod
    def from_config(
        cls, out: ElasticsearchOutputConfig, index: IndexConfig, state_dir: Path
    ) -> ElasticsearchSink:
        # The client would gzip at level 9 (its fixed default); the sink compresses itself instead.
        return cls(
            make_client(out, http_compress=False, serializers=RAW_NDJSON),
            index,
            out,
            state_dir / "dead-letter" / "elasticsearch.jsonl",
            run_setup=out.setup_on_start,
        )

    # -- Sink protocol ---------------------------------------------------------------------

    def submit(self, batch: Batch) -> None:
        self._pool.submit(self._run, batch.seq, batch.segments, batch.count)

    def completed(self, timeout: float = 0.0) -> list[int]:
        out = []
        try:
            out.append(self._done.get(timeout=timeout) if timeout > 0 else self._done.get_nowait())
            while True:
                out.append(self._done.get_nowait())
        except queue.Empty:
            pass
        return out

    def committed(self) -> Any:
        return None

    @property
    def set_up(self) -> bool:
        """Templates and policy are in place (or setup is off): indices may be created."""
        return self._setup_done

    def problem(self) -> str | None:
        return self._last_error

    def preflight(self, timeout: float) -> None:
        """Reach the cluster with our credentials and run setup (if on) within ``timeout``.

        A refused credential ends it at once; an unreachable cluster is retried with backoff
        until the deadline. ``GET /`` answered 403 means authenticated without the ``monitor``
        privilege: shipping does not need it.
        """
        deadline = self.clock.monotonic() + timeout
        attempt = 0
        where = f"Elasticsearch at {self.hosts}"
        while True:
            try:
                try:
                    self.client.info()
                except AuthorizationException:
                    pass
                except ApiError as exc:
                    if not no_root_endpoint(exc):  # else: it answered; setup checks credentials
                        raise
                if not self._setup_done:
                    self._apply_setup()
                return
            except AuthenticationException as exc:
                raise translate(exc, where) from None
            except AuthorizationException as exc:
                raise translate(exc, f"{where}: setup") from None
            except (ApiError, TransportError) as exc:
                delay = self.backoff.delay(attempt)
                if self.clock.monotonic() + delay >= deadline:
                    raise OutputError(
                        f"{where} not reachable within {timeout:g} s: {describe(exc)}"
                    ) from None
                self._note_error(describe(exc))
                self.clock.sleep(delay)
                attempt += 1

    def close(self) -> None:
        self._closing.set()
        self._wake_retries()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.dead_letters.close()

    # -- delivery --------------------------------------------------------------------------

    def _run(self, seq: int, segments: list[Segment], count: int) -> None:
        try:
            if count:
                self._ensure_setup()
                self._deliver_blocks(segments, count)
            self._done.put(seq)
        except Abandoned:
            log.info("batch %d abandoned at shutdown; it will be read again", seq)
        except Exception:  # a bug must not kill the worker silently: the batch stays unacked
            log.exception("unexpected error delivering batch %d; it will be read again", seq)

    def _sleep(self, attempt: int) -> None:
        woken = self._woken  # taken before the wait starts: a wake from here on ends it
        self.clock.wait(woken, self.backoff.delay(attempt))
        if self._closing.is_set():
            raise Abandoned

    def _wake_retries(self) -> None:
        with self._woken_lock:  # once closing, every event handed out is already set
            fresh = threading.Event()
            if self._closing.is_set():
                fresh.set()
            woken, self._woken = self._woken, fresh
        woken.set()

    def _note_error(self, message: str) -> None:
        """Changes of state at once; the same problem again once a minute, saying for how long."""
        now = self.clock.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if message != self._last_error:
            self._warn.reset("error")
        if self._warn.due("error"):
            since, held = now - self._failing_since, self._warn.held("error")
            extra = [f"not shipping for {since:.0f} s"] if since >= 1 else []
            extra += [f"{held} more failures since the last report"] if held else []
            log.warning(
                "Elasticsearch: %s; retrying with backoff%s",
                message,
                f" ({', '.join(extra)})" if extra else "",
            )
        self._last_error = message

    def _apply_setup(self) -> None:
        changes = setup(self.client, self.index_cfg)
        for c in changes:
            if c.action == "unavailable":
                log.warning("setup: %s %s: %s", c.desired.kind, c.desired.name, c.detail)
            elif c.action != "unchanged":
                log.info("setup: %s %s %s", c.action, c.desired.kind, c.desired.name)
        self._setup_done = True

    def _ensure_setup(self) -> None:
        attempt = 0
        while not self._setup_done:
            with self._setup_lock:
                if self._setup_done:
                    return
                try:
                    self._apply_setup()
                    return
                except (ApiError, TransportError) as exc:
                    self._note_error(f"setup failed: {describe(exc)}")
            self._sleep(attempt)
            attempt += 1

    def _bulk(self, payload: bytes, count: int) -> BulkResult:
        """One request of ``count`` documents (``payload`` gzip'd when gzip is on)."""
        started = self.clock.monotonic()
        METRICS.inc("bulk_requests_total")
        try:
            client = self._gzip_client if self.gzip_level else self.client
            resp = client.bulk(operations=payload, filter_path=FILTER)
        except ApiError as exc:
            if exc.meta.status == 413 and count > 1:
                raise _TooLarge from None
            if classify(exc.meta.status) is Outcome.REJECTED and exc.meta.status not in (401, 403):
                # The request itself was refused (not retryable): every item is dead-lettered.
                etype, reason = error_parts(exc)
                return PerItem(
                    [
                        {"status": exc.meta.status, "error": {"type": etype, "reason": reason}}
                        for _ in range(count)
                    ]
                )
            self._note_error(describe(exc))
            METRICS.inc("bulk_request_failures_total")
            return RetryAll()
        except (TransportConnectionError, ConnectionTimeout, TransportError) as exc:
            self._note_error(describe(exc))
            METRICS.inc("bulk_request_failures_total")
            return RetryAll()
        finally:
            METRICS.observe("bulk_latency_seconds", self.clock.monotonic() - started)
        answered = resp.get("items", [])
        if len(answered) != count:
            self._note_error(f"bulk answered {len(answered)} items for {count} sent")
            return RetryAll()
        if self._last_error is not None:
            log.info("Elasticsearch: delivering again")
            self._last_error = None
            self._failing_since = None
            self._wake_retries()
        METRICS.set("last_delivery_timestamp_seconds", self.clock.wall())
        if resp.get("errors") is False:  # every item 2xx: no need to look at each
            return AllDelivered()
        return PerItem([next(iter(i.values())) for i in answered])

    def _without_expired(self, segments: list[Segment]) -> list[Item] | None:
        """The batch's documents minus those past the retention; None when none is (the usual
        case, decided from each block's oldest time without looking at documents)."""
        if self.expiry is None:
            return None
        first = self.expiry.first_kept_day(int(self.clock.wall() * 1000))
        if all(not len(seg.docs) or min(seg.docs.times) // DAY_MS >= first for seg in segments):
            return None
        kept: list[Item] = []
        expired: list[Item] = []
        for item in items(segments, self.namer):
            (kept if item.epoch_ms // DAY_MS >= first else expired).append(item)
        METRICS.inc("docs_expired_total", len(expired))
        oldest = min(i.epoch_ms for i in expired)
        METRICS.set_min("docs_expired_oldest_timestamp_seconds", oldest / 1000)
        if not self._expired_said:
            self._expired_said = True
            log.warning(
                "not shipping events older than the retention (%s), the oldest from %s: ILM would delete "
                "their indices at once (set [index] ship_expired = true to ship them; counted as expired)",
                self.index_cfg.retention,
                time.strftime("%Y-%m-%d", time.gmtime(oldest / 1000)),
            )
        return kept

    def _deliver_blocks(self, segments: list[Segment], count: int) -> None:
        """The batch as framed, in one request; one by one only what was refused or retried."""
        kept = self._without_expired(segments)
        if kept is not None:
            self._deliver(kept)
            return
        payload = blocks_body(segments, self.gzip_level)
        attempt = 0
        while True:
            if self._closing.is_set():
                raise Abandoned
            try:
                results = self._bulk(payload, count)
            except _TooLarge:
                self._deliver(items(segments, self.namer))  # splits until the halves fit
                return
            if isinstance(results, RetryAll):
                self._sleep(attempt)
                attempt += 1
                continue
            if isinstance(results, AllDelivered):
                METRICS.inc("docs_indexed_total", count)
            else:
                self._deliver(items(segments, self.namer), results)
            return

    def _deliver(self, pending: list[Item], first: PerItem | None = None) -> None:
        """Until every item is final; ``first`` answers a first request already made."""
        attempt = 0
        results: BulkResult | None = first
        while pending:
            if results is None:
                if self._closing.is_set():
                    raise Abandoned
                try:
                    results = self._bulk(items_body(pending, self.gzip_level), len(pending))
                except _TooLarge:
                    half = len(pending) // 2
                    log.info("bulk request too large (413); splitting %d items", len(pending))
                    self._deliver(pending[:half])
                    pending = pending[half:]
                    continue
                if isinstance(results, RetryAll):
                    self._sleep(attempt)
                    attempt += 1
                    results = None
                    continue
            if isinstance(results, AllDelivered):
                METRICS.inc("docs_indexed_total", len(pending))
                return
            assert isinstance(results, PerItem)
            retry, rejected, blocked = [], [], []
            indexed = duplicate = 0
            late_base = self.namer.base + "late-"
            retry_status = None
            for item, res in zip(pending, results.results, strict=True):
                outcome = classify(int(res.get("status", 500)))
                if outcome is Outcome.DELIVERED:
                    indexed += 1
                elif outcome is Outcome.DUPLICATE:
                    duplicate += 1
                elif outcome is Outcome.RETRY:
                    retry.append(item)
                    retry_status = retry_status or res.get("status")
                elif write_blocked(res) and not item.index.startswith(late_base):
                    blocked.append(item)
                else:
                    rejected.append((item, res))
            METRICS.inc("docs_indexed_total", indexed)  # once per request: the lock is not free
            METRICS.inc("docs_duplicate_total", duplicate)
            if rejected:
                self.dead_letters.keep(rejected, self._sleep)
            if blocked:
                moved = self.write_blocks.readdress(blocked, self._note_error)
                if moved is None:  # the cluster did not say which are there: asked again
                    retry += blocked
                    retry_status = retry_status or 403
                elif not retry:  # sent on at once, to the late index
                    pending, results = moved, None
                    continue
                else:
                    retry += moved
            if retry:
                METRICS.inc("docs_retried_total", len(retry))
                self._note_error(f"{len(retry)} of {len(pending)} items refused with {retry_status}")
                pending = retry
                self._sleep(attempt)
                attempt += 1
            else:
                pending = []
            results = None


class _TooLarge(Exception):
    pass
