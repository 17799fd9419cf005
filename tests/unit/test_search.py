from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shipper.timespec import check_range, instant, parse_duration, parse_when, resolve_time
from shipper.tools.search import DOC_ALIASES, Filters, event_clause, parse_ip, sort_spec


def test_durations_become_date_math():
    assert [parse_when(x) for x in ("15m", "24h", "7d", "2w", "now")] == [
        "now-15m",
        "now-24h",
        "now-7d",
        "now-2w",
        "now",
    ]


def test_iso_times_become_utc():
    assert parse_when("2025-08-21T10:00:00+02:00") == "2025-08-21T08:00:00.000Z"
    assert parse_when("2025-08-21T08:00:00Z") == "2025-08-21T08:00:00.000Z"


def test_naive_iso_is_local_time(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    import time

    time.tzset()
    try:
        assert parse_when("2025-08-21T09:00:00") == "2025-08-21T00:00:00.000Z"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("bad", ["yesterday", "7 days", "-1d", "2025-13-01", "15x"])
def test_bad_times(bad):
    with pytest.raises(ValueError):
        parse_when(bad)


def test_ips_and_cidrs():
    assert parse_ip("10.1.2.3") == "10.1.2.3"
    assert parse_ip("::ffff:203.0.113.7") == "203.0.113.7"  # as indexed
    assert parse_ip("10.1.2.3/8") == "10.0.0.0/8"
    assert parse_ip("2001:db8::1/32") == "2001:db8::/32"
    for bad in ("10.1.2", "host.example", "10.0.0.0/33", "1.2.3.4; DROP"):
        with pytest.raises(ValueError):
            parse_ip(bad)


def test_event_patterns():
    assert event_clause("Interaction.SignIn.*")[0].to_dict() == {
        "wildcard": {"event.action": {"value": "Interaction.SignIn.*", "case_insensitive": True}}
    }
    assert event_clause("token")[0].to_dict() == {"term": {"logto.family": "token"}}
    assert event_clause("Webhook_Delivery")[0].to_dict() == {"term": {"logto.family": "webhook_delivery"}}
    assert event_clause("RevokeToken")[0].to_dict() == {
        "term": {"event.action": {"value": "RevokeToken", "case_insensitive": True}}
    }
    q, note = event_clause("jwtcustomizer.clientcredential")  # aliases in any case too
    assert (
        q.to_dict() == {"term": {"event.action": "JwtCustomizer.ClientCredentials"}}
        and "never occurs" in note
    )
    assert len(DOC_ALIASES) == 11


def test_hostile_input_stays_a_value():
    hostile = 'x" OR event.outcome:success OR "'
    q, _ = Filters(users=[hostile], events=[hostile], since=None).query()
    d = q.to_dict()
    who = d["bool"]["filter"][0]["bool"]["should"]
    assert who[0] == {"terms": {"user.id": [hostile]}}
    assert who[1] == {"terms": {"related.user": [hostile]}}
    assert who[2] == {"term": {"user.name": {"value": hostile, "case_insensitive": True}}}
    assert d["bool"]["filter"][1]["bool"]["should"][0] == {
        "term": {"event.action": {"value": hostile, "case_insensitive": True}}
    }
    assert "query_string" not in repr(d)


def test_sort_has_tiebreaker():
    assert sort_spec("newest") == [{"@timestamp": "desc"}, {"event.id": "desc"}]
    assert sort_spec("oldest") == [{"@timestamp": "asc"}, {"event.id": "asc"}]


def test_range_filter():
    d = Filters(since="now-24h", until="2025-08-21T00:00:00.000Z").query()[0].to_dict()
    assert d["bool"]["filter"] == [
        {"range": {"@timestamp": {"gte": "now-24h", "lte": "2025-08-21T00:00:00.000Z"}}}
    ]
    assert "filter" not in Filters(since=None).query()[0].to_dict()["bool"]  # no clauses at all


def test_time_windows_resolve_and_inverted_ones_are_refused():
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert resolve_time("now-2w", now) == now - timedelta(days=14)
    assert resolve_time("now-90m", now) == now - timedelta(minutes=90)
    assert resolve_time(parse_when("2026-01-01T00:00:00Z"), now) == datetime(2026, 1, 1, tzinfo=UTC)
    assert resolve_time(None, now) is None
    check_range("now-7d", "now-1d", now)
    check_range("now-7d", None, now)
    with pytest.raises(ValueError, match=r"--since \(2026-12-02 12:00:00 UTC\) is after --until"):
        check_range("now-1d", "now-2d", now)
    with pytest.raises(ValueError):
        check_range(parse_when("2026-12-01T00:00:00Z"), parse_when("2026-11-01T00:00:00Z"), now)


def test_durations_and_instants_are_parsed_in_one_place():
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert parse_duration("500ms") == 0.5 and parse_duration("90d") == 90 * 86400
    with pytest.raises(ValueError, match=r"one of ms, s, m, h, d$"):
        parse_duration("2w")  # config durations go to Elasticsearch, which has no weeks there
    assert parse_duration("2w", weeks=True) == 14 * 86400
    # an input's `since`: weeks are weeks (they were read as days before)
    assert instant("2w", now) == now - timedelta(days=14)
    assert instant("2026-11-01T00:00:00Z", now) == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        instant("yesterday", now)
