"""Names next to ids: ``logto.application_name``/``_type``, ``user.name`` (and opt-in ``user.email``).

Names travel in the record, not bolted onto the document: ``Enricher.annotate`` splices the names
it knows for a record's ids into the line as a ``_names`` member, before normalizing, and the
field table maps that member like any other (``fields.py``). So records with names take the same
paths as records without: the normalizer workers and the native path.

Lookups never slow the hot path: ``annotate`` only reads an in-memory cache and queues the
ids it does not know; a background thread fetches them (Logto's ``applications``/``users``
tables), refreshes entries older than the TTL, and learns names from webhook-delivery records,
which carry them. A missing or unreachable source leaves documents with ids only (counted,
logged once), never blocks or drops a record. A renamed application keeps, in documents already
indexed, the name valid when they were indexed.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson

from shipper.metrics import METRICS
from shipper.namesources import NameSource
from shipper.normalize.fields import AUDIT, WEBHOOK, sources_of
from shipper.records import exact

log = logging.getLogger(__name__)

Ids = tuple[str, str | None, str | None]  # (tenant, application id, user id) of a record


# The ids' record members, as the field table reads them.
TENANT = sources_of(AUDIT, "logto.tenant_id")
AUDIT_APP, AUDIT_USER = sources_of(AUDIT, "logto.application_id"), sources_of(AUDIT, "user.id")
HOOK_APP, HOOK_USER = sources_of(WEBHOOK, "logto.application_id"), sources_of(WEBHOOK, "user.id")
HOOK_PREFIX = "TriggerHook."  # rows that record a webhook delivery's request (and its names)
# The room names may add to a line: the normalizer's line limit grows by it while names are on.
# Logto's columns bound them (name 256, type 64, username 128, email 128 characters).
NAMES_ROOM = 4096
MEMO_FOR = 1.0  # seconds a record's names are reused without asking the caches (TTLs are minutes)
MEMO_CAP = 100_000


def splice(line: bytes, names: bytes) -> bytes:
    """``line`` (a JSON object) with ``"_names": names`` as its last member."""
    body = line.rstrip()
    if not body.endswith(b"}"):
        return line
    head = body[:-1].rstrip()
    sep = b"" if head.endswith(b"{") else b","
    return head + sep + b'"_names":' + names + b"}"


def _first_str(obj: dict[str, Any], *paths: tuple[str, ...]) -> str | None:
    for path in paths:
        v: Any = obj
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        if isinstance(v, str) and v:
            return v
    return None


class TtlCache:
    """Bounded LRU with a freshness time per entry; stale entries are still served."""

    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.max_entries, self.clock = ttl, max_entries, clock
        self._data: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self.puts = 0  # changes whenever an entry does

    def get(self, key: Any) -> tuple[Any, bool] | None:
        """(value, fresh) or None when unknown."""
        item = self._data.get(key)
        if item is None:
            return None
        self._data.move_to_end(key)
        return item[1], self.clock() - item[0] < self.ttl

    def put(self, key: Any, value: Any) -> None:
        self.puts += 1
        self._data[key] = (self.clock(), value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class Enricher:
    """Adds names to documents from a cache filled in the background."""

    def __init__(
        self,
        sources: list[NameSource],
        static_apps: dict[str, str] | None = None,
        include_email: bool = False,
        ttl: float = 600,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sources = sources
        self.static_apps = static_apps or {}
        self.include_email = include_email
        self.apps = TtlCache(ttl, max_entries, clock)
        self.users = TtlCache(ttl, max_entries, clock)
        self._misses: queue.Queue[tuple[str, str, str]] = queue.Queue(maxsize=100_000)
        self._queued: set[tuple[str, str, str]] = set()  # in the queue or being looked up
        self._memo: dict[Ids, tuple[bytes, tuple[int, int], float]] = {}  # see _suffix
        self._app_tenants: dict[str, float] = {}  # tenant -> when its applications were loaded
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._down_logged = False
        self.clock = clock
        self.ttl = ttl

    # -- hot path ------------------------------------------------------------------------

    def annotate(self, line: bytes) -> bytes:
        """``line`` with the names known for its ids spliced in as its ``_names`` member (the
        field table maps it: ``user.name``, ``logto.application_name``...), or ``line`` as it
        is. The line is parsed for its ids; unknown or stale ones are queued for the background
        thread; this never waits."""
        ids = self.read_ids(line)
        if ids is None:
            return line
        suffix = self._suffix(ids)
        return splice(line, suffix) if suffix else line

    def _suffix(self, ids: Ids) -> bytes:
        """The ``_names`` JSON of these ids, remembered for up to ``MEMO_FOR`` seconds while
        the caches do not change (a backfill repeats a few ids a million times)."""
        now, generation = self.clock(), (self.apps.puts, self.users.puts)
        memo = self._memo.get(ids)
        if memo is not None and memo[1] == generation and now < memo[2]:
            return memo[0]
        names = self.names(*ids)
        suffix = exact(orjson.dumps(names)) if names else b""  # up to MEMO_CAP of them are kept
        if len(suffix) > NAMES_ROOM - 16:
            METRICS.inc("enrich_names_too_long_total")
            suffix = b""
        if len(self._memo) >= MEMO_CAP:
            self._memo.clear()
        self._memo[ids] = (suffix, generation, now + MEMO_FOR)
        return suffix

    def names(self, tenant: str, app_id: str | None, user_id: str | None) -> dict[str, str]:
        """The ``_names`` member for these ids (empty when none is known)."""
        out: dict[str, str] = {}
        if app_id:
            static = self.static_apps.get(app_id)
            if static is not None:
                out["application"] = static
            else:
                hit = self.apps.get((tenant, app_id))
                if hit is not None:
                    out["application"], app_type = hit[0]
                    if app_type:
                        out["application_type"] = app_type
                if hit is None or not hit[1]:
                    self._miss("app", tenant, app_id)
        if user_id:
            hit = self.users.get((tenant, user_id))
            if hit is not None:
                name, email = hit[0]
                if name:
                    out["user"] = name
                if email and self.include_email:
                    out["email"] = email
            if hit is None or not hit[1]:
                self._miss("user", tenant, user_id)
        return out

    def read_ids(self, line: bytes) -> Ids | None:
        """A record's (tenant, application id, user id), read as the field table reads them;
        names learned from a webhook delivery or a ``TriggerHook.*`` row on the way. None for a
        line that is not a JSON object (the normalizer refuses it, with its bytes)."""
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(rec, dict):
            return None
        tenant = _first_str(rec, *TENANT) or "default"
        payload = rec.get("payload")
        if isinstance(payload, str):  # some exports carry the payload as its JSON text
            with contextlib.suppress(orjson.JSONDecodeError):
                payload = rec["payload"] = orjson.loads(payload)
        if not isinstance(payload, dict):
            return tenant, None, None
        key = rec.get("key")
        hook = rec.get("origin") == "webhook"
        if hook:  # a delivery received by the webhook input
            self.learn_from_hook(tenant, {"body": payload})
        elif isinstance(key, str) and key.startswith(HOOK_PREFIX):  # the body a TriggerHook row sent
            self.learn_from_hook(tenant, payload.get("hookRequest") or {})
        app, user = (HOOK_APP, HOOK_USER) if hook else (AUDIT_APP, AUDIT_USER)
        return tenant, _first_str(rec, *app), _first_str(rec, *user)

    def _miss(self, kind: str, tenant: str, key: str) -> None:
        if not self.sources:
            return  # names come only from the static map and webhook deliveries
        item = (kind, tenant, key)
        if item in self._queued:
            return  # asked for already: one lookup per id, not one per record
        try:
            self._misses.put_nowait(item)
        except queue.Full:
            METRICS.inc("enrich_queue_full_total")
            return
        self._queued.add(item)

    def learn_from_hook(self, tenant: str, payload: dict[str, Any]) -> None:
        """Webhook deliveries (``{"body": <delivery>}``) carry the application's and the user's
        names: remember them."""
        body = payload.get("body") if isinstance(payload, dict) else None
        if not isinstance(body, dict):
            return
        app = body.get("application")
        if isinstance(app, dict) and app.get("id") and app.get("name"):
            self.apps.put((tenant, app["id"]), (app["name"], app.get("type")))
        user = body.get("user")
        if isinstance(user, dict) and user.get("id"):
            name = user.get("username") or user.get("name")
            if name:
                self.users.put((tenant, user["id"]), (name, user.get("primaryEmail")))

    # -- background ----------------------------------------------------------------------

    def start(self) -> None:
        if self.sources and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="enrich", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for src in self.sources:
            close = getattr(src, "close", None)
            if close:
                close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.refresh(wait=0.5)

    def refresh(self, wait: float = 0.0) -> None:
        """Resolve queued misses (at most a few hundred per call). Tests call it directly."""
        batch: dict[tuple[str, str], set[str]] = {}
        try:
            item = self._misses.get(timeout=wait) if wait else self._misses.get_nowait()
            while True:
                kind, tenant, key = item
                batch.setdefault((kind, tenant), set()).add(key)
                if sum(len(v) for v in batch.values()) >= 500:
                    break
                item = self._misses.get_nowait()
        except queue.Empty:
            pass
        for (kind, tenant), keys in batch.items():
            try:
                if kind == "app":
                    self._load_apps(tenant, keys)
                else:
                    self._load_users(tenant, sorted(keys))
                if self._down_logged:
                    log.info("name source available again")
                    self._down_logged = False
            except Exception as exc:
                METRICS.inc("enrich_source_errors_total")
                if not self._down_logged:
                    from shipper.redact import one_line

                    secrets = [x for src in self.sources for x in getattr(src, "secrets", [])]
                    why = one_line(exc, secrets)
                    log.warning("name source unavailable (%s); documents keep ids only", why)
                    self._down_logged = True
            finally:
                self._queued.difference_update((kind, tenant, k) for k in keys)  # may be asked again

    def _load_apps(self, tenant: str, wanted: set[str]) -> None:
        loaded = self._app_tenants.get(tenant)
        if (
            loaded is not None
            and self.clock() - loaded < min(self.ttl, 30.0)
            and all(self.apps.get((tenant, a)) for a in wanted)
        ):
            return
        for src in self.sources:
            for app_id, info in src.applications(tenant).items():
                self.apps.put((tenant, app_id), info)
        self._app_tenants[tenant] = self.clock()

    def _load_users(self, tenant: str, ids: list[str]) -> None:
        for src in self.sources:
            found = src.users(tenant, ids)
            for uid, info in found.items():
                self.users.put((tenant, uid), info)
            ids = [i for i in ids if i not in found]
            if not ids:
                return
