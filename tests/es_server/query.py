"""Search: query DSL evaluation, sorting, paging and aggregations over the stored documents.

Implemented queries: match_all, match_none, bool, term, terms, range, prefix, wildcard, exists,
ids, match, query_string (field:value, AND/OR/NOT, wildcards, quoted phrases). Aggregations:
terms, date_histogram, histogram, cardinality, value_count, min, max, sum, avg, top_hits.
Anything else is answered the way Elasticsearch answers an unknown query or aggregation.
"""

from __future__ import annotations

import difflib
import fnmatch
import ipaddress
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.es_server.errors import EsError, bad_request, parsing
from tests.es_server.mapping import (
    KEYWORDISH,
    NUMERIC,
    TEXTISH,
    ConversionError,
    analyze,
    convert,
    format_date,
    parse_date,
)
from tests.es_server.store import Cluster, Doc, Index

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


# -- queries --------------------------------------------------------------------------------


def _single_field(body: Any, qname: str) -> tuple[str, Any]:
    if not isinstance(body, dict) or not body:
        raise parsing(f"[{qname}] query malformed, no start_object after query name")
    items = [(k, v) for k, v in body.items() if k not in ("boost", "_name")]
    if len(items) != 1:
        raise parsing(
            f"[{qname}] query doesn't support multiple fields, found [{items[0][0]}] and [{items[1][0]}]"
            if len(items) > 1
            else f"[{qname}] query malformed, no field"
        )
    return items[0]


def compile_query(q: Any, ix: Index, now_ms: int) -> Pred:
    if q is None:
        return lambda i, d: 1.0
    if not isinstance(q, dict) or len(q) != 1:
        raise parsing(
            "[_na] query malformed, must start with start_object"
            if not isinstance(q, dict)
            else f"[{next(iter(q), '_na')}] malformed query, expected [END_OBJECT] but found [FIELD_NAME]"
        )
    name, body = next(iter(q.items()))
    builder = QUERIES.get(name)
    if builder is None:
        err = parsing(f"unknown query [{name}]")
        err.caused_by = {
            "type": "named_object_not_found_exception",
            "reason": f"[1:10] unknown field [{name}]",
        }
        raise err
    return builder(body, ix, now_ms)


def q_match_all(body: Any, ix: Index, now: int) -> Pred:
    boost = float((body or {}).get("boost", 1.0))
    return lambda i, d: boost


def q_match_none(body: Any, ix: Index, now: int) -> Pred:
    return lambda i, d: None


def q_term(body: Any, ix: Index, now: int) -> Pred:
    field, spec = _single_field(body, "term")
    if isinstance(spec, dict):
        for k in spec:
            if k not in ("value", "boost", "case_insensitive", "_name"):
                raise parsing(f"[term] query does not support [{k}]")
        value, ci = spec.get("value"), bool(spec.get("case_insensitive", False))
    else:
        value, ci = spec, False
    if isinstance(value, dict | list):
        raise parsing(
            "[term] query does not support array of values"
            if isinstance(value, list)
            else "[term] query malformed"
        )
    t = ftype(ix, field)
    if t is None:
        return lambda i, d: None
    qv = _coerce_term(t, value, ix, field, now)
    if t in TEXTISH:
        return lambda i, d: 1.0 if any(tok == qv for v in values(d, field) for tok in analyze(v)) else None
    return lambda i, d: 1.0 if any(_eq(t, v, qv, ci) for v in values(d, field)) else None


def q_terms(body: Any, ix: Index, now: int) -> Pred:
    field, vals = _single_field(body, "terms")
    if not isinstance(vals, list):
        raise parsing("[terms] query does not support [" + field + "]")
    preds = [q_term({field: v}, ix, now) for v in vals]
    return lambda i, d: 1.0 if any(p(i, d) is not None for p in preds) else None


def q_ids(body: Any, ix: Index, now: int) -> Pred:
    ids = set(str(v) for v in (body or {}).get("values", []))
    return lambda i, d: 1.0 if d.id in ids else None


def q_exists(body: Any, ix: Index, now: int) -> Pred:
    field = (body or {}).get("field")
    if not field:
        raise parsing("[exists] must be provided with a [field]")
    fields = [field] if "*" not in field else [f for f in ix.field_types() if fnmatch.fnmatchcase(f, field)]

    def pred(i: Index, d: Doc) -> float | None:
        for f in fields:
            if values(d, f):
                return 1.0
            t = ftype(ix, f)
            if t == "object" and any(k.startswith(f + ".") and v for k, v in d.fields.items()):
                return 1.0
        return None

    return pred


def q_prefix(body: Any, ix: Index, now: int) -> Pred:
    field, spec = _single_field(body, "prefix")
    value = spec.get("value") if isinstance(spec, dict) else spec
    ci = bool(spec.get("case_insensitive", False)) if isinstance(spec, dict) else False
    t = ftype(ix, field)
    if t is None:
        return lambda i, d: None
    if t not in KEYWORDISH and t not in TEXTISH and t != "flattened":
        raise EsError(
            400,
            "query_shard_exception",
            f"Can only use prefix queries on keyword and text fields - not on [{field}] which is of type [{t}]",
            index=ix.name,
        )
    v = str(value).lower() if ci or t in TEXTISH else str(value)

    def pred(i: Index, d: Doc) -> float | None:
        for s in values(d, field):
            toks = analyze(s) if t in TEXTISH else [s.lower() if ci else s]
            if any(tok.startswith(v) for tok in toks):
                return 1.0
        return None

    return pred


def _wildcard_regex(pattern: str, ci: bool) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out += re.escape(pattern[i + 1])
            i += 2
            continue
        out += ".*" if c == "*" else "." if c == "?" else re.escape(c)
        i += 1
    return re.compile(out, re.DOTALL | (re.IGNORECASE if ci else 0))


def q_wildcard(body: Any, ix: Index, now: int) -> Pred:
    field, spec = _single_field(body, "wildcard")
    if isinstance(spec, dict):
        value = spec.get("value", spec.get("wildcard"))
        ci = bool(spec.get("case_insensitive", False))
    else:
        value, ci = spec, False
    t = ftype(ix, field)
    if t is None:
        return lambda i, d: None
    rx = _wildcard_regex(str(value), ci or t in TEXTISH)

    def pred(i: Index, d: Doc) -> float | None:
        for s in values(d, field):
            toks = analyze(s) if t in TEXTISH else [s]
            if any(rx.fullmatch(tok) for tok in toks):
                return 1.0
        return None

    return pred


def q_range(body: Any, ix: Index, now: int) -> Pred:
    field, spec = _single_field(body, "range")
    if not isinstance(spec, dict):
        raise parsing("[range] query malformed, no start_object after query name")
    for k in spec:
        if k not in (
            "gt",
            "gte",
            "lt",
            "lte",
            "from",
            "to",
            "include_lower",
            "include_upper",
            "format",
            "time_zone",
            "boost",
            "relation",
            "_name",
        ):
            raise parsing(f"[range] query does not support [{k}]")
    t = ftype(ix, field)
    if t is None:
        return lambda i, d: None
    fmt = spec.get("format") or (ix.field_type(field) or {}).get("format")
    bounds: list[tuple[str, Any]] = []
    for op in ("gt", "gte", "lt", "lte"):
        if spec.get(op) is not None:
            raw = spec[op]
            if t in DATE_TYPES:
                v: Any = date_math(raw, now, fmt, round_up=op in ("gt", "lte"))
            elif t in NUMERIC:
                v = float(raw)
            elif t == "ip":
                v = convert("ip", raw, {})[0]
            else:
                v = str(raw)
            bounds.append((op, v))

    def ok(x: Any) -> bool:
        if t in NUMERIC:
            x = float(x)
        for op, b in bounds:
            if t == "ip" and x.version != b.version:
                return False
            if (
                (op == "gt" and not x > b)
                or (op == "gte" and not x >= b)
                or (op == "lt" and not x < b)
                or (op == "lte" and not x <= b)
            ):
                return False
        return True

    return lambda i, d: 1.0 if any(ok(v) for v in values(d, field)) else None


def q_match(body: Any, ix: Index, now: int) -> Pred:
    field, spec = _single_field(body, "match")
    if isinstance(spec, dict):
        query, operator = spec.get("query"), str(spec.get("operator", "or")).lower()
    else:
        query, operator = spec, "or"
    t = ftype(ix, field)
    if t is None:
        return lambda i, d: None
    if t not in TEXTISH:
        return q_term({field: query}, ix, now)
    toks = analyze(str(query))

    def pred(i: Index, d: Doc) -> float | None:
        doc_toks = {tok for v in values(d, field) for tok in analyze(v)}
        hits = sum(1 for tok in toks if tok in doc_toks)
        if not toks or hits == 0 or (operator == "and" and hits < len(toks)):
            return None
        return float(hits)

    return pred


def _msm(spec: Any, n: int) -> int:
    if spec is None:
        return 0
    s = str(spec)
    if s.endswith("%"):
        pct = int(s[:-1])
        v = math.floor(n * abs(pct) / 100)
        return v if pct >= 0 else n - v
    v = int(s)
    return v if v >= 0 else n + v


def q_bool(body: Any, ix: Index, now: int) -> Pred:
    if not isinstance(body, dict):
        raise parsing("[bool] query malformed")
    clauses: dict[str, list[Pred]] = {}
    for k, v in body.items():
        if k in ("must", "filter", "should", "must_not"):
            items = v if isinstance(v, list) else [v]
            clauses[k] = [compile_query(x, ix, now) for x in items]
        elif k == "minimum_should_match" or k in ("boost", "_name", "adjust_pure_negative"):
            continue
        else:
            raise parsing(f"[bool] query does not support [{k}]")
    must, filt = clauses.get("must", []), clauses.get("filter", [])
    should, must_not = clauses.get("should", []), clauses.get("must_not", [])
    msm_spec = body.get("minimum_should_match")
    msm = (
        _msm(msm_spec, len(should)) if msm_spec is not None else (0 if must or filt else (1 if should else 0))
    )
    boost = float(body.get("boost", 1.0))

    def pred(i: Index, d: Doc) -> float | None:
        score = 0.0
        for p in must:
            s = p(i, d)
            if s is None:
                return None
            score += s
        for p in filt:
            if p(i, d) is None:
                return None
        for p in must_not:
            if p(i, d) is not None:
                return None
        matched = 0
        for p in should:
            s = p(i, d)
            if s is not None:
                matched += 1
                score += s
        if matched < msm:
            return None
        return score * boost if (must or should) else 0.0

    return pred


_QS_TOKEN = re.compile(
    r'\s*(\(|\)|AND\b|OR\b|NOT\b|&&|\|\||!|"(?:[^"\\]|\\.)*"|(?:[^\s()"\\:]|\\.)+(?::(?:"(?:[^"\\]|\\.)*"|(?:[^\s()"\\]|\\.)+))?)'
)


def q_query_string(body: Any, ix: Index, now: int) -> Pred:
    """The subset operators use: ``field:value``, ``field:va*``, AND/OR/NOT, parentheses, phrases."""
    query = (body or {}).get("query")
    if not isinstance(query, str):
        raise parsing("[query_string] must be provided with a [query]")
    default_op = str(body.get("default_operator", "or")).lower()
    default_fields = body.get("fields") or ([body["default_field"]] if body.get("default_field") else ["*"])
    tokens = []
    pos = 0
    while pos < len(query):
        m = _QS_TOKEN.match(query, pos)
        if not m or m.end() == pos:
            if query[pos:].strip() == "":
                break
            raise EsError(400, "query_shard_exception", f"Failed to parse query [{query}]", index=ix.name)
        tokens.append(m.group(1))
        pos = m.end()

    def term_pred(tok: str) -> Pred:
        if ":" in tok and not tok.startswith('"'):
            field, value = tok.split(":", 1)
            fields = [field]
        else:
            fields, value = default_fields, tok
        value = value[1:-1] if value.startswith('"') and value.endswith('"') else value
        value = re.sub(r"\\(.)", r"\1", value)
        preds = []
        for f in fields:
            targets = (
                [f]
                if "*" not in f
                else [
                    p
                    for p, d in ix.field_types().items()
                    if fnmatch.fnmatchcase(p, f) and d.get("type") in KEYWORDISH | TEXTISH
                ]
            )
            for fld in targets:
                t = ftype(ix, fld)
                if "*" in value or "?" in value:
                    preds.append(q_wildcard({fld: {"value": value}}, ix, now))
                elif t in TEXTISH:
                    preds.append(q_match({fld: {"query": value, "operator": "and"}}, ix, now))
                else:
                    try:
                        preds.append(q_term({fld: value}, ix, now))
                    except EsError:
                        continue
        return lambda i, d: 1.0 if any(p(i, d) is not None for p in preds) else None

    def parse_or(i: int) -> tuple[Pred, int]:
        left, i = parse_and(i)
        parts = [left]
        while i < len(tokens) and tokens[i] in ("OR", "||"):
            right, i = parse_and(i + 1)
            parts.append(right)
        return (parts[0] if len(parts) == 1 else _any(parts)), i

    def parse_and(i: int) -> tuple[Pred, int]:
        left, i = parse_not(i)
        parts = [left]
        ops: list[str] = []
        while i < len(tokens) and tokens[i] not in ("OR", "||", ")"):
            explicit = tokens[i] in ("AND", "&&")
            right, i = parse_not(i + 1 if explicit else i)
            parts.append(right)
            ops.append("and" if explicit or default_op == "and" else "or")
        if not ops:
            return left, i
        if all(o == "and" for o in ops):
            return _all(parts), i
        return _any(parts), i

    def parse_not(i: int) -> tuple[Pred, int]:
        if i < len(tokens) and tokens[i] in ("NOT", "!"):
            inner, i = parse_not(i + 1)
            return (lambda ix_, d: None if inner(ix_, d) is not None else 1.0), i
        if i < len(tokens) and tokens[i] == "(":
            inner, i = parse_or(i + 1)
            if i >= len(tokens) or tokens[i] != ")":
                raise EsError(400, "query_shard_exception", f"Failed to parse query [{query}]", index=ix.name)
            return inner, i + 1
        if i >= len(tokens):
            raise EsError(400, "query_shard_exception", f"Failed to parse query [{query}]", index=ix.name)
        return term_pred(tokens[i]), i + 1

    pred, end = parse_or(0) if tokens else ((lambda i, d: None), 0)
    if end != len(tokens):
        raise EsError(400, "query_shard_exception", f"Failed to parse query [{query}]", index=ix.name)
    return pred


def _all(parts: list[Pred]) -> Pred:
    return lambda i, d: 1.0 if all(p(i, d) is not None for p in parts) else None


def _any(parts: list[Pred]) -> Pred:
    return lambda i, d: 1.0 if any(p(i, d) is not None for p in parts) else None


QUERIES: dict[str, Callable[[Any, Index, int], Pred]] = {
    "match_all": q_match_all,
    "match_none": q_match_none,
    "term": q_term,
    "terms": q_terms,
    "ids": q_ids,
    "exists": q_exists,
    "prefix": q_prefix,
    "wildcard": q_wildcard,
    "range": q_range,
    "match": q_match,
    "bool": q_bool,
    "query_string": q_query_string,
}


# -- source filtering -----------------------------------------------------------------------


def _flatten(src: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(src, dict):
        for k, v in src.items():
            p = f"{prefix}{k}"
            if isinstance(v, dict) and v:
                out.update(_flatten(v, p + "."))
            else:
                out[p] = v
    return out


def filter_source(src: dict[str, Any], includes: list[str], excludes: list[str]) -> dict[str, Any]:
    if not includes and not excludes:
        return src

    def keep(path: str) -> bool:
        inc = not includes or any(
            fnmatch.fnmatchcase(path, p) or path.startswith(p + ".") or fnmatch.fnmatchcase(path, p + ".*")
            for p in includes
        )
        exc = any(fnmatch.fnmatchcase(path, p) or path.startswith(p + ".") for p in excludes)
        return inc and not exc

    def walk(obj: Any, prefix: str) -> Any:
        out = {}
        for k, v in obj.items():
            p = f"{prefix}{k}"
            if isinstance(v, dict):
                if keep(p):
                    sub = walk(v, p + ".") if excludes else v
                    out[k] = sub
                else:
                    sub = walk(v, p + ".")
                    if sub:
                        out[k] = sub
            elif keep(p):
                out[k] = v
        return out

    return walk(src, "")


def source_spec(body_spec: Any, params: dict[str, str]) -> tuple[bool, list[str], list[str]]:
    includes: list[str] = []
    excludes: list[str] = []
    enabled = True
    spec = body_spec
    if "_source" in params:
        p = params["_source"]
        if p in ("false", "true"):
            enabled = p == "true"
        else:
            includes = p.split(",")
    if spec is not None:
        if spec is False:
            enabled = False
        elif spec is True:
            enabled = True
        elif isinstance(spec, str):
            includes = [spec]
        elif isinstance(spec, list):
            includes = spec
        elif isinstance(spec, dict):
            includes = _as_list(spec.get("includes", spec.get("include", [])))
            excludes = _as_list(spec.get("excludes", spec.get("exclude", [])))
    if params.get("_source_includes"):
        includes = params["_source_includes"].split(",")
    if params.get("_source_excludes"):
        excludes = params["_source_excludes"].split(",")
    return enabled, includes, excludes


def _as_list(v: Any) -> list[str]:
    return [v] if isinstance(v, str) else list(v or [])


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


# -- aggregations ---------------------------------------------------------------------------

AGG_TYPES = {
    "terms",
    "date_histogram",
    "histogram",
    "cardinality",
    "value_count",
    "min",
    "max",
    "sum",
    "avg",
    "top_hits",
    "filter",
}
_FIXED = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_CALENDAR = {
    "minute": "m",
    "1m": "m",
    "hour": "h",
    "1h": "h",
    "day": "d",
    "1d": "d",
    "week": "w",
    "1w": "w",
    "month": "M",
    "1M": "M",
    "quarter": "q",
    "1q": "q",
    "year": "y",
    "1y": "y",
}


def run_aggs(spec: Any, hits: list[tuple[Index, Doc, float]], now: int, cluster: Cluster) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise parsing("Expected [START_OBJECT] under [aggregations]")
    out = {}
    for name, adef in spec.items():
        if not isinstance(adef, dict):
            raise parsing(f"Expected [START_OBJECT] under [{name}]")
        subs = adef.get("aggs", adef.get("aggregations"))
        kinds = [k for k in adef if k not in ("aggs", "aggregations", "meta")]
        if len(kinds) != 1:
            raise parsing(
                f"Expected [START_OBJECT] under [{kinds[1] if len(kinds) > 1 else name}], but got a [FIELD_NAME] in [{name}]"
                if kinds
                else f"Missing definition for aggregation [{name}]"
            )
        kind = kinds[0]
        if kind not in AGG_TYPES:
            err = EsError(400, "x_content_parse_exception", f"[1:20] unknown aggregation type [{kind}]")
            raise err
        check_options(kind, adef[kind], name)
        res = AGGS[kind](adef[kind], hits, now, cluster, subs)
        if "meta" in adef:
            res["meta"] = adef["meta"]
        out[name] = res
    return out


# Each aggregation's options (the Elasticsearch reference page of each aggregation): those
# implemented, and those Elasticsearch knows that the test server refuses rather than ignores.
AGG_OPTIONS: dict[str, tuple[set[str], set[str]]] = {
    "terms": (
        {"field", "size", "min_doc_count", "order", "missing", "include", "exclude", "shard_size"}
        | {"execution_hint", "collect_mode", "show_term_doc_count_error", "value_type"},
        {"format", "script", "shard_min_doc_count"},
    ),
    "cardinality": ({"field", "precision_threshold", "missing", "execution_hint"}, {"script"}),
    "histogram": (
        {"field", "interval", "offset", "min_doc_count", "extended_bounds", "order"},
        {"hard_bounds", "keyed", "missing", "format", "script"},
    ),
    **{m: ({"field"}, {"missing", "script", "format", "value_type"}) for m in ("min", "max", "sum", "avg")},
    "value_count": ({"field"}, {"script", "format"}),
    "date_histogram": (
        {"field", "calendar_interval", "fixed_interval", "interval", "format", "time_zone", "offset"}
        | {"min_doc_count", "extended_bounds", "order"},
        {"hard_bounds", "keyed", "missing", "script"},
    ),
}


def check_options(kind: str, body: Any, name: str) -> None:
    """Unknown options fail as ObjectParser does ("unknown field [x] did you mean [y]?");
    known but unimplemented ones are refused by name."""
    if kind not in AGG_OPTIONS or not isinstance(body, dict):
        return
    pt = body.get("precision_threshold") if kind == "cardinality" else None
    if pt is not None and int(pt) < 0:
        raise bad_request(
            f"[precisionThreshold] must be greater than or equal to 0. Found [{pt}] in [{name}]"
        )
    implemented, refused = AGG_OPTIONS[kind]
    for k in body:
        if k in refused:
            raise bad_request(f"test server: [{kind}] option [{k}] is not implemented")
        if k not in implemented:
            close = difflib.get_close_matches(k, sorted(implemented | refused), n=1, cutoff=0.8)
            hint = f" did you mean [{close[0]}]?" if close else ""
            raise EsError(400, "x_content_parse_exception", f"[1:1] [{kind}] unknown field [{k}]{hint}")


def _field_of(body: Any, kind: str) -> str:
    if not isinstance(body, dict) or "field" not in body:
        if isinstance(body, dict) and "script" in body:
            raise bad_request("test server: scripts are not implemented")
        raise bad_request("Required one of fields [field, script], but none were specified.")
    return str(body["field"])


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


def _bucket(
    key: Any,
    docs: list[tuple[Index, Doc, float]],
    t: str | None,
    now: int,
    cluster: Cluster,
    subs: Any,
    key_as_string: str | None = None,
) -> dict[str, Any]:
    b: dict[str, Any] = {"key": key}
    if key_as_string is not None:
        b["key_as_string"] = key_as_string
    b["doc_count"] = len(docs)
    if subs:
        b.update(run_aggs(subs, docs, now, cluster))
    return b


def agg_terms(
    body: Any, hits: list[tuple[Index, Doc, float]], now: int, cluster: Cluster, subs: Any
) -> dict[str, Any]:
    field = _field_of(body, "terms")
    t = _check_aggregatable(hits, field)
    _check_value_type(body.get("value_type"), hits, field)
    size = int(body.get("size", 10))
    min_doc_count = int(body.get("min_doc_count", 1))
    groups: dict[Any, list[tuple[Index, Doc, float]]] = {}
    for h in hits:
        vals = values(h[1], field)
        if not vals and body.get("missing") is not None:
            vals = [body["missing"]]
        for v in dict.fromkeys(vals):
            if t == "ip":
                v = str(v)
            groups.setdefault(v, []).append(h)
    order = body.get("order", [{"_count": "desc"}, {"_key": "asc"}])
    orders = order if isinstance(order, list) else [order]
    if not any("_key" in o for o in orders):
        orders = [*orders, {"_key": "asc"}]

    def key(item: tuple[Any, list[Any]]) -> tuple[Any, ...]:
        k, docs = item
        parts: list[Any] = []
        for o in orders:
            ((what, direction),) = o.items()
            if what == "_count":
                v: Any = len(docs)
            elif what in ("_key", "_term"):
                v = k
            else:
                raise bad_request(f"test server: terms order by [{what}] is not implemented")
            parts.append(
                _Str(v, direction == "desc") if isinstance(v, str) else (-v if direction == "desc" else v)
            )
        return tuple(parts)

    keep = _include_exclude(body, t, str(field))
    items = sorted(
        ((k, d) for k, d in groups.items() if len(d) >= min_doc_count and keep(k)),
        key=key,
    )
    shown = items[:size]
    buckets = []
    for k, docs in shown:
        if t in DATE_TYPES:
            buckets.append(_bucket(int(k), docs, t, now, cluster, subs, format_date(int(k))))
        elif t == "boolean":
            buckets.append(_bucket(1 if k else 0, docs, t, now, cluster, subs, "true" if k else "false"))
        elif t in NUMERIC and t not in ("double", "float", "half_float", "scaled_float"):
            buckets.append(_bucket(int(k), docs, t, now, cluster, subs))
        else:
            buckets.append(_bucket(k, docs, t, now, cluster, subs))
    if body.get("show_term_doc_count_error"):
        for b in buckets:
            b["doc_count_error_upper_bound"] = 0  # one shard: counts are exact
    other = sum(len(d) for _, d in items[size:])
    return {"doc_count_error_upper_bound": 0, "sum_other_doc_count": other, "buckets": buckets}


_VALUE_TYPES = {
    "string": KEYWORDISH,
    "long": NUMERIC,
    "double": NUMERIC,
    "number": NUMERIC,
    "numeric": NUMERIC,
    "ip": {"ip"},
    "date": DATE_TYPES,
    "boolean": {"boolean"},
}


def _check_value_type(vt: Any, hits: list[tuple[Index, Doc, float]], field: str) -> None:
    """``value_type`` only types an unmapped field; where an index maps the field to another
    type Elasticsearch fails that shard (partial results), which is refused here instead."""
    if vt is None:
        return
    family = _VALUE_TYPES.get(str(vt))
    if family is None:
        raise bad_request(f"Unknown value type [{vt}]")
    for ix in {id(h[0]): h[0] for h in hits}.values():
        t = ftype(ix, field)
        if t is not None and t not in family:
            raise bad_request(
                f"test server: [terms] value_type [{vt}] over [{field}] mapped as [{t}] in [{ix.name}] "
                "(a shard failure in Elasticsearch) is not implemented"
            )


def _include_exclude(body: dict[str, Any], t: str | None, field: str) -> Callable[[Any], bool]:
    """IncludeExclude: a string is a regular expression over the whole term (string fields
    only), an array lists exact values; partitions are refused."""

    def one(spec: Any, what: str) -> Callable[[Any], bool] | None:
        if spec is None:
            return None
        if isinstance(spec, str):
            if t not in KEYWORDISH and t is not None and t != "flattened":
                raise bad_request(
                    f"Aggregation [{field}] cannot support regular expression style include/exclude settings "
                    "as they can only be applied to string fields. Use an array of values for include/exclude "
                    "clauses"
                )
            rx = re.compile(spec)
            return lambda k: rx.fullmatch(str(k)) is not None
        if isinstance(spec, list):
            if t in NUMERIC or t in DATE_TYPES:
                return lambda k: any(_same_number(k, v) for v in spec)
            wanted = {str(v) for v in spec}
            return lambda k: str(k) in wanted
        raise bad_request(f"test server: terms [{what}] partitions are not implemented")

    inc, exc = one(body.get("include"), "include"), one(body.get("exclude"), "exclude")
    return lambda k: (inc is None or inc(k)) and (exc is None or not exc(k))


def _same_number(k: Any, v: Any) -> bool:
    try:
        return float(k) == float(v)
    except (TypeError, ValueError):
        return False


def _interval(body: dict[str, Any]) -> tuple[str, Any]:
    if "fixed_interval" in body:
        m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", str(body["fixed_interval"]))
        if not m:
            raise bad_request(
                f"failed to parse setting [date_histogram.fixedInterval] with value [{body['fixed_interval']}] as a time value: unit is missing or unrecognized"
            )
        return "fixed", int(m.group(1)) * _FIXED[m.group(2)]
    if "calendar_interval" in body:
        unit = _CALENDAR.get(str(body["calendar_interval"]))
        if unit is None:
            raise bad_request(
                f"The supplied interval [{body['calendar_interval']}] could not be parsed as a calendar interval."
            )
        return "calendar", unit
    if "interval" in body:
        raise bad_request(
            "test server: deprecated [interval] is not implemented; use fixed_interval or calendar_interval"
        )
    raise bad_request("Invalid interval specified, must be non-null and non-empty")


MAX_BUCKETS = 65536


def _check_buckets(n: int) -> None:
    """search.max_buckets counts every bucket of the request (MultiBucketConsumerService), empty
    histogram buckets and sub-aggregations' included. A real single-shard node fails the reduce:
    search_phase_execution_exception (phase fetch, no root cause) caused by too_many_buckets."""
    if n > MAX_BUCKETS:
        err = EsError(
            400,
            "search_phase_execution_exception",
            "",
            caused_by={
                "type": "too_many_buckets_exception",
                "reason": f"Trying to create too many buckets. Must be less than or equal to: [{MAX_BUCKETS}] "
                "but this number of buckets was exceeded. This limit can be set by changing the "
                "[search.max_buckets] cluster level setting.",
                "max_buckets": MAX_BUCKETS,
            },
            phase="fetch",
            grouped=True,
            failed_shards=[],
        )
        err.root_causes = []
        raise err


def count_buckets(aggs: Any) -> int:
    n = 0
    if isinstance(aggs, dict):
        for v in aggs.values():
            if isinstance(v, dict):
                buckets = v.get("buckets")
                if isinstance(buckets, list):
                    n += len(buckets)
                    n += sum(count_buckets(b) for b in buckets)
                elif isinstance(v, dict) and "doc_count" in v:
                    n += count_buckets(v)  # single-bucket aggregations (filter) hold sub-aggs
    return n


def _cal_floor(ms: int, unit: str) -> int:
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    if unit == "q":
        dt = dt.replace(month=(dt.month - 1) // 3 * 3 + 1, day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        dt = _round(dt, unit, False)
    return date_math(dt.strftime("%Y-%m-%dT%H:%M:%S.000Z"), 0)


def _cal_next(ms: int, unit: str) -> int:
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    dt = _add(dt, 3, "M") if unit == "q" else _add(dt, 1, unit)
    return date_math(dt.strftime("%Y-%m-%dT%H:%M:%S.000Z"), 0)


def filled_keys(
    groups: dict[Any, Any],
    min_doc_count: int,
    bounds: Any,
    floor_bound: Callable[[Any], Any],
    step: Callable[[Any], Any],
) -> list[Any]:
    """Bucket keys in order; with min_doc_count 0, every key between the first and last
    (widened to ``extended_bounds``), empty ones included, as both histograms do."""
    keys = sorted(groups)
    if min_doc_count != 0 or not (keys or bounds):
        return keys
    lo = keys[0] if keys else None
    hi = keys[-1] if keys else None
    if bounds:
        if bounds.get("min") is not None:
            m = floor_bound(bounds["min"])
            lo = m if lo is None else min(lo, m)
        if bounds.get("max") is not None:
            m = floor_bound(bounds["max"])
            hi = m if hi is None else max(hi, m)
    full = []
    k = lo
    while k is not None and hi is not None and k <= hi + 1e-9:
        full.append(k)
        _check_buckets(len(full))
        k = step(k)
    return full


def agg_date_histogram(
    body: Any, hits: list[tuple[Index, Doc, float]], now: int, cluster: Cluster, subs: Any
) -> dict[str, Any]:
    field = _field_of(body, "date_histogram")
    kind, iv = _interval(body)
    min_doc_count = int(body.get("min_doc_count", 0))
    tz = _time_zone(body.get("time_zone"))
    shift = _offset_ms(body.get("offset"))

    def floor(ms: int) -> int:
        # Rounding happens in local time (DateHistogramAggregationBuilder: time_zone), after
        # moving by -offset; the key moves back by +offset.
        local = ms - shift
        if kind == "fixed":
            off = _tz_offset_ms(tz, local)
            return (local + off) - ((local + off) % iv) - off + shift
        return _cal_floor_tz(local, iv, tz) + shift

    def nxt(ms: int) -> int:
        if kind == "fixed":
            return ms + iv
        return _cal_floor_tz(_cal_next_tz(ms - shift, iv, tz), iv, tz) + shift

    groups: dict[int, list[tuple[Index, Doc, float]]] = {}
    for h in hits:
        for v in dict.fromkeys(floor(int(x)) for x in values(h[1], field)):
            groups.setdefault(v, []).append(h)
    keys = filled_keys(
        groups, min_doc_count, body.get("extended_bounds"), lambda v: floor(date_math(v, now)), nxt
    )
    fmt = body.get("format")
    buckets = [
        _bucket(
            k,
            groups.get(k, []),
            "date",
            now,
            cluster,
            subs,
            _format_in(k, tz) if not fmt else _fmt(k, fmt),
        )
        for k in keys
        if len(groups.get(k, [])) >= min_doc_count
    ]
    if body.get("order", {}).get("_key") == "desc" or body.get("order", {}).get("_count") == "desc":
        buckets.sort(key=lambda b: b["key"] if "_key" in body["order"] else b["doc_count"], reverse=True)
    return {"buckets": buckets}


def _time_zone(spec: Any) -> Any:
    """None for UTC; a tzinfo for "+05:00", "-0800", "UTC" or an IANA name ("Europe/Paris")."""
    if spec is None or str(spec) in ("UTC", "Z", "+00:00", "GMT"):
        return None
    from datetime import timezone
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    m = re.fullmatch(r"([+-])(\d{1,2}):?(\d{2})?", str(spec))
    if m:
        sign = 1 if m.group(1) == "+" else -1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0)))
    try:
        return ZoneInfo(str(spec))
    except (ZoneInfoNotFoundError, ValueError):
        raise bad_request(f"Unknown time-zone ID: {spec}") from None


def _offset_ms(spec: Any) -> int:
    if spec is None:
        return 0
    m = re.fullmatch(r"([+-]?)(\d+)(ms|s|m|h|d)", str(spec))
    if not m:
        raise bad_request(
            f"failed to parse setting [date_histogram.offset] with value [{spec}] as a time value"
        )
    return (-1 if m.group(1) == "-" else 1) * int(m.group(2)) * _FIXED[m.group(3)]


def _tz_offset_ms(tz: Any, ms: int) -> int:
    if tz is None:
        return 0
    off = datetime.fromtimestamp(ms / 1000, tz).utcoffset()
    return int(off.total_seconds() * 1000) if off else 0


def _cal_floor_tz(ms: int, unit: str, tz: Any) -> int:
    if tz is None:
        return _cal_floor(ms, unit)
    dt = datetime.fromtimestamp(ms / 1000, tz)
    if unit == "q":
        lo = dt.replace(month=(dt.month - 1) // 3 * 3 + 1, day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        lo = _round(dt, unit, False)
    return int(lo.timestamp() * 1000)


def _cal_next_tz(ms: int, unit: str, tz: Any) -> int:
    if tz is None:
        return _cal_next(ms, unit)
    dt = datetime.fromtimestamp(ms / 1000, tz)
    nxt = _add(dt, 3, "M") if unit == "q" else _add(dt, 1, unit)
    return int(nxt.timestamp() * 1000)


def _format_in(ms: int, tz: Any) -> str:
    """strict_date_optional_time in the bucket's time zone: "...T00:00:00.000+05:00"."""
    if tz is None:
        return format_date(ms)
    dt = datetime.fromtimestamp(ms / 1000, tz)
    off = dt.strftime("%z")
    return (
        dt.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{ms % 1000:03d}"
        + ("Z" if off == "+0000" else f"{off[:3]}:{off[3:]}")
    )


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


def agg_histogram(
    body: Any, hits: list[tuple[Index, Doc, float]], now: int, cluster: Cluster, subs: Any
) -> dict[str, Any]:
    field = _field_of(body, "histogram")
    interval = float(body.get("interval", 0))
    if interval <= 0:
        raise bad_request(f"[interval] must be >0 for histogram aggregation [{field}]")
    offset = float(body.get("offset", 0))
    min_doc_count = int(body.get("min_doc_count", 0))
    groups: dict[float, list[tuple[Index, Doc, float]]] = {}
    for h in hits:
        for v in dict.fromkeys(
            math.floor((float(x) - offset) / interval) * interval + offset for x in values(h[1], field)
        ):
            groups.setdefault(v, []).append(h)
    keys = filled_keys(
        groups,
        min_doc_count,
        body.get("extended_bounds"),
        lambda v: math.floor((float(v) - offset) / interval) * interval + offset,
        lambda k: k + interval,
    )
    t = _check_aggregatable(hits, field)
    buckets = []
    for k in keys:
        docs = groups.get(k, [])
        if len(docs) >= min_doc_count:
            buckets.append(
                _bucket(
                    float(k),
                    docs,
                    t,
                    now,
                    cluster,
                    subs,
                    format_date(int(k)) if t in DATE_TYPES else None,
                )
            )
    return {"buckets": buckets}


def _metric_values(body: Any, hits: list[tuple[Index, Doc, float]], kind: str) -> list[Any]:
    field = _field_of(body, kind)
    t = _check_aggregatable(hits, field)
    out = []
    missing = body.get("missing") if isinstance(body, dict) else None
    for _, d, _ in hits:
        vals = values(d, field) or ([missing] if missing is not None else [])
        out.extend(str(v) if t == "ip" else v for v in vals)
    return out


def agg_cardinality(
    body: Any, hits: list[tuple[Index, Doc, float]], now: int, cluster: Cluster, subs: Any
) -> dict[str, Any]:
    return {"value": len(set(_metric_values(body, hits, "cardinality")))}


def agg_value_count(
    body: Any, hits: list[tuple[Index, Doc, float]], now: int, cluster: Cluster, subs: Any
) -> dict[str, Any]:
    return {"value": len(_metric_values(body, hits, "value_count"))}


def _numeric_metric(fn: Callable[[list[float]], float | None]) -> Callable[..., dict[str, Any]]:
    def agg(
        body: Any, hits: list[tuple[Index, Doc, float]], now: int, cluster: Cluster, subs: Any
    ) -> dict[str, Any]:
        vals = [float(v) for v in _metric_values(body, hits, "metric")]
        return {"value": fn(vals)}

    return agg


def agg_top_hits(
    body: Any, hits: list[tuple[Index, Doc, float]], now: int, cluster: Cluster, subs: Any
) -> dict[str, Any]:
    size = int((body or {}).get("size", 3))
    sorts = parse_sort((body or {}).get("sort"))
    rows = sorted_hits(hits, sorts)
    enabled, inc, exc = source_spec((body or {}).get("_source"), {})
    out = []
    for ix, d, score, svals in rows[:size]:
        h: dict[str, Any] = {"_index": ix.name, "_id": d.id, "_score": None if sorts else score}
        if enabled:
            h["_source"] = filter_source(d.source, inc, exc)
        if sorts:
            h["sort"] = render_sort_values(ix, sorts, svals, (body or {}).get("sort"))
        out.append(h)
    return {
        "hits": {
            "total": {"value": len(hits), "relation": "eq"},
            "max_score": None if sorts else max((s for _, _, s in hits), default=None),
            "hits": out,
        }
    }


def agg_filter(
    body: Any, hits: list[tuple[Index, Doc, float]], now: int, cluster: Cluster, subs: Any
) -> dict[str, Any]:
    kept = [(ix, d, s) for ix, d, s in hits if compile_query(body, ix, now)(ix, d) is not None]
    out: dict[str, Any] = {"doc_count": len(kept)}
    if subs:
        out.update(run_aggs(subs, kept, now, cluster))
    return out


AGGS: dict[str, Callable[..., dict[str, Any]]] = {
    "terms": agg_terms,
    "date_histogram": agg_date_histogram,
    "histogram": agg_histogram,
    "cardinality": agg_cardinality,
    "value_count": agg_value_count,
    "top_hits": agg_top_hits,
    "min": _numeric_metric(lambda v: min(v) if v else None),
    "max": _numeric_metric(lambda v: max(v) if v else None),
    "sum": _numeric_metric(lambda v: float(sum(v))),
    "avg": _numeric_metric(lambda v: sum(v) / len(v) if v else None),
    "filter": agg_filter,
}


# -- search ---------------------------------------------------------------------------------


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


SEARCH_BODY_KEYS = {
    "query",
    "size",
    "from",
    "sort",
    "_source",
    "aggs",
    "aggregations",
    "search_after",
    "track_total_hits",
    "timeout",
    "fields",
    "docvalue_fields",
    "stored_fields",
    "post_filter",
    "min_score",
    "version",
    "seq_no_primary_term",
    "track_scores",
    "explain",
    "runtime_mappings",
    "pit",
    "highlight",
    "collapse",
    "rescore",
    "suggest",
    "profile",
    "indices_boost",
    "terminate_after",
}
UNSUPPORTED_BODY_KEYS = {
    "fields",
    "docvalue_fields",
    "stored_fields",
    "runtime_mappings",
    "pit",
    "highlight",
    "collapse",
    "rescore",
    "suggest",
    "indices_boost",
    "profile",
    "explain",
}


def search(
    cluster: Cluster,
    names: list[str],
    body: dict[str, Any],
    params: dict[str, str],
    count_only: bool = False,
) -> dict[str, Any]:
    import time as _time

    started = _time.monotonic()
    for k in body:
        if k not in SEARCH_BODY_KEYS:
            raise (
                parsing(f"Unknown key for a START_OBJECT in [{k}].")
                if not isinstance(body[k], list | str | int | bool | float)
                else parsing(f"Unknown key for a VALUE_STRING in [{k}].")
            )
        if k in UNSUPPORTED_BODY_KEYS:
            raise bad_request(f"test server: search option [{k}] is not implemented")
    now = cluster.clock.now_ms()
    q = body.get("query")
    if q is None and params.get("q"):
        q = {"query_string": {"query": params["q"]}}
    post = body.get("post_filter")
    mono = _time.monotonic()
    hits: list[tuple[Index, Doc, float]] = []
    total_shards = 0
    for name in names:
        ix = cluster.indices[name]
        total_shards += int(ix.settings.get("index.number_of_shards", "1"))
        pred = compile_query(q, ix, now)
        for d in ix.docs.values():
            if d.visible_at > mono:
                continue
            s = pred(ix, d)
            if s is not None:
                hits.append((ix, d, s if q is not None else 1.0))
    if body.get("min_score") is not None:
        hits = [h for h in hits if h[2] >= float(body["min_score"])]
    if count_only:
        return {
            "count": len(hits),
            "_shards": {
                "total": total_shards,
                "successful": total_shards,
                "skipped": 0,
                "failed": 0,
            },
        }
    aggs_spec = body.get("aggs", body.get("aggregations"))
    aggregations = run_aggs(aggs_spec, hits, now, cluster) if aggs_spec is not None else None
    if aggregations is not None:
        _check_buckets(count_buckets(aggregations))
    if post is not None:
        hits = [h for h in hits if compile_query(post, h[0], now)(h[0], h[1]) is not None]
    size = int(params.get("size", body.get("size", 10)))
    from_ = int(params.get("from", body.get("from", 0)))
    if size < 0:
        raise bad_request(f"[size] parameter cannot be negative, found [{size}]")
    if from_ < 0:
        raise bad_request(f"[from] parameter cannot be negative, found [{from_}]")
    window = min(
        (int(cluster.indices[n].settings.get("index.max_result_window", "10000")) for n in names),
        default=10000,
    )
    if from_ + size > window:
        raise bad_request(
            f"Result window is too large, from + size must be less than or equal to: [{window}] but was "
            f"[{from_ + size}]. See the scroll api for a more efficient way to request large data sets. This limit "
            "can be set by changing the [index.max_result_window] index level setting."
        )
    sort_param = params.get("sort")
    sorts = parse_sort(sort_param.split(",") if sort_param else body.get("sort"))
    rows = sorted_hits(hits, sorts)
    after = body.get("search_after")
    if after is not None:
        if not sorts:
            raise bad_request("Sort must contain at least one field.")
        if from_ not in (0, -1):
            raise bad_request("[from] parameter must be set to 0 when [search_after] is used.")
        if not isinstance(after, list) or len(after) != len(sorts):
            raise bad_request(
                f"search_after has {len(after) if isinstance(after, list) else 1} value(s) but sort has {len(sorts)}."
            )
        orders = [o for _, o, _, _ in sorts]
        key_after = sort_key([_after_value(rows, i, v, sorts) for i, v in enumerate(after)], orders)
        rows = [r for r in rows if sort_key(r[3], orders) > key_after]
    enabled, inc, exc = source_spec(body.get("_source"), params)
    page = rows[from_ : from_ + size]
    out_hits = []
    track_scores = body.get("track_scores") is True
    for ix, d, s, svals in page:
        h: dict[str, Any] = {
            "_index": ix.name,
            "_id": d.id,
            "_score": (s if (not sorts or track_scores) else None),
        }
        if body.get("version"):
            h["_version"] = d.version
        if body.get("seq_no_primary_term"):
            h["_seq_no"], h["_primary_term"] = d.seq_no, 1
        if enabled:
            h["_source"] = filter_source(d.source, inc, exc)
        if sorts:
            h["sort"] = render_sort_values(
                ix, sorts, svals, sort_param.split(",") if sort_param else body.get("sort")
            )
        out_hits.append(h)
    hits_obj: dict[str, Any] = {}
    tth = body.get("track_total_hits", params.get("track_total_hits", 10000))
    as_int = params.get("rest_total_hits_as_int") == "true"
    if as_int and tth not in (True, "true", False, "false"):
        if "track_total_hits" in body or "track_total_hits" in params:
            raise bad_request(
                f"[rest_total_hits_as_int] cannot be used if the tracking of total hits is not accurate, got {tth}"
            )
        tth = True
    if tth in (True, "true"):
        hits_obj["total"] = {"value": len(rows) if after is None else len(hits), "relation": "eq"}
    elif tth not in (False, "false"):
        limit = int(tth)
        n = len(hits)
        hits_obj["total"] = {"value": min(n, limit), "relation": "eq" if n <= limit else "gte"}
    hits_obj["max_score"] = (
        None if (sorts and not track_scores) else max((s for _, _, s in hits), default=None)
    )
    hits_obj["hits"] = out_hits
    if as_int:
        hits_obj = {
            "total": hits_obj["total"]["value"] if "total" in hits_obj else -1,
            **{k: v for k, v in hits_obj.items() if k != "total"},
        }
    resp: dict[str, Any] = {
        "took": int((_time.monotonic() - started) * 1000),
        "timed_out": False,
        "_shards": {"total": total_shards, "successful": total_shards, "skipped": 0, "failed": 0},
        "hits": hits_obj,
    }
    if aggregations is not None:
        resp["aggregations"] = aggregations
    return resp


def _after_value(rows: list[Any], i: int, v: Any, sorts: list[Any]) -> Any:
    field = sorts[i][0]
    if v is None:
        return _MISSING_LAST
    if isinstance(v, int) and v in (MAX_LONG, MIN_LONG):
        return _MISSING_LAST
    if rows:
        ix = rows[0][0]
        t = ftype(ix, field) if field not in ("_score", "_doc") else None
        if t in DATE_TYPES and isinstance(v, str):
            return date_math(v, 0)
        if t in NUMERIC and isinstance(v, str):
            return float(v)
    return v
