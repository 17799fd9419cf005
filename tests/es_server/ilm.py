"""Index lifecycle management: policies, their phases and actions, index ages, the ILM run
(deleting what is past its delete phase), explain.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from tests.es_server.documents import _list
from tests.es_server.errors import EsError, bad_request, resource_missing
from tests.es_server.mapping import (
    ConversionError,
    parse_date,
)
from tests.es_server.model import Index
from tests.es_server.settings import parse_time_value

ORIGINATION_REGEX = r"^.*-(\d{4}.\d{2}.\d{2})(-[\d]+)?$"
ILM_PHASE_ACTIONS = {
    "hot": {
        "set_priority",
        "unfollow",
        "rollover",
        "readonly",
        "shrink",
        "forcemerge",
        "searchable_snapshot",
        "downsample",
    },
    "warm": {
        "set_priority",
        "unfollow",
        "readonly",
        "allocate",
        "migrate",
        "shrink",
        "forcemerge",
        "downsample",
    },
    "cold": {
        "set_priority",
        "unfollow",
        "readonly",
        "searchable_snapshot",
        "allocate",
        "migrate",
        "freeze",
        "downsample",
    },
    "frozen": {"searchable_snapshot", "unfollow"},
    "delete": {"wait_for_snapshot", "delete"},
}
PHASE_ORDER = ["hot", "warm", "cold", "frozen", "delete"]


def origination_ms(name: str) -> int:
    m = re.match(ORIGINATION_REGEX, name)
    if not m:
        raise bad_request(f"index name [{name}] does not match pattern '{ORIGINATION_REGEX}'")
    try:
        return (
            parse_date(m.group(1).replace("-", ".").replace("/", "."), "yyyy.MM.dd")
            if re.fullmatch(r"\d{4}\.\d{2}\.\d{2}", m.group(1))
            else _raise()
        )
    except (ConversionError, ValueError):
        raise bad_request(
            f"index name [{name}] contains date [{m.group(1)}] which couldn't be parsed "
            "using the 'yyyy.MM.dd' format"
        ) from None


def _raise() -> int:
    raise ValueError


def _fmt_age(v: str) -> str:
    return str(v)


def _age(ms: int) -> str:
    if ms >= 86_400_000:
        return f"{ms / 86_400_000:.2f}d"
    if ms >= 3_600_000:
        return f"{ms / 3_600_000:.2f}h"
    if ms >= 60_000:
        return f"{ms / 60_000:.2f}m"
    return f"{ms / 1000:.2f}s"


def _iso_now(ms: int) -> str:
    from tests.es_server.mapping import format_date

    return format_date(ms)


class IlmState:
    """A part of ``Cluster`` (store.py)."""

    def put_policy(self, name: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or "policy" not in body:
            raise EsError(
                400,
                "parse_exception",
                "request body is required" if not body else "[put_lifecycle_request] policy is required",
            )
        policy = body["policy"]
        for k in policy:
            if k not in ("phases", "_meta"):
                raise EsError(
                    400,
                    "x_content_parse_exception",
                    f"[1:2] [lifecycle_policy] unknown field [{k}]",
                )
        phases = policy.get("phases", {})
        timings: list[tuple[str, int]] = []
        for phase, pdef in phases.items():
            if phase not in ILM_PHASE_ACTIONS:
                raise bad_request(f"Lifecycle does not support phase [{phase}]")
            for k in pdef:
                if k not in ("min_age", "actions"):
                    raise EsError(400, "x_content_parse_exception", f"[1:2] [phase] unknown field [{k}]")
            for action in pdef.get("actions", {}):
                if action not in set().union(*ILM_PHASE_ACTIONS.values()):
                    raise EsError(
                        400,
                        "x_content_parse_exception",
                        f"[1:2] [phases] failed to parse field [{phase}]",
                        caused_by={
                            "type": "named_object_not_found_exception",
                            "reason": f"[1:2] unknown field [{action}]",
                        },
                    )
                if action not in ILM_PHASE_ACTIONS[phase]:
                    raise bad_request(f"invalid action [{action}] defined in phase [{phase}]")
            needs_rollover = [
                a
                for a in ("forcemerge", "shrink", "readonly", "searchable_snapshot", "downsample")
                if a in pdef.get("actions", {})
            ]
            if phase == "hot" and needs_rollover and "rollover" not in pdef.get("actions", {}):
                raise bad_request(
                    f"the [{', '.join(needs_rollover)}] action(s) may not be used in the [hot] phase "
                    "without an accompanying [rollover] action"
                )
            timings.append((phase, parse_time_value(pdef.get("min_age", "0ms"), "min_age")))
        timings.sort(key=lambda t: PHASE_ORDER.index(t[0]))
        for (p1, t1), (p2, t2) in itertools.pairwise(timings):
            if t2 < t1:
                raise bad_request(
                    f"Your policy is configured to run the {p2} phase (min_age: {_fmt_age(phases[p2].get('min_age', '0ms'))}) "
                    f"before the {p1} phase (min_age: {_fmt_age(phases[p1].get('min_age', '0ms'))}). You should change the phase timing so "
                    "that the phases will execute in the order of hot, warm, then cold."
                )
        prev = self.policies.get(name)
        norm = {
            "phases": {
                p: {"min_age": d.get("min_age", "0ms"), "actions": d.get("actions", {})}
                for p, d in phases.items()
            }
        }
        if "_meta" in policy:
            norm["_meta"] = policy["_meta"]
        entry = {
            "version": (prev["version"] + 1) if prev else 1,
            "modified_date": _iso_now(self.clock.now_ms()),
            "policy": norm,
        }
        self.policies[name] = entry
        return entry

    def delete_policy(self, name: str) -> None:
        if name not in self.policies:
            raise resource_missing("resource_not_found_exception", f"Lifecycle policy not found: {name}")
        users = sorted(
            i.name for i in self.indices.values() if i.settings.get("index.lifecycle.name") == name
        )
        if users:
            raise bad_request(
                f"Cannot delete policy [{name}]. It is in use by one or more indices: {_list(users)}"
            )
        del self.policies[name]

    def lifecycle_date(self, ix: Index) -> int:
        od = ix.settings.get("index.lifecycle.origination_date")
        if od not in (None, "-1"):
            return int(od)
        if ix.settings.get("index.lifecycle.parse_origination_date") == "true":
            return origination_ms(ix.name)
        return ix.created_ms

    def explain(self, ix: Index) -> dict[str, Any]:
        pname = ix.settings.get("index.lifecycle.name")
        now = self.clock.now_ms()
        if not pname:
            return {
                "index": ix.name,
                "index_creation_date_millis": ix.created_ms,
                "time_since_index_creation": _age(now - ix.created_ms),
                "index_age": _age(now - ix.created_ms),
                "managed": False,
            }
        lc = self.lifecycle_date(ix)
        out: dict[str, Any] = {
            "index": ix.name,
            "index_creation_date_millis": ix.created_ms,
            "time_since_index_creation": _age(now - ix.created_ms),
            "index_age": _age(now - ix.created_ms),
            "managed": True,
            "policy": pname,
            "lifecycle_date_millis": lc,
            "age": _age(now - lc),
        }
        policy = self.policies.get(pname)
        if policy is None:
            out.update(
                {
                    "step": "ERROR",
                    "step_info": {
                        "type": "illegal_argument_exception",
                        "reason": f"policy [{pname}] does not exist",
                    },
                }
            )
            return out
        phase, pdef = self.current_phase(policy["policy"], now - lc)
        out.update(
            {
                "phase": phase,
                "phase_time_millis": lc,
                "action": "complete",
                "action_time_millis": lc,
                "step": "complete",
                "step_time_millis": lc,
                "phase_execution": {
                    "policy": pname,
                    "phase_definition": pdef,
                    "version": policy["version"],
                    "modified_date_in_millis": now,
                },
            }
        )
        return out

    @staticmethod
    def current_phase(policy: dict[str, Any], age_ms: int) -> tuple[str, dict[str, Any]]:
        current = ("new", {"min_age": "0ms", "actions": {}})
        for p in PHASE_ORDER:
            d = policy["phases"].get(p)
            if d is not None and parse_time_value(d.get("min_age", "0ms"), "min_age") <= age_ms:
                current = (p, d)
        return current

    def run_ilm(self) -> list[str]:
        """Apply delete phases that are due; returns deleted index names."""
        deleted = []
        now = self.clock.now_ms()
        for ix in list(self.indices.values()):
            pname = ix.settings.get("index.lifecycle.name")
            policy = self.policies.get(pname or "")
            if policy is None:
                continue
            phase, pdef = self.current_phase(policy["policy"], now - self.lifecycle_date(ix))
            if phase == "delete" and "delete" in pdef.get("actions", {}):
                del self.indices[ix.name]
                deleted.append(ix.name)
            elif "readonly" in pdef.get("actions", {}):
                # ReadOnlyAction adds the index write block (docs: ilm-readonly): later writes
                # get 403 cluster_block_exception per item.
                ix.settings["index.blocks.write"] = "true"
        return deleted
