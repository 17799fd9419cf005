"""Sliding windows per entity, bounded in memory.

``Windows`` keeps, per key (a user, an IP), its recent events within ``span`` milliseconds:
``(epoch ms, value, event id)``, the value being what distinct counts count. At most
``max_keys`` keys are tracked: the least recently seen is dropped first (``evicted`` counts
them), so a flood of distinct source addresses costs a bounded amount of memory and never an
error.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

Event = tuple[int, str, str]  # (epoch ms, value, event id)


class Windows:
    def __init__(self, span_ms: int, max_keys: int) -> None:
        self.span_ms, self.max_keys = span_ms, max_keys
        self._keys: OrderedDict[str, deque[Event]] = OrderedDict()
        self.evicted = 0

    def add(self, key: str, ms: int, value: str, event_id: str) -> deque[Event]:
        """Record one event; returns the key's events inside the window ending at ``ms``."""
        events = self._keys.get(key)
        if events is None:
            events = self._keys[key] = deque()
            if len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
                self.evicted += 1
        else:
            self._keys.move_to_end(key)
        events.append((ms, value, event_id))
        self._trim(events, ms)
        return events

    def replace(self, key: str, ms: int, value: str, event_id: str, only: bool = False) -> deque[Event]:
        """Like ``add``, but the key keeps one event per value (``only``: one event at all), so
        a user's countries cost one entry each however often they sign in."""
        events = self._keys.get(key)
        if events is not None:
            kept = [e for e in events if not only and e[1] != value]
            if len(kept) != len(events):
                events.clear()
                events.extend(kept)
        return self.add(key, ms, value, event_id)

    def recent(self, key: str, ms: int) -> deque[Event]:
        """The key's events inside the window ending at ``ms`` (nothing recorded)."""
        events = self._keys.get(key)
        if events is None:
            return deque()
        self._trim(events, ms)
        return events

    def _trim(self, events: deque[Event], ms: int) -> None:
        while events and events[0][0] <= ms - self.span_ms:
            events.popleft()

    def clear(self, key: str) -> None:
        self._keys.pop(key, None)

    def snapshot(self) -> list[Any]:
        """The keys and their events, least recently seen first (``restore`` takes it back)."""
        return [[k, list(events)] for k, events in self._keys.items() if events]

    def restore(self, keys: list[Any]) -> None:
        for key, events in keys[-self.max_keys :]:
            self._keys[str(key)] = deque((int(ms), str(v), str(e)) for ms, v, e in events)

    def __len__(self) -> int:
        return len(self._keys)
