"""The ``postgres`` input: follow Logto's ``logs`` table.

Keyset pagination on ``(created_at, id)`` per tenant, from the acknowledged checkpoint, in
bounded, read-only, short statements; a database that goes away is retried with backoff.

Invariant: every row of a configured tenant is shipped (as a document, or dead-lettered with
its reason and raw bytes) exactly once, whatever its ``created_at`` holds, and no row holds up
the rows after it. How:

- **The watermark never passes the database's clock.** The keyset read takes only rows with
  ``created_at <= statement_timestamp()``, so a row dated in the future (clock skew, a restore,
  a hand-written row, ``infinity``) cannot move the cursor past rows still to be written.
- **Rows outside the window are found by id.** The keyset covers ``[1970, the database's
  now]``. Rows dated after now, before 1970 (``-infinity``, BC, year 1), or with no time at
  all are read by a second, index-bounded query (ids not yet shipped) whenever the keyset has
  caught up, and shipped at once (the normalizer dead-letters those without a usable time,
  with their bytes); their ids are kept (``ahead``, in the checkpoint, at most ``AHEAD_CAP``)
  and the keyset read skips a future-dated one when its time comes.
- **Late commits** (a transaction that commits after the cursor passed its ``created_at``) are
  caught by re-scanning ``overlap`` behind the cursor, skipping ids already shipped (``seen``);
  ``seen`` is in the checkpoint too (the newest ``SEEN_CAP`` ids), so a restart does not ship
  the window again, to a file output either.
- **Rows travel as the bytes the file input sees**: ``payload::text`` spliced into a table-row
  line, never parsed here, so any depth or size reaches the normalizer, which decides (and
  dead-letters what it refuses with those bytes). The cursor is ``created_at::text`` (exact to
  the microsecond; ``infinity`` and BC dates included), never a Python datetime; the keyset
  read takes it from its last line (``pgsql.cursor_of``), the other reads as a column.

The checkpoint position of a tenant is ``{"ts", "id", "seen": [[id, epoch s], ...], "ahead":
[id, ...]}``; the older ``[ts, id]`` form is read too.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import chain, groupby, repeat
from operator import itemgetter
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from shipper.config import PostgresInputConfig
from shipper.logs import Throttle
from shipper.metrics import METRICS
from shipper.pipeline.checkpoint import CheckpointStore
from shipper.redact import dsn_secrets, one_line
from shipper.sources import Chunk, Lag
from shipper.sources.lines import Frame
from shipper.sources.pgsql import (
    ACCESS_CHECK,
    BEHIND,
    INDEX_CHECK,
    NAMES_CHECK,
    Statements,
    cursor_of,
    id_list,
)
from shipper.timespec import instant, parse_duration

log = logging.getLogger(__name__)
START = "1970-01-01 00:00:00+00"  # the first cursor; earlier rows are outside the window
SEEN_CAP = 5000  # overlap ids kept in the checkpoint (newest first kept)
AHEAD_CAP = 1000  # rows shipped ahead of the watermark (future-dated, no time)

_Page = tuple[str, str, str, int]  # (tenant, cursor ts, cursor id, rows): one keyset read
# Rows of pgsql's reads as plain tuples (a dict per row was a sixth of this input's own CPU
# per row): (id, line) from the keyset read, (id, line, cursor, epoch) from the others.
_Row = tuple[str, str]
_Timed = tuple[str, str, str | None, float | None]
_Read = tuple[_Page, list[_Row]] | None  # a page read ahead: its key and rows (None: not read)
AHEAD_PAGES = 2  # pages read ahead during a backfill
ID: Final = 0
LINE: Final = 1
CURSOR: Final = 2
EPOCH: Final = 3
_id, _line = itemgetter(ID), itemgetter(LINE)
BEHIND_CAP = 1_000_000
BEHIND_EVERY = 30.0  # seconds between counts, per tenant, while behind


def _cursor_after(rows: list[_Row]) -> tuple[str, str]:
    """The keyset cursor after a page: its last row's (created_at text, id). Pages read ahead
    are chained on it, and ``_read`` moves the tenant to it: the same cursor, so they match."""
    last = rows[-1]
    return cursor_of(last[LINE]), last[ID]


def _epoch(cursor: str) -> float:
    return datetime.fromisoformat(cursor).timestamp()


def _time_of(row: _Row) -> float:
    return _epoch(cursor_of(row[LINE]))


class NoAccess(Exception):
    """The role cannot read ``logs`` (missing table or privilege): said once a minute, retried."""


def connect(dsn: str, statement_timeout_ms: int) -> psycopg.Connection[Any]:
    conn = psycopg.connect(
        dsn,
        autocommit=True,
        connect_timeout=10,
        options=f"-c statement_timeout={statement_timeout_ms} -c default_transaction_read_only=on "
        "-c TimeZone=UTC -c DateStyle=ISO",
    )
    return conn


class _Seen:
    """The ids shipped inside the overlap window, oldest first, as runs of ids kept until the
    same time (a page's: its cursor's; a late row's: its own). Forgetting and the checkpoint's
    newest ids cost a step per run, not per id: a backfill keeps a page's ids and drops them a
    page or so later, for every page."""

    def __init__(self) -> None:
        self._runs: deque[tuple[float, list[str]]] = deque()  # (epoch seconds, ids): not changed once in

    def add(self, ids: list[str], epoch: float) -> None:
        if ids:
            self._runs.append((epoch, ids))

    def forget_before(self, horizon: float) -> None:
        """Drop the runs at the front kept until before ``horizon`` (a late run behind a newer
        one waits for it: kept longer, never shorter)."""
        runs = self._runs
        while runs and runs[0][0] < horizon:
            runs.popleft()

    def __iter__(self) -> Iterator[str]:
        return chain.from_iterable(ids for _, ids in self._runs)

    def newest(self, n: int) -> list[tuple[str, float]]:
        """The newest ``n`` ids with their times, oldest first."""
        parts: list[list[tuple[str, float]]] = []
        for epoch, ids in reversed(self._runs):
            if n <= 0:
                break
            take = ids[-n:]
            parts.append(list(zip(take, repeat(epoch))))
            n -= len(take)
        return list(chain.from_iterable(reversed(parts)))


class _Tenant:
    """Read state of one tenant: the cursor, the ids seen inside the overlap window, and the
    ids shipped ahead of the watermark."""

    def __init__(self, name: str, position: Any, start: str) -> None:
        self.name = name
        self.ts, self.id = start, ""
        self.seen = _Seen()
        self.ahead: dict[str, None] = {}
        self.epoch = -math.inf  # of the cursor
        if isinstance(position, list) and len(position) == 2:  # the older [ts, id] form
            self.ts, self.id = str(position[0]), str(position[1])
        elif isinstance(position, dict):
            self.ts, self.id = str(position.get("ts", start)), str(position.get("id", ""))
            # [id, epoch] pairs (tuples while in memory): runs of the same time as one run.
            seen = [
                (str(item[0]), float(item[1]))
                for item in position.get("seen") or []
                if isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[1], int | float)
            ]
            for epoch, run in groupby(seen, key=itemgetter(1)):
                self.seen.add([i for i, _ in run], epoch)
            self.ahead = dict.fromkeys(str(i) for i in position.get("ahead") or [])
            if isinstance(position.get("epoch"), int | float):
                self.epoch = float(position["epoch"])
        self.caught_up = False
        self.behind: int | None = None  # rows after the cursor at the last count
        self.counted_at = float("-inf")

    def remember(self, late: list[_Timed], page: list[_Row], overlap: float) -> None:
        """Keep the ids of the late rows (those with a time) and of a keyset page's rows inside
        the overlap window behind the cursor, then forget those older than it. The page is in
        time order: where its window starts is a binary search, reading a few rows' times from
        their lines; its rows are kept with the cursor's time (its newest row's, in ``epoch``
        already): some a page longer than their own time asks, none shorter."""
        for r in late:
            epoch = r[EPOCH]
            if epoch is not None and math.isfinite(epoch):
                self.seen.add([r[ID]], epoch)
        horizon = self.epoch - overlap
        inside = bisect_left(page, horizon, key=_time_of)
        self.seen.add(list(map(_id, page[inside:])), self.epoch)
        self.seen.forget_before(horizon)

    def position(self) -> dict[str, Any]:
        # The newest SEEN_CAP, without copying all: a busy table's overlap holds far more ids
        # (1,000 rows/s and 5 minutes: 300,000), and this runs for every page.
        epoch = self.epoch if math.isfinite(self.epoch) else None
        return {
            "ts": self.ts,
            "id": self.id,
            "epoch": epoch,
            "seen": self.seen.newest(SEEN_CAP),
            "ahead": list(self.ahead),
        }


class PostgresSource:
    """Source over ``logs``; positions are ``_Tenant.position()`` per tenant stream."""

    def __init__(
        self,
        cfg: PostgresInputConfig,
        store: CheckpointStore,
        prefix: str = "pg",
        names: bool = False,
        email: bool = False,
    ) -> None:
        """``names``: read each row's names with it (``_names``: application name and type,
        user name, and with ``email`` the user's email) where the role may read Logto's
        ``applications`` and ``users``; the chunks then say so (``Chunk.named``)."""
        if cfg.dsn is None:
            raise ValueError("postgres input needs dsn or dsn_file")
        self.cfg = cfg
        self.store = store
        self.prefix = prefix
        self._dsn = cfg.dsn.get_secret_value()
        self._timeout_ms = int(parse_duration(cfg.statement_timeout) * 1000)
        self._overlap = parse_duration(cfg.overlap)
        self._conn: psycopg.Connection[Any] | None = None
        self._plain = Statements.build()
        self._named = Statements.build(names=True, email=email) if names else None
        self._sql = self._plain  # _named once a connection has shown it may read the names
        self._reader: ThreadPoolExecutor | None = None
        self._ahead: deque[tuple[str, Future[_Read]]] = deque()  # (tenant, page), oldest first
        self._next_try = 0.0
        self._attempt = 0
        self._down_logged = False
        self._next_poll = 0.0
        self._checked_index = False
        self._secrets = dsn_secrets(self._dsn)
        self._warn = Throttle(60.0)
        self.unavailable = ""  # why the database cannot be read now ("" when it can)
        start = START
        if cfg.since:
            start = instant(cfg.since, datetime.now(UTC)).isoformat()
        self.max_row_bytes = cfg.max_row_bytes
        self.tenants = [
            _Tenant(t, store.streams.get(self.stream(t), {}).get("position"), start) for t in cfg.tenants
        ]

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
        self._sql = self._plain
        if self._named is not None:
            with conn.cursor() as cur:
                cur.execute(NAMES_CHECK)
                row = cur.fetchone()
            if row is not None and row[0]:
                self._sql = self._named
            elif self._warn.due("names"):
                log.warning(
                    "postgres: role %s cannot read Logto's applications and users tables (missing, "
                    "or no privilege): names are not read with the rows (GRANT SELECT ON "
                    "applications, users TO %s)",
                    a["role"],
                    a["role"],
                )
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
        self._drop_ahead()  # read on the connection being closed
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
                budget = min(self.cfg.batch_size, max_records - sum(len(c.frames) for c in chunks))
                if budget <= 0:
                    break
                chunk = self._read(conn, t, budget)
                if chunk is not None:
                    chunks.append(chunk)
                self._count_behind(conn, t)
                if not t.caught_up:  # a backfill: the next page is read while this one ships
                    self._read_ahead(conn, t, budget)
        except psycopg.Error as exc:
            self._failed(exc)
            return chunks
        if all(t.caught_up for t in self.tenants):
            self._next_poll = now + self.cfg.poll_interval
        return chunks

    def _after(self, conn: psycopg.Connection[Any], key: _Page) -> list[_Row]:
        tenant, ts, row_id, budget = key
        with conn.cursor() as cur:
            cur.execute(self._sql.after, {"tenant": tenant, "ts": ts, "id": row_id, "limit": budget})
            return cur.fetchall()

    def _ahead_of(self, conn: psycopg.Connection[Any], key: _Page) -> _Read:
        return key, self._after(conn, key)

    def _chained(self, conn: psycopg.Connection[Any], prev: Future[_Read]) -> _Read:
        """The page after the one ``prev`` reads (done: the reader runs one at a time), or
        nothing when that was the last full page (the next read is the live phase's)."""
        got = prev.result()
        if got is None or len(got[1]) < got[0][3]:  # budgets are >= 1: a full page has a last row
            return None
        (tenant, _, _, budget), rows = got
        return self._ahead_of(conn, (tenant, *_cursor_after(rows), budget))

    def _read_ahead(self, conn: psycopg.Connection[Any], t: _Tenant, budget: int) -> None:
        """Keep up to AHEAD_PAGES pages after ``t``'s cursor being read on a thread of its own
        (psycopg waits for the database without the GIL), each after the one before it, so
        the database works on the next pages while this one ships; ``_page`` takes them in
        order. One tenant's at a time."""
        ahead = self._ahead
        if ahead and ahead[0][0] != t.name:
            return
        if self._reader is None:
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="postgres-read-ahead")
        if not ahead:
            key = (t.name, t.ts, t.id, budget)
            ahead.append((t.name, self._reader.submit(self._ahead_of, conn, key)))
        while len(ahead) < AHEAD_PAGES:
            ahead.append((t.name, self._reader.submit(self._chained, conn, ahead[-1][1])))

    def _page(self, conn: psycopg.Connection[Any], key: _Page) -> list[_Row]:
        """The rows after a cursor: read ahead already, or read now (the connection runs one
        statement at a time, so a read ahead for another tenant just goes first)."""
        ahead = self._ahead
        if ahead and ahead[0][0] == key[0]:
            _, future = ahead.popleft()
            try:
                got = future.result()  # its psycopg.Error, if any, is this read's
            except Exception:
                self._drop_ahead()
                raise
            if got is not None and got[0] == key:
                METRICS.inc("postgres_pages_read_ahead_total")
                return got[1]
            self._drop_ahead()  # another page (a smaller budget): not used, nor what follows it
        return self._after(conn, key)

    def _read(self, conn: psycopg.Connection[Any], t: _Tenant, budget: int) -> Chunk | None:
        rows = self._page(conn, (t.name, t.ts, t.id, budget))
        with conn.cursor() as cur:
            t.caught_up = len(rows) < budget
            late: list[_Timed] = []
            outside: list[_Timed] = []
            if t.caught_up and self._overlap and t.id:
                params = {"tenant": t.name, "ts": t.ts, "id": t.id, "seen": id_list(t.seen)}
                overlap = f"{self._overlap} seconds"
                cur.execute(self._sql.late, {**params, "overlap": overlap, "limit": budget})
                late = [r for r in cur.fetchall() if r[ID] not in t.ahead]
                if late:
                    METRICS.inc("postgres_late_rows_total", len(late))
                    log.info(
                        "postgres: %d rows of tenant %s committed late; shipping them", len(late), t.name
                    )
            if t.caught_up:
                outside = self._outside(cur, t, budget)
        if rows:
            t.ts, t.id = _cursor_after(rows)
            t.epoch = _epoch(t.ts)
        fresh = rows
        if t.ahead:
            fresh = [r for r in rows if r[ID] not in t.ahead]
            for r in rows:
                t.ahead.pop(r[ID], None)  # its time has come: shipped already, by id
        t.remember(late, fresh, self._overlap)
        t.ahead.update(dict.fromkeys(map(_id, outside)))
        shipped: list[_Row | _Timed] = [*late, *fresh, *outside]
        if not shipped and not rows:
            return None
        METRICS.inc("postgres_rows_read_total", len(shipped))
        chunk = Chunk(self.stream(t.name), f"postgres:logs:{t.name}", position=t.position(), offsets=False)
        chunk.named = self._sql is self._named
        lines = list(map(_line, shipped))
        if max(map(len, lines)) * 4 <= self.max_row_bytes:  # surely short enough (UTF-8: <= 4 bytes/char)
            # Complete lines, as the file input's blocks (JSON text holds no raw newline).
            chunk.block = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
            chunk.n = len(lines)
        else:
            chunk.frames = [self._frame(line) for line in lines]
        return chunk

    def _outside(self, cur: Any, t: _Tenant, budget: int) -> list[_Timed]:
        """Rows dated after the database's now, or without a time: shipped by id, ahead."""
        room = min(budget, AHEAD_CAP - len(t.ahead))
        if room <= 0:
            if self._warn.due(f"ahead:{t.name}"):
                log.warning(
                    "postgres: tenant %s has over %d rows dated in the future or without a time; "
                    "the rest ships when the database's clock reaches them",
                    t.name,
                    AHEAD_CAP,
                )
            return []
        cur.execute(self._sql.outside, {"tenant": t.name, "ahead": id_list(t.ahead), "limit": room})
        rows: list[_Timed] = cur.fetchall()
        if rows:
            METRICS.inc("postgres_rows_outside_window_total", len(rows))
            log.info(
                "postgres: %d rows of tenant %s are dated after the database's clock or have no time "
                "(e.g. %s: %s); shipping them now",
                len(rows),
                t.name,
                rows[0][ID],
                rows[0][CURSOR] or "NULL",
            )
        return rows

    def _frame(self, text: str) -> Frame:
        line = text.encode("utf-8", "surrogatepass")
        if len(line) > self.max_row_bytes:  # dead-lettered with its first bytes and real length
            return Frame(line[: self.max_row_bytes], 0, 0, len(line))
        return Frame(line, 0, 0, len(line))

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
            acked = _Tenant(t.name, pos, START).epoch if pos else t.epoch
            secs = max(0.0, now.timestamp() - acked) if math.isfinite(acked) else 0.0
            capped = t.behind is not None and t.behind >= BEHIND_CAP
            lag = Lag(self.stream(t.name), "seconds", secs, t.behind, capped, unavailable=self.unavailable)
            out.append(lag)
        return out

    def housekeeping(self) -> None:
        pass

    def _drop_ahead(self) -> None:
        ahead, self._ahead = self._ahead, deque()
        for _, future in ahead:
            with contextlib.suppress(Exception):
                future.result()

    def close(self) -> None:
        self._drop_ahead()
        if self._reader is not None:
            self._reader.shutdown(wait=True)
            self._reader = None
        if self._conn is not None:
            self._conn.close()
