"""The statements the ``postgres`` input runs (``postgres.py`` says why each is shaped so).

Every row is read as the line the normalizer (and the file input) takes, built by the database:
``{"tenant_id", "id", "key", "created_at", "payload": <payload::text, never parsed here>}``, with
the record's names as a ``_names`` member where the database has them (``Statements(names=True)``:
Logto's ``applications`` and ``users`` rows, looked up by primary key with the row), so a page of
rows is a block of lines with no per-row work in Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from shipper.normalize.fields import AUDIT, sources_of

# created_at as the normalizer's ISO time: UTC without an offset (naive times are UTC to the
# normalizer; DateStyle=ISO on the connection), or the database's own text where it has none
# (infinity, BC), which the normalizer then refuses by name. A cast, not to_char: a third of
# the cost.
_CREATED = """CASE WHEN isfinite(created_at) AND created_at >= '0001-01-01 00:00:00+00'
       THEN (created_at AT TIME ZONE 'UTC')::text ELSE created_at::text END"""


def _id(field: str) -> str:
    """The id a field is read from (a payload member, a string only), as the field table says."""
    ((top, member),) = sources_of(AUDIT, field)
    assert top == "payload"
    return f"CASE WHEN jsonb_typeof(logs.payload->'{member}') = 'string' THEN logs.payload->>'{member}' END"


# The ids names are looked up by.
_APP, _USER = _id("logto.application_id"), _id("user.id")
# One row each at most (primary keys); the lateral subqueries expose only these columns, so the
# statements' own column names stay unambiguous.
_NAMES_JOIN = f"""
LEFT JOIN LATERAL (SELECT a.name AS app_name, a.type AS app_type FROM applications a
                   WHERE a.tenant_id = logs.tenant_id AND a.id = {_APP}) na ON true
LEFT JOIN LATERAL (SELECT COALESCE(NULLIF(u.username, ''), u.name) AS user_name,
                          u.primary_email AS user_email FROM users u
                   WHERE u.tenant_id = logs.tenant_id AND u.id = {_USER}) nu ON true"""


def _names(email: bool) -> str:
    """The ``_names`` member, empty names left out, none at all without one: spelled out with
    ``to_json`` (json_build_object + json_strip_nulls cost the database ~0.7 µs a row more)."""
    cols = [("application", "na.app_name"), ("application_type", "na.app_type"), ("user", "nu.user_name")]
    if email:
        cols.append(("email", "nu.user_email"))
    members = ", ".join(f"""CASE WHEN {c} <> '' THEN '"{k}":' || to_json({c}::text) END""" for k, c in cols)
    some = " OR ".join(f"{c} <> ''" for _, c in cols)
    return f"""CASE WHEN {some} THEN concat(',"_names":{{', concat_ws(',', {members}), '}}') END"""


def _columns(names: bool, email: bool, times: bool) -> str:
    """The row's id and line; with ``times`` also created_at as text (the cursor: exact,
    castable back) and as epoch seconds. The keyset read goes without them (two columns less
    a row for the database to render and the shipper to load): its cursor is its last line's
    (``cursor_of``)."""
    tail = _names(email) if names else "''"
    line = f"""concat('{{"tenant_id":', to_json(logs.tenant_id::text), ',"id":', to_json(logs.id::text),
       ',"key":', to_json(logs.key::text), ',"created_at":', to_json({_CREATED}),
       ',"payload":', COALESCE(logs.payload::text, 'null'), {tail}, '}}')"""
    extra = ", created_at::text AS cursor, extract(epoch FROM created_at)::float8 AS epoch" if times else ""
    return f"logs.id AS id, {line} AS line{extra}"


_CREATED_MEMBER = ',"created_at":"'


def cursor_of(line: str) -> str:
    """The keyset cursor (``created_at::text`` on a UTC connection) of a line the keyset read
    built: its ``created_at`` member and ``+00``. Exact there, where every row is dated from
    1970 to now (``_CREATED``'s first branch: the UTC time to the microsecond). The first
    ``,"created_at":"`` is the member's: the strings before it are JSON, whose quotes are
    escaped."""
    start = line.index(_CREATED_MEMBER) + len(_CREATED_MEMBER)
    return line[start : line.index('"', start)] + "+00"


def _not_in(ids: str) -> str:
    """Rows whose id is not in the parameter ``ids`` (``id_list``: a JSON array), looked up by
    hash in any plan: ``NOT (id = ANY(%(ids)s))`` is hashed only while the array is a constant,
    and once the server plans the prepared statement generically (from its 11th run) it searched
    the array for each row: 30,000 ids shipped inside the overlap (100 rows/s, 5m) cost 10 s a
    poll. JSON, not a text[] parameter: psycopg writes an array element by element in Python,
    ~1.3 µs an id (30,000 ids: 40 ms of the shipper's CPU a poll, against 1.5 ms)."""
    return f"id NOT IN (SELECT jsonb_array_elements_text(%({ids})s::jsonb))"


def id_list(ids: Iterable[str]) -> str:
    """The parameter of ``_not_in``. An id that is not valid Unicode (a lone surrogate: only a
    damaged checkpoint can hold one) matches no row of the database and is left out, rather
    than failing every poll."""
    ids = list(ids)
    try:
        return orjson.dumps(ids).decode()
    except TypeError:
        return orjson.dumps(
            [i for i in ids if i.encode("utf-8", "replace") == i.encode("utf-8", "surrogatepass")]
        ).decode()


@dataclass(frozen=True)
class Statements:
    """The three reads of ``logs``, with or without names: rows of ``(id, line)`` from
    ``after`` (the keyset), ``(id, line, cursor, epoch)`` from ``late`` and ``outside``."""

    after: str
    late: str
    outside: str

    @classmethod
    def build(cls, names: bool = False, email: bool = False) -> Statements:
        # The page is chosen first, alone (the keyset index, the limit), and only its rows are
        # joined: a join over the whole WHERE could be planned as a hash join and a sort of
        # every row after the cursor, per page.
        def read(where: str, order: str, times: bool = True) -> str:
            page = f"SELECT tenant_id, id, key, payload, created_at FROM logs WHERE {where} ORDER BY {order}"
            return (
                f"SELECT {_columns(names, email, times)} FROM ({page} LIMIT %(limit)s) logs"
                f"{_NAMES_JOIN if names else ''}\nORDER BY {order}"
            )

        return cls(
            after=read(
                """tenant_id = %(tenant)s AND (created_at, id) > (%(ts)s::timestamptz, %(id)s)
  AND created_at >= '1970-01-01 00:00:00+00' AND created_at <= statement_timestamp()""",
                "created_at, id",
                times=False,
            ),
            late=read(
                f"""tenant_id = %(tenant)s AND created_at >= %(ts)s::timestamptz - %(overlap)s::interval
  AND created_at >= '1970-01-01 00:00:00+00'
  AND (created_at, id) <= (%(ts)s::timestamptz, %(id)s) AND {_not_in("seen")}""",
                "created_at, id",
            ),
            outside=read(
                f"""tenant_id = %(tenant)s
  AND (created_at > statement_timestamp() OR created_at < '1970-01-01 00:00:00+00' OR created_at IS NULL)
  AND {_not_in("ahead")}""",
                "id",
            ),
        )


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
# May this role read the tables names come from? (Then names are read with the rows.)
NAMES_CHECK = """
SELECT COALESCE(has_table_privilege(to_regclass('applications'), 'SELECT'), false)
   AND COALESCE(has_table_privilege(to_regclass('users'), 'SELECT'), false)
"""
# Rows not read yet, counted along the index and capped: a progress figure, not a scan.
BEHIND = """
SELECT count(*) FROM (
  SELECT 1 FROM logs WHERE tenant_id = %(tenant)s AND (created_at, id) > (%(ts)s::timestamptz, %(id)s)
    AND created_at <= statement_timestamp()
  LIMIT %(cap)s
) behind
"""
