"""The alerts from a shell: ``alerts`` lists what the daemon raised, ``detect`` runs the same
rules over the indexed history (so a threshold can be tried on the past before it is set).

``detect`` asks Elasticsearch only for the events rules look at (failed sign-in steps,
sign-ins, verification codes sent, Logto's security signals: a few percent of an audit log),
oldest first with ``search_after``, and feeds them to the daemon's own ``Detector``: what it
prints is exactly what the daemon would have raised on that history. A ``filters``
aggregation counts those events first, for the progress and the summary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from elasticsearch.dsl import Q

from shipper.detect.rules import Alert, Detector
from shipper.detect.signals import SECURITY_EVENTS, SIGN_IN, read, relevant
from shipper.tools.search import pages_after

# What rules look at, as queries (the same kinds ``signals.relevant`` keeps).
KINDS: dict[str, Any] = {
    "failed sign-in steps": Q(
        "bool", filter=[Q("prefix", **{"event.action": SIGN_IN}), Q("term", **{"event.outcome": "failure"})]
    ),
    "sign-ins": Q(
        "bool", filter=[Q("term", **{"event.outcome": "success"}), Q("term", **{"event.type": "start"})]
    ),
    "verification codes sent": Q("wildcard", **{"event.action": "*VerificationCode.Create"}),
    "Logto security signals": Q("terms", **{"event.action": sorted(SECURITY_EVENTS)}),
}
SOURCE = [
    "@timestamp",
    "event.id",
    "event.action",
    "event.outcome",
    "event.type",
    "user.id",
    "source.ip",
    "source.geo.country_iso_code",
    "error.code",
    "logto.payload.identifier",
    "logto.payload.params.identifier",
    "logto.payload.email",
    "logto.payload.phone",
    "logto.payload.value",
]


def _range(since: str | None, until: str | None) -> Any:
    return Q("range", **{"@timestamp": {k: v for k, v in (("gte", since), ("lte", until)) if v}})


def counts(client: Any, index: str, since: str | None, until: str | None) -> dict[str, int]:
    """How many events of each kind the window holds (one request, a ``filters`` aggregation)."""
    body = {
        "size": 0,
        "query": _range(since, until).to_dict(),
        "aggs": {"kinds": {"filters": {"filters": {k: q.to_dict() for k, q in KINDS.items()}}}},
    }
    r = client.search(index=index, body=body, ignore_unavailable=True, allow_no_indices=True)
    buckets = r["aggregations"]["kinds"]["buckets"]
    return {k: int(buckets[k]["doc_count"]) for k in KINDS}


def events(
    client: Any, index: str, since: str | None, until: str | None, page: int = 5000
) -> Iterator[list[Any]]:
    """The documents rules look at, oldest first, a page at a time (``_id`` and ``_source``)."""
    query = Q("bool", filter=[_range(since, until)], should=list(KINDS.values()), minimum_should_match=1)
    body = {
        "query": query.to_dict(),
        "sort": [{"@timestamp": "asc"}, {"event.id": "asc"}],
        "_source": SOURCE,
        "track_total_hits": False,
    }
    for resp in pages_after(client, index, body, None, page):
        if resp["hits"]["hits"]:
            yield resp["hits"]["hits"]


def epoch_ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def replay(
    pages: Iterator[list[Any]], detector: Detector, progress: Callable[[int], None] | None = None
) -> list[Alert]:
    """Every alert the detector raises over the pages, in the order it raises them."""
    fired: list[Alert] = []
    seen = 0
    for hits in pages:
        for h in hits:
            src = h["_source"]
            s = read(src, epoch_ms(src["@timestamp"]), h["_id"])
            if relevant(s):
                fired += detector.observe(s)
        seen += len(hits)
        if progress is not None:
            progress(seen)
    return fired


def list_alerts(
    client: Any, alias: str, since: str | None, until: str | None, rules: list[str], limit: int
) -> list[dict[str, Any]]:
    """The alerts the daemon raised in the window, newest first."""
    clauses = [_range(since, until)]
    if rules:
        clauses.append(Q("terms", **{"rule.name": rules}))
    body = {
        "query": Q("bool", filter=clauses).to_dict(),
        "sort": [{"@timestamp": "desc"}, {"event.id": "desc"}],
        "size": limit,
    }
    r = client.search(index=alias, body=body, ignore_unavailable=True, allow_no_indices=True)
    return [h["_source"] for h in r["hits"]["hits"]]
