"""What rules look at in a document: a ``Signal`` (plain data, built once per document)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SIGN_IN = "Interaction.SignIn."
# Error codes of identifier lookups that found no account (what enumeration produces).
NO_SUCH_USER = frozenset({"user.user_not_exist", "user.identity_not_exist", "session.not_found"})
# Logto's own security signals: webhook events and their log keys.
SECURITY_EVENTS = {
    "Identifier.Lockout": "lockout",
    "TriggerHook.Identifier.Lockout": "lockout",
    "Message.RateLimited": "rate_limited",
    "Grant.LimitExceeded": "grant_limit",
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


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _identifier(payload: Any) -> str | None:
    """The identifier tried: ``{"type", "value"}`` (Experience API) or a string, in the payload
    or its ``params``; lower-cased (emails and usernames are case-insensitive in Logto)."""
    for v in (_get(payload, "identifier"), _get(payload, "params", "identifier")):
        if isinstance(v, dict):
            v = v.get("value")
        if isinstance(v, str) and v:
            return v.lower()
    return None


def read(doc: dict[str, Any], ms: int) -> Signal:
    """The signal of a normalized document (``ms``: its time, epoch milliseconds)."""
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
        event_id=str(event.get("id") or ""),
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
    )
