"""Aggregations: the dispatch and option checks, terms, cardinality, value_count, min, max, sum,
avg, top_hits, filter. Histograms are in histograms.py, the bucket limit in buckets.py."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

from tests.es_server.buckets import _bucket, _field_of
from tests.es_server.dsl import compile_query
from tests.es_server.errors import EsError, bad_request, parsing
from tests.es_server.fieldvalues import (
    DATE_TYPES,
    _check_aggregatable,
    ftype,
    values,
)
from tests.es_server.histograms import agg_date_histogram, agg_histogram
from tests.es_server.mapping import (
    KEYWORDISH,
    NUMERIC,
    format_date,
)
from tests.es_server.model import Doc, Index
from tests.es_server.sorting import _Str, parse_sort, render_sort_values, sorted_hits
from tests.es_server.source import filter_source, source_spec
from tests.es_server.store import Cluster

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
    "filters",
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
    "filters": ({"filters", "other_bucket", "other_bucket_key", "keyed"}, set()),
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


def agg_filters(
    body: Any, hits: list[tuple[Index, Doc, float]], now: int, cluster: Cluster, subs: Any
) -> dict[str, Any]:
    """Named filters (an object: buckets keyed by name, sorted by name, as
    FiltersAggregationBuilder sorts keyed filters) or anonymous ones (an array: buckets in
    request order); ``other_bucket``/``other_bucket_key`` collect the documents none matched."""
    spec = body.get("filters")
    if not isinstance(spec, dict | list) or not spec:
        raise parsing("[filters] cannot be empty.")
    named = isinstance(spec, dict)
    items = sorted(spec.items()) if isinstance(spec, dict) else [(str(i), q) for i, q in enumerate(spec)]
    other_key = body.get("other_bucket_key")
    other = bool(body.get("other_bucket", False)) or other_key is not None
    buckets: list[tuple[str, dict[str, Any]]] = []
    matched: set[int] = set()
    for key, q in items:
        kept = []
        for i, (ix, d, sc) in enumerate(hits):
            if compile_query(q, ix, now)(ix, d) is not None:
                kept.append((ix, d, sc))
                matched.add(i)
        b: dict[str, Any] = {"doc_count": len(kept)}
        if subs:
            b.update(run_aggs(subs, kept, now, cluster))
        buckets.append((key, b))
    if other:
        rest = [h for i, h in enumerate(hits) if i not in matched]
        b = {"doc_count": len(rest)}
        if subs:
            b.update(run_aggs(subs, rest, now, cluster))
        buckets.append((str(other_key or "_other_"), b))
    if body.get("keyed", True) and named:
        return {"buckets": dict(buckets)}
    if named:
        return {"buckets": [{"key": k, **b} for k, b in buckets]}
    return {"buckets": [b for _, b in buckets]}


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
    "filters": agg_filters,
}
