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


def import_objects(
    url: str, space: str | None, out: ElasticsearchOutputConfig, index: IndexConfig
) -> ImportReport:
    base = url.rstrip("/") + (f"/s/{space}" if space and space != "default" else "")
    headers = {"kbn-xsrf": "logto-shipper"}
    auth = None
    if out.api_key is not None:
        headers["Authorization"] = f"ApiKey {out.api_key.get_secret_value()}"
    elif out.username:
        auth = (out.username, out.password.get_secret_value() if out.password else "")
    verify: bool | str = str(out.ca_file) if out.ca_file else out.verify_certs
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
