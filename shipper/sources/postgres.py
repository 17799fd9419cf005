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
from shipper.metrics import METRICS
from shipper.pipeline.checkpoint import CheckpointStore
from shipper.sources import Chunk

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
        except psycopg.Error as exc:
            self._failed(exc)
            return None
        if self._down_logged:
            log.info("postgres: connected again")
        self._down_logged = False
        self._attempt = 0
        if not self._checked_index:
            self._check_index(self._conn)
        return self._conn

    def _failed(self, exc: BaseException) -> None:
        METRICS.inc("postgres_errors_total")
        if not self._down_logged:
            # psycopg's messages name host/port/db, never the password.
            log.warning("postgres unavailable (%s); retrying with backoff", str(exc).strip().splitlines()[0])
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

    def lag_seconds(self) -> dict[str, float]:
        out = {}
        for t in self.tenants:
            pos = self.store.streams.get(self.stream(t.name), {}).get("position")
            if pos:
                out[t.name] = max(0.0, (datetime.now(UTC) - datetime.fromisoformat(pos[0])).total_seconds())
        return out

    def housekeeping(self) -> None:
        pass

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
