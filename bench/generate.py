"""Generate realistic Logto audit-log records (JSON lines), deterministic for a seed.

Mix modelled on a busy tenant: interaction steps, token exchanges (the bulk of traffic),
revocations, webhook deliveries, with ~15 % failures, real user agents, IPv4-mapped IPv6
addresses, OAuth params carrying the secrets the normalizer must mask, and both record shapes
(Management API with epoch-ms ``createdAt``; table rows with ISO ``created_at``).

    python -m bench.generate --count 200000 --out records.jsonl
"""

from __future__ import annotations

import random
import string
import sys
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

KEYS = [
    ("ExchangeTokenBy.RefreshToken", 30),
    ("ExchangeTokenBy.AuthorizationCode", 14),
    ("ExchangeTokenBy.ClientCredentials", 6),
    ("Interaction.Create", 8),
    ("Interaction.SignIn.Submit", 8),
    ("Interaction.SignIn.Verification.Password.Submit", 7),
    ("Interaction.SignIn.Verification.EmailVerificationCode.Create", 3),
    ("Interaction.SignIn.Verification.EmailVerificationCode.Submit", 3),
    ("Interaction.SignIn.Identifier.Submit", 4),
    ("Interaction.Register.Submit", 2),
    ("Interaction.Register.Verification.EmailVerificationCode.Submit", 1),
    ("Interaction.ForgotPassword.Submit", 1),
    ("Interaction.End", 6),
    ("RevokeToken", 2),
    ("RevokeGrants", 1),
    ("TriggerHook.PostSignIn", 2),
    ("JwtCustomizer.AccessToken", 1),
    ("TrustedDevice.Used", 1),
    ("Unknown", 1),
]
UAS = [
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Safari/537.36",
        ("Chrome", "126.0.0.0", "126"),
        ("Mac OS", "10.15.7"),
        ("Macintosh", "Apple", None),
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        ("Mobile Safari", "17.5", "17"),
        ("iOS", "17.5"),
        ("iPhone", "Apple", "mobile"),
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ("Firefox", "128.0", "128"),
        ("Windows", "10"),
        (None, None, None),
    ),
    ("okhttp/4.12.0", (None, None, None), (None, None), (None, None, None)),
]
ERRORS = [
    {"code": "session.invalid_credentials", "message": "Invalid credentials.", "data": {}},
    {"code": "guard.invalid_input", "message": "The request input is invalid."},
    '{"name":"InvalidGrant","message":"grant request is invalid","stack":"InvalidGrant: '
    "grant request is invalid\\n    at Object.handler (/etc/logto/packages/core/src/oidc/grants/"
    'refresh-token.ts:121:11)"}',
    "Request timed out",
]
COUNTRIES = [
    ("US", "San Francisco", 37.77, -122.42),
    ("DE", "Berlin", 52.52, 13.40),
    ("JP", "Tokyo", 35.68, 139.69),
    ("BR", "Sao Paulo", -23.55, -46.63),
]


def _nanoid(rng: random.Random, n: int = 21) -> str:
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=n))


def _ip(rng: random.Random) -> str:
    a, b, c = rng.randrange(1, 223), rng.randrange(256), rng.randrange(256)
    v4 = f"{a}.{b}.{c}.{rng.randrange(1, 255)}"
    r = rng.random()
    if r < 0.5:
        return "::ffff:" + v4
    if r < 0.9:
        return v4
    return f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}"


def _payload(rng: random.Random, key: str, users: list[str], apps: list[str]) -> dict[str, Any]:
    failed = rng.random() < 0.15
    p: dict[str, Any] = {"key": key, "result": "Error" if failed else "Success", "ip": _ip(rng)}
    ua, browser, os_, device = rng.choice(UAS)
    p["userAgent"] = ua
    if browser[0]:
        p["userAgentParsed"] = {
            "ua": ua,
            "browser": {"name": browser[0], "version": browser[1], "major": browser[2]},
            "device": {k: v for k, v in zip(("model", "vendor", "type"), device, strict=True) if v},
            "engine": {"name": "Blink", "version": browser[1]},
            "os": {"name": os_[0], "version": os_[1]},
            "cpu": {"architecture": "amd64"},
        }
    p["applicationId"] = rng.choice(apps)
    if key.startswith("ExchangeTokenBy."):
        grant = {
            "RefreshToken": "refresh_token",
            "AuthorizationCode": "authorization_code",
            "ClientCredentials": "client_credentials",
        }.get(key.split(".")[1], "unknown")
        params: dict[str, Any] = {"grant_type": grant, "client_id": p["applicationId"]}
        if grant == "refresh_token":
            params["refresh_token"] = _nanoid(rng, 43)
        elif grant == "authorization_code":
            params["code"] = _nanoid(rng, 43)
            params["code_verifier"] = _nanoid(rng, 43)
            params["redirect_uri"] = "https://app.example.com/callback"
        else:
            params["client_secret"] = _nanoid(rng, 32)
        p["params"] = params
        p["tokenTypes"] = ["AccessToken", "RefreshToken"]
        p["scope"] = "openid profile offline_access"
    else:
        p["sessionId"] = _nanoid(rng)
        p["interactionEvent"] = key.split(".")[1] if key.count(".") >= 2 else "SignIn"
    if not key.startswith("ExchangeTokenBy.ClientCredentials"):
        p["userId"] = rng.choice(users)
    if key.startswith("Interaction.") and rng.random() < 0.3:
        drawn = rng.choice(COUNTRIES)  # drawn either way: the rest of the stream stays as it was
        # People sign in from home: a user's location is the same every time (the detections'
        # benign stream; travel is what the attack scenarios add).
        home = COUNTRIES[zlib.crc32(p["userId"].encode()) % len(COUNTRIES)] if "userId" in p else drawn
        country, city, lat, lon = home
        p["signInContext"] = {
            "country": country,
            "city": city,
            "latitude": str(lat),
            "longitude": str(lon),
            "botScore": str(rng.randrange(100)),
        }
    if "Password" in key:
        p["interaction"] = {
            "profile": {"passwordEncrypted": "$argon2i$v=19$m=4096,t=10,p=1$" + _nanoid(rng, 40)}
        }
    if key.startswith("TriggerHook."):
        p["hookId"] = _nanoid(rng)
        p["hookRequest"] = {
            "body": {
                "event": key.split(".", 1)[1],
                "application": {"id": p["applicationId"], "name": "Web app"},
            }
        }
    if failed:
        p["error"] = rng.choice(ERRORS)
    return p


def records(
    count: int, seed: int = 1, start: datetime | None = None, span: timedelta = timedelta(days=3)
) -> Iterator[dict[str, Any]]:
    """Yield ``count`` records, timestamps spread over ``span`` from ``start``, in time order."""
    rng = random.Random(seed)
    start = start or datetime(2025, 8, 20, tzinfo=UTC)
    keys = [k for k, _ in KEYS]
    weights = [w for _, w in KEYS]
    users = [_nanoid(rng, 12) for _ in range(500)]
    apps = [_nanoid(rng, 21) for _ in range(8)]
    step = span / max(count, 1)
    for i in range(count):
        key = rng.choices(keys, weights)[0]
        t = start + step * i
        payload = _payload(rng, key, users, apps)
        if i % 2:
            yield {
                "tenantId": "default",
                "id": f"{_nanoid(rng, 13)}{i:08d}",
                "key": key,
                "payload": payload,
                "createdAt": int(t.timestamp() * 1000),
            }
        else:
            yield {
                "tenant_id": "default",
                "id": f"{_nanoid(rng, 13)}{i:08d}",
                "key": key,
                "payload": payload if i % 10 else orjson.dumps(payload).decode(),
                "created_at": t.isoformat(timespec="microseconds"),
            }


def lines(count: int, seed: int = 1, **kw: Any) -> Iterator[bytes]:
    for r in records(count, seed, **kw):
        yield orjson.dumps(r) + b"\n"


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="-")
    args = ap.parse_args(argv)
    out = sys.stdout.buffer if args.out == "-" else open(args.out, "wb")  # noqa: SIM115
    with out:
        buf = []
        for line in lines(args.count, args.seed):
            buf.append(line)
            if len(buf) >= 4096:
                out.write(b"".join(buf))
                buf.clear()
        out.write(b"".join(buf))


if __name__ == "__main__":
    main()
