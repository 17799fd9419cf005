from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.generate import lines as generated_lines
from shipper.normalize import Document, Normalizer, Rejection
from shipper.normalize.categories import categorize, family
from shipper.normalize.mask import DEFAULT_RULES, MASK
from shipper.normalize.values import format_ms, normalize_ip, parse_time
from tests.conftest import shared_or_skip

N = Normalizer()

# ECS 8.x: allowed event.type values per event.category (ecs/generated/ecs/ecs_flat.yml).
ECS_ALLOWED = {
    "authentication": {"start", "end", "info"},
    "session": {"start", "end", "info"},
    "iam": {"admin", "change", "creation", "deletion", "group", "info", "user"},
    "web": {"access", "error", "info"},
    "configuration": {"access", "change", "creation", "deletion", "info"},
}


def norm(obj) -> Document:
    r = N.line(orjson.dumps(obj))
    assert isinstance(r, Document), r
    return r


def api(key="Interaction.SignIn.Submit", payload=None, **kw):
    rec = {
        "tenantId": "default",
        "id": "log1",
        "key": key,
        "createdAt": 1755763200123,
        "payload": {"key": key, "result": "Success"} if payload is None else payload,
    }
    rec.update(kw)
    return rec


class TestShapes:
    def test_management_api_shape(self):
        d = norm(api())
        assert d.body["@timestamp"] == "2025-08-21T08:00:00.123Z"
        assert d.id == "log1" and d.body["event"]["id"] == "log1"
        assert d.body["event"]["action"] == "Interaction.SignIn.Submit"
        assert d.body["organization"] == {"id": "default"}
        assert d.body["logto"]["tenant_id"] == "default"
        assert d.body["event"]["kind"] == "event"
        assert d.body["event"]["module"] == "logto"
        assert d.body["event"]["dataset"] == "logto.audit"

    def test_table_row_shape_with_offset(self):
        d = norm(
            {
                "tenant_id": "t1",
                "id": "x",
                "key": "RevokeToken",
                "created_at": "2025-08-21T10:00:00.123456+02:00",
                "payload": {"result": "Error"},
            }
        )
        assert d.body["@timestamp"] == "2025-08-21T08:00:00.123Z"
        assert d.body["event"]["outcome"] == "failure"
        assert d.body["organization"]["id"] == "t1"

    @pytest.mark.parametrize("shape", ["api", "row"])
    def test_payload_as_json_string(self, shape):
        payload = {"result": "Success", "userId": "u1", "ip": "203.0.113.9"}
        rec = (
            api(payload=json.dumps(payload))
            if shape == "api"
            else {
                "tenant_id": "default",
                "id": "r",
                "key": "Interaction.End",
                "created_at": "2025-08-21T08:00:00Z",
                "payload": json.dumps(payload),
            }
        )
        d = norm(rec)
        assert d.body["user"]["id"] == "u1"
        assert d.body["source"]["ip"] == "203.0.113.9"
        assert d.body["logto"]["payload"]["userId"] == "u1"

    def test_missing_payload_is_empty_and_outcome_unknown(self):
        rec = api()
        del rec["payload"]
        d = norm(rec)
        assert d.body["event"]["outcome"] == "unknown"
        assert d.body["logto"]["payload"] == {}

    def test_unknown_keys_kept_and_dotted_keys_survive(self):
        payload = {
            "result": "Success",
            "newField": {"a": 1},
            "prompt": {"details": {"missingResourceScopes": {"https://api.example.com": ["read"]}}},
        }
        d = norm(api(payload=payload))
        assert d.body["logto"]["payload"]["newField"] == {"a": 1}
        assert d.body["logto"]["payload"]["prompt"]["details"]["missingResourceScopes"] == {
            "https://api.example.com": ["read"]
        }

    def test_key_not_in_catalog_is_valid(self):
        d = norm(api(key="Brand.New.Thing"))
        assert d.body["event"]["action"] == "Brand.New.Thing"
        assert d.body["logto"]["family"] == "other"
        assert "category" not in d.body["event"]

    def test_epoch_ms_given_as_string(self):
        assert norm(api(createdAt="1755763200123")).body["@timestamp"] == "2025-08-21T08:00:00.123Z"

    def test_naive_iso_is_utc(self):
        assert parse_time("2025-08-21T08:00:00") == 1755763200000

    def test_format_ms(self):
        assert format_ms(0) == "1970-01-01T00:00:00.000Z"
        assert format_ms(1755763200005) == "2025-08-21T08:00:00.005Z"
        assert format_ms(253402300799999) == "9999-12-31T23:59:59.999Z"

    @given(st.integers(0, 253402300799999))
    def test_format_ms_matches_datetime(self, ms):
        from datetime import UTC, datetime, timedelta

        when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
        want = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
        assert format_ms(ms) == want

    def test_non_ascii_digits_are_not_a_time(self):
        # "²".isdigit() is true; int("²") raises: found by the properties below
        assert parse_time("²") is None
        assert isinstance(N.line(orjson.dumps(api(createdAt="١٢٣"))), Rejection)


def _ip_reference(raw: str) -> str | None:
    """The socket-only answer (what normalize_ip computed before its regex fast path)."""
    import socket

    s = raw.strip()
    for fam in (socket.AF_INET, socket.AF_INET6):
        try:
            packed = socket.inet_pton(fam, s)
        except (OSError, ValueError):
            continue
        if fam == socket.AF_INET6 and packed[:12] == b"\0" * 10 + b"\xff\xff":
            return socket.inet_ntop(socket.AF_INET, packed[12:])
        return socket.inet_ntop(fam, packed)
    if s[:7].lower() == "::ffff:":
        return _ip_reference(s[7:]) if "." in s and ":" not in s[7:] else None
    return None


@settings(max_examples=300)
@given(
    st.one_of(
        st.tuples(*[st.integers(0, 300)] * 4).map(lambda t: ".".join(map(str, t))),
        st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: "::ffff:" + ".".join(map(str, t))),
        st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: "::FFFF:" + ".".join(f"{x:03d}" for x in t)),
        st.ip_addresses().map(str),
        st.text(alphabet="0123456789.:abcdefABCDEF ", max_size=24),
    )
)
def test_normalize_ip_fast_path_agrees_with_sockets(raw):
    assert normalize_ip(raw) == _ip_reference(raw)


class TestEcsFields:
    def test_ipv4_mapped_ipv6_unwrapped(self):
        d = norm(api(payload={"result": "Success", "ip": "::ffff:203.0.113.7"}))
        assert d.body["source"]["ip"] == "203.0.113.7" == d.body["client"]["ip"]

    def test_ipv6_kept(self):
        assert normalize_ip("2001:DB8::1") == "2001:db8::1"

    @pytest.mark.parametrize(
        "raw",
        [
            "1.2.3.4",
            "::ffff:203.0.113.7",
            "::FFFF:1.2.3.4",
            "2001:DB8::1",
            "2001:db8:0:0:0:0:0:1",
            "::1",
            "::ffff:0:1.2.3.4",
            "::ffff:c000:0280",
            " 10.0.0.1 ",
            "1.2.3",
            "01.2.3.4",
            "256.1.1.1",
            "x",
            "",
        ],
    )
    def test_ip_matches_ipaddress(self, raw):
        import ipaddress

        try:
            ip = ipaddress.ip_address(raw.strip())
            want = str(ip.ipv4_mapped) if getattr(ip, "ipv4_mapped", None) else str(ip)
        except ValueError:
            want = None
        assert normalize_ip(raw) == want

    def test_invalid_ip_kept_under_logto_and_flagged(self):
        d = norm(api(payload={"result": "Success", "ip": "not-an-ip, 10.0.0.1"}))
        assert "source" not in d.body
        assert d.body["logto"]["ip"] == "not-an-ip, 10.0.0.1"
        assert d.body["tags"] == ["logto_invalid_ip"]

    def test_user_agent(self):
        payload = {
            "result": "Success",
            "userAgent": "UA/1",
            "userAgentParsed": {
                "ua": "UA/1",
                "browser": {"name": "Chrome", "version": "126.0", "major": "126"},
                "device": {"model": "iPhone", "vendor": "Apple", "type": "mobile"},
                "engine": {"name": "Blink"},
                "os": {"name": "iOS", "version": "17.5"},
            },
        }
        ua = norm(api(payload=payload)).body["user_agent"]
        assert ua == {
            "original": "UA/1",
            "name": "Chrome",
            "version": "126.0",
            "os": {"name": "iOS", "version": "17.5"},
            "device": {"name": "iPhone"},
        }

    def test_geo_from_sign_in_context(self):
        payload = {
            "result": "Success",
            "ip": "1.2.3.4",
            "signInContext": {
                "country": "DE",
                "city": "Berlin",
                "latitude": "52.52",
                "longitude": 13.4,
                "botScore": "3",
            },
        }
        geo = norm(api(payload=payload)).body["source"]["geo"]
        assert geo == {
            "country_iso_code": "DE",
            "city_name": "Berlin",
            "location": {"lat": 52.52, "lon": 13.4},
        }

    def test_geo_out_of_range_location_dropped(self):
        payload = {"result": "Success", "signInContext": {"latitude": "95", "longitude": "0"}}
        assert "source" not in norm(api(payload=payload)).body

    def test_logto_ids(self):
        payload = {
            "result": "Success",
            "applicationId": "app",
            "sessionId": "s",
            "interactionEvent": "SignIn",
            "hookId": "h",
            "userId": "u",
        }
        b = norm(api(payload=payload)).body
        assert b["logto"]["application_id"] == "app"
        assert b["logto"]["session_id"] == "s"
        assert b["logto"]["interaction_event"] == "SignIn"
        assert b["logto"]["hook_id"] == "h"
        assert b["user"] == {"id": "u"}

    def test_error_object(self):
        b = norm(
            api(
                payload={
                    "result": "Error",
                    "error": {
                        "code": "session.invalid_credentials",
                        "message": "Invalid credentials.",
                        "data": {},
                    },
                }
            )
        ).body
        assert b["error"] == {
            "code": "session.invalid_credentials",
            "message": "Invalid credentials.",
        }

    def test_error_json_string_from_token_endpoint(self):
        err = json.dumps(
            {
                "name": "InvalidGrant",
                "message": "grant request is invalid",
                "stack": "InvalidGrant: grant request is invalid\n    at x.ts:1:2",
            }
        )
        b = norm(api(key="ExchangeTokenBy.RefreshToken", payload={"result": "Error", "error": err})).body
        assert b["error"]["message"] == "grant request is invalid"
        assert b["error"]["type"] == "InvalidGrant"
        assert b["error"]["stack_trace"].startswith("InvalidGrant")
        assert b["logto"]["payload"]["error"]["name"] == "InvalidGrant"  # decoded for the details view

    def test_error_plain_string(self):
        b = norm(api(payload={"result": "Error", "error": "Request timed out"})).body
        assert b["error"] == {"message": "Request timed out"}


def all_catalog_keys():
    path = shared_or_skip("logto", "event-keys.json")
    return json.loads(path.read_text())["keys"]


REPRESENTATIVE = [
    "Interaction.Create",
    "Interaction.SignIn.Submit",
    "Interaction.SignIn.Verification.Password.Submit",
    "Interaction.Register.Submit",
    "Interaction.Register.Verification.Social.Create",
    "Interaction.ForgotPassword.Submit",
    "ExchangeTokenBy.RefreshToken",
    "RevokeToken",
    "RevokeGrants",
    "JwtCustomizer.AccessToken",
    "SamlApplication.Callback",
    "Action.PostSignIn",
    "TrustedDevice.Created",
    "TrustedDevice.Used",
    "TriggerHook.PostSignIn",
    "Unknown",
]


class TestCategories:
    @pytest.mark.parametrize(
        ("key", "outcome", "category", "type_"),
        [
            ("Interaction.SignIn.Submit", "success", ("authentication", "session"), ("start",)),
            ("Interaction.SignIn.Submit", "failure", ("authentication",), ("info",)),
            (
                "Interaction.SignIn.Verification.Password.Submit",
                "failure",
                ("authentication",),
                ("info",),
            ),
            ("Interaction.Register.Submit", "success", ("iam",), ("creation", "user")),
            ("Interaction.Register.Identifier.Submit", "success", ("iam",), ("creation", "user")),
            (
                "Interaction.ForgotPassword.Verification.EmailVerificationCode.Submit",
                "success",
                ("iam",),
                ("change", "user"),
            ),
            ("ExchangeTokenBy.AuthorizationCode", "success", ("authentication",), ("info",)),
            ("RevokeToken", "success", ("session",), ("end",)),
            ("RevokeGrants", "success", ("session",), ("end",)),
            ("TriggerHook.PostSignIn", "failure", ("web",), ("error",)),
        ],
    )
    def test_documented_mapping(self, key, outcome, category, type_):
        assert categorize(key, outcome) == (category, type_)

    @pytest.mark.parametrize("key", REPRESENTATIVE)
    @pytest.mark.parametrize("outcome", ["success", "failure", "unknown"])
    def test_representatives_are_ecs_allowed(self, key, outcome):
        self._check(key, outcome)

    def test_every_catalog_key_is_ecs_allowed_and_family_matches(self):
        for entry in all_catalog_keys():
            assert family(entry["key"]) == entry["family"], entry
            for outcome in ("success", "failure", "unknown"):
                self._check(entry["key"], outcome)

    @staticmethod
    def _check(key, outcome):
        category, type_ = categorize(key, outcome)
        for c in category:
            assert set(type_) <= ECS_ALLOWED[c], (key, outcome, category, type_)
        assert type_


class TestMasking:
    @pytest.mark.parametrize(
        "key",
        [
            "authorization",
            "Authorization",
            "token",
            "refresh_token",
            "accessToken",
            "subject_token",
            "id-token",
            "client_secret",
            "applicationSecretValue",
            "password",
            "passwordEncrypted",
            "newPassword",
            "apiKey",
            "api_key",
            "privateKey",
            "private-key",
            "credentials",
            "credentialId",
            "cookie",
            "Set-Cookie",
        ],
    )
    def test_secret_keys_masked_anywhere(self, key):
        payload = {"result": "Success", "deep": {"list": [{key: "s3cr3t-value"}]}}
        b = norm(api(payload=payload)).body
        assert b["logto"]["payload"]["deep"]["list"][0][key] == MASK
        assert b"s3cr3t-value" not in orjson.dumps(b)

    @pytest.mark.parametrize("key", ["tokenTypes", "grantId", "userId", "code", "scope", "tokens_issued_at"])
    def test_non_secret_keys_kept(self, key):
        b = norm(api(payload={"result": "Success", key: "v"})).body
        assert b["logto"]["payload"][key] == "v"

    def test_booleans_and_nulls_not_masked(self):
        b = norm(api(payload={"result": "Success", "hasPassword": True, "password": None})).body
        assert b["logto"]["payload"]["hasPassword"] is True
        assert b["logto"]["payload"]["password"] is None

    def test_objects_under_secret_keys_masked_whole(self):
        b = norm(api(payload={"result": "Success", "token": {"value": "abc"}})).body
        assert b["logto"]["payload"]["token"] == MASK

    def test_oauth_params_code_and_verifier(self):
        payload = {
            "result": "Error",
            "params": {
                "code": "authcode",
                "code_verifier": "pkce",
                "grant_type": "authorization_code",
            },
            "error": {"code": "oidc.invalid_grant", "message": "m"},
        }
        b = norm(api(key="ExchangeTokenBy.AuthorizationCode", payload=payload)).body
        p = b["logto"]["payload"]
        assert p["params"]["code"] == MASK and p["params"]["code_verifier"] == MASK
        assert p["params"]["grant_type"] == "authorization_code"
        assert p["error"]["code"] == "oidc.invalid_grant"
        assert b["error"]["code"] == "oidc.invalid_grant"

    def test_legacy_password_hash_locations(self):
        payload = {
            "result": "Success",
            "interaction": {"profile": {"passwordEncrypted": "$argon2i$x"}},
            "verification": {"passwordEncrypted": "$argon2i$y"},
        }
        p = norm(api(payload=payload)).body["logto"]["payload"]
        assert p["interaction"]["profile"]["passwordEncrypted"] == MASK
        assert p["verification"]["passwordEncrypted"] == MASK

    def test_secret_inside_json_string_error_is_masked(self):
        err = json.dumps({"message": "m", "data": {"client_secret": "leak"}})
        b = norm(api(payload={"result": "Error", "error": err})).body
        assert b"leak" not in orjson.dumps(b)

    def test_extra_rules_add_but_cannot_remove(self):
        rules = DEFAULT_RULES.extended(equal=["otp"], contain=["pin"])
        n = Normalizer(rules)
        r = n.line(
            orjson.dumps(api(payload={"result": "Success", "otp": "1", "userPin": "2", "password": "3"}))
        )
        assert isinstance(r, Document)
        p = r.body["logto"]["payload"]
        assert p["otp"] == p["userPin"] == p["password"] == MASK

    def test_input_not_modified(self):
        payload = {"password": "x"}
        N.masker.mask(payload)
        assert payload == {"password": "x"}


class TestRejections:
    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            (b"{not json", "invalid_json"),
            (b'{"id": "a\xff"}', "invalid_utf8"),
            (b"[1,2]", "not_an_object"),
            (b'"str"', "not_an_object"),
            (b'{"key":"k","createdAt":1}', "missing_id"),
            (b'{"id":"","key":"k","createdAt":1}', "missing_id"),
            (b'{"id":"a","createdAt":1}', "missing_key"),
            (b'{"id":"a","key":"k"}', "missing_time"),
            (b'{"id":"a","key":"k","createdAt":"yesterday"}', "invalid_time"),
            (b'{"id":"a","key":"k","createdAt":true}', "invalid_time"),
            (b'{"id":"a","key":"k","createdAt":-5}', "invalid_time"),
            (b'{"id":"a","key":"k","createdAt":1,"payload":"{oops"}', "invalid_payload"),
            (b'{"id":"a","key":"k","createdAt":1,"payload":[1]}', "invalid_payload"),
            (b'{"id":"' + b"x" * 600 + b'","key":"k","createdAt":1}', "invalid_id"),
        ],
    )
    def test_bad_lines(self, raw, reason):
        r = N.line(raw)
        assert isinstance(r, Rejection)
        assert r.reason == reason
        assert r.raw == raw
        assert raw.decode("utf-8", "replace")[:8] not in r.detail or reason == "invalid_time"

    def test_too_long(self):
        n = Normalizer(max_line_bytes=100)
        r = n.line(orjson.dumps(api(payload={"result": "Success", "pad": "x" * 200})))
        assert isinstance(r, Rejection) and r.reason == "line_too_long"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
record_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=30), st.integers()),
        "key": st.one_of(st.sampled_from(REPRESENTATIVE), st.text(max_size=20)),
        "createdAt": st.one_of(st.integers(min_value=-10, max_value=2**60), st.text(max_size=30)),
        "created_at": st.one_of(st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=10)),
        "tenantId": json_values,
        "payload": st.one_of(json_values, json_values.map(json.dumps)),
    },
)


class TestProperties:
    @settings(max_examples=300, deadline=None)
    @given(st.one_of(json_values, record_like))
    def test_any_json_yields_document_or_rejection(self, value):
        r = N.line(json.dumps(value).encode())
        assert isinstance(r, Document | Rejection)
        if isinstance(r, Document):
            orjson.dumps(r.body)  # always serializable
            assert r.body["event"]["id"] == r.id
            assert r.body["@timestamp"].endswith("Z")

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=200))
    def test_any_bytes_never_raise(self, raw):
        assert isinstance(N.line(raw), Document | Rejection)

    @settings(max_examples=200, deadline=None)
    @given(
        st.dictionaries(
            st.sampled_from(["password", "refresh_token", "clientSecret", "apiKey", "x", "y"]),
            st.text(min_size=1, max_size=10).map(lambda s: "SECRET" + s),
            min_size=1,
        )
    )
    def test_no_secret_value_survives(self, secrets):
        payload = {
            "result": "Success",
            "params": {**secrets, "code": "SECRETcode"},
            "nested": [secrets],
        }
        p = norm(api(payload=payload)).body["logto"]["payload"]
        for k in secrets:
            expected = MASK if DEFAULT_RULES.is_secret(k) else secrets[k]
            assert p["params"][k] == expected
            assert p["nested"][0][k] == expected
        assert p["params"]["code"] == MASK


def test_generated_records_all_normalize():
    for line in generated_lines(500, seed=3):
        r = N.line(line.rstrip(b"\n"))
        assert isinstance(r, Document), r
        blob = orjson.dumps(r.body)
        assert b"$argon2i$" not in blob


# -- payloads shaped for the flattened mapping ----------------------------------------------------

_keys = st.one_of(
    st.sampled_from(["a", "password", "params", "code", "x\0y", "\0", "k" * 1200, "é" * 400]),
    st.text(max_size=6),
)
_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=40,
)


def _nest(depth: int, inner: object) -> object:
    for i in range(depth):
        inner = {f"n{i}": inner}
    return inner


def _flattened_accepts(value: object, keys: int = 0) -> None:
    """What ``FlattenedFieldParser`` checks (and the test server with it): at most 20 keys per
    path, no ``\\0`` in a key, keys short enough that ``path\\0value`` stays under 32,766 bytes."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert "\0" not in k and len(k.encode()) <= 1000
            assert keys + 1 <= 20
            _flattened_accepts(v, keys + 1)
    elif isinstance(value, list):
        for v in value:
            _flattened_accepts(v, keys)


@settings(max_examples=300, deadline=None)
@given(payload=st.dictionaries(_keys, _json, max_size=4), depth=st.integers(0, 30))
def test_every_payload_is_shaped_for_flattened_and_stays_masked(payload, depth):
    n = Normalizer(native=None)
    wrapped = {"outer": _nest(depth, payload), "password": "p-secret"}
    d = n.record({"id": "1", "key": "K", "createdAt": 1, "payload": wrapped})
    assert isinstance(d, Document)
    out = d.body["logto"]["payload"]
    _flattened_accepts(out)
    assert out["password"] == MASK
    text = orjson.dumps(out).decode()
    assert "p-secret" not in text
    reshaped = "logto_payload_reshaped" in d.body.get("tags", [])
    # untouched payloads stay byte-identical to the masked input; reshaped ones say so
    plain = Normalizer(native=None).masker
    plain_out, _ = plain.mask(wrapped)
    assert reshaped == (plain.reshaped > 0)
    if not reshaped:
        assert out == plain_out


def test_deep_payload_keeps_the_cut_part_as_masked_json_text():
    n = Normalizer(native=None)
    payload = {"a": _nest(25, {"token": "t-secret", "v": 1})}
    out = n.record({"id": "1", "key": "K", "createdAt": 1, "payload": payload}).body["logto"]["payload"]
    node = out["a"]
    for i in range(24, 5, -1):  # a, n24 ... n6: 20 keys
        node = node[f"n{i}"]
    assert isinstance(node, str)
    assert orjson.loads(node) == _nest(6, {"token": MASK, "v": 1})  # masked inside the text too


def test_objects_deeper_than_orjson_writes_are_kept_as_text():
    payload = _nest(600, "leaf")  # orjson writes 255 levels: the text comes from the stdlib
    out = Normalizer(native=None).record({"id": "1", "key": "K", "createdAt": 1, "payload": payload})
    node = out.body["logto"]["payload"]
    for i in range(599, 579, -1):  # 20 keys
        node = node[f"n{i}"]
    assert orjson.loads(node) == _nest(580, "leaf")
