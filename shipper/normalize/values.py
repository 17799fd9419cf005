"""How the field kinds of ``fields.py`` turn record values into document values: times, IP
addresses, coordinates. The native path asks ``location_json`` rather than parse floats itself
(Python's ``float()`` and orjson's float formatting stay the only ones)."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
_minute_cache: dict[int, str] = {}
_SECONDS = tuple(f"{i:02d}." for i in range(60))
_MILLIS = tuple(f"{i:03d}Z" for i in range(1000))


def format_ms(ms: int) -> str:
    """ISO-8601 UTC with milliseconds. Everything up to the minute is cached (records come in
    time order), the rest is looked up: no formatting per record."""
    minute, rem = divmod(ms, 60_000)
    prefix = _minute_cache.get(minute)
    if prefix is None:
        if len(_minute_cache) > 4096:
            _minute_cache.clear()
        prefix = _minute_cache[minute] = (_EPOCH + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:")
    sec, milli = divmod(rem, 1000)
    return prefix + _SECONDS[sec] + _MILLIS[milli]


def parse_time(value: Any) -> int | None:
    """Epoch milliseconds from epoch-ms numbers/strings or ISO-8601; ``None`` if unparseable.

    Naive ISO timestamps are taken as UTC (what Filebeat and Vector assume too).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        ms = int(value)
    elif isinstance(value, str):
        s = value.strip()
        if s.isascii() and s.isdigit():  # str.isdigit() also accepts "²", which int() refuses
            ms = int(s)
        else:
            try:
                dt = datetime.fromisoformat(s)
            except ValueError:
                return None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            delta = dt - _EPOCH
            ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    else:
        return None
    return ms if 0 <= ms <= MAX_MS else None


_IPV4_MAPPED = "::ffff:"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# Dotted quads exactly as inet_ntop writes them, bare or IPv4-mapped in lower case.
_CANONICAL_V4 = re.compile(rf"(?:::ffff:)?({_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET})", re.ASCII)


def normalize_ip(raw: str) -> str | None:
    """Canonical IP text, IPv4-mapped IPv6 unwrapped (``::ffff:203.0.113.7`` -> IPv4).

    ``inet_pton``/``inet_ntop`` rather than ``ipaddress``: 20x faster, same canonical forms
    (RFC 5952 for IPv6), and the normalizer sees a different address on almost every record.
    """
    s = raw.strip()
    m = _CANONICAL_V4.fullmatch(s)
    if m is not None:  # the usual cases, already canonical: no socket calls
        return m.group(1)
    try:
        if ":" not in s:
            return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, s))
        if s[:7].lower() == _IPV4_MAPPED and "." in s:
            try:
                return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, s[7:]))
            except OSError:
                pass  # e.g. ::ffff:0:1.2.3.4, which is IPv6
        packed = socket.inet_pton(socket.AF_INET6, s)
    except (OSError, ValueError):
        return None
    if packed[:12] == b"\0" * 10 + b"\xff\xff":
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    return socket.inet_ntop(socket.AF_INET6, packed)


def _float(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def rules_members(category: tuple[str, ...], types: tuple[str, ...]) -> dict[str, list[str]]:
    """The RULES members of ``event`` (categories.py's answer): ``type``, then ``category`` when
    the key has one. The Python builders add them; the native path gets them as JSON."""
    members = {"type": [*types]}
    if category:
        members["category"] = [*category]
    return members


def location(lat_value: Any, lon_value: Any) -> dict[str, float] | None:
    """``{"lat","lon"}`` when both parse as numbers in range, else None."""
    lat, lon = _float(lat_value), _float(lon_value)
    if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
        return {"lat": lat, "lon": lon}
    return None


def location_json(lat_value: Any, lon_value: Any) -> bytes | None:
    """``location`` as JSON, for the native path."""
    loc = location(lat_value, lon_value)
    return None if loc is None else orjson.dumps(loc)
