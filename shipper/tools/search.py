"""Search over the indexed audit log: filters -> structured queries, paging, aggregations.

User input only ever becomes a *value* in a ``term``/``terms``/``range``/``wildcard``/``prefix``
clause built with the client's DSL; nothing is pasted into a query string, so no input can
change what the query means.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from elasticsearch.dsl import Q

from shipper.normalize.categories import FAMILIES

FAMILY_NAMES = sorted(set(FAMILIES.values()) | {"other", "webhook"})  # webhook: the webhook input
# Names in Logto's documentation that never occur in real records, and the real key.
_SMS, _PHONE = "SmsVerificationCode", "PhoneVerificationCode"
DOC_ALIASES = {
    **{
        f"Interaction.{flow}.Verification.{_SMS}.{step}": f"Interaction.{flow}.Verification.{_PHONE}.{step}"
        for flow in ("SignIn", "Register", "ForgotPassword")
        for step in ("Create", "Submit")
    },
    **{
        f"Interaction.{flow}.Verification.Webauthn.Create": f"Interaction.{flow}.Verification.WebAuthn.Create"
        for flow in ("SignIn", "Register")
    },
    **{
        f"Interaction.{flow}.Verification.NewPassword.Submit": f"Interaction.{flow}.Verification.NewPasswordIdentity.Submit"  # noqa: E501
        for flow in ("SignIn", "Register")
    },
    "JwtCustomizer.ClientCredential": "JwtCustomizer.ClientCredentials",
}
TOP_FIELDS = {
    "ips": "source.ip",
    "users": "user.id",
    "events": "event.action",
    "apps": "logto.application_id",
    "countries": "source.geo.country_iso_code",
}


def parse_ip(text: str) -> str:
    """An IP or CIDR, normalized; ValueError otherwise."""
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text.strip(), strict=False))
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or CIDR range") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped  # indexed that way
    return str(ip)


_ALIASES_CI = {k.lower(): v for k, v in DOC_ALIASES.items()}


def event_clause(pattern: str) -> tuple[Any, str | None]:
    """(query, note) for one ``--event``: wildcard, family name, doc alias, or exact key; keys
    compare case-insensitively (``interaction.signin.submit`` finds ``Interaction.SignIn.Submit``)."""
    if "*" in pattern or "?" in pattern:
        return Q("wildcard", **{"event.action": {"value": pattern, "case_insensitive": True}}), None
    if pattern.lower() in FAMILY_NAMES:
        return Q("term", **{"logto.family": pattern.lower()}), None
    real = _ALIASES_CI.get(pattern.lower())
    if real is not None:
        return Q("term", **{"event.action": real}), f"{pattern} never occurs in records; searching {real}"
    return Q("term", **{"event.action": {"value": pattern, "case_insensitive": True}}), None


@dataclass
class Filters:
    users: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    apps: list[str] = field(default_factory=list)
    ips: list[str] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    result: str | None = None  # success | failure
    since: str | None = "now-7d"
    until: str | None = None

    def query(self) -> tuple[Any, list[str]]:
        """The bool query and notes for the operator (e.g. documentation aliases)."""
        clauses: list[Any] = []
        notes: list[str] = []
        for fld, values in (("logto.application_id", self.apps), ("logto.session_id", self.sessions)):
            if values:
                clauses.append(Q("terms", **{fld: values}))
        if self.users:
            # An id, a username, or (when indexed) an email; names compare case-insensitively.
            # related.user: the user an admin action was about (webhook User.* events).
            who = [Q("terms", **{"user.id": self.users}), Q("terms", **{"related.user": self.users})]
            for u in self.users:
                for fld in ("user.name", "user.email"):
                    who.append(Q("term", **{fld: {"value": u, "case_insensitive": True}}))
            clauses.append(Q("bool", should=who, minimum_should_match=1))
        if self.ips:
            clauses.append(
                Q(
                    "bool",
                    should=[Q("term", **{"source.ip": ip}) for ip in self.ips],
                    minimum_should_match=1,
                )
            )
        if self.events:
            parts = []
            for p in self.events:
                q, note = event_clause(p)
                parts.append(q)
                if note:
                    notes.append(note)
            clauses.append(Q("bool", should=parts, minimum_should_match=1))
        if self.result:
            clauses.append(Q("term", **{"event.outcome": self.result}))
        rng = {k: v for k, v in (("gte", self.since), ("lte", self.until)) if v}
        if rng:
            clauses.append(Q("range", **{"@timestamp": rng}))
        return Q("bool", filter=clauses), notes


class AmbiguousName(ValueError):
    def __init__(self, name: str, candidates: list[tuple[str, str]]) -> None:
        super().__init__(name)
        self.name, self.candidates = name, candidates


def resolve_apps(client: Any, index: str, values: list[str]) -> list[str]:
    """Application ids for ``--app`` values that are ids or names (exact, case-insensitive)."""
    out = []
    for v in values:
        body = {"size": 0, "query": {"term": {"logto.application_id": v}}}
        if client.search(index=index, body=body, ignore_unavailable=True, allow_no_indices=True)["hits"][
            "total"
        ]["value"]:
            out.append(v)
            continue
        body = {
            "size": 0,
            "query": {"term": {"logto.application_name": {"value": v, "case_insensitive": True}}},
            "aggs": {
                "ids": {
                    "terms": {"field": "logto.application_id", "size": 20},
                    "aggs": {"name": {"terms": {"field": "logto.application_name", "size": 1}}},
                }
            },
        }
        resp = client.search(index=index, body=body, ignore_unavailable=True, allow_no_indices=True)
        buckets = resp.get("aggregations", {}).get("ids", {}).get("buckets", [])
        if len(buckets) > 1:
            raise AmbiguousName(v, [(b["key"], b["name"]["buckets"][0]["key"]) for b in buckets])
        out.append(buckets[0]["key"] if buckets else v)
    return out


def _ids_named(client: Any, index: str, name: str, name_fields: list[str], id_field: str) -> list[str]:
    body = {
        "size": 0,
        "query": {
            "bool": {
                "should": [{"term": {f: {"value": name, "case_insensitive": True}}} for f in name_fields],
                "minimum_should_match": 1,
            }
        },
        "aggs": {"ids": {"terms": {"field": id_field, "size": 100}}},
    }
    resp = client.search(index=index, body=body, ignore_unavailable=True, allow_no_indices=True)
    return [str(b["key"]) for b in resp.get("aggregations", {}).get("ids", {}).get("buckets", [])]


def resolve_users(client: Any, index: str, values: list[str]) -> tuple[list[str], list[str]]:
    """``--user`` values (ids, usernames, emails) with the ids of every user indexed under
    those names, so a name finds the events that carry only the id; and notes for names that
    belong to several users."""
    out, notes = list(values), []
    for v in values:
        ids = _ids_named(client, index, v, ["user.name", "user.email"], "user.id")
        ids += _ids_named(client, index, v, ["user.target.name"], "user.target.id")
        ids = sorted(set(ids) - {v})
        if len(ids) > 1:
            notes.append(f"user {v!r} is {len(ids)} users ({', '.join(ids[:5])}); showing them all")
        out += [i for i in ids if i not in out]
    return out, notes


def sort_spec(order: str) -> list[dict[str, str]]:
    direction = "asc" if order == "oldest" else "desc"
    # event.id breaks ties between events of the same millisecond, so search_after never skips.
    return [{"@timestamp": direction}, {"event.id": direction}]


@dataclass
class Page:
    hits: list[dict[str, Any]]
    total: int
    total_relation: str
    took_ms: int


def search(
    client: Any,
    index: str,
    filters: Filters,
    limit: int,
    order: str = "newest",
    page_size: int = 1000,
) -> Iterator[Page]:
    """Yield pages until ``limit`` hits; beyond 10,000 hits this pages with ``search_after``."""
    query, _ = filters.query()
    body = {"query": query.to_dict(), "sort": sort_spec(order), "track_total_hits": True}
    for resp in pages_after(client, index, body, limit, page_size):
        hits = resp["hits"]["hits"]
        total = resp["hits"].get("total", {"value": len(hits), "relation": "eq"})
        yield Page(hits, int(total["value"]), total["relation"], int(resp.get("took", 0)))


def pages_after(
    client: Any, index: str, body: dict[str, Any], limit: int | None, page_size: int
) -> Iterator[dict[str, Any]]:
    """The answers to ``body`` (which has a ``sort``), page after page with ``search_after``,
    until ``limit`` hits (None: all of them)."""
    after = None
    remaining = limit
    while remaining is None or remaining > 0:
        size = page_size if remaining is None else min(page_size, remaining)
        page = {**body, "size": size}
        if after is not None:
            page["search_after"] = after
        resp = client.search(index=index, body=page, ignore_unavailable=True, allow_no_indices=True)
        hits = resp["hits"]["hits"]
        yield resp
        if len(hits) < size:
            return
        remaining = None if remaining is None else remaining - len(hits)
        after = hits[-1]["sort"]


@dataclass(frozen=True)
class Span:
    """How many events match the filters at any time, and the oldest and newest (epoch ms)."""

    total: int
    oldest_ms: int | None
    newest_ms: int | None


def span(client: Any, index: str, filters: Filters) -> Span:
    """Count, oldest and newest of the events the filters match."""
    query, _ = filters.query()
    body = {
        "query": query.to_dict(),
        "size": 0,
        "track_total_hits": True,
        "aggs": {"first": {"min": {"field": "@timestamp"}}, "last": {"max": {"field": "@timestamp"}}},
    }
    resp = client.search(index=index, body=body, ignore_unavailable=True, allow_no_indices=True)
    aggs = resp.get("aggregations") or {}
    first, last = (aggs.get(k, {}).get("value") for k in ("first", "last"))
    return Span(
        int(resp["hits"]["total"]["value"]),
        int(first) if first is not None else None,
        int(last) if last is not None else None,
    )


def span_any_time(client: Any, index: str, filters: Filters) -> Span:
    """The filters without their time window: where an empty search's events are."""
    return span(client, index, replace(filters, since=None, until=None))


INTERVAL_MS = {"hour": 3_600_000, "day": 86_400_000}


class TooManyBuckets(ValueError):
    """A ``top`` the cluster refused for ``search.max_buckets``; the message names the options."""


def histogram_buckets(client: Any, index: str, filters: Filters, by: str) -> int:
    """How many ``by`` buckets the matching events span (first to last, empty ones included)."""
    found = span(client, index, filters)
    if found.oldest_ms is None or found.newest_ms is None:
        return 0
    step = INTERVAL_MS[by]
    return found.newest_ms // step - found.oldest_ms // step + 1


def too_many_buckets(size: int, by: str | None, spans: int, limit: int) -> TooManyBuckets:
    """The one line for a refused ``top``: what it needed at most, and what fits."""
    need = f"up to {size * (spans + 1):,} buckets ({size} values x {spans:,} {by}s)" if by else "more buckets"
    fits = max(1, limit // (spans + 1)) if by else max(1, limit - 1)
    return TooManyBuckets(
        f"top needs {need}, over the cluster's search.max_buckets ({limit:,}): use --size {fits} or "
        f"less, a shorter --since/--until" + (", or --by day" if by == "hour" else "")
    )


def top(
    client: Any, index: str, filters: Filters, what: str, size: int = 10, by: str | None = None
) -> dict[str, Any]:
    """The ``size`` most frequent values of ``what``, with a histogram each when ``by`` is set.
    The cluster counts the buckets it really creates (each value's histogram spans only its own
    events): asked as it is, and only a refusal is measured, to say what fits."""
    from shipper.sinks.elasticsearch.client import ApiError

    try:
        return _top(client, index, filters, what, size, by)
    except ApiError as exc:
        cause = exc.body.get("error", {}).get("caused_by", {}) if isinstance(exc.body, dict) else {}
        if cause.get("type") != "too_many_buckets_exception":
            raise
        spans = histogram_buckets(client, index, filters, by) if by else 0
        raise too_many_buckets(size, by, spans, int(cause.get("max_buckets", 65536))) from None


def _top(client: Any, index: str, filters: Filters, what: str, size: int, by: str | None) -> dict[str, Any]:
    query, _ = filters.query()
    agg: dict[str, Any] = {"terms": {"field": TOP_FIELDS[what], "size": size}}
    if by:
        agg["aggs"] = {
            "over_time": {
                "date_histogram": {
                    "field": "@timestamp",
                    "calendar_interval": by,
                    "min_doc_count": 0,
                }
            }
        }
    body = {"query": query.to_dict(), "size": 0, "track_total_hits": True, "aggs": {"top": agg}}
    return dict(client.search(index=index, body=body, ignore_unavailable=True, allow_no_indices=True))
