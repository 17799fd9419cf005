"""Where alerts go once raised: the alerts index and the notifiers, off the pipeline's thread.

Every alert is a ``Record`` until each target has it. A background thread (``start``) calls
``pump``: the document is created in the index under its deterministic id (a replay after a
crash answers 409 and is not told twice), then each notifier is called; failures are retried
with exponential backoff (1 s doubling to 5 min), a notifier that keeps failing gives up after
``max_attempts`` (logged, counted), the index never does. Notifiers wait up to ``INDEX_GRACE`` s
for the index's answer, so a replay is recognised even while the output is starting. Nothing
here blocks shipping: the pipeline only appends records. ``records``/``restore`` carry the
undelivered ones across restarts (the detection state file); ``journal`` notes each delivery
the moment it succeeds (one fsynced line), so an alert raised again after a crash, or restored
from a state written before it was told, is not told twice (the window left: between a target's
answer and that line).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from shipper.clock import SYSTEM, Clock
from shipper.fsio import write_all
from shipper.metrics import METRICS
from shipper.wake import Wake

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "x-logto-shipper-signature-sha-256"
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 300.0
INDEXED = -1  # the journal's target number for the index (notifiers count from 0)
JOURNAL_KEEP = 10_000  # deliveries remembered (alerts are rare: that is weeks of them)
# How long notifiers wait for the index's first answer (a 409 there means an earlier run told
# them already), retried every GRACE_STEP s; past it they are told anyway: alerts leave in 5 s.
INDEX_GRACE, GRACE_STEP = 3.0, 0.5


class Target(Protocol):
    name: str  # for messages: never a secret (a webhook's host, not its URL)

    def send(self, doc: dict[str, Any], alert_id: str, index: str, first: bool) -> bool:
        """Deliver; True when it was new to the target (False: it already had it). Raises
        ``DeliveryError`` (retried) or ``Refused`` (given up at once)."""


class DeliveryError(Exception):
    """A failure worth retrying (unreachable, timeout, 5xx, 429)."""


class Refused(Exception):
    """The target refused the alert for good (4xx): retrying would not help."""


def signature(secret: bytes, body: bytes) -> str:
    """HMAC-SHA256 hex of the body: what ``x-logto-shipper-signature-sha-256`` carries."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def notification(doc: dict[str, Any]) -> bytes:
    """The body a webhook gets: ``text`` (what Slack-compatible endpoints show) and the alert."""
    return orjson.dumps({"text": f"logto-shipper alert: {doc['message']}", "alert": doc})


class WebhookNotifier:
    """POST the notification to ``url``, signed when a secret is given."""

    def __init__(
        self, url: str, secret: bytes | None, timeout: float = 10.0, verify: bool | str = True
    ) -> None:
        from urllib.parse import urlsplit

        import requests

        self._url, self._secret, self._timeout, self._verify = url, secret, timeout, verify
        self._session = requests.Session()
        parts = urlsplit(url)
        self.name = f"webhook {parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"

    def send(self, doc: dict[str, Any], alert_id: str, index: str, first: bool) -> bool:
        import requests

        body = notification(doc)
        headers = {"content-type": "application/json", "user-agent": "logto-shipper"}
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = signature(self._secret, body)
        try:
            r = self._session.post(
                self._url, data=body, headers=headers, timeout=self._timeout, verify=self._verify
            )
        except requests.RequestException as exc:
            raise DeliveryError(type(exc).__name__) from None  # its text may hold the URL
        if r.status_code == 429 or r.status_code >= 500:
            raise DeliveryError(f"HTTP {r.status_code}")
        if r.status_code >= 400:
            raise Refused(f"HTTP {r.status_code}")
        return True


@dataclass
class Record:
    id: str
    index: str
    doc: dict[str, Any]
    restored: bool = False  # from the state file: it may have reached targets before the crash
    indexed: bool = False
    stale: bool = False  # the document changed (updates counted) since it was indexed
    told: list[bool] = field(default_factory=list)  # per notifier
    attempts: int = 0
    due: float = 0.0  # monotonic time of the next try
    skip_notify: bool = False  # the index already had it: an earlier run told the notifiers
    added: float = 0.0  # monotonic time it was raised (or restored)


class Delivery:
    """``add`` a new alert, ``update`` its document; ``pump`` (or the thread) delivers."""

    def __init__(
        self,
        index: Target | None,
        notifiers: list[Target],
        clock: Clock = SYSTEM,
        max_attempts: int = 10,
        journal: Path | None = None,
    ) -> None:
        self.index, self.notifiers, self.clock, self.max_attempts = index, notifiers, clock, max_attempts
        self._records: dict[str, Record] = {}
        self._journal = journal
        self._delivered: dict[str, set[int]] = self._read_journal()
        self._lock = threading.Lock()
        self._wake = Wake()
        self._stop = False
        self._drain = 5.0
        self._thread: threading.Thread | None = None

    def add(self, alert_id: str, index: str, doc: dict[str, Any]) -> None:
        with self._lock:
            r = Record(alert_id, index, doc, told=[False] * len(self.notifiers), added=self.clock.monotonic())
            self._records[alert_id] = self._known(r)
        self._wake.set()

    def update(self, alert_id: str, index: str, doc: dict[str, Any]) -> None:
        """A newer document for an alert (its count grew): re-indexed, not notified again."""
        with self._lock:
            r = self._records.get(alert_id)
            if r is not None:
                r.doc, r.stale = doc, True  # (a create in flight sends the older one: this follows)
                return
            if self.index is None:
                return
            told = [True] * len(self.notifiers)
            self._records[alert_id] = Record(alert_id, index, doc, indexed=True, stale=True, told=told)
        self._wake.set()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._records)

    def pump(self, every: bool = False) -> float:
        """Try every record that is due (``every``: all of them, at shutdown); returns seconds
        until the next one is (inf: none)."""
        now = self.clock.monotonic()
        with self._lock:
            due = [r for r in self._records.values() if every or r.due <= now]
        for r in due:
            self._try(r)
        with self._lock:
            for r in due:
                if self._done(r):
                    self._records.pop(r.id, None)
            nxt = min((r.due for r in self._records.values()), default=float("inf"))
        return max(0.0, nxt - self.clock.monotonic())

    def _done(self, r: Record) -> bool:
        return (self.index is None or (r.indexed and not r.stale)) and all(r.told)

    def _try(self, r: Record) -> None:
        failed = False
        if self.index is not None and (not r.indexed or r.stale):
            doc, first = r.doc, not r.indexed
            try:
                new = self.index.send(doc, r.id, r.index, first)
                if first:
                    self._note(r.id, INDEXED)
                with self._lock:
                    r.indexed = True
                    r.stale = r.doc is not doc  # changed while it was being sent: send it again
                if first and not new and not r.restored:
                    r.skip_notify = True  # a replay of an alert an earlier run raised and told
                    METRICS.inc("alerts_replayed_total")
            except Refused as exc:
                log.error("alert %s: %s refused it (%s); not retried", r.id, self.index.name, exc)
                METRICS.inc("alert_delivery_failures_total")
                r.indexed, r.stale = True, False
            except DeliveryError as exc:
                failed = True
                METRICS.inc("alert_delivery_errors_total")
                wait = r.added + INDEX_GRACE - self.clock.monotonic()
                if not r.indexed and wait > 0 and not all(r.told):
                    r.due = self.clock.monotonic() + min(GRACE_STEP, wait)  # the notifiers wait for it
                    return
                if r.attempts == 0:
                    log.warning("alert %s: %s unavailable (%s); retrying", r.id, self.index.name, exc)
        for i, n in enumerate(self.notifiers):
            if r.told[i]:
                continue
            if r.skip_notify:
                r.told[i] = True
                continue
            try:
                n.send(r.doc, r.id, r.index, True)
                r.told[i] = True
                self._note(r.id, i)
                METRICS.inc("alert_notifications_total")
            except (Refused, DeliveryError) as exc:
                give_up = isinstance(exc, Refused) or r.attempts + 1 >= self.max_attempts
                METRICS.inc("alert_delivery_failures_total" if give_up else "alert_delivery_errors_total")
                if give_up:
                    log.error(
                        "alert %s: %s failed (%s); giving up after %d tries",
                        r.id,
                        n.name,
                        exc,
                        r.attempts + 1,
                    )
                    r.told[i] = True
                else:
                    failed = True
                    if r.attempts == 0:
                        log.warning("alert %s: %s failed (%s); retrying with backoff", r.id, n.name, exc)
        if failed:
            r.due = self.clock.monotonic() + min(MAX_BACKOFF, FIRST_BACKOFF * 2**r.attempts)
            r.attempts += 1

    # -- the thread ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alert-delivery", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            wait = self.pump()
            self._wake.wait(min(wait, 5.0))
            self._wake.clear()
        # Shutting down: what close() handed over last (the final counts) and what waits for a
        # retry, tried until delivered or the drain time is up (what is left stays in the state).
        deadline = self.clock.monotonic() + self._drain
        while True:
            self.pump(every=True)
            if not self.pending or self.clock.monotonic() >= deadline:
                break
            self.clock.sleep(0.2)

    def close(self, timeout: float = 5.0) -> None:
        """Stop, after trying what is undelivered for up to ``timeout`` s (what is left stays
        in ``records``, for the state)."""
        self._drain = timeout
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout + 5.0)
            self._thread = None
        else:
            self.pump(every=True)

    # -- state -----------------------------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "id": r.id,
                    "index": r.index,
                    "doc": r.doc,
                    "indexed": r.indexed,
                    "stale": r.stale,
                    "told": r.told,
                }
                for r in self._records.values()
            ]

    def restore(self, records: list[dict[str, Any]]) -> None:
        with self._lock:
            for x in records:
                told = list(x.get("told") or [])
                told = (told + [False] * len(self.notifiers))[: len(self.notifiers)]
                r = Record(
                    x["id"], x["index"], x["doc"], True, bool(x.get("indexed")), bool(x.get("stale")), told
                )
                r.added = self.clock.monotonic()
                self._records[r.id] = self._known(r)
        self._wake.set()

    # -- the journal -----------------------------------------------------------------------

    def _known(self, r: Record) -> Record:
        """``r`` with what the journal says it already reached."""
        done = self._delivered.get(r.id)
        if done:
            r.indexed = r.indexed or INDEXED in done
            r.told = [t or i in done for i, t in enumerate(r.told)]
        return r

    def _read_journal(self) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {}
        if self._journal is None:
            return out
        try:
            text = self._journal.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return out
        lines = text.splitlines()
        for line in lines[-JOURNAL_KEEP:]:
            alert_id, _, target = line.partition("\t")
            if target.lstrip("-").isdigit():
                out.setdefault(alert_id, set()).add(int(target))
        if len(lines) > 2 * JOURNAL_KEEP:  # keep it short: the newest lines, written aside first
            tmp = self._journal.with_name(self._journal.name + ".tmp")
            with contextlib.suppress(OSError):
                tmp.write_text("".join(x + "\n" for x in lines[-JOURNAL_KEEP:]), encoding="utf-8")
                os.replace(tmp, self._journal)
        return out

    def _note(self, alert_id: str, target: int) -> None:
        self._delivered.setdefault(alert_id, set()).add(target)
        if self._journal is None:
            return
        try:
            fd = os.open(self._journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                write_all(fd, f"{alert_id}\t{target}\n".encode())
            finally:
                os.close(fd)
        except OSError as exc:
            METRICS.inc("state_write_errors_total")
            log.error("cannot note a delivered alert in %s: %s", self._journal, exc.strerror or exc)
