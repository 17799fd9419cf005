"""An ``Alert`` as it is stored and told: an ECS document (``event.kind: alert``) for the index
``<prefix>-alerts-<namespace>``, and one log line."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shipper.detect.rules import Alert

RULESET = "logto-shipper"


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _set(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        doc = doc.setdefault(p, {})
    doc[leaf] = value


def reason(a: Alert) -> str:
    """What happened, in one sentence (``event.reason``, the log line, the notification)."""
    span = (a.end_ms - a.start_ms) / 1000
    return (
        f"{a.rule.id}: {a.entity_field} {a.entity}: {a.count} events in {span:.0f} s ({a.rule.description})"
    )


def document(a: Alert, created_ms: int, action: dict[str, Any] | None = None) -> dict[str, Any]:
    """The alert's document; ``created_ms``: when the daemon raised it; ``action``: what the
    response did about it (``[detect.respond]``)."""
    doc: dict[str, Any] = {
        "@timestamp": iso(a.at_ms),
        "message": reason(a),
        "event": {
            "kind": "alert",
            "module": "logto",
            "dataset": "logto_shipper.alert",
            "category": ["authentication"],
            "type": ["info"],
            "id": a.id,
            "start": iso(a.start_ms),
            "end": iso(a.end_ms),
            "created": iso(created_ms),
            "reason": reason(a),
        },
        "rule": {"id": a.rule.id, "name": a.rule.id, "description": a.rule.description, "ruleset": RULESET},
        "related": {"ip": sorted(a.ips), "user": sorted(a.users)},
        "logto_shipper": {
            "alert": {
                "count": a.count,
                "entity": a.entity,
                "entity_field": a.entity_field,
                "event_ids": a.event_ids,
                "threshold": a.rule.threshold,
                "window_seconds": a.rule.window_ms // 1000,
            }
        },
    }
    if a.entity != "-":
        _set(doc, a.entity_field, a.entity)
    if action is not None:
        doc["logto_shipper"]["alert"]["response"] = action
    return doc
