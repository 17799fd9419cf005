"""Log key -> ECS ``event.category`` / ``event.type``.

ECS allows only some types per category (authentication: start/end/info; session: start/end/info;
iam: admin/change/creation/deletion/group/info/user; configuration: access/change/creation/
deletion/info; web: access/error/info). The table below is the documented mapping:

| key                                   | outcome  | category                 | type              |
|---------------------------------------|----------|--------------------------|-------------------|
| Interaction.SignIn.Submit             | success  | authentication, session  | start             |
| Interaction.SignIn.* (anything else)  | any      | authentication           | info              |
| Interaction.Register.Submit, .*.Submit| any      | iam                      | creation, user    |
| Interaction.Register.* (other)        | any      | iam                      | info, user        |
| Interaction.ForgotPassword.*          | any      | iam                      | change, user      |
| Interaction.Create/Update/End/...     | any      | session                  | info              |
| ExchangeTokenBy.*                     | any      | authentication           | info              |
| RevokeToken, RevokeGrants             | any      | session                  | end               |
| JwtCustomizer.*, SamlApplication.*,   | any      | authentication           | info              |
|   Action.*, TrustedDevice.Used        |          |                          |                   |
| TrustedDevice.Created                 | any      | iam                      | creation          |
| TriggerHook.* (webhook deliveries)    | any      | web                      | info / error      |
| Unknown and keys of no known family   | any      | (none)                   | info              |

A failed ``Interaction.SignIn.Submit`` is an authentication attempt, not a session start.
"""

from __future__ import annotations

Categories = tuple[tuple[str, ...], tuple[str, ...]]

FAMILIES: dict[str, str] = {
    "Interaction": "interaction",
    "ExchangeTokenBy": "token",
    "RevokeToken": "token",
    "RevokeGrants": "token",
    "JwtCustomizer": "jwt_customizer",
    "SamlApplication": "saml_application",
    "Action": "action",
    "TrustedDevice": "trusted_device",
    "TriggerHook": "webhook_delivery",
}


def family(key: str) -> str:
    """The key's family (same names as Logto's key catalog); ``other`` when unknown."""
    return FAMILIES.get(key.split(".", 1)[0], "other")


def categorize(key: str, outcome: str) -> Categories:
    """ECS (category, type) for a key and outcome (``Normalizer`` caches the answers per key)."""
    parts = key.split(".")
    head = parts[0]
    if head == "Interaction" and len(parts) > 1:
        flow = parts[1]
        if flow == "SignIn":
            if key == "Interaction.SignIn.Submit" and outcome == "success":
                return ("authentication", "session"), ("start",)
            return ("authentication",), ("info",)
        if flow == "Register":
            if parts[-1] == "Submit":
                return ("iam",), ("creation", "user")
            return ("iam",), ("info", "user")
        if flow == "ForgotPassword":
            return ("iam",), ("change", "user")
        return ("session",), ("info",)
    if head == "ExchangeTokenBy":
        return ("authentication",), ("info",)
    if key in ("RevokeToken", "RevokeGrants"):
        return ("session",), ("end",)
    if head in ("JwtCustomizer", "SamlApplication", "Action"):
        return ("authentication",), ("info",)
    if head == "TrustedDevice":
        if key == "TrustedDevice.Created":
            return ("iam",), ("creation",)
        return ("authentication",), ("info",)
    if head == "TriggerHook":
        return ("web",), ("error",) if outcome == "failure" else ("info",)
    return (), ("info",)


# Webhook events (the ``webhook`` input; Logto's ``hookEvents``), by the part before the
# first dot. ECS iam types: ``user`` for users, ``group`` for organizations, ``admin`` for roles
# (permission sets); scopes are configuration. The verb is the last part:
# Created -> creation, Deleted -> deletion, anything Updated -> change.
#
# | event                                   | category        | type                |
# |-----------------------------------------|-----------------|---------------------|
# | PostSignIn                              | authentication, session | start       |
# | PostSignInAdaptiveMfaTriggered          | authentication  | info                |
# | PostRegister                            | iam             | creation, user      |
# | PostResetPassword                       | iam             | change, user        |
# | User.*                                  | iam             | <verb>, user        |
# | Organization.* (Membership.Updated too) | iam             | <verb>, group       |
# | Role.*, OrganizationRole.*              | iam             | <verb>, admin       |
# | Scope.*, OrganizationScope.*            | configuration   | <verb>              |
# | TrustedDevice.*                         | iam             | <verb>              |
# | Identifier.Lockout, Message.RateLimited | authentication  | info (failure)      |
# | Grant.LimitExceeded                     | session         | end (failure)       |
HOOK_INTERACTION: dict[str, Categories] = {
    "PostSignIn": (("authentication", "session"), ("start",)),
    "PostSignInAdaptiveMfaTriggered": (("authentication",), ("info",)),
    "PostRegister": (("iam",), ("creation", "user")),
    "PostResetPassword": (("iam",), ("change", "user")),
}
HOOK_EXCEPTION: dict[str, Categories] = {
    "Identifier.Lockout": (("authentication",), ("info",)),
    "Message.RateLimited": (("authentication",), ("info",)),
    "Grant.LimitExceeded": (("session",), ("end",)),
}
_HOOK_SCHEMA_TYPE = {
    "User": ("iam", "user"),
    "Organization": ("iam", "group"),
    "Role": ("iam", "admin"),
    "OrganizationRole": ("iam", "admin"),
    "Scope": ("configuration", ""),
    "OrganizationScope": ("configuration", ""),
    "TrustedDevice": ("iam", ""),
}
_VERBS = {"Created": "creation", "Deleted": "deletion", "Updated": "change"}


def categorize_hook(event: str) -> Categories:
    """ECS (category, type) of a webhook event; unknown events: no category, ``info``."""
    fixed = HOOK_INTERACTION.get(event) or HOOK_EXCEPTION.get(event)
    if fixed is not None:
        return fixed
    schema, _, rest = event.partition(".")
    kind = _HOOK_SCHEMA_TYPE.get(schema)
    verb = _VERBS.get(rest.rsplit(".", 1)[-1])
    if kind is None or verb is None:
        return (), ("info",)
    category, extra = kind
    return (category,), (verb, extra) if extra else (verb,)
