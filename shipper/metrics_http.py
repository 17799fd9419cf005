"""The optional Prometheus endpoint (``[metrics] listen``), in the standard text format.

Values come from ``shipper.metrics.METRICS`` plus per-source gauges the runner registers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import (
    REGISTRY,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from shipper.metrics import LATENCY_BUCKETS, METRICS

COUNTERS = {
    "lines_read_total": "Lines read from input files",
    "bytes_read_total": "Bytes read from input files",
    "postgres_rows_read_total": "Rows read from Logto's logs table",
    "records_normalized_total": "Records turned into documents",
    "records_rejected_total": "Records dead-lettered by the normalizer (bad JSON, no id, ...)",
    "records_left_to_python_total": "Lines the native path left to the Python normalizer (floats, ...)",
    "docs_indexed_total": "Documents Elasticsearch indexed",
    "docs_duplicate_total": "Documents Elasticsearch already had (409, exactly-once replays)",
    "docs_retried_total": "Document deliveries retried (429/5xx items)",
    "docs_dead_lettered_total": "Documents Elasticsearch refused, kept in the dead-letter index/file",
    "docs_expired_total": "Documents not shipped: their day is already past the retention",
    "docs_late_index_total": "Documents written to the late index because their own index refuses writes",
    "bulk_requests_total": "Bulk requests sent",
    "bulk_request_failures_total": "Bulk requests that failed as a whole",
    "file_truncations_total": "Input files found truncated or replaced",
    "file_deleted_unshipped_bytes_total": "Bytes of deleted files closed before shipping",
    "postgres_errors_total": "Errors talking to PostgreSQL",
    "config_reloads_total": "Successful configuration reloads",
    "config_reload_failures_total": "Rejected configuration reloads",
    "worker_restarts_total": "Normalizer worker processes that died and were restarted",
    "logto_api_requests_total": "Requests to Logto's GET /api/logs",
    "logto_api_rows_read_total": "Logs read from Logto's Management API",
    "logto_api_errors_total": "Failed Management API requests (retried with backoff)",
    "webhook_deliveries_total": "Webhook deliveries accepted (spooled durably, answered 200)",
    "webhook_rejected_signature_total": "Webhook requests refused for a missing or wrong signature (401)",
    "webhook_rejected_too_large_total": "Webhook requests refused as larger than max_body_bytes (413)",
    "webhook_rejected_invalid_total": "Webhook bodies that are not a JSON object (400, dead-lettered)",
    "webhook_spool_errors_total": "Webhook deliveries refused because the spool could not be written (503)",
}
GAUGES = {
    "batches_in_flight": "Batches sent and not yet final (queue depth)",
    "open_files": "Input files held open",
    "open_deleted_files": "Deleted input files still held open",
    "last_delivery_timestamp_seconds": "Unix time of the last successful bulk request",
    "docs_expired_oldest_timestamp_seconds": "Unix time of the oldest event not shipped as expired",
    "workers_broken": "1 when normalizer workers kept dying and the main process normalizes instead",
    "logto_api_retention_margin_seconds": (
        "Seconds before unshipped Management API logs expire (negative: expired)"
    ),
}


class ShipperCollector(Collector):
    def __init__(self, lag: Callable[[], list[tuple[str, str, float]]]) -> None:
        self.lag = lag  # () -> [(source, unit, value)]

    def collect(self) -> Iterator[Any]:
        values = METRICS.snapshot()
        for name, doc in COUNTERS.items():
            c = CounterMetricFamily(f"logto_shipper_{name.removesuffix('_total')}", doc)
            c.add_metric([], values.get(name, 0.0))
            yield c
        for name, doc in GAUGES.items():
            g = GaugeMetricFamily(f"logto_shipper_{name}", doc)
            g.add_metric([], values.get(name, 0.0))
            yield g
        h = HistogramMetricFamily("logto_shipper_bulk_latency_seconds", "Bulk request latency")
        buckets = [(str(b), values.get(f"bulk_latency_seconds_bucket_{b}", 0.0)) for b in LATENCY_BUCKETS]
        buckets.append(("+Inf", values.get("bulk_latency_seconds_count", 0.0)))
        h.add_metric([], buckets, values.get("bulk_latency_seconds_sum", 0.0))
        yield h
        lag = GaugeMetricFamily(
            "logto_shipper_checkpoint_lag",
            "How far each source's checkpoint is behind",
            labels=["source", "unit"],
        )
        for source, unit, value in self.lag():
            lag.add_metric([source, unit], value)
        yield lag


def serve(listen: str, lag: Callable[[], list[tuple[str, str, float]]]) -> Any:
    host, _, port = listen.rpartition(":")
    REGISTRY.register(ShipperCollector(lag))
    server, _thread = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1")
    return server
