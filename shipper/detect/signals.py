"""What rules look at in a document: a ``Signal`` (plain data, built once per document)."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import orjson

SIGN_IN = "Interaction.SignIn."
# Error codes of identifier lookups that found no account (what enumeration produces).
NO_SUCH_USER = frozenset({"user.user_not_exist", "user.identity_not_exist", "session.not_found"})
# Logto's own security signals: webhook events and their log keys.
SECURITY_EVENTS = {
    "Identifier.Lockout": "lockout",
    "TriggerHook.Identifier.Lockout": "lockout",
    "Message.RateLimited": "rate_limited",
    "TriggerHook.Message.RateLimited": "rate_limited",
    "Grant.LimitExceeded": "grant_limit",
    "TriggerHook.Grant.LimitExceeded": "grant_limit",
}


@dataclass(frozen=True, slots=True)
class Signal:
    """One event as rules see it. ``actor`` is the user id, else the identifier that was tried
    (an email, a phone, a username: failures for unknown accounts have no user id)."""

    ms: int
    event_id: str
    action: str
    failed: bool
    succeeded: bool
    actor: str | None
    user_id: str | None
    ip: str | None
    error_code: str | None
    code_to: str | None  # where a verification code was sent (email or phone)
    country: str | None
    location: tuple[float, float] | None = None  # (lat, lon) of source.geo.location


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _identifier(payload: Any) -> str | None:
    """The identifier tried: ``{"type", "value"}`` (Experience API) or a string, in the payload
    or its ``params`` (or the payload itself: the ``Identifier.Lockout`` webhook's); lower-cased
    (emails and usernames are case-insensitive in Logto)."""
    for v in (_get(payload, "identifier"), _get(payload, "params", "identifier"), payload):
        if isinstance(v, dict):
            v = v.get("value")
        if isinstance(v, str) and v:
            return v.lower()
    return None


def read(doc: dict[str, Any], ms: int, doc_id: str = "") -> Signal:
    """The signal of a normalized document (``ms``: its time, epoch milliseconds; ``doc_id``:
    its id in the index, the event's id where it has no ``event.id``)."""
    event = doc.get("event") or {}
    action = event.get("action") or ""
    outcome = event.get("outcome")
    payload = _get(doc, "logto", "payload")
    user_id = _get(doc, "user", "id")
    target = None
    if action.endswith("VerificationCode.Create"):  # a code sent: to this email or phone
        for v in (_get(payload, "email"), _get(payload, "phone"), _identifier(payload)):
            if isinstance(v, str) and v:
                target = v.lower()
                break
    return Signal(
        ms=ms,
        event_id=str(event.get("id") or doc_id),
        action=action,
        failed=action.startswith(SIGN_IN) and outcome == "failure",
        # a session started (a successful Interaction.SignIn.Submit, a PostSignIn delivery)
        succeeded=outcome == "success" and "start" in (event.get("type") or []),
        actor=user_id or _identifier(payload),
        user_id=user_id,
        ip=_get(doc, "source", "ip"),
        error_code=_get(doc, "error", "code"),
        code_to=target,
        country=_get(doc, "source", "geo", "country_iso_code"),
        location=_point(_get(doc, "source", "geo", "location")),
    )


def _point(v: Any) -> tuple[float, float] | None:
    if isinstance(v, dict):
        lat, lon = v.get("lat"), v.get("lon")
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            return float(lat), float(lon)
    return None


def relevant(s: Signal) -> bool:
    """Does any rule look at this signal?"""
    return s.failed or s.succeeded or s.code_to is not None or s.action in SECURITY_EVENTS


# Byte patterns at least one of which every relevant document's JSON holds (a superset: what
# they find is parsed and ``relevant`` decides). Most documents hold none, so detection costs
# a few ``bytes.find`` per block, not a parse per document.
MARKERS = (
    b'"outcome":"failure"',
    b'"type":["start"',
    b'VerificationCode.Create"',
    *(f'"action":"{k}"'.encode() for k in SECURITY_EVENTS),
)


def scan(block: bytes, ids: list[str], times: list[int], sizes: list[int]) -> list[Signal]:
    """The relevant signals of a block of framed documents (as ``encode`` frames them: an
    optional action line, then the document's JSON, each ending in a newline), in block order."""
    hits: set[int] = set()
    ends: list[int] | None = None
    for marker in MARKERS:
        at = block.find(marker)
        while at >= 0:
            if ends is None:
                ends = list(accumulate(sizes))
            i = bisect_right(ends, at)
            hits.add(i)
            at = block.find(marker, ends[i])  # the next document: one hit each is enough
    out: list[Signal] = []
    if ends is None:
        return out
    for i in sorted(hits):
        end = ends[i] - 1  # the newline
        start = block.rfind(b"\n", ends[i] - sizes[i], end) + 1 or ends[i] - sizes[i]
        try:
            doc = orjson.loads(block[start:end])
        except orjson.JSONDecodeError:
            continue  # cannot happen for what encode framed; never worth a crash
        s = read(doc, times[i], ids[i]) if isinstance(doc, dict) else None
        if s is not None and relevant(s):
            out.append(s)
    return out
