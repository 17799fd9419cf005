"""Webhook deliveries -> ECS, for every event Logto can send; the spool's crash rules."""

from __future__ import annotations

import json

import orjson
import pytest

from shipper.configfile import parse_config
from shipper.errors import ConfigError
from shipper.normalize import Normalizer
from shipper.normalize.document import Document
from shipper.sources.spool import Spool, SpoolReader
from shipper.sources.webhook import delivery_id, record_line

# Logto's ``hookEvents`` (packages/schemas/src/foundations/jsonb-types/hooks.ts), all 31.
HOOK_EVENTS = [
    "PostRegister",
    "PostSignIn",
    "PostSignInAdaptiveMfaTriggered",
    "PostResetPassword",
    "User.Created",
    "User.Deleted",
    "User.Data.Updated",
    "User.SuspensionStatus.Updated",
    "TrustedDevice.Created",
    "TrustedDevice.Deleted",
    "Role.Created",
    "Role.Deleted",
    "Role.Data.Updated",
    "Role.Scopes.Updated",
    "Scope.Created",
    "Scope.Deleted",
    "Scope.Data.Updated",
    "Organization.Created",
    "Organization.Deleted",
    "Organization.Data.Updated",
    "Organization.Membership.Updated",
    "OrganizationRole.Created",
    "OrganizationRole.Deleted",
    "OrganizationRole.Data.Updated",
    "OrganizationRole.Scopes.Updated",
    "OrganizationScope.Created",
    "OrganizationScope.Deleted",
    "OrganizationScope.Data.Updated",
    "Identifier.Lockout",
    "Message.RateLimited",
    "Grant.LimitExceeded",
]
# ECS 8.x: the types each category allows.
ALLOWED = {
    "authentication": {"start", "end", "info"},
    "session": {"start", "end", "info"},
    "iam": {"admin", "change", "creation", "deletion", "group", "info", "user"},
    "configuration": {"access", "change", "creation", "deletion", "info"},
}
INTERACTION = {"PostRegister", "PostSignIn", "PostSignInAdaptiveMfaTriggered", "PostResetPassword"}
EXCEPTION = {"Identifier.Lockout", "Message.RateLimited", "Grant.LimitExceeded"}


def body_for(event: str) -> dict:
    """Shaped like Logto's payloads: interaction hooks (``triggerInteractionHooks``), data hooks
    from the Management API (``buildWebhooks``: metadata, route context, ``data``), exception
    hooks (``appendExceptionHookContext``/``triggerEvent``)."""
    base = {"event": event, "createdAt": "2026-12-01T10:00:00.123Z", "hookId": "h1", "userAgent": "curl/8"}
    if event in INTERACTION:
        return {
            **base,
            "interactionEvent": "SignIn",
            "sessionId": "s1",
            "userId": "u1",
            "userIp": "203.0.113.9",
            "user": {"id": "u1", "username": "alice", "primaryEmail": "a@example.com"},
            "application": {"id": "app1", "type": "SPA", "name": "Web"},
        }
    if event == "Identifier.Lockout":
        return {**base, "ip": "203.0.113.9", "type": "email", "value": "a@example.com"}
    if event == "Message.RateLimited":
        return {**base, "ip": "203.0.113.9", "to": "+15550100", "type": "SignIn"}
    if event == "Grant.LimitExceeded":
        return {
            **base,
            "ip": "203.0.113.9",
            "userId": "u1",
            "applicationId": "app1",
            "revokedGrantIds": ["g1"],
        }
    data: dict = {"id": "u9", "username": "bob", "name": "Bob"} if event.startswith("User.") else {"id": "x1"}
    return {
        **base,
        "ip": "198.51.100.2",
        "path": "/api/users/u9" if event.startswith("User.") else "/api/roles/x1",
        "method": "DELETE" if event.endswith("Deleted") else "PATCH",
        "status": 204 if event.endswith("Deleted") else 200,
        "matchedRoute": "/users/:userId",
        "params": {"userId": "u9"},
        "data": {**data, "password": "hunter2-do-not-index"},
    }


def normalize(body: dict) -> dict:
    raw = json.dumps(body, separators=(",", ":")).encode()
    out = Normalizer().line(record_line(raw, body))
    assert isinstance(out, Document), out
    assert out.id == delivery_id(raw)
    return out.body


@pytest.mark.parametrize("event", HOOK_EVENTS)
def test_every_logto_event_maps_onto_ecs(event):
    doc = normalize(body_for(event))
    ev = doc["event"]
    assert ev["action"] == event and ev["kind"] == "event" and ev["dataset"] == "logto.webhook"
    assert doc["@timestamp"] == "2026-12-01T10:00:00.123Z"
    assert ev["category"], f"{event} has no ECS category"
    for cat in ev["category"]:
        assert set(ev["type"]) <= ALLOWED[cat], (event, cat, ev["type"])
    assert ev["outcome"] == ("failure" if event in EXCEPTION else "success")
    assert doc["logto"]["family"] == "webhook" and doc["logto"]["hook_id"] == "h1"
    assert doc["source"]["ip"] in ("203.0.113.9", "198.51.100.2")
    assert doc["user_agent"]["original"] == "curl/8"
    if event in INTERACTION:
        assert doc["user"] == {"id": "u1", "name": "alice"} and doc["logto"]["application_name"] == "Web"
    elif event.startswith("User."):
        assert doc["user"]["target"] == {"id": "u9", "name": "bob"}
        assert doc["related"]["user"] == ["u9", "bob"]
        assert doc["http"] == {
            "request": {"method": (ev["action"].endswith("Deleted") and "DELETE") or "PATCH"},
            "response": {"status_code": 204 if event.endswith("Deleted") else 200},
        }
        assert doc["url"]["path"] == "/api/users/u9" and doc["logto"]["route"] == "/users/:userId"
    if "data" in body_for(event):
        assert doc["logto"]["payload"]["data"]["password"] == "******"  # masked like table rows
    assert "hunter2" not in orjson.dumps(doc).decode()


def test_verbs_and_failed_management_calls():
    assert normalize(body_for("Role.Scopes.Updated"))["event"]["type"] == ["change", "admin"]
    assert normalize(body_for("Organization.Membership.Updated"))["event"]["type"] == ["change", "group"]
    assert normalize(body_for("Scope.Created"))["event"]["category"] == ["configuration"]
    failed = {**body_for("User.Data.Updated"), "status": 422}
    assert normalize(failed)["event"]["outcome"] == "failure"
    unknown = normalize({"event": "Future.Thing", "createdAt": "2026-12-01T10:00:00Z"})
    assert unknown["event"]["type"] == ["info"] and "category" not in unknown["event"]


def test_a_delivery_and_a_log_row_with_the_same_key_stay_apart():
    """``TrustedDevice.Created`` is a log key and a webhook event: ``origin`` decides."""
    row = Normalizer().line(
        orjson.dumps({"id": "l1", "key": "TrustedDevice.Created", "createdAt": 1764583200000, "payload": {}})
    )
    assert isinstance(row, Document) and row.body["event"]["dataset"] == "logto.audit"
    assert normalize(body_for("TrustedDevice.Created"))["event"]["dataset"] == "logto.webhook"


def test_a_pretty_printed_body_is_spooled_on_one_line():
    body = json.dumps(body_for("PostSignIn"), indent=2).encode()
    line = record_line(body, json.loads(body))
    assert b"\n" not in line and orjson.loads(line)["payload"]["userId"] == "u1"


def test_spool_rolls_segments_and_a_torn_tail_is_handed_over_once(tmp_path, monkeypatch):
    import shipper.sources.spool as spool_mod

    monkeypatch.setattr(spool_mod, "SEGMENT_BYTES", 100)
    s = Spool(tmp_path)
    for i in range(12):
        s.append(b'{"n":%d,"pad":"%s"}' % (i, b"x" * 20))
    assert len(s.segments()) >= 3
    s.close()
    with open(s.path(s.segments()[-1]), "ab") as fh:  # a crash mid-append
        fh.write(b'{"n":99,"pa')
    s2 = Spool(tmp_path)  # a restart writes a new segment, never after a torn line
    s2.append(b'{"n":12}')
    r = SpoolReader(s2, s2.segments()[0], 0)
    got = [f.raw for f in r.read(5)] + [f.raw for f in r.read(100)]
    assert [orjson.loads(x)["n"] for x in got if x.endswith(b"}")] == list(range(13))
    assert b'{"n":99,"pa' in got  # the torn tail is one line (the normalizer dead-letters it)
    assert r.read(10) == []
    s2.remove_before(r.segment)
    assert s2.segments() == [r.segment]


def test_webhook_config_insists_on_a_signing_key():
    with pytest.raises(ConfigError, match="signing_key_file"):
        parse_config({"inputs": [{"type": "webhook"}]}, "t.toml", env={})
    cfg = parse_config({"inputs": [{"type": "webhook", "require_signature": False}]}, "t.toml", env={})
    assert cfg.inputs[0].listen == "127.0.0.1:8786"
    with pytest.raises(ConfigError, match="tls_cert_file and tls_key_file"):
        parse_config(
            {"inputs": [{"type": "webhook", "signing_key": "k", "tls_cert_file": "/x"}]}, "t.toml", env={}
        )
    with pytest.raises(ConfigError, match="app_secret_file"):
        parse_config(
            {"inputs": [{"type": "logto-api", "endpoint": "https://t.logto.app", "app_id": "a"}]}, "t", env={}
        )


def test_names_from_interaction_deliveries_fill_the_names_cache():
    from shipper.enrich import Enricher

    e = Enricher([])  # no database, no Management API: the deliveries alone
    delivery = body_for("PostSignIn")
    raw = json.dumps(delivery).encode()
    e.annotate(record_line(raw, delivery))
    line = orjson.dumps(
        {
            "id": "l1",
            "key": "Interaction.SignIn.Submit",
            "createdAt": 1764583200000,
            "payload": {"userId": "u1", "applicationId": "app1"},
        }
    )
    row = Normalizer().line(e.annotate(line))
    assert isinstance(row, Document)
    assert row.body["user"]["name"] == "alice"
    assert row.body["logto"]["application_name"] == "Web" and row.body["logto"]["application_type"] == "SPA"


def test_a_webhook_input_alone_gives_the_daemon_names(tmp_path):
    """No database, no map, no Management API: the daemon still builds the names cache, and
    unknown ids are not queued for a source that does not exist."""
    from shipper.configfile import parse_config
    from shipper.wiring import build_enricher

    cfg = parse_config(
        {"inputs": [{"type": "webhook", "signing_key": "k"}], "state": {"dir": str(tmp_path)}}, "t"
    )
    e = build_enricher(cfg, start=False)
    assert e is not None and not e.sources
    delivery = body_for("PostSignIn")
    e.annotate(record_line(json.dumps(delivery).encode(), delivery))
    assert e.names("default", None, "u1") == {"user": "alice"}
    assert e.names("default", "app-unknown", "someone-else") == {}
    assert e._misses.empty()
    file_only = parse_config(
        {"inputs": [{"type": "file", "paths": ["x"]}], "state": {"dir": str(tmp_path)}}, "t"
    )
    assert build_enricher(file_only, start=False) is None
