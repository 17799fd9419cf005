"""Process-wide counters and gauges, exported in Prometheus format by ``shipper.metrics_http``."""

from __future__ import annotations

import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Thread-safe named counters/gauges; names are documented in README ("Metrics")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: dict[str, float] = defaultdict(float)

    def inc(self, name: str, n: float = 1) -> None:
        with self._lock:
            self.values[name] += n

    def set(self, name: str, value: float) -> None:
        with self._lock:
            self.values[name] = value

    def set_min(self, name: str, value: float) -> None:
        """Keep the smallest value seen (e.g. the oldest timestamp of something)."""
        with self._lock:
            old = self.values.get(name)
            self.values[name] = value if old is None or value < old else old

    def observe(self, name: str, value: float) -> None:
        """Record one sample into cumulative histogram buckets (+ _sum and _count)."""
        with self._lock:
            self.values[name + "_sum"] += value
            self.values[name + "_count"] += 1
            for b in LATENCY_BUCKETS:
                if value <= b:
                    self.values[f"{name}_bucket_{b}"] += 1

    def get(self, name: str) -> float:
        with self._lock:
            return self.values.get(name, 0.0)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self.values)


METRICS = Metrics()
