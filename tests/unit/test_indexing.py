"""Index names of late documents and which event days are past the retention."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from shipper.records import DAY_MS
from shipper.sinks.elasticsearch.indexing import Expiry, IndexNamer, period_start


def ms(y: int, m: int, d: int, h: int = 0) -> int:
    return int(datetime(y, m, d, h, tzinfo=UTC).timestamp() * 1000)


def test_late_index_is_named_for_the_arrival_period():
    assert (
        IndexNamer("logto-audit", "default").late(ms(2026, 12, 2, 13))
        == "logto-audit-default-late-2026.12.02"
    )
    week = IndexNamer("p", "ns", "week")
    assert week.late(ms(2026, 12, 2)) == "p-ns-late-2026.11.30"  # the Monday: its period
    assert week.late(ms(2026, 12, 2)).startswith(week.pattern[:-1])  # same template and pattern


def test_expiry_by_day():
    e = Expiry(90 * 86400)
    now = ms(2026, 12, 2, 12)
    first = e.first_kept_day(now)
    # the day whose index is deleted only after now is kept; the one before is not
    assert first * DAY_MS + 90 * DAY_MS > now >= (first - 1) * DAY_MS + 90 * DAY_MS


@given(
    now=st.integers(ms(2000, 1, 1), ms(2100, 1, 1)),
    days=st.integers(1, 800),
    granularity=st.sampled_from(["day", "week", "month"]),
)
def test_a_day_is_expired_exactly_when_its_index_would_be_deleted_already(now, days, granularity):
    e = Expiry(days * 86400, granularity)
    first = e.first_kept_day(now)
    for day in (first - 1, first):
        start = period_start(datetime.fromtimestamp(day * 86400, UTC).date(), granularity)
        start_ms = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp() * 1000)
        expired = start_ms + days * DAY_MS <= now
        assert expired is (day < first)
