"""Sliding windows per entity, bounded in memory.

``Windows`` keeps, per key (a user, an IP), its recent events within ``span`` milliseconds:
``(epoch ms, value, event id)``, the value being what distinct counts count. At most
``max_keys`` keys are tracked: the least recently seen is dropped first (``evicted`` counts
them), so a flood of distinct source addresses costs a bounded amount of memory and never an
error. With ``distinct``, each key's values are also counted as events come and go, so the
number of distinct values is known without a pass over the window (a spraying IP's window
holds thousands of events, and each new one asks).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

Event = tuple[int, str, str]  # (epoch ms, value, event id)
# A key's events: a list while few, a deque past SMALL. Most keys (a source address, a user)
# hold one or two events, and an empty deque alone is 760 bytes (a list of one: 88): at
# 100,000 keys per rule that was ~300 MB of a flood's RSS. Past SMALL, trimming the front of a
# list would move the rest each time (a spraying address holds thousands).
Held = list[Event] | deque[Event]
SMALL = 32


class Windows:
    def __init__(self, span_ms: int, max_keys: int, distinct: bool = False) -> None:
        self.span_ms, self.max_keys = span_ms, max_keys
        self._keys: OrderedDict[str, Held] = OrderedDict()
        self._values: dict[str, dict[str, int]] | None = {} if distinct else None  # key -> value -> n
        self.evicted = 0

    def add(self, key: str, ms: int, value: str, event_id: str) -> Held:
        """Record one event; returns the key's events inside the window ending at ``ms``."""
        events = self._keys.get(key)
        if events is None:
            events = self._keys[key] = []
            if len(self._keys) > self.max_keys:
                gone, _ = self._keys.popitem(last=False)
                if self._values is not None:
                    self._values.pop(gone, None)
                self.evicted += 1
        else:
            self._keys.move_to_end(key)
        events.append((ms, value, event_id))
        if len(events) > SMALL and isinstance(events, list):
            events = self._keys[key] = deque(events)
        if self._values is not None:
            counts = self._values.setdefault(key, {})
            counts[value] = counts.get(value, 0) + 1
        self._trim(key, events, ms)
        return events

    def distinct(self, key: str) -> int:
        """The number of distinct values among the key's events (``distinct`` windows)."""
        assert self._values is not None, "a window made without distinct=True"
        return len(self._values.get(key, ()))

    def replace(self, key: str, ms: int, value: str, event_id: str, only: bool = False) -> Held:
        """Like ``add``, but the key keeps one event per value (``only``: one event at all), so
        a user's countries cost one entry each however often they sign in."""
        events = self._keys.get(key)
        if events is not None:
            kept = [e for e in events if not only and e[1] != value]
            if len(kept) != len(events):
                events.clear()
                events.extend(kept)
                self._recount(key, events)
        return self.add(key, ms, value, event_id)

    def recent(self, key: str, ms: int) -> Held:
        """The key's events inside the window ending at ``ms`` (nothing recorded)."""
        events = self._keys.get(key)
        if events is None:
            return []
        self._trim(key, events, ms)
        return events

    def _trim(self, key: str, events: Held, ms: int) -> None:
        cut = ms - self.span_ms
        if not events or events[0][0] > cut:
            return
        counts = self._values.get(key) if self._values is not None else None
        if isinstance(events, list):
            k = 1
            while k < len(events) and events[k][0] <= cut:
                k += 1
            gone = events[:k] if counts is not None else []  # kept only to uncount their values
            del events[:k]
        else:
            gone = []
            while events and events[0][0] <= cut:
                e = events.popleft()
                if counts is not None:
                    gone.append(e)
        if counts is not None:
            for _, value, _ in gone:
                if counts[value] == 1:
                    del counts[value]
                else:
                    counts[value] -= 1

    def _recount(self, key: str, events: Held) -> None:
        if self._values is not None:
            counts = self._values[key] = {}
            for _, value, _ in events:
                counts[value] = counts.get(value, 0) + 1

    def expire(self, before_ms: int) -> int:
        """Drop the keys, least recently added first, whose newest event is ``span`` or more
        older than ``before_ms`` (no event from then on can count them: adding it would trim
        them all); stops at the first key still in its window. Returns how many were dropped."""
        keys, cut, dropped = self._keys, before_ms - self.span_ms, 0
        while keys:
            key, events = next(iter(keys.items()))
            if events and events[-1][0] > cut:
                break
            keys.popitem(last=False)
            if self._values is not None:
                self._values.pop(key, None)
            dropped += 1
        return dropped

    def clear(self, key: str) -> None:
        self._keys.pop(key, None)
        if self._values is not None:
            self._values.pop(key, None)

    def snapshot(self) -> list[Any]:
        """The keys and their events, least recently seen first (``restore`` takes it back)."""
        return [[k, list(events)] for k, events in self._keys.items() if events]

    def restore(self, keys: list[Any]) -> None:
        for key, events in keys[-self.max_keys :]:
            held = [(int(ms), str(v), str(e)) for ms, v, e in events]
            self._keys[str(key)] = window = held if len(held) <= SMALL else deque(held)
            self._recount(str(key), window)

    def __len__(self) -> int:
        return len(self._keys)
