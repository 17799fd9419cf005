"""The Kibana bundle is held correct without a Kibana: structure, references, fields vs mappings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import ROOT

BUNDLE = ROOT / "deploy" / "kibana" / "logto-auth.ndjson"
OBJECTS = [json.loads(line) for line in BUNDLE.read_text().splitlines()]
TYPE_VERSIONS = {"index-pattern": "8.0.0", "search": "8.0.0", "visualization": "8.5.0", "dashboard": "8.9.0"}


def mapped_types(template: str = "component-mappings.json") -> dict[str, str]:
    props = json.loads((ROOT / "mappings" / template).read_text())["template"]["mappings"]["properties"]
    out: dict[str, str] = {}

    def walk(p: dict, prefix: str) -> None:
        for name, d in p.items():
            path = prefix + name
            if "properties" in d:
                walk(d["properties"], path + ".")
            else:
                out[path] = d["type"]
                for sub, sd in d.get("fields", {}).items():
                    out[f"{path}.{sub}"] = sd["type"]

    walk(props, "")
    return out


TYPES = mapped_types()
# Each data view's fields: the audit log's component mappings, the alerts template's.
VIEW_TYPES = {"logto-audit": TYPES, "logto-shipper-alerts": mapped_types("alerts-template.json")}
AGGREGATABLE = {"keyword", "ip", "date", "long", "boolean", "geo_point"}


def kql_fields(query: str) -> list[str]:
    return re.findall(r"([@\w][\w.]*)\s*:", query)


def test_generated_file_is_current():
    r = subprocess.run(
        [sys.executable, str(ROOT / "deploy/kibana/generate.py"), "--check"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr


def test_every_object_has_saved_object_shape():
    ids = set()
    for o in OBJECTS:
        assert set(o) >= {
            "attributes",
            "coreMigrationVersion",
            "id",
            "references",
            "type",
            "typeMigrationVersion",
        }
        assert o["coreMigrationVersion"] == "8.8.0"
        assert o["typeMigrationVersion"] == TYPE_VERSIONS[o["type"]]
        assert (o["type"], o["id"]) not in ids
        ids.add((o["type"], o["id"]))
        assert o["attributes"]["title"]
    assert {o["type"] for o in OBJECTS} == set(TYPE_VERSIONS)


def test_every_reference_resolves_in_the_bundle():
    present = {(o["type"], o["id"]) for o in OBJECTS}
    for o in OBJECTS:
        names = {r["name"] for r in o["references"]}
        for r in o["references"]:
            assert (r["type"], r["id"]) in present, (o["id"], r)
        meta = o["attributes"].get("kibanaSavedObjectMeta", {})
        if meta:
            ss = json.loads(meta["searchSourceJSON"])
            if "indexRefName" in ss:
                assert ss["indexRefName"] in names
        if o["type"] == "dashboard":
            panels = json.loads(o["attributes"]["panelsJSON"])
            assert {p["panelRefName"] for p in panels} == names
            assert len({p["panelIndex"] for p in panels}) == len(panels)


def test_every_field_exists_in_mappings_with_a_usable_type():
    views = [o for o in OBJECTS if o["type"] == "index-pattern"]
    assert sorted(v["id"] for v in views) == sorted(VIEW_TYPES)
    for dv in views:
        types = VIEW_TYPES[dv["id"]]
        assert types[dv["attributes"]["timeFieldName"]] == "date"
        for field in json.loads(dv["attributes"]["fieldFormatMap"]):
            assert field in types
    for o in OBJECTS:
        a = o["attributes"]
        view = next((r["id"] for r in o["references"] if r["type"] == "index-pattern"), "logto-audit")
        TYPES = VIEW_TYPES[view]
        if o["type"] == "visualization":
            for agg in json.loads(a["visState"])["aggs"]:
                field = agg["params"].get("field")
                if agg["type"] == "terms":
                    assert TYPES[field] in AGGREGATABLE, (o["id"], field)
                elif agg["type"] == "date_histogram":
                    assert TYPES[field] == "date"
        if o["type"] == "search":
            for col in a["columns"]:
                assert col in TYPES, col
            assert TYPES[a["sort"][0][0]] == "date"
        meta = a.get("kibanaSavedObjectMeta")
        if meta:
            query = json.loads(meta["searchSourceJSON"])["query"]["query"]
            for field in kql_fields(query):
                assert field in TYPES, (o["id"], field)


def test_dashboard_has_the_documented_panels():
    dash = next(o for o in OBJECTS if o["type"] == "dashboard")
    titles = {o["id"]: o["attributes"]["title"] for o in OBJECTS}
    shown = [titles[r["id"]] for r in dash["references"]]
    for want in (
        "Sign-ins over time by outcome",
        "Failed sign-ins by source IP (top 10)",
        "Failed sign-ins by country",
        "Top users",
        "Top applications",
        "Token exchanges by grant type",
        "Error codes over time",
        "Logto audit events",
        "Logto: alerts",
    ):
        assert want in shown
    assert shown[0] == "Logto: alerts"  # atop the dashboard
    searches = {o["attributes"]["title"] for o in OBJECTS if o["type"] == "search"}
    assert {
        "Logto: one user's activity",
        "Logto: one IP's activity",
        "Logto: failures in the last hour",
    } <= searches
    failures = next(o for o in OBJECTS if o["id"] == "logto-failures-last-hour")["attributes"]
    assert failures["timeRestore"] is True and failures["timeRange"]["from"] == "now-1h"


# -- the import command against a server that answers like Kibana's import API ---------------


@pytest.fixture
def kibana():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    state: dict[str, Any] = {"requests": [], "existing": set(), "require": None, "rules": {}}

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def rule(self, body: bytes, create: bool) -> None:
            """Kibana's create/update rule API (create-rule-api, update-rule-api, and the
            index-threshold params schema): a UUID v1/v4 id, 409 when it exists, an update that
            names rule_type_id or consumer refused."""
            import uuid

            rid = self.path.split("?")[0].rsplit("/", 1)[1]
            try:
                ok_id = uuid.UUID(rid).version in (1, 4)
            except ValueError:
                ok_id = False
            if not ok_id:
                return self.reply(400, {"statusCode": 400, "error": "Bad Request", "message": "invalid id"})
            b = json.loads(body)
            required = {"name", "schedule", "params"} | ({"rule_type_id", "consumer"} if create else set())
            allowed = required | {"tags", "actions", "notify_when", "throttle", "enabled"}
            bad = (set(b) - allowed) or (required - set(b))
            p = b.get("params", {})
            need = {
                "index",
                "threshold",
                "thresholdComparator",
                "timeField",
                "timeWindowSize",
                "timeWindowUnit",
            }
            if bad or not need <= set(p) or (p.get("groupBy") == "top" and not p.get("termField")):
                return self.reply(
                    400, {"statusCode": 400, "error": "Bad Request", "message": f"keys {sorted(bad)}"}
                )
            if create and rid in state["rules"]:
                return self.reply(409, {"statusCode": 409, "error": "Conflict", "message": "exists"})
            if not create and rid not in state["rules"]:
                return self.reply(404, {"statusCode": 404, "error": "Not Found", "message": "no rule"})
            state["rules"][rid] = {**state["rules"].get(rid, {}), **b}
            self.reply(200, {"id": rid, **state["rules"][rid]})

        def do_PUT(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state["requests"].append((self.path, dict(self.headers), body))
            return self.rule(body, create=False)

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state["requests"].append((self.path, dict(self.headers), body))
            if "/api/alerting/rule/" in self.path:
                return self.rule(body, create=True)
            if state["require"] and self.headers.get("Authorization") != state["require"]:
                return self.reply(
                    401, {"statusCode": 401, "error": "Unauthorized", "message": "Unauthorized"}
                )
            if "kbn-xsrf" not in self.headers:
                return self.reply(
                    400,
                    {
                        "statusCode": 400,
                        "error": "Bad Request",
                        "message": "Request must contain a kbn-xsrf header.",
                    },
                )
            m = re.search(
                rb'name="file"; filename="[^"]+"\r\nContent-Type: [^\r]+\r\n\r\n(.*?)\r\n--', body, re.S
            )
            if not m:
                return self.reply(
                    400, {"statusCode": 400, "error": "Bad Request", "message": "[file]: expected value"}
                )
            results = []
            for line in m.group(1).decode().splitlines():
                o = json.loads(line)
                key = (o["type"], o["id"])
                r = {"type": o["type"], "id": o["id"], "meta": {"title": o["attributes"].get("title")}}
                if key in state["existing"]:
                    r["overwrite"] = True
                state["existing"].add(key)
                results.append(r)
            self.reply(
                200, {"success": True, "successCount": len(results), "successResults": results, "errors": []}
            )

        def reply(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{srv.server_address[1]}"
    yield state
    srv.shutdown()
    srv.server_close()


def test_setup_imports_into_kibana_space_and_rerun_updates(tmp_path, es_target, kibana):
    from click.testing import CliRunner

    from cli.main import cli

    key = es_target.api_key()
    kibana["require"] = f"ApiKey {key}"
    cfg = tmp_path / "s.toml"
    cfg.write_text(f"""
[[inputs]]
type = "file"
paths = ["x"]
[output]
type = "elasticsearch"
hosts = ["{es_target.base_url}"]
api_key = "{key}"
[index]
prefix = "{es_target.prefix}"
namespace = "prod"
""")
    args = ["--config", str(cfg), "setup", "--kibana-url", kibana["url"], "--kibana-space", "ops"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "kibana: 21 created, 0 updated, 0 errors" in r.stderr  # 15 objects, 6 alerting rules
    path, headers, body = next(x for x in kibana["requests"] if "_import" in x[0])
    assert path == "/s/ops/api/saved_objects/_import?overwrite=true"
    assert headers["kbn-xsrf"] and headers["Authorization"] == f"ApiKey {key}"
    assert headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert f'"title": "{es_target.prefix}-prod-*"'.encode() in body  # data views follow the config
    assert f'"title": "{es_target.prefix}-alerts-prod-*"'.encode() in body
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0 and "kibana: 0 created, 21 updated" in r.stderr
    assert "updated   dashboard Logto auth activity" in r.stdout
    assert "updated   rule logto-shipper: brute_force_user" in r.stdout
    # The rules are the daemon's, with the config's thresholds, on the config's indices.
    rules = {b["name"]: b for b in kibana["rules"].values()}
    assert sorted(rules) == sorted(
        f"logto-shipper: {n}"
        for n in (
            "brute_force_user",
            "enumeration_ip",
            "verification_flood",
            "lockout",
            "rate_limited",
            "grant_limit",
        )
    )
    brute = rules["logto-shipper: brute_force_user"]["params"]
    assert brute["index"] == [f"{es_target.prefix}-prod-*"] and brute["threshold"] == [10]
    assert (brute["timeWindowSize"], brute["timeWindowUnit"], brute["termField"]) == (5, "m", "user.id")
    assert brute["filterKuery"] == 'event.action : Interaction.SignIn.* and event.outcome : "failure"'
    for b in rules.values():  # every KQL field is mapped (the audit log's data view)
        for field in kql_fields(b["params"]["filterKuery"]):
            assert field in TYPES, (b["name"], field)


def test_kibana_auth_failure_exit_3(tmp_path, es_target, kibana):
    from click.testing import CliRunner

    from cli.main import cli

    kibana["require"] = "ApiKey right"
    cfg = tmp_path / "s.toml"
    cfg.write_text(
        f"[[inputs]]\ntype='file'\npaths=['x']\n[output]\ntype='elasticsearch'\nhosts=['{es_target.url}']\n"
        f"[index]\nprefix='{es_target.prefix}'\n"
    )
    r = CliRunner().invoke(cli, ["--config", str(cfg), "setup", "--kibana-url", kibana["url"]])
    assert r.exit_code == 3 and "Kibana refused the credentials" in r.stderr
    assert kibana["requests"][-1][0] == "/api/saved_objects/_import?overwrite=true"  # default space: no /s/
