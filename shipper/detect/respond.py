"""What is done about an alert (``[detect.respond]``, opt-in): suspend the user.

``Response.plan`` decides when the alert is raised (on the pipeline's thread, no I/O): only
the configured rules, only alerts about a user id, never a user on the allow-list; with
``dry_run`` (the default) it logs what it would do. The plan goes into the alert document
(``logto_shipper.alert.response``). ``Suspender`` is a delivery target: it carries out planned
suspensions through Logto's Management API (``PATCH /api/users/{id}/is-suspended``), retried
like any notification, and records each action taken as an alert document of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from shipper.detect.deliver import DeliveryError, Refused
from shipper.detect.rules import Alert
from shipper.logto_api import ApiBusy, ApiError, ManagementApi

log = logging.getLogger(__name__)
SUSPEND = "suspend_user"


class Response:
    def __init__(self, rules: set[str], allow: set[str], dry_run: bool) -> None:
        self.rules, self.allow, self.dry_run = rules, allow, dry_run

    def plan(self, a: Alert) -> dict[str, Any] | None:
        if a.rule.id not in self.rules:
            return None
        out: dict[str, Any] = {"action": SUSPEND, "dry_run": self.dry_run}
        if a.entity_field != "user.id":
            return {
                **out,
                "outcome": "skipped",
                "reason": "the alert names no user id (an unknown identifier)",
            }
        out["user_id"] = a.entity
        if a.entity in self.allow:
            log.info("alert %s: user %s is on the allow-list: not suspended", a.id, a.entity)
            return {**out, "outcome": "skipped", "reason": "allow-listed"}
        if self.dry_run:
            log.warning("dry run: would suspend user %s (alert %s, %s)", a.entity, a.id, a.rule.id)
            return {**out, "outcome": "dry_run"}
        return {**out, "outcome": "planned"}


class Suspender:
    """``record(id, index, doc)`` files the action's own alert document."""

    name = "Logto's Management API (suspend_user)"

    def __init__(self, api: ManagementApi, record: Callable[[str, str, dict[str, Any]], None]) -> None:
        self.api, self.record = api, record

    def send(self, doc: dict[str, Any], alert_id: str, index: str, first: bool) -> bool:
        plan = (doc.get("logto_shipper") or {}).get("alert", {}).get("response")
        if not plan or plan.get("outcome") != "planned":
            return True
        user = str(plan["user_id"])
        try:
            r = self.api.call(
                "PATCH", f"/api/users/{quote(user, safe='')}/is-suspended", json={"isSuspended": True}
            )
        except ApiBusy as exc:
            raise DeliveryError(str(exc)) from None
        except ApiError as exc:
            self._done(doc, alert_id, index, plan, "failure", str(exc))
            raise Refused(str(exc)) from None
        if r.status_code == 404:
            self._done(doc, alert_id, index, plan, "failure", "no such user")
            raise Refused("no such user")
        log.warning("suspended user %s (alert %s, %s)", user, alert_id, doc["rule"]["name"])
        self._done(doc, alert_id, index, plan, "success", "suspended")
        return True

    def _done(
        self, doc: dict[str, Any], alert_id: str, index: str, plan: dict[str, Any], outcome: str, why: str
    ) -> None:
        action = {
            **doc,
            "message": f"{SUSPEND} {plan['user_id']}: {why} (alert {alert_id}: {doc['message']})",
            "event": {**doc["event"], "id": f"{alert_id}-{SUSPEND}", "action": SUSPEND, "outcome": outcome},
            "logto_shipper": {
                "alert": {
                    **doc["logto_shipper"]["alert"],
                    "response": {**plan, "outcome": outcome, "reason": why},
                }
            },
        }
        self.record(f"{alert_id}-{SUSPEND}", index, action)
