"""The ``postgres`` input: follow Logto's ``logs`` table.

Keyset pagination on ``(created_at, id)`` per tenant, from the acknowledged checkpoint. Rows
committed late with an earlier ``created_at`` (concurrent transactions) are caught by re-scanning
``overlap`` behind the read cursor and skipping ids already seen; after a restart the window is
re-sent and Elasticsearch's ``_id`` answers 409 for what it has. Statements are short
(``statement_timeout``), read-only and bounded by ``batch_size``; a database that goes away is
retried with backoff without crashing or losing rows.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from shipper.config import PostgresInputConfig, parse_duration
from shipper.logs import Throttle
from shipper.metrics import METRICS
from shipper.pipeline.checkpoint import CheckpointStore
from shipper.redact import dsn_secrets, one_line
from shipper.sources import Chunk, Lag

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SELECT_AFTER = """
SELECT id, key, payload, created_at FROM logs
WHERE tenant_id = %(tenant)s AND (created_at, id) > (%(ts)s, %(id)s)
ORDER BY created_at, id LIMIT %(limit)s
"""
SELECT_LATE = """
SELECT id, key, payload, created_at FROM logs
WHERE tenant_id = %(tenant)s AND created_at >= %(from)s AND (created_at, id) <= (%(ts)s, %(id)s)
  AND NOT (id = ANY(%(seen)s))
ORDER BY created_at, id LIMIT %(limit)s
"""
INDEX_CHECK = """
SELECT indexdef FROM pg_indexes
WHERE tablename = 'logs' AND indexdef ILIKE '%%(tenant_id, created_at%%'
"""
# Can this role read the table, and does row-level security hide rows from it? (Logto turns RLS
# on for its tables; the table owner without FORCE, superusers and BYPASSRLS roles see all.)
ACCESS_CHECK = """
SELECT c.oid IS NOT NULL AS found,
       c.oid IS NOT NULL AND has_table_privilege(c.oid, 'SELECT') AS can_select,
       COALESCE(c.relrowsecurity, false) AS rls,
       COALESCE(c.relforcerowsecurity, false) AS forced,
       COALESCE(pg_get_userbyid(c.relowner) = current_user, false) AS owner,
       r.rolsuper OR r.rolbypassrls AS bypass,
       current_user AS role, current_database() AS db
FROM pg_roles r LEFT JOIN pg_class c ON c.oid = to_regclass('logs')
WHERE r.rolname = current_user
"""
# Rows not read yet, counted along the index and capped: a progress figure, not a scan.
BEHIND = """
SELECT count(*) FROM (
  SELECT 1 FROM logs WHERE tenant_id = %(tenant)s AND (created_at, id) > (%(ts)s, %(id)s)
  LIMIT %(cap)s
) behind
"""
BEHIND_CAP = 1_000_000
BEHIND_EVERY = 30.0  # seconds between counts, per tenant, while behind


class NoAccess(Exception):
    """The role cannot read ``logs`` (missing table or privilege): said once a minute, retried."""


def connect(dsn: str, statement_timeout_ms: int) -> psycopg.Connection[Any]:
    conn = psycopg.connect(
        dsn,
        autocommit=True,
        connect_timeout=10,
        options=f"-c statement_timeout={statement_timeout_ms} -c default_transaction_read_only=on",
    )
    return conn


class _Tenant:
    """Read state of one tenant: the cursor and the ids seen inside the overlap window."""

    def __init__(self, name: str, ts: datetime, row_id: str) -> None:
        self.name = name
        self.ts = ts
        self.id = row_id
        self.seen: OrderedDict[str, datetime] = OrderedDict()
        self.caught_up = False
        self.behind: int | None = None  # rows after the cursor at the last count
        self.counted_at = float("-inf")

    def remember(self, row_id: str, ts: datetime, overlap: timedelta) -> None:
        self.seen[row_id] = ts
        horizon = self.ts - overlap
        while self.seen and next(iter(self.seen.values())) < horizon:
            self.seen.popitem(last=False)


def row_record(tenant: str, row: dict[str, Any]) -> dict[str, Any]:
    """A table row in the table-row shape the normalizer accepts."""
    created: datetime = row["created_at"]
    return {
        "tenant_id": tenant,
        "id": row["id"],
        "key": row["key"],
        "payload": row["payload"],
        "created_at": created.isoformat(),
    }


class PostgresSource:
    """Source over ``logs``; positions are ``[created_at ISO, id]`` per tenant stream."""

    def __init__(self, cfg: PostgresInputConfig, store: CheckpointStore, prefix: str = "pg") -> None:
        if cfg.dsn is None:
            raise ValueError("postgres input needs dsn or dsn_file")
        self.cfg = cfg
        self.store = store
        self.prefix = prefix
        self._dsn = cfg.dsn.get_secret_value()
        self._timeout_ms = int(parse_duration(cfg.statement_timeout) * 1000)
        self._overlap = timedelta(seconds=parse_duration(cfg.overlap))
        self._conn: psycopg.Connection[Any] | None = None
        self._next_try = 0.0
        self._attempt = 0
        self._down_logged = False
        self._next_poll = 0.0
        self._checked_index = False
        self._secrets = dsn_secrets(self._dsn)
        self._warn = Throttle(60.0)
        self.unavailable = ""  # why the database cannot be read now ("" when it can)
        start = EPOCH
        if cfg.since:
            from shipper.search import parse_when

            when = parse_when(cfg.since)
            if when.startswith("now-"):
                start = datetime.now(UTC) - timedelta(seconds=parse_duration(when[4:].replace("w", "d")))
            else:
                start = datetime.fromisoformat(when.replace("Z", "+00:00"))
        self.tenants: list[_Tenant] = []
        for t in cfg.tenants:
            pos = store.streams.get(self.stream(t), {}).get("position")
            if pos:
                self.tenants.append(_Tenant(t, datetime.fromisoformat(pos[0]), pos[1]))
            else:
                self.tenants.append(_Tenant(t, start, ""))

    def stream(self, tenant: str) -> str:
        return f"{self.prefix}:{tenant}"

    # -- connection ------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any] | None:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if time.monotonic() < self._next_try:
            return None
        try:
            self._conn = connect(self._dsn, self._timeout_ms)
            self._check_access(self._conn)
        except (psycopg.Error, NoAccess) as exc:
            self._failed(exc)
            return None
        if self._down_logged:
            log.info("postgres: connected again")
        self._down_logged = False
        self.unavailable = ""
        self._attempt = 0
        if not self._checked_index:
            self._check_index(self._conn)
        return self._conn

    def _check_access(self, conn: psycopg.Connection[Any]) -> None:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(ACCESS_CHECK)
            a = cur.fetchone()
        if a is None:
            return
        if not a["found"]:
            raise NoAccess(
                f"no table logs in database {a['db']} for role {a['role']} "
                "(is this Logto's database? is logs on the role's search_path?)"
            )
        if not a["can_select"]:
            raise NoAccess(f"role {a['role']} may not read logs: GRANT SELECT ON logs TO {a['role']}")
        hidden = a["rls"] and not a["bypass"] and (a["forced"] or not a["owner"])
        if hidden and self._warn.due("rls"):
            log.warning(
                "postgres: row-level security is on for logs and role %s does not bypass it: only "
                "rows its policies allow are read (connect as the table owner or a BYPASSRLS role, "
                "see README)",
                a["role"],
            )

    def _failed(self, exc: BaseException) -> None:
        METRICS.inc("postgres_errors_total")
        # psycopg's messages name host/port/db; scrub anyway: some echo what they were given.
        why = self.unavailable = one_line(exc, self._secrets)
        if not self._down_logged or self._warn.due("down"):
            held = self._warn.suppressed("down")
            log.warning("postgres unavailable (%s); retrying with backoff%s", why, held)
            self._down_logged = True
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None
        delay = random.uniform(0, min(30.0, 0.2 * 2 ** min(self._attempt, 10)))
        self._attempt += 1
        self._next_try = time.monotonic() + delay

    def _check_index(self, conn: psycopg.Connection[Any]) -> None:
        self._checked_index = True
        with conn.cursor() as cur:
            cur.execute(INDEX_CHECK)
            if cur.fetchone() is None:
                log.warning(
                    "table logs has no index on (tenant_id, created_at, id) (Logto < 1.35): "
                    "every poll is a sequential scan; upgrade Logto or create that index"
                )

    # -- Source protocol -------------------------------------------------------------------

    def poll(self, max_records: int) -> list[Chunk]:
        now = time.monotonic()
        if now < self._next_poll:
            return []
        conn = self._connection()
        if conn is None:
            return []
        chunks: list[Chunk] = []
        try:
            for t in self.tenants:
                budget = min(self.cfg.batch_size, max_records - sum(len(c.records) for c in chunks))
                if budget <= 0:
                    break
                chunk = self._read(conn, t, budget)
                if chunk is not None:
                    chunks.append(chunk)
                self._count_behind(conn, t)
        except psycopg.Error as exc:
            self._failed(exc)
            return chunks
        if all(t.caught_up for t in self.tenants):
            self._next_poll = now + self.cfg.poll_interval
        return chunks

    def _read(self, conn: psycopg.Connection[Any], t: _Tenant, budget: int) -> Chunk | None:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(SELECT_AFTER, {"tenant": t.name, "ts": t.ts, "id": t.id, "limit": budget})
            rows = cur.fetchall()
            late: list[dict[str, Any]] = []
            t.caught_up = len(rows) < budget
            if t.caught_up and self._overlap and t.ts > EPOCH:
                cur.execute(
                    SELECT_LATE,
                    {
                        "tenant": t.name,
                        "from": t.ts - self._overlap,
                        "ts": t.ts,
                        "id": t.id,
                        "seen": list(t.seen),
                        "limit": budget,
                    },
                )
                late = cur.fetchall()
                if late:
                    METRICS.inc("postgres_late_rows_total", len(late))
                    log.info(
                        "postgres: %d rows of tenant %s committed late; shipping them",
                        len(late),
                        t.name,
                    )
        if not rows and not late:
            return None
        records = []
        for row in late + rows:
            records.append(row_record(t.name, row))
        if rows:
            t.ts, t.id = rows[-1]["created_at"], rows[-1]["id"]
        for row in late + rows:
            t.remember(row["id"], row["created_at"], self._overlap)
        METRICS.inc("postgres_rows_read_total", len(records))
        return Chunk(
            self.stream(t.name),
            f"postgres:logs:{t.name}",
            records=records,
            position=[t.ts.isoformat(), t.id],
        )

    def acked(self, stream: str, position: Any) -> None:
        self.store.stage(stream, position=position, seen=int(time.time()))

    def _count_behind(self, conn: psycopg.Connection[Any], t: _Tenant) -> None:
        if t.caught_up:
            t.behind = 0
            return
        now = time.monotonic()
        if now - t.counted_at < BEHIND_EVERY:
            return
        t.counted_at = now
        with conn.cursor() as cur:
            cur.execute(BEHIND, {"tenant": t.name, "ts": t.ts, "id": t.id, "cap": BEHIND_CAP})
            row = cur.fetchone()
        t.behind = int(row[0]) if row else None

    def lag(self) -> list[Lag]:
        out = []
        now = datetime.now(UTC)
        for t in self.tenants:
            pos = self.store.streams.get(self.stream(t.name), {}).get("position")
            acked = datetime.fromisoformat(pos[0]) if pos else (t.ts if t.ts > EPOCH else None)
            secs = max(0.0, (now - acked).total_seconds()) if acked else 0.0
            capped = t.behind is not None and t.behind >= BEHIND_CAP
            lag = Lag(self.stream(t.name), "seconds", secs, t.behind, capped, unavailable=self.unavailable)
            out.append(lag)
        return out

    def housekeeping(self) -> None:
        pass

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
