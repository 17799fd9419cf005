"""The built-in detections on documents shaped like Logto's rows (normalized as the daemon does)."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from bench.generate import lines as generated_lines
from shipper.detect.rules import MINUTE, Detector
from shipper.detect.signals import read
from shipper.normalize import Normalizer
from shipper.normalize.document import Document

T0 = 1_764_583_200_000
NORMALIZER = Normalizer()
_ids = itertools.count()


def row(key: str, result: str, ms: int, ip: str = "203.0.113.7", **payload: Any) -> dict[str, Any]:
    rec = {
        "tenantId": "default",
        "id": f"log{next(_ids)}",
        "key": key,
        "createdAt": ms,
        "payload": {"result": result, "ip": ip, **payload},
    }
    d = NORMALIZER.record(rec)
    assert isinstance(d, Document), d
    return d.body


def feed(det: Detector, docs: list[tuple[dict[str, Any], int]]) -> list[Any]:
    return [a for body, ms in docs for a in det.observe(read(body, ms))]


def failed_password(ms: int, user: str | None = "u1", ip: str = "203.0.113.7", **extra: Any):
    """A failed password check, legacy interaction API (userId) or Experience API (identifier)."""
    error = {"code": "session.invalid_credentials", "message": "Invalid credentials."}
    if user is not None:
        key, payload = "Interaction.SignIn.Identifier.Password.Submit", {"userId": user}
    else:
        key, payload = "Interaction.SignIn.Verification.Password.Submit", {}
    return row(key, "Error", ms, ip, error=error, **payload, **extra), ms


def test_brute_force_fires_once_per_window_and_counts_the_rest():
    det = Detector()
    alerts = feed(det, [failed_password(T0 + i * 1000) for i in range(9)])
    assert alerts == []
    (alert,) = feed(det, [failed_password(T0 + 9_000)])
    assert alert.rule.id == "brute_force_user" and alert.entity == "u1" and alert.count == 10
    assert feed(det, [failed_password(T0 + 10_000 + i * 1000) for i in range(10)]) == []
    assert alert.count == 20 and alert.end_ms == T0 + 19_000  # updates counted into the open alert
    later = T0 + 6 * MINUTE  # a new window: a new burst is a new alert
    again = feed(det, [failed_password(later + i * 1000) for i in range(10)])
    assert [a.rule.id for a in again] == ["brute_force_user"]


def test_failures_spread_out_fire_nothing():
    det = Detector()
    assert feed(det, [failed_password(T0 + i * 40_000) for i in range(30)]) == []  # 7-8 per 5 min


def test_experience_api_failures_count_per_identifier_case_insensitively():
    det = Detector()
    docs = [
        failed_password(T0 + i, None, identifier={"type": "email", "value": ["A@x.io", "a@X.io"][i % 2]})
        for i in range(10)
    ]
    (alert,) = feed(det, docs)
    assert alert.rule.id == "brute_force_user" and alert.entity == "a@x.io"


def test_password_spray_counts_distinct_users_per_ip():
    det = Detector()
    spray = [failed_password(T0 + i * 1000, f"user{i}") for i in range(10)]
    assert [a.rule.id for a in feed(det, spray)] == ["password_spray_ip"]
    det = Detector()
    few_users = [failed_password(T0 + i * 100, f"user{i % 3}", ip="198.51.100.1") for i in range(27)]
    assert {a.rule.id for a in feed(det, few_users)} == set()  # 9 each: neither rule


def test_enumeration_needs_failures_for_accounts_that_do_not_exist():
    det = Detector()

    def lookup(i: int, code: str) -> tuple[dict[str, Any], int]:
        error = {"code": code, "message": "x"}
        ms = T0 + i * 1000
        return row("Interaction.SignIn.Identifier.Submit", "Error", ms, error=error, identifier=f"who{i}"), ms

    assert "enumeration_ip" not in {
        a.rule.id for a in feed(det, [lookup(i, "user.user_not_exist") for i in range(19)])
    }
    assert "enumeration_ip" in {a.rule.id for a in feed(det, [lookup(19, "user.user_not_exist")])}
    det = Detector()
    other = feed(det, [lookup(i, "session.invalid_credentials") for i in range(40)])
    assert "enumeration_ip" not in {a.rule.id for a in other}


def test_verification_codes_flood_and_pumping():
    det = Detector()
    key = "Interaction.SignIn.Verification.PhoneVerificationCode.Create"
    pumping = [(row(key, "Success", T0 + i, phone=f"+1555000{i:04d}"), T0 + i) for i in range(10)]
    assert [a.rule.id for a in feed(det, pumping)] == ["verification_pumping"]
    det = Detector()
    same = [(row(key, "Success", T0 + i, phone="+15550000001"), T0 + i) for i in range(20)]
    assert [a.rule.id for a in feed(det, same)] == ["verification_flood"]


def test_success_after_failures():
    def success(ms: int) -> tuple[dict[str, Any], int]:
        return row("Interaction.SignIn.Submit", "Success", ms, userId="u1"), ms

    det = Detector()
    assert feed(det, [failed_password(T0 + i * 1000) for i in range(4)] + [success(T0 + 10_000)]) == []
    det = Detector()
    alerts = feed(det, [failed_password(T0 + i * 1000) for i in range(5)] + [success(T0 + 10_000)])
    assert [(a.rule.id, a.entity, a.count) for a in alerts] == [("success_after_failures", "u1", 6)]
    det = Detector()  # the failures are older than 15 minutes: nothing
    assert feed(det, [failed_password(T0 + i * 1000) for i in range(5)] + [success(T0 + 16 * MINUTE)]) == []


def test_logto_security_events_alert_at_once():
    det = Detector()
    lockout = {
        "event": {"id": "wh-1", "action": "Identifier.Lockout", "outcome": "failure"},
        "user": {"id": "u9"},
    }
    (alert,) = det.observe(read(lockout, T0))
    assert alert.rule.id == "lockout" and alert.entity == "u9"
    assert det.observe(read(lockout, T0 + 1000)) == []  # throttled: one per user per window


def ordinary(n: int, seed: int, minutes: int) -> list[tuple[dict[str, Any], int]]:
    """``n`` generated records as documents, their times squeezed into ``minutes`` from T0."""
    bodies = []
    for raw in generated_lines(n, seed=seed):
        d = NORMALIZER.line(raw.rstrip(b"\n"))
        if isinstance(d, Document):
            bodies.append((d.body, d.epoch_ms))
    first, last = min(ms for _, ms in bodies), max(ms for _, ms in bodies)
    return [(b, T0 + (ms - first) * minutes * MINUTE // (last - first)) for b, ms in bodies]


def test_ordinary_traffic_fires_nothing():
    """20,000 generated records (sign-ins, token exchanges, ordinary single failures from 500
    users) squeezed into 2 hours fire no rule; attacks mixed into the same stream fire once each."""
    squeezed = ordinary(20_000, 7, 120)
    assert sum(read(b, ms).failed for b, ms in squeezed) > 500
    assert feed(Detector(), squeezed) == []
    attacks = [failed_password(T0 + 30 * MINUTE + i * 2000, "victim", ip="192.0.2.66") for i in range(12)]
    attacks += [
        failed_password(T0 + 60 * MINUTE + i * 2000, f"sprayed{i}", ip="192.0.2.99") for i in range(12)
    ]
    mixed = sorted(squeezed + attacks, key=lambda x: x[1])
    fired = [(a.rule.id, a.entity) for a in feed(Detector(), mixed)]
    assert fired == [("brute_force_user", "victim"), ("password_spray_ip", "192.0.2.99")]


def test_memory_is_bounded_by_the_key_cap_and_evictions_are_counted():
    det = Detector(max_keys=1000)
    body = orjson.loads(orjson.dumps(failed_password(T0)[0]))
    for i in range(50_000):
        body["source"]["ip"] = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        body["user"]["id"] = f"u{i}"
        det.observe(read(body, T0 + i))
    assert all(len(w) <= 1000 for w in det._windows.values())
    assert det.evicted >= 2 * (50_000 - 1000)  # brute_force_user and password_spray_ip each


def signed_in(ms: int, user: str = "u1", country: str | None = None, at: tuple[float, float] | None = None):
    ctx: dict[str, Any] = {}
    if country:
        ctx["country"] = country
    if at:
        ctx["latitude"], ctx["longitude"] = str(at[0]), str(at[1])
    return row("Interaction.SignIn.Submit", "Success", ms, userId=user, signInContext=ctx), ms


BERLIN, PARIS, SYDNEY = (52.52, 13.40), (48.86, 2.35), (-33.87, 151.21)


def test_a_country_new_for_the_user_alerts_once_it_has_a_history():
    det = Detector()
    day = 1440 * MINUTE
    assert feed(det, [signed_in(T0, country="DE")]) == []  # no history yet: learned
    assert feed(det, [signed_in(T0 + i * day, country="DE") for i in range(1, 20)]) == []
    (alert,) = feed(det, [signed_in(T0 + 20 * day, country="BR")])
    assert alert.rule.id == "new_country_user" and alert.entity == "u1"
    assert feed(det, [signed_in(T0 + 21 * day, country="BR")]) == []  # seen now
    assert feed(det, [signed_in(T0 + 21 * day, "u2", country="FR")]) == []  # u2's first sign-in
    # 31 days after the last German sign-in, Germany is new again for u1.
    assert [a.rule.id for a in feed(det, [signed_in(T0 + 50 * day, country="DE")])] == ["new_country_user"]
    assert len(det._windows["new_country_user"].recent("u1", T0 + 50 * day)) == 2  # one entry per country


def test_impossible_travel_needs_speed_and_distance():
    det = Detector()
    hour = 60 * MINUTE
    assert feed(det, [signed_in(T0, at=BERLIN), signed_in(T0 + 2 * hour, at=PARIS)]) == []  # 878 km in 2 h
    (alert,) = feed(det, [signed_in(T0 + 3 * hour, at=SYDNEY)])  # 16,960 km in an hour
    assert alert.rule.id == "impossible_travel" and alert.count == 1000
    near = (48.9, 2.5)  # 12 km from Paris, a minute later: geo-IP jitter, not travel
    det = Detector()
    assert feed(det, [signed_in(T0, at=PARIS), signed_in(T0 + 60_000, at=near)]) == []
    det = Detector()  # a day and a half apart: anywhere is reachable
    assert feed(det, [signed_in(T0, at=BERLIN), signed_in(T0 + 36 * hour, at=SYDNEY)]) == []


def test_the_rules_with_config_settings():
    from shipper.detect.rules import Setting, rules

    chosen = {
        r.id: r
        for r in rules(
            {"brute_force_user": Setting(threshold=3, window_ms=MINUTE), "lockout": Setting(False)}
        )
    }
    assert "lockout" not in chosen and chosen["brute_force_user"].threshold == 3
    assert (
        chosen["brute_force_user"].description
        == "3 or more failed sign-in steps for one user or identifier in 1 minute"
    )
    assert chosen["new_country_user"].description.endswith("in the previous 30 days")
    det = Detector(list(chosen.values()))
    assert [a.rule.id for a in feed(det, [failed_password(T0 + i) for i in range(3)])] == ["brute_force_user"]


def test_the_rules_cover_logtos_key_catalog():
    """Against ../shared/logto/event-keys.json (next to the developers' checkout): every
    sign-in step of both APIs counts when it fails, every verification code sent (sign-in,
    registration, password reset, MFA) counts, and Logto's security signals are all known."""
    from shipper.detect.signals import SECURITY_EVENTS, watched
    from tests.conftest import shared_or_skip

    keys = [k["key"] for k in orjson.loads(shared_or_skip("logto", "event-keys.json").read_bytes())["keys"]]
    sign_in = [k for k in keys if k.startswith("Interaction.SignIn.")]
    assert len(sign_in) > 40 and all(watched(k, "failure") for k in sign_in)
    assert not any(
        watched(k, "success")
        for k in sign_in
        if not k.endswith("VerificationCode.Create") and k != "Interaction.SignIn.Submit"
    )
    codes = [k for k in keys if k.endswith("VerificationCode.Create")]
    assert {k.split(".")[1] for k in codes} >= {"SignIn", "Register", "ForgotPassword"}
    assert all(watched(k, "success") for k in codes)
    hooks = {k for k in keys if k.startswith("TriggerHook.") and k.split(".", 1)[1] in SECURITY_EVENTS}
    assert hooks == {
        "TriggerHook.Identifier.Lockout",
        "TriggerHook.Message.RateLimited",
        "TriggerHook.Grant.LimitExceeded",
    }
    assert hooks <= set(SECURITY_EVENTS)


def test_forgetting_what_no_later_event_can_count_fires_the_same_alerts_with_far_fewer_keys():
    squeezed = ordinary(20_000, 9, 600)
    attacks = [failed_password(T0 + 300 * MINUTE + i * 2000, "victim", ip="192.0.2.66") for i in range(12)]
    stream = sorted(squeezed + attacks, key=lambda x: x[1])
    kept, forgetting = Detector(), Detector()
    most = 0
    fired: tuple[list[Any], list[Any]] = ([], [])
    for i, (body, ms) in enumerate(stream):
        fired[0].extend((a.rule.id, a.entity, a.count) for a in kept.observe(read(body, ms)))
        fired[1].extend((a.rule.id, a.entity, a.count) for a in forgetting.observe(read(body, ms)))
        if i % 100 == 0:
            forgetting.forget(ms)
            most = max(most, len(forgetting._windows["password_spray_ip"]))
    assert fired[0] == fired[1] and ("brute_force_user", "victim", 10) in fired[0]
    # Addresses are mostly seen once: kept, they pile up to max_keys; forgotten, a window's worth.
    assert len(kept._windows["password_spray_ip"]) > 500 and most * 4 < len(
        kept._windows["password_spray_ip"]
    )
