"""Search execution: hits, sorting and paging (from/size, search_after), the body's keys,
and the aggregations over the matching documents."""

from __future__ import annotations

from typing import Any

from tests.es_server.aggs import run_aggs
from tests.es_server.buckets import _check_buckets, count_buckets
from tests.es_server.dsl import compile_query
from tests.es_server.errors import bad_request, parsing
from tests.es_server.fieldvalues import DATE_TYPES, MAX_LONG, MIN_LONG, date_math, ftype
from tests.es_server.mapping import (
    NUMERIC,
)
from tests.es_server.model import Doc, Index
from tests.es_server.sorting import _MISSING_LAST, parse_sort, render_sort_values, sort_key, sorted_hits
from tests.es_server.source import filter_source, source_spec
from tests.es_server.store import Cluster

# -- search ---------------------------------------------------------------------------------


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
