"""Sorting: sort specs, sort values, missing values and their rendering."""

from __future__ import annotations

from typing import Any

from tests.es_server.errors import EsError, bad_request, parsing
from tests.es_server.fieldvalues import (
    DATE_TYPES,
    MAX_LONG,
    MIN_LONG,
    _check_aggregatable,
    _coerce_term,
    _fmt,
    ftype,
    values,
)
from tests.es_server.mapping import (
    KEYWORDISH,
    NUMERIC,
    TEXTISH,
    format_date,
)
from tests.es_server.model import Doc, Index

# -- sorting --------------------------------------------------------------------------------


def parse_sort(spec: Any) -> list[tuple[str, str, Any, str | None]]:
    """[(field, order, missing, unmapped_type)]"""
    if spec is None:
        return []
    items = spec if isinstance(spec, list) else [spec]
    out = []
    for it in items:
        if isinstance(it, str):
            field, _, order = it.partition(":")
            out.append((field, order or ("desc" if field == "_score" else "asc"), None, None))
        elif isinstance(it, dict):
            for field, v in it.items():
                if isinstance(v, str):
                    out.append((field, v, None, None))
                elif isinstance(v, dict):
                    for k in v:
                        if k in ("mode", "numeric_type", "nested"):
                            raise bad_request(f"test server: sort option [{k}] is not implemented")
                        if k not in ("order", "missing", "unmapped_type", "format"):
                            raise parsing(f"[field_sort] unknown field [{k}]")
                    order = v.get("order", "desc" if field == "_score" else "asc")
                    if order not in ("asc", "desc"):
                        raise bad_request(f"Unknown SortOrder [{order}]")
                    out.append((field, order, v.get("missing"), v.get("unmapped_type")))
                else:
                    raise parsing(f"[sort] unsupported value for [{field}]")
        else:
            raise parsing("[sort] malformed")
    return out


def sort_value(ix: Index, doc: Doc, score: float, field: str, order: str, missing: Any) -> Any:
    if field == "_score":
        return score
    if field == "_doc":
        return doc.seq_no
    vals = values(doc, field)
    t = ftype(ix, field)
    if not vals:
        if missing == "_first":
            return _MISSING_FIRST
        if missing not in (None, "_last"):
            return _coerce_term(t, missing, ix, field, 0)
        return _MISSING_LAST
    if t == "ip":
        vals = [int(v) + (0 if v.version == 4 else 2**33) for v in vals]
    if t == "boolean":
        vals = [1 if v else 0 for v in vals]
    return min(vals) if order == "asc" else max(vals)


class _Missing:
    def __init__(self, last: bool) -> None:
        self.last = last


_MISSING_LAST = _Missing(True)
_MISSING_FIRST = _Missing(False)


def sort_formats(spec: Any) -> list[str | None]:
    """Each sort's ``format`` (None where not given), in the order parse_sort returns them."""
    out: list[str | None] = []
    for it in spec if isinstance(spec, list) else [spec] if spec is not None else []:
        if isinstance(it, dict):
            out += [v.get("format") if isinstance(v, dict) else None for v in it.values()]
        else:
            out.append(None)
    return out


def render_sort_values(ix: Index, sorts: list[Any], svals: list[Any], spec: Any) -> list[Any]:
    fmts = sort_formats(spec) if not isinstance(spec, str) else [None] * len(sorts)
    out = []
    for (f, o, _, _), v, fmt in zip(sorts, svals, fmts, strict=True):
        r = render_sort_value(ix, f, v, o)
        if fmt is not None and r is not None:
            t = ftype(ix, f)
            if t not in DATE_TYPES:
                raise bad_request(f"test server: sort [format] on [{t}] fields is not implemented")
            if fmt in ("strict_date_optional_time", "date_optional_time", "strict_date_time", "date_time"):
                r = format_date(int(r))
            elif fmt == "epoch_millis":
                r = str(int(r))
            else:
                r = _fmt(int(r), fmt)
        out.append(r)
    return out


def render_sort_value(ix: Index, field: str, v: Any, order: str) -> Any:
    t = ftype(ix, field) if field not in ("_score", "_doc") else None
    if isinstance(v, _Missing):
        if t in KEYWORDISH or t is None:
            return None
        if v.last:
            return MAX_LONG if order == "asc" else MIN_LONG
        return MIN_LONG if order == "asc" else MAX_LONG
    if t in NUMERIC and t not in ("double", "float", "half_float", "scaled_float") and isinstance(v, float):
        return int(v)
    if t == "ip":
        return None
    return v


def sort_key(vals: list[Any], orders: list[str]) -> tuple[Any, ...]:
    key = []
    for v, order in zip(vals, orders, strict=True):
        if isinstance(v, _Missing):
            key.append((1 if v.last else -1, 0))
            continue
        if isinstance(v, str):
            k: Any = _Str(v, order == "desc")
        else:
            k = -v if order == "desc" else v
        key.append((0, k))
    return tuple(key)


class _Str:
    __slots__ = ("rev", "s")

    def __init__(self, s: str, rev: bool) -> None:
        self.s, self.rev = s, rev

    def __lt__(self, other: _Str) -> bool:
        return (self.s > other.s) if self.rev else (self.s < other.s)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Str) and self.s == other.s


def sorted_hits(
    hits: list[tuple[Index, Doc, float]], sorts: list[tuple[str, str, Any, str | None]]
) -> list[tuple[Index, Doc, float, list[Any]]]:
    if not sorts:
        rows = [(ix, d, s, []) for ix, d, s in hits]
        rows.sort(key=lambda r: (-r[2], r[0].name, r[1].seq_no))
        return rows
    for field, _, _, unmapped in sorts:
        if field in ("_score", "_doc"):
            continue
        for ix, _, _ in hits:
            fdef = ix.field_type(field)
            if fdef is None and unmapped is None and "*" not in field:
                raise EsError(
                    400,
                    "query_shard_exception",
                    f"No mapping found for [{field}] in order to sort on",
                    index=ix.name,
                )
            if fdef is not None and fdef.get("type") in TEXTISH:
                _check_aggregatable([(ix, hits[0][1], 0.0)], field)
    orders = [o for _, o, _, _ in sorts]
    rows = [(ix, d, s, [sort_value(ix, d, s, f, o, m) for f, o, m, _ in sorts]) for ix, d, s in hits]
    rows.sort(key=lambda r: (sort_key(r[3], orders), r[0].name, r[1].seq_no))
    return rows
