"""The built-in rules and the detector that runs them.

Each rule counts ``Signal`` s per entity in a sliding window and fires when the count (or the
number of distinct values) reaches its threshold; an entity that fired stays quiet for the
rest of that window (later events are counted into the same alert: ``Alert.count``), so one
attack is one alert. ``RULES`` holds the issue's conservative defaults; ``rules(settings)``
applies a config's thresholds, windows and switches to them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shipper.detect.signals import NO_SUCH_USER, SECURITY_EVENTS, Signal
from shipper.detect.windows import Windows

MINUTE = 60_000
MAX_EVENT_IDS = 100  # the ids an alert lists (its count says how many there were)


def _failed_actor(s: Signal) -> str | None:
    return s.actor if s.failed else None


def _failed_ip(s: Signal) -> str | None:
    return s.ip if s.failed else None


def _no_such_user_ip(s: Signal) -> str | None:
    return s.ip if s.failed and s.error_code in NO_SUCH_USER else None


def _code_ip(s: Signal) -> str | None:
    return s.ip if s.code_to is not None else None


def _signed_in(s: Signal) -> str | None:
    return s.user_id if s.succeeded else None


def _who(s: Signal) -> str | None:
    return s.user_id or s.actor or s.ip or "-"


@dataclass(frozen=True, slots=True)
class Rule:
    """``kind``: ``count`` (events per entity), ``distinct`` (distinct ``value`` s per entity),
    ``after`` (a success after ``threshold`` failures), ``signal`` (Logto's own, at once),
    ``new_value`` (a value not seen for the entity in the window, once it has a history),
    ``travel`` (two located sign-ins faster apart than ``threshold`` km/h).
    ``about`` is the description with ``{n}`` (threshold) and ``{w}`` (window) in it."""

    id: str
    about: str
    window_ms: int
    threshold: int
    kind: str
    entity: Callable[[Signal], str | None]  # what is counted per (None: the signal does not count)
    value: Callable[[Signal], str | None] | None = None
    entity_kind: str = "user"  # "user" or "ip": where the entity goes in the alert
    actions: tuple[str, ...] = ()  # signal rules: the event actions that are the signal
    # The rule as a count of indexed events (KQL, and the field counted per; "": all of them),
    # where it is one: what ``setup --kibana-url`` installs as a Kibana index-threshold rule.
    kql: str | None = None
    group: str = ""

    @property
    def description(self) -> str:
        return self.about.format(n=self.threshold, w=_minutes(self.window_ms))


def _minutes(ms: int) -> str:
    for unit, size in (("days", 1440 * MINUTE), ("hours", 60 * MINUTE), ("minutes", MINUTE)):
        if ms % size == 0 and ms >= size:
            n = ms // size
            return f"{n} {unit if n > 1 else unit[:-1]}"
    return f"{ms / 1000:g} seconds"


def _located(s: Signal) -> str | None:
    return s.user_id if s.succeeded and s.location is not None else None


def _in_country(s: Signal) -> str | None:
    return s.user_id if s.succeeded and s.country else None


EARTH_KM = 6371.0
MIN_TRAVEL_KM = 100.0  # geo-IP places one address tens of km apart from day to day: not travel


def km_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine)."""
    import math

    (la1, lo1), (la2, lo2) = (tuple(map(math.radians, p)) for p in (a, b))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(h)))


def _actions(signal: str) -> tuple[str, ...]:
    return tuple(sorted(a for a, n in SECURITY_EVENTS.items() if n == signal))


FAILED_KQL = 'event.action : Interaction.SignIn.* and event.outcome : "failure"'
RULES: tuple[Rule, ...] = (
    Rule(
        "brute_force_user",
        "{n} or more failed sign-in steps for one user or identifier in {w}",
        5 * MINUTE,
        10,
        "count",
        _failed_actor,
        kql=FAILED_KQL,
        group="user.id",  # Kibana counts per user id only (failures for unknown identifiers: per IP)
    ),
    Rule(
        "password_spray_ip",
        "one source IP failed sign-in for {n} or more distinct users or identifiers in {w}",
        10 * MINUTE,
        10,
        "distinct",
        _failed_ip,
        value=lambda s: s.actor,
        entity_kind="ip",
    ),
    Rule(
        "enumeration_ip",
        "{n} or more sign-in failures for accounts that do not exist from one IP in {w}",
        10 * MINUTE,
        20,
        "count",
        _no_such_user_ip,
        entity_kind="ip",
        kql=FAILED_KQL + " and error.code : (" + " or ".join(f'"{c}"' for c in sorted(NO_SUCH_USER)) + ")",
        group="source.ip",
    ),
    Rule(
        "verification_flood",
        "{n} or more verification codes sent from one IP in {w}",
        10 * MINUTE,
        20,
        "count",
        _code_ip,
        entity_kind="ip",
        kql="event.action : *VerificationCode.Create",
        group="source.ip",
    ),
    Rule(
        "verification_pumping",
        "verification codes sent to {n} or more distinct emails or phone numbers from one IP "
        "in {w} (SMS pumping)",
        10 * MINUTE,
        10,
        "distinct",
        _code_ip,
        value=lambda s: s.code_to,
        entity_kind="ip",
    ),
    Rule(
        "success_after_failures",
        "a successful sign-in after {n} or more failures for that user in the previous {w}",
        15 * MINUTE,
        5,
        "after",
        _signed_in,
    ),
    Rule(
        "new_country_user",
        "a user signed in from a country not seen for them in the previous {w}",
        30 * 1440 * MINUTE,
        1,
        "new_value",
        _in_country,
        value=lambda s: s.country,
    ),
    Rule(
        "impossible_travel",
        "two sign-ins of one user whose distance and time imply more than {n} km/h (within {w})",
        1440 * MINUTE,
        1000,
        "travel",
        _located,
    ),
    *(
        Rule(
            name,
            f"Logto reported {name.replace('_', ' ')} ({', '.join(_actions(name))})",
            10 * MINUTE,
            1,
            "signal",
            _who,
            actions=_actions(name),
            kql="event.action : (" + " or ".join(f'"{a}"' for a in _actions(name)) + ")",
        )
        for name in sorted(set(SECURITY_EVENTS.values()))
    ),
)
RULE_IDS = tuple(r.id for r in RULES)


@dataclass(frozen=True)
class Setting:
    """A config's change to a built-in rule (None: keep the default)."""

    enabled: bool = True
    threshold: int | None = None
    window_ms: int | None = None


def rules(settings: Mapping[str, Setting] | None = None) -> list[Rule]:
    """The built-in rules with ``settings`` applied; disabled ones left out."""
    out = []
    for r in RULES:
        s = (settings or {}).get(r.id, Setting())
        if s.enabled:
            out.append(replace(r, threshold=s.threshold or r.threshold, window_ms=s.window_ms or r.window_ms))
    return out


@dataclass
class Alert:
    """What fired: the rule, the entity, the window of the events behind it."""

    rule: Rule
    entity: str
    start_ms: int
    end_ms: int
    count: int
    id: str  # the same for the same rule, entity and crossing event: replays give the same id
    event_ids: list[str] = field(default_factory=list)
    ips: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    at_ms: int = 0  # the crossing event's time: the alert's @timestamp and index day
    entity_field: str = "user.id"  # the ECS field the entity is: user.id, user.name, source.ip


def alert_id(rule: str, entity: str, event_id: str) -> str:
    return hashlib.sha256(f"{rule}\0{entity}\0{event_id}".encode()).hexdigest()[:24]


class Detector:
    """Feed it signals in arrival order; it returns the alerts that fire."""

    def __init__(self, rule_list: list[Rule] | None = None, max_keys: int = 100_000) -> None:
        self.rules = rules() if rule_list is None else rule_list
        self._windows = {
            r.id: Windows(r.window_ms, max_keys, distinct=r.kind == "distinct")
            for r in self.rules
            if r.kind != "signal"
        }
        self._after = [r for r in self.rules if r.kind == "after"]
        # Per user, the failures success_after counts (its window is the rule's).
        span = max((r.window_ms for r in self._after), default=15 * MINUTE)
        self._failures = Windows(span, max_keys)
        self._signals = {a: r for r in self.rules if r.kind == "signal" for a in r.actions}
        self._open: dict[tuple[str, str], Alert] = {}  # fired, window not over: updates go here
        self.max_keys = max_keys
        self.updated: dict[str, Alert] = {}  # open alerts whose count grew, by id (the caller drains it)

    @property
    def evicted(self) -> int:
        return sum(w.evicted for w in self._windows.values()) + self._failures.evicted

    @property
    def tracked(self) -> int:
        return sum(len(w) for w in self._windows.values()) + len(self._failures)

    def observe(self, s: Signal) -> list[Alert]:
        fired: list[Alert] = []
        for rule in self.rules:
            if rule.kind in ("count", "distinct"):
                key = rule.entity(s)
                if key is None:
                    continue
                value = rule.value(s) if rule.value is not None else s.event_id
                if value is None:
                    continue
                window = self._windows[rule.id]
                events = window.add(key, s.ms, value, s.event_id)
                hits = window.distinct(key) if rule.kind == "distinct" else len(events)
                self._count(rule, key, s, hits, events, fired)
            elif rule.kind in ("new_value", "travel"):
                self._place(rule, s, fired)
        if s.failed and s.user_id and self._after:
            self._failures.add(s.user_id, s.ms, "", s.event_id)
        if s.succeeded and s.user_id:
            for rule in self._after:
                before = self._failures.recent(s.user_id, s.ms)
                if len(before) >= rule.threshold:
                    self._count(rule, s.user_id, s, len(before) + 1, before, fired)
            self._failures.clear(s.user_id)
        signal = self._signals.get(s.action)
        if signal is not None:
            self._count(signal, signal.entity(s) or "-", s, 1, (), fired)
        return fired

    def _place(self, rule: Rule, s: Signal, fired: list[Alert]) -> None:
        """``new_country_user`` and ``impossible_travel``: compare a located sign-in with the
        user's earlier ones."""
        key = rule.entity(s)
        value = rule.value(s) if rule.value is not None else None
        if key is None:
            return
        w = self._windows[rule.id]
        before = list(w.recent(key, s.ms))
        if rule.kind == "new_value":
            assert value is not None
            if before and all(v != value for _, v, _ in before):
                self._count(rule, key, s, rule.threshold, [*before, (s.ms, value, s.event_id)], fired)
            w.replace(key, s.ms, value, s.event_id)
            return
        assert s.location is not None
        here = f"{s.location[0]},{s.location[1]}"
        if before:
            ms, where, _ = before[-1]
            lat, lon = (float(x) for x in where.split(","))
            km = km_between((lat, lon), s.location)
            hours = max(s.ms - ms, 1) / 3_600_000
            if km >= MIN_TRAVEL_KM and km / hours > rule.threshold:
                self._count(rule, key, s, rule.threshold, [before[-1], (s.ms, here, s.event_id)], fired)
        w.replace(key, s.ms, here, s.event_id, only=True)

    def _count(self, rule: Rule, key: str, s: Signal, hits: int, events: Any, fired: list[Alert]) -> None:
        """A new alert into ``fired`` when ``hits`` reaches the threshold and none is open for
        this entity; otherwise the event is counted into the open one (throttling)."""
        open_alert = self._open.get((rule.id, key))
        if open_alert is not None and s.ms - open_alert.start_ms < rule.window_ms:
            open_alert.count += 1
            open_alert.end_ms = max(open_alert.end_ms, s.ms)
            self.updated[open_alert.id] = open_alert
            if len(open_alert.event_ids) < MAX_EVENT_IDS:
                open_alert.event_ids.append(s.event_id)
            self._involve(open_alert, s)
            return
        if hits < rule.threshold:
            return
        ids = [e for _, _, e in events][-MAX_EVENT_IDS + 1 :]
        if s.event_id not in ids:
            ids.append(s.event_id)
        start = min((ms for ms, _, _ in events), default=s.ms)
        where = "source.ip" if rule.entity_kind == "ip" else "user.id" if key == s.user_id else "user.name"
        alert = Alert(rule, key, start, s.ms, hits, alert_id(rule.id, key, s.event_id), ids, at_ms=s.ms)
        alert.entity_field = where
        self._involve(alert, s)
        self._open.pop((rule.id, key), None)
        self._open[(rule.id, key)] = alert
        if len(self._open) > self.max_keys:
            self._open.pop(next(iter(self._open)))
        fired.append(alert)

    @staticmethod
    def _involve(alert: Alert, s: Signal) -> None:
        if s.ip and len(alert.ips) < MAX_EVENT_IDS:
            alert.ips.add(s.ip)
        if s.actor and len(alert.users) < MAX_EVENT_IDS:
            alert.users.add(s.actor)

    def forget(self, before_ms: int) -> int:
        """Drop the window state no event at ``before_ms`` or later can count (``Windows.expire``);
        returns how many keys went."""
        return sum(w.expire(before_ms) for w in [*self._windows.values(), self._failures])

    def expire(self, now_ms: int) -> list[Alert]:
        """Forget open alerts whose window ended before ``now_ms`` (event time); returns them."""
        done = [a for (rid, _), a in self._open.items() if now_ms - a.start_ms >= a.rule.window_ms]
        for a in done:
            del self._open[(a.rule.id, a.entity)]
        return done

    # -- state -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "windows": {rid: w.snapshot() for rid, w in self._windows.items()},
            "failures": self._failures.snapshot(),
            "open": [alert_state(a) for a in self._open.values()],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        for rid, keys in (state.get("windows") or {}).items():
            if rid in self._windows:
                self._windows[rid].restore(keys)
        self._failures.restore(state.get("failures") or [])
        by_id = {r.id: r for r in self.rules}
        for a in state.get("open") or []:
            alert = alert_from_state(a, by_id)
            if alert is not None:
                self._open[(alert.rule.id, alert.entity)] = alert


def alert_state(a: Alert) -> dict[str, Any]:
    return {
        "rule": a.rule.id,
        "entity": a.entity,
        "start": a.start_ms,
        "end": a.end_ms,
        "count": a.count,
        "id": a.id,
        "events": a.event_ids,
        "ips": sorted(a.ips),
        "users": sorted(a.users),
        "at": a.at_ms,
        "field": a.entity_field,
    }


def alert_from_state(a: Mapping[str, Any], by_id: Mapping[str, Rule]) -> Alert | None:
    rule = by_id.get(a["rule"])
    if rule is None:
        return None  # a rule turned off since
    return Alert(
        rule,
        a["entity"],
        a["start"],
        a["end"],
        a["count"],
        a["id"],
        list(a["events"]),
        set(a["ips"]),
        set(a["users"]),
        a["at"],
        a["field"],
    )
