"""Import the bundled Kibana objects (``deploy/kibana/logto-auth.ndjson``) into a Kibana.

``POST <kibana>[/s/<space>]/api/saved_objects/_import?overwrite=true`` with the NDJSON as the
multipart ``file`` field and the ``kbn-xsrf`` header, authenticated like the Elasticsearch
output. Re-importing overwrites the same ids, so running it again is harmless.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import requests

from shipper.config import ElasticsearchOutputConfig, IndexConfig
from shipper.errors import OutputAuthError, OutputError
from shipper.resources import data_dir

BUNDLED_PATTERN = "logto-audit-default-*"
BUNDLED_ALERTS = "logto-audit-alerts-default-*"


def bundle(index: IndexConfig) -> bytes:
    """The NDJSON with the data views pointed at this config's ``<prefix>-<namespace>-*`` and
    ``<prefix>-alerts-<namespace>-*``."""
    lines = []
    patterns = {
        BUNDLED_PATTERN: f"{index.prefix}-{index.namespace}-*",
        BUNDLED_ALERTS: f"{index.prefix}-alerts-{index.namespace}-*",
    }
    for line in (data_dir("deploy") / "kibana" / "logto-auth.ndjson").read_text().splitlines():
        obj = json.loads(line)
        if obj["type"] == "index-pattern" and obj["attributes"]["title"] in patterns:
            obj["attributes"]["title"] = patterns[obj["attributes"]["title"]]
        lines.append(json.dumps(obj, sort_keys=True))
    return ("\n".join(lines) + "\n").encode()


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _session_args(
    url: str, space: str | None, out: ElasticsearchOutputConfig
) -> tuple[str, dict[str, str], tuple[str, str] | None, bool | str]:
    """(base URL of the space, headers, basic auth, TLS verification): the output's credentials."""
    base = url.rstrip("/") + (f"/s/{space}" if space and space != "default" else "")
    headers = {"kbn-xsrf": "logto-shipper"}
    auth = None
    if out.api_key is not None:
        headers["Authorization"] = f"ApiKey {out.api_key.get_secret_value()}"
    elif out.username:
        auth = (out.username, out.password.get_secret_value() if out.password else "")
    verify: bool | str = str(out.ca_file) if out.ca_file else out.verify_certs
    return base, headers, auth, verify


def import_objects(
    url: str, space: str | None, out: ElasticsearchOutputConfig, index: IndexConfig
) -> ImportReport:
    base, headers, auth, verify = _session_args(url, space, out)
    try:
        with requests.Session() as session:
            resp = session.post(
                f"{base}/api/saved_objects/_import",
                params={"overwrite": "true"},
                headers=headers,
                auth=auth,
                verify=verify,
                timeout=60,
                files={"file": ("logto-auth.ndjson", bundle(index), "application/ndjson")},
            )
    except requests.RequestException as exc:
        raise OutputError(f"cannot reach Kibana at {url}: {type(exc).__name__}") from None
    if resp.status_code in (401, 403):
        raise OutputAuthError(f"Kibana refused the credentials (HTTP {resp.status_code})")
    if resp.status_code != 200:
        raise OutputError(f"Kibana import failed: HTTP {resp.status_code} {resp.text[:300]}")
    body: dict[str, Any] = resp.json()
    report = ImportReport()
    for r in body.get("successResults", []):
        name = f"{r['type']} {r.get('meta', {}).get('title') or r['id']}"
        (report.updated if r.get("overwrite") else report.created).append(name)
    for e in body.get("errors", []):
        report.errors.append(f"{e.get('type')} {e.get('id')}: {e.get('error', {}).get('type')}")
    return report


# -- the detections as Kibana alerting rules -------------------------------------------------------

RULE_TYPE = ".index-threshold"  # a count of matching documents per group over a time window


def rule_id(index: IndexConfig, name: str) -> str:
    """A stable id per prefix, namespace and rule, shaped as a UUID v4 (what Kibana takes as a
    rule id), so re-running setup updates the same rule."""
    import hashlib
    import uuid

    raw = bytearray(
        hashlib.sha256(f"logto-shipper/{index.prefix}/{index.namespace}/{name}".encode()).digest()[:16]
    )
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


def _window(ms: int) -> tuple[int, str]:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if ms % size == 0:
            return ms // size, unit
    return max(1, ms // 1000), "s"


def alerting_rules(rules: list[Any], index: IndexConfig) -> list[tuple[str, dict[str, Any]]]:
    """(id, create body) of each rule that is a count of indexed events (``Rule.kql``), with the
    config's thresholds and windows; the others (distinct counts, sequences, locations) have no
    Kibana equivalent and are the daemon's alone."""
    out = []
    for r in rules:
        if r.kql is None:
            continue
        size, unit = _window(r.window_ms)
        params: dict[str, Any] = {
            "index": [f"{index.prefix}-{index.namespace}-*"],
            "timeField": "@timestamp",
            "aggType": "count",
            "groupBy": "top" if r.group else "all",
            "threshold": [r.threshold],
            "thresholdComparator": ">=",
            "timeWindowSize": size,
            "timeWindowUnit": unit,
            "filterKuery": r.kql,
        }
        if r.group:
            params |= {"termField": r.group, "termSize": 100}
        body = {
            "name": f"logto-shipper: {r.id}",
            "rule_type_id": RULE_TYPE,
            "consumer": "alerts",
            "schedule": {"interval": "1m"},
            "params": params,
            "tags": ["logto-shipper", r.id],
            "actions": [],
        }
        out.append((rule_id(index, r.id), body))
    return out


def install_rules(
    url: str, space: str | None, out: ElasticsearchOutputConfig, index: IndexConfig, rules: list[Any]
) -> ImportReport:
    """Create each rule (``POST /api/alerting/rule/<id>``), or update it where it exists (409:
    ``PUT`` with the fields an update takes)."""
    base, headers, auth, verify = _session_args(url, space, out)
    report = ImportReport()
    try:
        with requests.Session() as session:
            for rid, body in alerting_rules(rules, index):
                kw: dict[str, Any] = {"headers": headers, "auth": auth, "verify": verify, "timeout": 30}
                resp = session.post(f"{base}/api/alerting/rule/{rid}", json=body, **kw)
                updated = resp.status_code == 409
                if updated:
                    change = {k: body[k] for k in ("name", "schedule", "params", "tags", "actions")}
                    resp = session.put(f"{base}/api/alerting/rule/{rid}", json=change, **kw)
                if resp.status_code in (401, 403):
                    raise OutputAuthError(f"Kibana refused the credentials (HTTP {resp.status_code})")
                name = f"rule {body['name']}"
                if resp.status_code == 200:
                    (report.updated if updated else report.created).append(name)
                else:
                    report.errors.append(f"{name}: HTTP {resp.status_code} {resp.text[:200]}")
    except requests.RequestException as exc:
        raise OutputError(f"cannot reach Kibana at {url}: {type(exc).__name__}") from None
    return report
