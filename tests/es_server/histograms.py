"""date_histogram (fixed and calendar intervals, time zones, offsets, min_doc_count 0 filling)
and histogram."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.es_server.buckets import _bucket, _check_buckets, _field_of
from tests.es_server.errors import bad_request
from tests.es_server.fieldvalues import (
    DATE_TYPES,
    _add,
    _check_aggregatable,
    _fmt,
    _round,
    date_math,
    values,
)
from tests.es_server.mapping import (
    format_date,
)
from tests.es_server.model import Doc, Index
from tests.es_server.store import Cluster

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
