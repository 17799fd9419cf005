"""What rules look at in a document: a ``Signal`` (plain data, built once per document)."""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any, NamedTuple

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


class Signal(NamedTuple):
    """One event as rules see it. ``actor`` is the user id, else the identifier that was tried
    (an email, a phone, a username: failures for unknown accounts have no user id). A tuple:
    workers send every one to the main process, and a tuple pickles several times faster than
    a dataclass (whose state goes through ``dataclasses.fields`` on both sides)."""

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


def _obj(d: dict[str, Any], key: str) -> dict[str, Any]:
    v = d.get(key)
    return v if type(v) is dict else EMPTY


EMPTY: dict[str, Any] = {}


def read(doc: dict[str, Any], ms: int, doc_id: str = "") -> Signal:
    """The signal of a normalized document (``ms``: its time, epoch milliseconds; ``doc_id``:
    its id in the index, the event's id where it has no ``event.id``). Plain lookups: this runs
    for every watched document."""
    event = _obj(doc, "event")
    action = event.get("action") or ""
    outcome = event.get("outcome")
    user_id = _obj(doc, "user").get("id")
    source = _obj(doc, "source")
    geo = _obj(source, "geo")
    target = actor = None
    if action.endswith("VerificationCode.Create") or not user_id:
        payload = _obj(doc, "logto").get("payload")
        actor = _identifier(payload)
        if action.endswith("VerificationCode.Create"):  # a code sent: to this email or phone
            for v in (_get(payload, "email"), _get(payload, "phone"), actor):
                if isinstance(v, str) and v:
                    target = v.lower()
                    break
    return Signal(
        ms=ms,
        event_id=str(event.get("id") or doc_id),
        action=action,
        failed=outcome == "failure" and action.startswith(SIGN_IN),
        # a session started (a successful Interaction.SignIn.Submit, a PostSignIn delivery)
        succeeded=outcome == "success" and "start" in (event.get("type") or ()),
        actor=user_id or actor,
        user_id=user_id,
        ip=source.get("ip"),
        error_code=_obj(doc, "error").get("code"),
        code_to=target,
        country=geo.get("country_iso_code"),
        location=_point(geo.get("location")) if geo else None,
    )


def _point(v: Any) -> tuple[float, float] | None:
    if isinstance(v, dict):
        lat, lon = v.get("lat"), v.get("lon")
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            return float(lat), float(lon)
    return None


def relevant(s: Signal) -> bool:
    """Does any rule look at this signal? Failures count per actor or IP, sign-ins per user id,
    codes per IP; a signal none of them can be counted under is dropped here (not logged)."""
    if s.action in SECURITY_EVENTS:
        return True
    if s.failed:
        return bool(s.actor or s.ip)
    if s.succeeded:
        return bool(s.user_id)
    return s.code_to is not None and bool(s.ip)


# Rules read ``event``, ``error``, ``user`` and ``source``, and ``logto.payload`` for a few; the
# field table writes these members after them (test_detect_pipeline checks that order), so a
# document's head ends where the first of them begins: a key spelled so cannot be inside a string
# (its quotes would be escaped) nor a member of those four (none has one of these names).
AFTER_READ = ("client", "user_agent", "http", "url", "related", "logto", "tags")
# One pass for the first of them (a bytes.find per name costs ~1 µs each where it is missing).
_AFTER_READ = re.compile(b',"(?:' + b"|".join(k.encode() for k in AFTER_READ) + b')":')
SESSION_START = frozenset({"Interaction.SignIn.Submit", "PostSignIn"})


def watched(key: str, outcome: str) -> bool:
    """Do rules read records of this key and outcome? (Asked once per key by the native path,
    per record by the Python one: a superset of what ``relevant`` keeps.)"""
    if key.endswith("VerificationCode.Create") or key in SECURITY_EVENTS:
        return True
    if key in SESSION_START and outcome == "success":
        return True
    return key.startswith(SIGN_IN) and outcome == "failure"


def _head(d: bytes) -> Any:
    """The members of the document rules read but ``logto.payload`` (about a third of its bytes:
    parsing is most of the cost of a signal); the whole document where it cannot be cut so."""
    cut = _AFTER_READ.search(d)
    if cut is not None:
        try:
            return orjson.loads(d[: cut.start()] + b"}")
        except orjson.JSONDecodeError:
            pass
    return orjson.loads(d)


def _needs_payload(head: dict[str, Any]) -> bool:
    """Where the rules read the payload: who a code went to, the identifier a failure tried
    (no user id yet), the value a Logto signal names."""
    event = head.get("event") or {}
    action = event.get("action") or ""
    if action.endswith("VerificationCode.Create") or action in SECURITY_EVENTS:
        return True
    return event.get("outcome") == "failure" and not _get(head, "user", "id")


def scan(
    block: bytes, ids: list[str], times: list[int], sizes: list[int], at: list[int]
) -> list[tuple[int, Signal]]:
    """The relevant signals, with their indices, of documents ``at`` (ascending) of a block of
    framed documents (as ``encode`` frames them: an optional action line, then the document's
    JSON, each ending in a newline)."""
    out: list[tuple[int, Signal]] = []
    if not at:
        return out
    ends = list(accumulate(sizes))
    for i in at:
        end = ends[i] - 1  # the newline
        begin = ends[i] - sizes[i]
        start = block.rfind(b"\n", begin, end) + 1 or begin
        d = block[start:end]
        try:
            doc = _head(d)
            if isinstance(doc, dict) and _needs_payload(doc):
                doc = orjson.loads(d)
        except orjson.JSONDecodeError:
            continue  # cannot happen for what encode framed; never worth a crash
        s = read(doc, times[i], ids[i]) if isinstance(doc, dict) else None
        if s is not None and relevant(s):
            out.append((i, s))
    return out


def of_body(body: dict[str, Any], ms: int, doc_id: str) -> Signal | None:
    """The signal of a document the Python normalizer built (its dict: nothing to parse)."""
    event = body.get("event") or {}
    if not watched(event.get("action") or "", event.get("outcome") or ""):
        return None
    s = read(body, ms, doc_id)
    return s if relevant(s) else None
