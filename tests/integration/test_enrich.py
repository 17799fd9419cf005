"""Names next to ids: from Logto's tables, a static mapping and webhook records; search by name."""

from __future__ import annotations

import json
import logging

import orjson
import psycopg
import pytest
from click.testing import CliRunner

from cli.main import cli
from shipper.enrich import Enricher, TtlCache
from shipper.metrics import METRICS
from shipper.namesources import DatabaseNames
from shipper.normalize import Normalizer
from shipper.normalize.document import Document
from tests.pg import NAME_TABLES


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def names_db(pg):
    _srv, dsn = pg
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(NAME_TABLES)
        c.execute(
            "insert into applications (tenant_id, id, name, type) values "
            "('default', 'app-web', 'Web App', 'SPA'), ('default', 'app-ios', 'iOS', 'Native'),"
            "('default', 'app-dup1', 'Admin tool', 'Traditional'), ('default', 'app-dup2', 'admin tool', 'M2M')"
        )
        c.execute(
            "insert into users (tenant_id, id, username, primary_email, name) values "
            "('default', 'u-alice', 'alice', 'alice@example.com', 'Alice A'),"
            "('default', 'u-bob', null, 'bob@example.com', 'Bob B')"
        )
    return dsn


def doc(e=None, app="app-web", user="u-alice", key="Interaction.SignIn.Submit", log_id="l1", **payload):
    """The document of a sign-in record, with the names ``e`` knows (as the runner adds them:
    spliced into the line, then normalized)."""
    rec = {
        "tenantId": "default",
        "id": log_id,
        "key": key,
        "createdAt": 1755763200000,
        "payload": {"result": "Success", "applicationId": app, "userId": user, **payload},
    }
    line = orjson.dumps(rec)
    d = Normalizer().line(e.annotate(line) if e is not None else line)
    assert isinstance(d, Document), d
    return d.body


def test_ttl_cache_expiry_and_bound():
    clock = Clock()
    c = TtlCache(ttl=10, max_entries=2, clock=clock)
    c.put("a", 1)
    assert c.get("a") == (1, True)
    clock.t += 11
    assert c.get("a") == (1, False)  # stale: still served, refreshed in the background
    c.put("b", 2)
    c.put("c", 3)
    assert c.get("a") is None and len(c) == 2


def test_names_from_database_cold_then_warm(names_db):
    e = Enricher([DatabaseNames(names_db)])
    body = doc(e)
    assert "application_name" not in body["logto"] and "name" not in body["user"]  # never blocks
    e.refresh()
    body = doc(e)
    assert body["logto"]["application_name"] == "Web App" and body["logto"]["application_type"] == "SPA"
    assert body["user"]["name"] == "alice" and "email" not in body["user"]  # email is opt-in
    e2 = Enricher([DatabaseNames(names_db)], include_email=True)
    doc(e2, user="u-bob")
    e2.refresh()
    body = doc(e2, user="u-bob")
    assert body["user"] == {"id": "u-bob", "name": "Bob B", "email": "bob@example.com"}
    e.stop()
    e2.stop()


def test_expired_names_are_refreshed_after_a_rename(names_db):
    clock = Clock()
    e = Enricher([DatabaseNames(names_db)], ttl=60, clock=clock)
    doc(e)
    e.refresh()
    first = doc(e)
    with psycopg.connect(names_db, autocommit=True) as c:
        c.execute("update applications set name = 'Web App v2' where id = 'app-web'")
    clock.t += 61
    stale = doc(e)  # served stale, refresh queued
    e.refresh()
    fresh = doc(e)
    assert first["logto"]["application_name"] == "Web App"  # documents keep the name of their time
    assert stale["logto"]["application_name"] == "Web App"
    assert fresh["logto"]["application_name"] == "Web App v2"
    e.stop()


def test_unreachable_source_degrades_to_ids(caplog):
    caplog.set_level(logging.WARNING)
    e = Enricher([DatabaseNames("postgresql://nobody@127.0.0.1:1/none")])
    before = METRICS.get("enrich_source_errors_total")
    for i in range(3):
        body = doc(e, log_id=f"x{i}")
        e.refresh()
        assert "application_name" not in body["logto"]
    assert METRICS.get("enrich_source_errors_total") > before
    assert caplog.text.count("name source unavailable") == 1  # logged once


def test_names_learned_from_webhook_records():
    e = Enricher([])
    doc(
        e,
        key="TriggerHook.PostSignIn",
        hookId="h1",
        hookRequest={
            "body": {
                "application": {"id": "app-x", "name": "Partner portal", "type": "SPA"},
                "user": {"id": "u-x", "username": "xavier", "primaryEmail": "x@example.com"},
            }
        },
    )
    body = doc(e, app="app-x", user="u-x")
    assert body["logto"]["application_name"] == "Partner portal" and body["user"]["name"] == "xavier"


def test_static_mapping():
    e = Enricher([], static_apps={"app-web": "Website"})
    body = doc(e)
    assert body["logto"]["application_name"] == "Website"


def test_search_by_name_end_to_end(tmp_path, es_target, names_db):
    from tests.integration.harness import Pipeline
    from tests.integration.test_es_delivery import wait_count
    from tests.pg import insert

    rows = []
    for i, (app, user) in enumerate(
        [
            ("app-web", "u-alice"),
            ("app-ios", "u-bob"),
            ("app-dup1", "u-alice"),
            ("app-dup2", "u-bob"),
            ("app-web", "u-bob"),
        ]
    ):
        rows.append(
            (
                "default",
                f"log{i}",
                "Interaction.SignIn.Submit",
                json.dumps({"result": "Success", "applicationId": app, "userId": user}),
                __import__("datetime").datetime.now(__import__("datetime").UTC),
            )
        )
    spec = {"type": "postgres", "dsn": names_db, "poll_interval": 0.05}
    output = {"type": "elasticsearch", "hosts": [es_target.url], "retry_initial_backoff": 0.02}
    p = Pipeline(tmp_path, inputs=[spec], output=output, index={"prefix": es_target.prefix, "replicas": 0})
    p.cfg = p.cfg.model_copy(update={"enrich": p.cfg.enrich.model_copy(update={"applications": {}})})
    p.start()
    # Warm the cache first, as a running daemon would have; then ship.
    for r in rows:
        doc(p.runner.enricher, app=json.loads(r[3])["applicationId"], user=json.loads(r[3])["userId"])
    p.runner.enricher.refresh()
    p.runner.enricher.refresh()
    insert(names_db, rows)
    wait_count(es_target.client(), f"{es_target.prefix}-default-*", 5, p)
    assert p.stop() == 0
    cfg = tmp_path / "s.toml"
    cfg.write_text(
        f"[[inputs]]\ntype='file'\npaths=['x']\n[output]\ntype='elasticsearch'\nhosts=['{es_target.url}']\n"
        f"[index]\nprefix='{es_target.prefix}'\n"
    )

    def run(*args):
        return CliRunner().invoke(cli, ["--config", str(cfg), *args])

    r = run("search", "--app", "web app", "--format", "ndjson")  # name, case-insensitive
    assert r.exit_code == 0, r.output
    assert sorted(json.loads(x)["event"]["id"] for x in r.stdout.splitlines()) == ["log0", "log4"]
    r = run("search", "--app", "Admin Tool")
    assert r.exit_code == 2 and "ambiguous" in r.stderr and "app-dup1" in r.stderr and "app-dup2" in r.stderr
    r = run("search", "--user", "alice", "--format", "ndjson")  # a username
    assert sorted(json.loads(x)["event"]["id"] for x in r.stdout.splitlines()) == ["log0", "log2"]
    r = run("search", "--app", "app-ios", "--format", "table")
    assert "iOS (app-ios)" in r.stdout and "Bob B (u-bob)" in r.stdout


@pytest.fixture
def logto_api():
    """A local server answering like Logto: /oidc/token, paginated /api/applications, /api/users/{id}."""
    import base64
    import threading
    import urllib.parse
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    apps = [{"id": f"app{i:02d}", "name": f"App {i}", "type": "SPA"} for i in range(23)]
    users = {
        "u-alice": {"id": "u-alice", "username": "alice", "name": "Alice", "primaryEmail": "a@example.com"}
    }
    state = {"tokens": [], "requests": [], "expires_in": 3600}

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def reply(self, status, obj, headers=None):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            body = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            basic = "Basic " + base64.b64encode(b"m2m-id:m2m-secret").decode()
            if self.path != "/oidc/token" or self.headers.get("Authorization") != basic:
                return self.reply(401, {"error": "invalid_client"})
            if body.get("grant_type") != ["client_credentials"] or body.get("resource") != [
                "https://default.logto.app/api"
            ]:
                return self.reply(400, {"error": "invalid_request"})
            token = f"tok{len(state['tokens'])}"
            state["tokens"].append(token)
            self.reply(
                200,
                {
                    "access_token": token,
                    "expires_in": state["expires_in"],
                    "token_type": "Bearer",
                    "scope": "all",
                },
            )

        def do_GET(self):
            state["requests"].append(self.path)
            if (
                self.headers.get("Authorization")
                != f"Bearer {state['tokens'][-1] if state['tokens'] else ''}"
            ):
                return self.reply(401, {"code": "auth.unauthorized"})
            url = urllib.parse.urlparse(self.path)
            q = urllib.parse.parse_qs(url.query)
            if url.path == "/api/applications":
                page, size = int(q.get("page", ["1"])[0]), min(10, int(q.get("page_size", ["20"])[0]))
                chunk = apps[(page - 1) * size : page * size]
                link = (
                    f'</api/applications?page={page + 1}&page_size={size}>; rel="next"'
                    if page * size < len(apps)
                    else ""
                )
                return self.reply(
                    200, chunk, {"Total-Number": str(len(apps)), **({"Link": link} if link else {})}
                )
            if url.path.startswith("/api/users/"):
                u = users.get(url.path.rsplit("/", 1)[1])
                return self.reply(200, u) if u else self.reply(404, {"code": "entity.not_exists_with_id"})
            self.reply(404, {"code": "route.not_found"})

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{srv.server_address[1]}"
    yield state
    srv.shutdown()
    srv.server_close()


def test_management_api_source_pagination_token_cache_and_expiry(logto_api):
    from shipper.namesources import ManagementApiNames

    clock = Clock()
    api = ManagementApiNames(logto_api["url"], "m2m-id", "m2m-secret", min_interval=0, clock=clock)
    apps = api.applications("default")
    assert len(apps) == 23 and apps["app22"] == ("App 22", "SPA")
    assert sum(r.startswith("/api/applications") for r in logto_api["requests"]) == 3  # followed the pages
    assert api.users("default", ["u-alice", "u-ghost"]) == {"u-alice": ("alice", "a@example.com")}
    assert api.token_requests == 1  # cached across calls
    clock.t += 3600  # past expires_in: a new token
    api.users("default", ["u-alice"])
    assert api.token_requests == 2
    e = Enricher([api])
    body = doc(e, app="app07")
    e.refresh()
    body = doc(e, app="app07")
    assert body["logto"]["application_name"] == "App 7"
    api.close()


def test_management_api_wrong_secret_degrades(logto_api, caplog):
    from shipper.namesources import ManagementApiNames

    api = ManagementApiNames(logto_api["url"], "m2m-id", "wrong", min_interval=0)
    e = Enricher([api])
    doc(e)
    e.refresh()
    body = doc(e)
    assert "application_name" not in body["logto"]
    assert "name source unavailable" in caplog.text and "wrong" not in caplog.text
    api.close()


def test_resolve_names_shows_current_names(tmp_path, es_target, names_db):
    """Documents keep the name of their time; --resolve-names displays today's."""
    from tests.integration.test_es_delivery import wait_count

    es = es_target.client()
    from shipper.config import IndexConfig
    from shipper.sinks.elasticsearch import setup as es_setup

    es_setup.setup(es, IndexConfig(prefix=es_target.prefix, replicas=0))
    body = doc(app="app-web", user="u-alice", log_id="old1")
    body["logto"]["application_name"] = "Old name"
    from datetime import UTC, datetime

    body["@timestamp"] = datetime.now(UTC).isoformat()
    es.index(
        index=f"{es_target.prefix}-default-2030.01.01",
        id="old1",
        document=body,
        refresh=True,
    )
    wait_count(es, f"{es_target.prefix}-default-*", 1)
    cfg = tmp_path / "s.toml"
    cfg.write_text(
        f"[[inputs]]\ntype='file'\npaths=['x']\n[output]\ntype='elasticsearch'\nhosts=['{es_target.url}']\n"
        f"[index]\nprefix='{es_target.prefix}'\n[enrich]\ndsn='{names_db}'\n"
    )
    r = CliRunner().invoke(cli, ["--config", str(cfg), "search", "--since", "30d", "--format", "table"])
    assert "Old name (app-web)" in r.stdout
    r = CliRunner().invoke(
        cli, ["--config", str(cfg), "search", "--since", "30d", "--format", "table", "--resolve-names"]
    )
    assert r.exit_code == 0, r.output
    assert "Web App (app-web)" in r.stdout and "alice (u-alice)" in r.stdout


def test_annotate_splices_names_into_the_line_and_leaves_what_it_cannot():
    from shipper.enrich import splice

    e = Enricher([], static_apps={"app-web": "Website"})
    got = e.annotate(b'{"id":"l1","payload":{"applicationId":"app-web"}}  ')
    assert orjson.loads(got) == {
        "id": "l1",
        "payload": {"applicationId": "app-web"},
        "_names": {"application": "Website"},
    }
    unknown = b'{"id":"l1","payload":{"applicationId":"app-other","userId":"u-nobody"}}'
    assert e.annotate(unknown) == unknown  # nothing known: the line as it is
    delivery = b'{"id":"wh-1","origin":"webhook","payload":{"application":{"id":"app-web"}}}'
    assert e.read_ids(delivery) == ("default", "app-web", None)  # a delivery: the webhook rows' sources
    assert splice(b"{ }", b"{}") == b'{"_names":{}}'
    assert splice(b"[1]", b"{}") == b"[1]"  # not an object: the normalizer refuses it as it is
    parsed = Enricher([], static_apps={"app-web": "Website"})
    assert parsed.annotate(b"{not json") == b"{not json"
    assert parsed.read_ids(b'{"tenant_id":"t1","payload":"{\\"applicationId\\":\\"app-web\\"}"}') == (
        "t1",
        "app-web",
        None,
    )


def test_an_unknown_id_is_looked_up_once_however_many_records_carry_it():
    class Counting:
        def __init__(self):
            self.calls = []

        def applications(self, tenant):
            return {}

        def users(self, tenant, ids):
            self.calls.append(ids)
            return {"u-alice": ("alice", None)}

    src = Counting()
    e = Enricher([src])
    for _ in range(1000):
        e.names("default", None, "u-alice")
    assert e._misses.qsize() == 1
    e.refresh()
    assert src.calls == [["u-alice"]] and e.names("default", None, "u-alice") == {"user": "alice"}
    e.names("default", None, "u-ghost")
    e.refresh()
    e.names("default", None, "u-ghost")  # not found: asked again after the answer, not before
    assert e._misses.qsize() == 1


def test_names_reused_per_record_until_a_cache_changes_or_a_second_passes():
    clock = Clock()
    e = Enricher([], ttl=60, clock=clock)
    e.users.put(("default", "u1"), ("alice", None))
    line = b'{"id":"l1","payload":{"userId":"u1"}}'
    assert e.annotate(line) == b'{"id":"l1","payload":{"userId":"u1"},"_names":{"user":"alice"}}'
    e.users._data[("default", "u1")] = (clock.t, ("changed behind the cache's back", None))
    assert b"alice" in e.annotate(line)  # reused
    clock.t += 1.0
    assert b"changed behind" in e.annotate(line)  # a second later: asked again
    e.users.put(("default", "u1"), ("alice2", None))
    assert b"alice2" in e.annotate(line)  # a change is seen at once
