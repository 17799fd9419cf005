"""``logto-shipper prune``: delete old rows from Logto's ``logs`` only once they are indexed.

Rows older than the cut-off are read in keyset batches; each batch's ids are looked up in
Elasticsearch (``ids`` query over the index pattern); only the ids found are deleted, in one
short transaction per batch. A row that could not be verified (not indexed yet, or the cluster
did not answer) is never deleted. Needs SELECT and DELETE on ``logs``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from shipper.sinks.elasticsearch.client import indexed_ids

log = logging.getLogger(__name__)

SELECT_OLD = """
SELECT id, created_at FROM logs
WHERE tenant_id = %(tenant)s AND created_at < %(cutoff)s AND (created_at, id) > (%(ts)s, %(id)s)
ORDER BY created_at, id LIMIT %(limit)s
"""
DELETE = "DELETE FROM logs WHERE tenant_id = %(tenant)s AND id = ANY(%(ids)s)"


@dataclass
class PruneReport:
    candidates: int = 0
    verified: int = 0
    deleted: int = 0
    not_indexed: int = 0
    by_tenant: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped_examples: list[str] = field(default_factory=list)


def prune(
    conn: psycopg.Connection[Any],
    es: Any,
    index: str,
    tenants: list[str],
    cutoff: datetime,
    batch_size: int = 500,
    dry_run: bool = False,
) -> PruneReport:
    report = PruneReport()
    for tenant in tenants:
        counts = {"candidates": 0, "deleted": 0, "not_indexed": 0}
        ts, last_id = datetime.fromtimestamp(0).astimezone(), ""
        while True:
            with conn.cursor() as cur:
                cur.execute(
                    SELECT_OLD,
                    {
                        "tenant": tenant,
                        "cutoff": cutoff,
                        "ts": ts,
                        "id": last_id,
                        "limit": batch_size,
                    },
                )
                rows = cur.fetchall()
            if not rows:
                break
            ts, last_id = rows[-1][1], rows[-1][0]
            ids = [r[0] for r in rows]
            found = indexed_ids(es, index, ids)
            missing = [i for i in ids if i not in found]
            counts["candidates"] += len(ids)
            counts["not_indexed"] += len(missing)
            report.skipped_examples += missing[: max(0, 5 - len(report.skipped_examples))]
            report.verified += len(found)
            if found and not dry_run:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(DELETE, {"tenant": tenant, "ids": sorted(found)})
                    counts["deleted"] += cur.rowcount
        report.by_tenant[tenant] = counts
        report.candidates += counts["candidates"]
        report.deleted += counts["deleted"]
        report.not_indexed += counts["not_indexed"]
    return report
