"""The query DSL: match_all, match_none, bool, term, terms, range, prefix, wildcard, exists,
ids, match, query_string, compiled to predicates. Anything else is answered the way
Elasticsearch answers an unknown query."""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable
from typing import Any

from tests.es_server.errors import EsError, parsing
from tests.es_server.fieldvalues import DATE_TYPES, Pred, _coerce_term, _eq, date_math, ftype, values
from tests.es_server.mapping import (
    KEYWORDISH,
    NUMERIC,
    TEXTISH,
    analyze,
    convert,
)
from tests.es_server.model import Doc, Index

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
