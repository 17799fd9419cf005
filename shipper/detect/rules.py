"""The built-in rules and the detector that runs them.

Each rule counts ``Signal`` s per entity in a sliding window and fires when the count (or the
number of distinct values) reaches its threshold; an entity that fired stays quiet for the
rest of that window (later events are counted into the same alert: ``Alert.count``), so one
attack is one alert. Thresholds are the issue's conservative defaults; ``Thresholds`` holds
them so a config can change them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shipper.detect.signals import NO_SUCH_USER, SECURITY_EVENTS, Signal
from shipper.detect.windows import Windows

MINUTE = 60_000


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    window_ms: int
    threshold: int
    entity: Callable[[Signal], str | None]  # what is counted per (None: the signal does not count)
    value: Callable[[Signal], str | None] | None = None  # distinct values are counted, when set
    entity_kind: str = "user"  # "user" or "ip": where the entity goes in the alert


@dataclass
class Alert:
    """What fired: the rule, the entity, the window of the events behind it."""

    rule: Rule
    entity: str
    start_ms: int
    end_ms: int
    count: int
    event_ids: list[str] = field(default_factory=list)
    ips: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)


def _failed_by(part: str) -> Callable[[Signal], str | None]:
    def entity(s: Signal) -> str | None:
        return (s.actor if part == "actor" else s.ip) if s.failed else None

    return entity


def builtin_rules() -> list[Rule]:
    return [
        Rule(
            "brute_force_user",
            "10 or more failed sign-in steps for one user or identifier in 5 minutes",
            5 * MINUTE,
            10,
            _failed_by("actor"),
        ),
        Rule(
            "password_spray_ip",
            "one source IP failed sign-in for 10 or more distinct users or identifiers in 10 minutes",
            10 * MINUTE,
            10,
            _failed_by("ip"),
            value=lambda s: s.actor,
            entity_kind="ip",
        ),
        Rule(
            "enumeration_ip",
            "20 or more sign-in failures for accounts that do not exist from one IP in 10 minutes",
            10 * MINUTE,
            20,
            lambda s: s.ip if s.failed and s.error_code in NO_SUCH_USER else None,
            entity_kind="ip",
        ),
        Rule(
            "verification_flood",
            "20 or more verification codes sent from one IP in 10 minutes",
            10 * MINUTE,
            20,
            lambda s: s.ip if s.code_to is not None else None,
            entity_kind="ip",
        ),
        Rule(
            "verification_pumping",
            "verification codes sent to 10 or more distinct emails or phone numbers from one IP "
            "in 10 minutes (SMS pumping)",
            10 * MINUTE,
            10,
            lambda s: s.ip if s.code_to is not None else None,
            value=lambda s: s.code_to,
            entity_kind="ip",
        ),
    ]


SUCCESS_AFTER = Rule(
    "success_after_failures",
    "a successful sign-in after 5 or more failures for that user in the previous 15 minutes",
    15 * MINUTE,
    5,
    lambda s: s.user_id if s.succeeded else None,
)
SIGNALS = {
    name: Rule(
        name, f"Logto reported {name.replace('_', ' ')}", 10 * MINUTE, 1, lambda s: s.user_id or s.ip or "-"
    )
    for name in sorted(set(SECURITY_EVENTS.values()))
}


class Detector:
    """Feed it signals in arrival order; it returns the alerts that fire."""

    def __init__(self, rules: list[Rule] | None = None, max_keys: int = 100_000) -> None:
        self.rules = builtin_rules() if rules is None else rules
        self._windows = {r.id: Windows(r.window_ms, max_keys) for r in self.rules}
        self._failures = Windows(SUCCESS_AFTER.window_ms, max_keys)  # per user, for success_after
        self._open: dict[tuple[str, str], Alert] = {}  # fired, window not over: updates go here
        self.max_keys = max_keys

    @property
    def evicted(self) -> int:
        return sum(w.evicted for w in self._windows.values()) + self._failures.evicted

    def observe(self, s: Signal) -> list[Alert]:
        fired: list[Alert] = []
        for rule in self.rules:
            key = rule.entity(s)
            if key is None:
                continue
            value = rule.value(s) if rule.value is not None else s.event_id
            if value is None:
                continue
            events = self._windows[rule.id].add(key, s.ms, value)
            hits = len({v for _, v in events}) if rule.value is not None else len(events)
            alert = self._count(rule, key, s, hits)
            if alert is not None:
                fired.append(alert)
        if s.failed and s.user_id:
            self._failures.add(s.user_id, s.ms, s.event_id)
        if s.succeeded and s.user_id:
            before = self._failures.recent(s.user_id, s.ms)
            if len(before) >= SUCCESS_AFTER.threshold:
                alert = self._count(SUCCESS_AFTER, s.user_id, s, len(before) + 1)
                if alert is not None:
                    fired.append(alert)
                self._failures.clear(s.user_id)
        name = SECURITY_EVENTS.get(s.action)
        if name is not None:
            rule = SIGNALS[name]
            alert = self._count(rule, rule.entity(s) or "-", s, 1)
            if alert is not None:
                fired.append(alert)
        return fired

    def _count(self, rule: Rule, key: str, s: Signal, hits: int) -> Alert | None:
        """The new alert when ``hits`` reaches the threshold and none is open for this entity;
        otherwise the event is counted into the open one (throttling)."""
        open_alert = self._open.get((rule.id, key))
        if open_alert is not None and s.ms - open_alert.start_ms < rule.window_ms:
            open_alert.count += 1
            open_alert.end_ms = max(open_alert.end_ms, s.ms)
            return None
        if hits < rule.threshold:
            return None
        alert = Alert(rule, key, s.ms, s.ms, hits, [s.event_id])
        if s.ip:
            alert.ips.add(s.ip)
        if s.actor:
            alert.users.add(s.actor)
        self._open[(rule.id, key)] = alert
        if len(self._open) > self.max_keys:
            self._open.pop(next(iter(self._open)))
        return alert
