"""Field values as queries, sorts and aggregations see them: types, stored values, term
coercion, date math and date formats, whether a field can be aggregated."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.es_server.errors import EsError, bad_request
from tests.es_server.mapping import (
    NUMERIC,
    TEXTISH,
    ConversionError,
    convert,
    parse_date,
)
from tests.es_server.model import Doc, Index

Pred = Callable[[Index, Doc], float | None]  # score when matching, None otherwise
DATE_TYPES = {"date", "date_nanos"}
MAX_LONG = 9223372036854775807
MIN_LONG = -9223372036854775808
_DATEMATH = re.compile(r"([+-])(\d+)([yMwdhHms])|/([yMwdhHms])")


# -- date math ------------------------------------------------------------------------------


def _add(dt: datetime, n: int, unit: str) -> datetime:
    if unit == "y":
        return dt.replace(year=dt.year + n)
    if unit == "M":
        m = dt.month - 1 + n
        return dt.replace(year=dt.year + m // 12, month=m % 12 + 1)
    secs = {"w": 604800, "d": 86400, "h": 3600, "H": 3600, "m": 60, "s": 1}[unit]
    return dt + timedelta(seconds=n * secs)


def _round(dt: datetime, unit: str, up: bool) -> datetime:
    if unit == "y":
        lo = dt.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    elif unit == "M":
        lo = dt.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elif unit == "w":
        lo = (dt - timedelta(days=dt.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    elif unit == "d":
        lo = dt.replace(hour=0, minute=0, second=0, microsecond=0)
    elif unit in ("h", "H"):
        lo = dt.replace(minute=0, second=0, microsecond=0)
    elif unit == "m":
        lo = dt.replace(second=0, microsecond=0)
    else:
        lo = dt.replace(microsecond=0)
    if not up:
        return lo
    return _add(lo, 1, unit) - timedelta(milliseconds=1)


def date_math(value: Any, now_ms: int, fmt: str | None = None, round_up: bool = False) -> int:
    """Epoch millis of a date or date-math expression (``now-1d/d``, ``2025-01-01||+1M``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    s = str(value)
    if s.startswith("now"):
        base, rest = datetime.fromtimestamp(now_ms / 1000, UTC), s[3:]
    elif "||" in s:
        anchor, rest = s.split("||", 1)
        base = datetime.fromtimestamp(parse_date(anchor, fmt) / 1000, UTC)
    else:
        try:
            return parse_date(s, fmt)
        except ConversionError as exc:
            raise EsError(
                400,
                "parse_exception",
                f"failed to parse date field [{s}] with format "
                f"[{fmt or 'strict_date_optional_time||epoch_millis'}]: [{exc}]",
            ) from None
    pos = 0
    while pos < len(rest):
        m = _DATEMATH.match(rest, pos)
        if not m:
            raise EsError(400, "parse_exception", f"operator not supported for date math [{s}]")
        if m.group(4):
            base = _round(base, m.group(4), round_up)
        else:
            n = int(m.group(2)) * (1 if m.group(1) == "+" else -1)
            base = _add(base, n, m.group(3))
        pos = m.end()
    d = base - datetime(1970, 1, 1, tzinfo=UTC)
    return (d.days * 86400 + d.seconds) * 1000 + d.microseconds // 1000


# -- field access ---------------------------------------------------------------------------

META_FIELDS = {"_id": "keyword", "_index": "keyword"}


def ftype(ix: Index, field: str) -> str | None:
    if field in META_FIELDS:
        return META_FIELDS[field]
    fdef = ix.field_type(field)
    return None if fdef is None else fdef.get("type", "object")


def values(doc: Doc, field: str) -> list[Any]:
    if field == "_id":
        return [doc.id]
    if field == "_index":
        return [doc.index]
    return doc.fields.get(field, [])


def _coerce_term(t: str | None, value: Any, ix: Index, field: str, now_ms: int) -> Any:
    """A query value as the field's indexed type (None when it cannot match)."""
    if t in DATE_TYPES:
        return date_math(value, now_ms, (ix.field_type(field) or {}).get("format"))
    if t in NUMERIC:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise EsError(
                400,
                "query_shard_exception",
                f'failed to create query: For input string: "{value}"',
                index=ix.name,
            ) from None
    if t == "boolean":
        return value in (True, "true")
    if t == "ip":
        try:
            return (
                ipaddress.ip_network(str(value), strict=False)
                if "/" in str(value)
                else convert("ip", str(value), {})[0]
            )
        except (ValueError, ConversionError):
            raise EsError(
                400,
                "query_shard_exception",
                f"failed to create query: '{value}' is not an IP string literal.",
                index=ix.name,
            ) from None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if not isinstance(value, str) else value


def _eq(t: str | None, stored: Any, q: Any, case_insensitive: bool = False) -> bool:
    if t in NUMERIC:
        return float(stored) == q
    if t == "ip" and isinstance(q, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return stored.version == q.version and stored in q
    if case_insensitive and isinstance(stored, str) and isinstance(q, str):
        return stored.lower() == q.lower()
    return stored == q


def _fmt(ms: int, fmt: str) -> str:
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    py = (
        fmt.replace("yyyy", "%Y")
        .replace("MM", "%m")
        .replace("dd", "%d")
        .replace("HH", "%H")
        .replace("mm", "%M")
        .replace("ss", "%S")
    )
    return dt.strftime(py)


def _check_aggregatable(hits: list[tuple[Index, Doc, float]], field: str) -> str | None:
    t = None
    for ix, _, _ in hits:
        t = ftype(ix, field)
        if t in TEXTISH:
            raise bad_request(
                f"Fielddata is disabled on [{field}] in [{ix.name}]. Text fields are not optimised for operations "
                "that require per-document field data like aggregations and sorting, so these operations are "
                "disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on "
                f"[{field}] in order to load field data by uninverting the inverted index. Note that this can use "
                "significant memory."
            )
        if t is not None:
            return t
    return t
