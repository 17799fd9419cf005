"""``logto-shipper setup``: make the cluster match ``mappings/`` and ``ilm/``, idempotently.

The files are templates with ``{{prefix}}``, ``{{namespace}}``, ``{{policy}}``, ``{{shards}}``,
``{{replicas}}``, ``{{retention}}`` and ``{{warm_after}}``. ``plan`` compares the rendered
objects with what the cluster has (after normalizing the forms Elasticsearch echoes back) and
``apply`` writes only what differs, so running it on every start is cheap and a policy or
template changed by hand is reported and reconciled.

A cluster without ILM (the ``x-pack-ilm`` module absent, as in Elastic's integ-test
distribution; Elasticsearch answers 400 "no handler found" on ``/_ilm``) gets the templates
without ``index.lifecycle.*`` (it would refuse them as unknown settings) and the policy as one
``unavailable`` change: indices are then kept until ``prune`` deletes them. A cluster without
the ``mapper-extras`` module (no ``match_only_text``) gets ``text`` for those fields.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from typing import Any

from shipper.config import IndexConfig
from shipper.resources import data_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Desired:
    kind: str  # "ilm_policy" | "component_template" | "index_template"
    name: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Change:
    desired: Desired
    action: str  # "create" | "update" | "unchanged" | "unavailable" (nothing to write)
    detail: str = ""
    differences: tuple[str, ...] = ()  # for an update: ``path: have -> wanted``, one per leaf


def _leaves(body: Any, path: str = "") -> dict[str, Any]:
    if isinstance(body, dict) and body:
        out: dict[str, Any] = {}
        for k, v in body.items():
            out.update(_leaves(v, f"{path}.{k}" if path else str(k)))
        return out
    return {path: body}


def _shown(v: Any) -> str:
    return "(none)" if v is None else json.dumps(v)


def differences(d: Desired, have: dict[str, Any]) -> tuple[str, ...]:
    """What an update changes, one ``path: have -> wanted`` per differing leaf."""
    if d.kind == "ilm_policy":
        a, b = _normalize_policy(have["policy"]), _normalize_policy(d.body["policy"])
        a.pop("_meta", None), b.pop("_meta", None)
    else:
        a, b = _normalize_template(have), _normalize_template(d.body)
    old, new = _leaves(a), _leaves(b)
    return tuple(
        f"{p}: {_shown(old.get(p))} -> {_shown(new.get(p))}"
        for p in sorted(set(old) | set(new))
        if old.get(p) != new.get(p)
    )


ILM_UNAVAILABLE = "ILM not available on this cluster: indices are not deleted by age (use prune)"


def policy_name(idx: IndexConfig) -> str:
    return f"{idx.prefix}-policy"


def _render(name: str, values: dict[str, str]) -> Any:
    text = (data_dir(name.split("/")[0]) / name.split("/", 1)[1]).read_text(encoding="utf-8")
    for k, v in values.items():
        text = text.replace("{{" + k + "}}", v)
    return json.loads(text)


def render_policy(
    idx: IndexConfig, retention: str | None = None, set_at: str | None = None
) -> dict[str, Any]:
    """The bundled policy; ``retention``/``set_at``: the one ``retention set`` writes, marked in
    ``_meta.retention_set`` so that ``setup`` knows the change was made by this tool."""
    body: dict[str, Any] = _render(
        "ilm/policy.json",
        {"retention": retention or idx.retention, "warm_after": idx.warm_after or "0ms"},
    )
    if not idx.warm_after:
        del body["policy"]["phases"]["warm"]
    if retention is not None and set_at is not None:
        body["policy"]["_meta"]["retention_set"] = {"retention": retention, "at": set_at}
    return body


def why_different(idx: IndexConfig, d: Desired, have: dict[str, Any]) -> str:
    """The detail of an ``update``: a retention ``retention set`` wrote, or a change by hand."""
    mark = (
        (have.get("policy", {}).get("_meta") or {}).get("retention_set") if d.kind == "ilm_policy" else None
    )
    if isinstance(mark, dict) and isinstance(mark.get("retention"), str) and isinstance(mark.get("at"), str):
        ours = Desired(d.kind, d.name, render_policy(idx, mark["retention"], mark["at"]))
        if _same(ours, have):
            return (
                f"retention {mark['retention']} set by 'logto-shipper retention set' on {mark['at'][:10]}; "
                f"the config's {idx.retention} replaces it"
            )
    return "differs from the bundled file (changed by hand?)"


@dataclass(frozen=True)
class Capabilities:
    ilm: bool = True
    match_only_text: bool = True


def _without_match_only_text(body: Any) -> Any:
    if isinstance(body, dict):
        if body.get("type") == "match_only_text":
            return {**body, "type": "text"}
        return {k: _without_match_only_text(v) for k, v in body.items()}
    return body


def desired(idx: IndexConfig, caps: Capabilities = Capabilities()) -> list[Desired]:
    values = {
        "prefix": idx.prefix,
        "namespace": idx.namespace,
        "policy": policy_name(idx),
        "shards": str(idx.shards),
        "replicas": str(idx.replicas),
        "refresh_interval": idx.refresh_interval,
    }
    settings = _render("mappings/component-settings.json", values)
    if not caps.ilm:
        del settings["template"]["settings"]["index"]["lifecycle"]
    mappings = _render("mappings/component-mappings.json", values)
    deadletter = _render("mappings/deadletter-template.json", values)
    alerts = _render("mappings/alerts-template.json", values)
    if not caps.match_only_text:
        mappings, deadletter = _without_match_only_text(mappings), _without_match_only_text(deadletter)
        alerts = _without_match_only_text(alerts)
    return [
        Desired("ilm_policy", policy_name(idx), render_policy(idx)),
        Desired("component_template", f"{idx.prefix}-settings", settings),
        Desired("component_template", f"{idx.prefix}-mappings", mappings),
        Desired(
            "index_template",
            f"{idx.prefix}-{idx.namespace}",
            _render("mappings/index-template.json", values),
        ),
        Desired("index_template", f"{idx.prefix}-deadletter-{idx.namespace}", deadletter),
        Desired("index_template", f"{idx.prefix}-alerts-{idx.namespace}", alerts),
    ]


def _flat_settings(s: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (s or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_settings(v, key + "."))
        else:
            out[key if key.startswith("index.") else f"index.{key}"] = (
                str(v).lower() if isinstance(v, bool) else str(v)
            )
    return out


def _normalize_template(t: dict[str, Any]) -> dict[str, Any]:
    t = copy.deepcopy(t)
    tpl = t.get("template") or {}
    if "settings" in tpl:
        tpl["settings"] = _flat_settings(tpl["settings"])
    t["template"] = tpl
    for k in ("composed_of",):
        t.setdefault(k, [])
    return {
        k: v for k, v in t.items() if k in ("index_patterns", "composed_of", "priority", "template", "_meta")
    }


def _normalize_policy(p: dict[str, Any]) -> dict[str, Any]:
    p = copy.deepcopy(p)
    for phase in p.get("phases", {}).values():
        phase.setdefault("min_age", "0ms")
        delete = phase.get("actions", {}).get("delete")
        if isinstance(delete, dict):
            delete.setdefault("delete_searchable_snapshot", True)  # the default Elasticsearch echoes
    return p


def current(client: Any, d: Desired) -> dict[str, Any] | None:
    """What the cluster has for ``d`` in the same shape as the desired body, or None."""
    es = client.options(ignore_status=404)
    if d.kind == "ilm_policy":
        r = es.ilm.get_lifecycle(name=d.name)
        return None if r.meta.status == 404 else {"policy": r[d.name]["policy"]}
    if d.kind == "component_template":
        r = es.cluster.get_component_template(name=d.name)
        return None if r.meta.status == 404 else r["component_templates"][0]["component_template"]
    r = es.indices.get_index_template(name=d.name)
    return None if r.meta.status == 404 else r["index_templates"][0]["index_template"]


def _same(d: Desired, have: dict[str, Any]) -> bool:
    if d.kind == "ilm_policy":
        return _normalize_policy(have["policy"]) == _normalize_policy(d.body["policy"])
    return _normalize_template(have) == _normalize_template(d.body)


def ilm_available(client: Any, name: str = "_all") -> bool:
    """False when the cluster has no ILM endpoints (400 "no handler found for uri")."""
    from elasticsearch import BadRequestError

    try:
        client.options(ignore_status=404).ilm.get_lifecycle(name=name)
    except BadRequestError as exc:
        error = exc.body.get("error") if isinstance(exc.body, dict) else None
        if isinstance(error, str) and error.startswith("no handler found"):
            return False
        raise
    return True


def match_only_text_available(client: Any) -> bool:
    """False when simulating a template with a ``match_only_text`` field is refused for that type."""
    probe = {"properties": {"m": {"type": "match_only_text"}}}
    r = client.options(ignore_status=400).indices.simulate_template(
        index_patterns=["logto-shipper-probe-*"], template={"mappings": probe}
    )
    return r.meta.status != 400 or "[match_only_text]" not in json.dumps(r.body)


def capabilities(client: Any, idx: IndexConfig) -> Capabilities:
    return Capabilities(ilm_available(client, policy_name(idx)), match_only_text_available(client))


def plan(client: Any, idx: IndexConfig) -> list[Change]:
    changes = []
    caps = capabilities(client, idx)
    for d in desired(idx, caps):
        if d.kind == "ilm_policy" and not caps.ilm:
            changes.append(Change(d, "unavailable", ILM_UNAVAILABLE))
            continue
        have = current(client, d)
        if have is None:
            changes.append(Change(d, "create"))
        elif _same(d, have):
            changes.append(Change(d, "unchanged"))
        else:
            changes.append(Change(d, "update", why_different(idx, d, have), differences(d, have)))
    return changes


def put(client: Any, d: Desired) -> None:
    if d.kind == "ilm_policy":
        client.ilm.put_lifecycle(name=d.name, policy=d.body["policy"])
    elif d.kind == "component_template":
        client.cluster.put_component_template(name=d.name, **d.body)
    else:
        client.indices.put_index_template(name=d.name, **d.body)


def apply(client: Any, changes: list[Change]) -> list[Change]:
    """Write creates/updates in dependency order (policy, components, templates)."""
    done = []
    for c in changes:
        if c.action in ("unchanged", "unavailable"):
            continue
        if c.action == "update":
            log.warning("%s %s %s; reconciling", c.desired.kind, c.desired.name, c.detail)
        put(client, c.desired)
        done.append(c)
    return done


def setup(client: Any, idx: IndexConfig) -> list[Change]:
    """Plan and apply; returns every change with its action (for reporting)."""
    changes = plan(client, idx)
    apply(client, changes)
    return changes
