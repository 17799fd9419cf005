"""Sliding windows per entity, bounded in memory.

``Windows`` keeps, per key (a user, an IP), the times of its recent events (and for distinct
counts, the value each carried) within ``span`` milliseconds. At most ``max_keys`` keys are
tracked: the least recently seen is dropped first (``evicted`` counts them), so a flood of
distinct source addresses costs a bounded amount of memory and never an error.
"""

from __future__ import annotations

from collections import OrderedDict, deque


class Windows:
    def __init__(self, span_ms: int, max_keys: int) -> None:
        self.span_ms, self.max_keys = span_ms, max_keys
        self._keys: OrderedDict[str, deque[tuple[int, str]]] = OrderedDict()
        self.evicted = 0

    def add(self, key: str, ms: int, value: str = "") -> deque[tuple[int, str]]:
        """Record one event; returns the key's events inside the window ending at ``ms``."""
        events = self._keys.get(key)
        if events is None:
            events = self._keys[key] = deque()
            if len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
                self.evicted += 1
        else:
            self._keys.move_to_end(key)
        events.append((ms, value))
        self._trim(events, ms)
        return events

    def recent(self, key: str, ms: int) -> deque[tuple[int, str]]:
        """The key's events inside the window ending at ``ms`` (nothing recorded)."""
        events = self._keys.get(key)
        if events is None:
            return deque()
        self._trim(events, ms)
        return events

    def _trim(self, events: deque[tuple[int, str]], ms: int) -> None:
        while events and events[0][0] <= ms - self.span_ms:
            events.popleft()

    def clear(self, key: str) -> None:
        self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)
