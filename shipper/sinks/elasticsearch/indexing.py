"""Event-time index names: ``<prefix>-<namespace>-yyyy.MM.dd``.

The date is the UTC day of ``@timestamp`` (or the first day of its ISO week / month), always a
full ``yyyy.MM.dd`` because that is the only form ``index.lifecycle.parse_origination_date``
accepts. A replayed record therefore lands in the same index as before and is answered 409.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from shipper.records import DAY_MS


def period_start(day: date, granularity: str) -> date:
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


class IndexNamer:
    """Maps epoch milliseconds to index names; cached per UTC day (days repeat endlessly)."""

    def __init__(self, prefix: str, namespace: str, granularity: str = "day") -> None:
        self.base = f"{prefix}-{namespace}-"
        self.granularity = granularity
        self._cache: dict[int, str] = {}

    def __call__(self, epoch_ms: int) -> str:
        day_no = epoch_ms // DAY_MS
        name = self._cache.get(day_no)
        if name is None:
            day = datetime.fromtimestamp(day_no * 86400, UTC).date()
            name = self.base + period_start(day, self.granularity).strftime("%Y.%m.%d")
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[day_no] = name
        return name

    def late(self, now_ms: int) -> str:
        """Where documents go whose own index refuses writes (a write block: ILM's ``readonly``
        after ``warm_after``): ``<prefix>-<namespace>-late-<period of arrival>``, covered by the
        same template, alias and pattern; its age (and so its deletion) counts from arrival."""
        return self.base + "late-" + self(now_ms)[len(self.base) :]

    @property
    def pattern(self) -> str:
        return self.base + "*"

    @property
    def alias(self) -> str:
        return self.base[:-1]


class Expiry:
    """Which event days are already past the retention: their index (named for the day, week or
    month) would be deleted by ILM as soon as it is created, so they are not shipped."""

    def __init__(self, retention_s: float, granularity: str = "day") -> None:
        self.retention_ms = int(retention_s * 1000)
        self.granularity = granularity

    def first_kept_day(self, now_ms: int) -> int:
        """The oldest day number (epoch ms // DAY_MS) whose index outlives ``now_ms``."""
        day = (now_ms - self.retention_ms) // DAY_MS + 1
        while self._start_ms(day) + self.retention_ms <= now_ms:  # weeks and months start earlier
            day += 1
        return day

    def _start_ms(self, day_no: int) -> int:
        day = datetime.fromtimestamp(day_no * 86400, UTC).date()
        start = period_start(day, self.granularity)
        return (start - date(1970, 1, 1)).days * DAY_MS
