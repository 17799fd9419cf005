"""Durations and points in time, parsed in one place for the config, the sources and search.

A duration is a number and a unit: ``ms``, ``s``, ``m``, ``h``, ``d`` (Elasticsearch's time
units, so config durations such as the retention go to ILM unchanged), and ``w`` where a
duration only says how far back to look (``--since 2w``, an input's ``since``). A point in
time is such a duration back from now, ``now``, or an ISO-8601 time (without an offset: the
operator's local time).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_SPAN = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, weeks: bool = False) -> float:
    """Seconds in ``90d``/``24h``/``15m``/``30s``/``500ms`` (and ``2w`` with ``weeks``)."""
    m = _SPAN.match(text.strip())
    if not m or (m.group(2) == "w" and not weeks):
        units = "ms, s, m, h, d, w" if weeks else "ms, s, m, h, d"
        raise ValueError(f"invalid duration {text!r}: use a number and one of {units}")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def parse_when(text: str) -> str:
    """``15m``/``24h``/``7d``/``2w`` -> date math ``now-15m``; ``now``; ISO-8601 -> UTC ISO
    with milliseconds. ValueError for anything else."""
    t = text.strip()
    m = _SPAN.match(t)
    if m and m.group(2) != "ms":
        return f"now-{t}"
    if t == "now":
        return "now"
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (15m, 24h, 7d) nor an ISO-8601 time") from None
    if dt.tzinfo is None:
        dt = dt.astimezone()  # a time without offset is the operator's local time
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def resolve_time(when: str | None, now: datetime) -> datetime | None:
    """The instant a ``parse_when`` value stands for (None: open)."""
    if when is None:
        return None
    if when == "now":
        return now
    if when.startswith("now-"):
        return now - timedelta(seconds=parse_duration(when[4:], weeks=True))
    return datetime.fromisoformat(when.replace("Z", "+00:00"))


def instant(text: str, now: datetime) -> datetime:
    """A point in time as written in a config or on the command line (see module doc)."""
    at = resolve_time(parse_when(text), now)
    assert at is not None
    return at


def check_range(since: str | None, until: str | None, now: datetime) -> None:
    """ValueError when ``since`` is after ``until`` (a window that can hold nothing)."""
    start, end = resolve_time(since, now), resolve_time(until, now)
    if start is not None and end is not None and start > end:
        raise ValueError(
            f"--since ({start:%Y-%m-%d %H:%M:%S} UTC) is after --until ({end:%Y-%m-%d %H:%M:%S} UTC)"
        )
