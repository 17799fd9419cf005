"""The product's own requests, played against a real node and the test server, answer alike.

The session is recorded on the test server exactly as the product sends it: ``setup`` (the
capability probes, templates), ``run --once`` with good documents, documents a hand-made
index refuses (dead-letter index), a second ``run --once`` from scratch (every create a 409),
every search command (search with each filter, user, show, top with each dimension and --by,
tail, status, test output) and prune's id check. Each request is then replayed, in order, to the
real node (SHIPPER_TEST_ES_URL) and the two answers compared: status codes, error types, and
bodies with only run-specific values masked (took, seq_no, uuids, scores).

Every difference is either fixed in the test server or listed in KNOWN with its reason, and
each KNOWN entry appears in tests/es_server/README.md's table. The test skips without a real
node: .ci/run runs it against 8.19 and 9.x.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import orjson
import pytest
import urllib3
from click.testing import CliRunner

from cli.main import cli
from shipper.sinks.elasticsearch.client import indexed_ids
from tests.cli.test_search_cmd import DATA

README = Path(__file__).parents[1] / "es_server" / "README.md"

# "<METHOD> <path with {p} for the prefix> <json path>" -> why it differs (README table).
KNOWN: dict[str, str] = {
    "POST /{p}-default-*/_search ._shards.skipped": "the can_match pre-filter (sorting on @timestamp) skips "
    "shards whose range cannot match; the test server searches every shard (same hits)",
}
# Values that differ from run to run, masked before comparing.
VOLATILE = {
    "took",
    "_seq_no",
    "_primary_term",
    "uuid",
    "cluster_uuid",
    "index_uuid",
    "creation_date",
    "_score",
    "max_score",
    "name",  # node / cluster names in GET /
    "cluster_name",
    "version",
    "created_date_millis",  # 9.x templates
    "modified_date_millis",
    "reason",  # prose (positions such as [1:114] differ); error types are compared
    "store.size",
    "pri.store.size",
    "dataset.size",
}
# Cluster-wide counters: a real node is shared with the other tests (and holds system indices).
CLUSTER_WIDE = {"/_cluster/health"}


@dataclass
class Diff:
    key: str
    real: Any
    test: Any


def _norm_path(path: str, prefix: str) -> str:
    path = path.replace(prefix, "{p}")
    return re.sub(r"\d{4}\.\d{2}\.\d{2}", "{day}", path)


def _decode(data: bytes) -> Any:
    try:
        return orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        return data.decode(errors="replace")


def _error_shape(body: Any) -> Any:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return {"type": err.get("type"), "caused_by": (err.get("caused_by") or {}).get("type")}
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return {"error": "<text>"}
    return body


def _compare(a: Any, b: Any, where: str, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k in VOLATILE and k in a and k in b:
                continue
            if k not in a or k not in b:
                out.append((f"{where}.{k}", a.get(k, "<absent>"), b.get(k, "<absent>")))
            else:
                _compare(a[k], b[k], f"{where}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append((f"{where}[]", f"{len(a)} items", f"{len(b)} items"))
        for x, y in zip(a, b, strict=False):
            _compare(x, y, f"{where}[]", out)
    elif a != b:
        out.append((where, a, b))


def _canonical(path: str, body: Any) -> Any:
    """Forms that carry no meaning: node ids as keys, _cat row order, cluster-wide counters."""
    if isinstance(body, dict) and isinstance(body.get("nodes"), dict):
        body = {**body, "nodes": list(body["nodes"].values())}
    if path.startswith("/_cat/") and isinstance(body, list):
        body = sorted(body, key=lambda row: str(row.get("index", "")))
    if path in CLUSTER_WIDE and isinstance(body, dict):
        body = {k: (type(v).__name__ if k != "timed_out" else v) for k, v in body.items()}
    return body


def compare(method: str, path: str, prefix: str, real: tuple[int, Any], test: tuple[int, Any]) -> list[Diff]:
    label = f"{method} {_norm_path(path, prefix)}"
    real, test = (real[0], _canonical(path, real[1])), (test[0], _canonical(path, test[1]))
    if real[0] != test[0]:
        return [Diff(f"{label} status", real, test)]
    if real[0] >= 400:
        a, b = _error_shape(real[1]), _error_shape(test[1])
        return [] if a == b else [Diff(f"{label} error", a, b)]
    found: list[tuple[str, Any, Any]] = []
    _compare(real[1], test[1], "", found)
    return [Diff(f"{label} {w or '.'}", x, y) for w, x, y in found]


def record_session(tmp: Path, url: str, prefix: str) -> None:
    """Drive the product against ``url`` (the recording test server)."""
    from elasticsearch import Elasticsearch

    logs = tmp / "logs"
    logs.mkdir()
    (logs / "a.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in DATA))
    # One more day, whose index an operator created by hand with a conflicting mapping.
    bad = dict(DATA[0], id="bad00001", createdAt=DATA[0]["createdAt"] - 2 * 86_400_000)
    (logs / "b.jsonl").write_bytes(orjson.dumps(bad) + b"\n")
    cfg = tmp / "shipper.toml"
    cfg.write_text(f"""
[state]
dir = "{tmp / "state"}"
[[inputs]]
type = "file"
paths = ["{logs}/*.jsonl"]
[output]
type = "elasticsearch"
hosts = ["{url}"]
retry_initial_backoff = 0.05
[index]
prefix = "{prefix}"
ship_expired = true  # the fixtures are from 2025
replicas = 0
""")
    es = Elasticsearch(url)

    def cli_ok(*args: str, code: int = 0) -> str:
        r = CliRunner().invoke(cli, ["--config", str(cfg), *args])
        assert r.exit_code == code, (args, r.output)
        return r.stdout

    cli_ok("setup")
    day = datetime.fromtimestamp(bad["createdAt"] / 1000, UTC).strftime("%Y.%m.%d")
    es.indices.create(
        index=f"{prefix}-default-{day}",
        mappings={"properties": {"event": {"properties": {"outcome": {"type": "long"}}}}},
        settings={"number_of_replicas": 0},
    )
    cli_ok("run", "--once", "--timeout", "20", code=1)  # one record dead-lettered
    shutil.rmtree(tmp / "state")
    cli_ok("run", "--once", "--timeout", "20", code=1)  # replayed: 409s, the bad one again
    es.indices.delete(index=f"{prefix}-default-{day}")  # its long event.outcome fails term queries
    es.indices.refresh(index=f"{prefix}-*")
    since = ["--since", "30d"]
    for args in (
        ["search", *since],
        ["search", "--event", "Interaction.SignIn.*", "--result", "failure", "--limit", "5"],
        ["search", "--event", "token", "--sort", "oldest", *since],
        ["search", "--user", "bob", "--app", "ios", *since],
        ["search", "--ip", "10.0.0.0/16", *since],
        ["search", "--ip", "2001:db8::1", *since],
        ["search", "--session", "nope", *since],
        ["user", "bob", *since],
        ["show", DATA[0]["id"]],
        ["show", "nope"],
        ["top", "events", *since],
        ["top", "users", "--by", "day", *since],
        ["top", "ips", "--size", "3", *since],
        ["top", "apps", *since],
        ["top", "countries", *since],
        ["tail", "--interval", "0.2", "--max-polls", "1", "--since", "1h"],
        ["status", "--format", "json"],
        ["test", "output"],
    ):
        r = CliRunner().invoke(cli, ["--config", str(cfg), *args])
        assert r.exit_code in (0, 1), (args, r.output)
    indexed_ids(es, f"{prefix}-default-*", [d["id"] for d in DATA[:5]] + ["missing-id"])


def node_modules(es: Any) -> frozenset[str]:
    """Which of the test server's optional modules the real node has."""
    from tests.es_server.store import OPTIONAL_MODULES

    info = es.nodes.info(node_id="_local", metric="plugins")
    names = {m["name"] for n in info["nodes"].values() for m in n["modules"]}
    return frozenset(m for m in OPTIONAL_MODULES if m in names)


def replay(http: urllib3.PoolManager, base: str, auth: str, rec: Any) -> tuple[int, Any]:
    headers = {k: v for k, v in rec.headers.items() if k in ("content-type", "accept")}
    headers["authorization"] = auth
    query = f"?{urlencode(rec.params)}" if rec.params else ""
    resp = http.request(rec.method, f"{base}{rec.path}{query}", body=rec.body or None, headers=headers)
    return resp.status, _decode(resp.data)


def test_product_requests_agree_with_a_real_node(tmp_path, es_target):
    if es_target.server is not None:
        pytest.skip("compares a real node with the test server: set SHIPPER_TEST_ES_URL (.ci/run does)")
    from tests.es_server import EsTestServer

    parts = urlsplit(es_target.url)
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    # The same optional modules and credentials as the node, so the product takes the same path.
    client = es_target.client()
    version = next(iter(client.nodes.info(node_id="_local", metric="_none")["nodes"].values()))["version"]
    srv = EsTestServer(version, modules=node_modules(client), users={user: password} if user else None)
    srv.start()
    try:
        record_session(
            tmp_path, srv.url.replace("://", f"://{parts.username}:{parts.password}@"), es_target.prefix
        )
        session = list(srv.requests)
    finally:
        srv.stop()
    base = f"{parts.scheme}://{parts.hostname}:{parts.port}"
    auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    http = urllib3.PoolManager()
    diffs: list[Diff] = []
    kinds: set[str] = set()
    for rec in session:
        real = replay(http, base, auth, rec)
        test = (rec.status, _decode(rec.response))
        kinds.add(f"{rec.method} {_norm_path(rec.path, es_target.prefix)}")
        diffs += compare(rec.method, rec.path, es_target.prefix, real, test)
    report = "\n".join(
        f"{d.key}: real={json.dumps(d.real)[:300]} test={json.dumps(d.test)[:300]}" for d in diffs
    )
    unexplained = [d for d in diffs if d.key not in KNOWN]
    assert not unexplained, f"{len(session)} requests, unexplained differences:\n{report}"
    assert len(session) > 40 and any("_bulk" in k for k in kinds) and any("_search" in k for k in kinds)
    table = README.read_text()
    for key in KNOWN:
        assert f"`{key}`" in table, f"{key} is not in {README}'s table"
