"""Alert documents into ``<prefix>-alerts-<namespace>-<day>`` (alias ``<prefix>-alerts-<namespace>``):
the ``Target`` of ``shipper.detect.deliver`` for the index.

An alert's id is deterministic (rule, entity, crossing event): the first write is a ``create``,
so an alert raised again after a crash answers 409 and is known to be a replay; later writes
(its count grew) overwrite it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shipper.config import ElasticsearchOutputConfig, IndexConfig
from shipper.detect.deliver import DeliveryError, Refused
from shipper.sinks.elasticsearch.client import (
    ApiError,
    ConnectionTimeout,
    TransportConnectionError,
    TransportError,
    describe,
    make_client,
)
from shipper.sinks.elasticsearch.indexing import IndexNamer


def alerts_namer(idx: IndexConfig) -> IndexNamer:
    return IndexNamer(idx.prefix, f"alerts-{idx.namespace}", idx.granularity)


class ElasticsearchAlerts:
    """``ready``: the output's setup is done; before it, an alert would create its index
    without the template (no mapping, no lifecycle), so it waits (retried with backoff)."""

    def __init__(self, cfg: ElasticsearchOutputConfig, idx: IndexConfig, ready: Callable[[], bool]) -> None:
        self._es = make_client(cfg)
        self._ready = ready
        self.namer = alerts_namer(idx)
        self.name = f"the alerts index {self.namer.alias}"

    def send(self, doc: dict[str, Any], alert_id: str, index: str, first: bool) -> bool:
        if not self._ready():
            raise DeliveryError("the output's setup has not run yet")
        try:
            if first:
                r = self._es.options(ignore_status=409).create(index=index, id=alert_id, document=doc)
                return r.meta.status != 409
            self._es.index(index=index, id=alert_id, document=doc)
            return True
        except ApiError as exc:
            if exc.meta.status in (408, 429) or exc.meta.status >= 500:
                raise DeliveryError(describe(exc)) from None
            raise Refused(describe(exc)) from None
        except (TransportConnectionError, ConnectionTimeout, TransportError) as exc:
            raise DeliveryError(describe(exc)) from None
