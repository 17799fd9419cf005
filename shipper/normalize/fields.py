"""The indexed document's shape, declared once.

Each row says where one ECS field comes from and how its value is made. Both normalizers read
these rows: the Python one interprets them (``assemble.py``), the native path (``_native/ecs.c``)
receives them when it starts (``native_rows``) and interprets them too. Neither names a field of
its own, so adding a Logto field is one row here (plus its mapping, which a test demands, and a
test of its own).

Reading a row:
- ``sources`` are dotted key paths into the record (``payload.userAgentParsed.browser.name``);
  the first that holds a value of the kind's type is used (``STR``: a non-empty string).
- Rows of the same path that follow each other are alternatives: the first that yields a value
  wins (``error.message`` from a plain-string error, else from the error object).
- Objects exist only when a member does; members appear in row order, so rows of one object
  must be contiguous (checked below: a document's key order is then the same whichever
  normalizer wrote it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import orjson


class Kind(IntEnum):
    """How a row's value is made. The native path knows the same numbers."""

    STR = 0  # a non-empty string, as it is
    TEXT = 1  # anything but null: a string as it is (even empty), anything else as its JSON text
    CODE = 2  # a string as it is, or an integer (not a boolean) written as a string
    IP = 3  # a non-empty string in canonical address form (IPv4-mapped IPv6 unwrapped), else nothing
    BAD_IP = 4  # a non-empty string that is not an address, as it is; adds ``tag``
    GEO_POINT = 5  # ``{"lat","lon"}`` from the two sources (latitude, longitude), both in range
    TIME = 6  # the record's time, ISO-8601 UTC with milliseconds
    OUTCOME = 7  # a string source mapped through ``values``, else ``default``
    CONST = 8  # ``default``
    RULES = 9  # ``event.type``/``event.category`` members from the key's rules (categories.py)
    FAMILY = 10  # the key's family (categories.py)
    PAYLOAD = 11  # the payload, masked and shaped for ``flattened`` (mask.py)
    TAGS = 12  # the tags the rows above added, in ``TAG_ORDER``
    INT = 13  # an integer, not a boolean (Python only: webhook deliveries)
    COLLECT = 14  # the distinct values already written at the source paths, as a list (Python only)


PYTHON_ONLY = frozenset({Kind.INT, Kind.COLLECT})
INVALID_IP_TAG = "logto_invalid_ip"
RESHAPED_TAG = "logto_payload_reshaped"  # added by masking (mask.py)
TAG_ORDER = (RESHAPED_TAG, INVALID_IP_TAG)
# Payload members whose string value holding a JSON object is read as that object, in the
# document and in ``logto.payload`` alike (token endpoint rows carry ``error`` so).
JSON_IN_STRING = ("error",)
NATIVE_DECODE = tuple(name.encode() for name in JSON_IN_STRING)


@dataclass(frozen=True, slots=True)
class Field:
    path: str  # the ECS field (dotted); RULES: the object its members go into
    kind: Kind
    sources: tuple[str, ...] = ()
    values: tuple[tuple[str, str], ...] = ()  # OUTCOME: (source value, field value)
    default: str = ""  # OUTCOME, CONST
    tag: str = ""  # BAD_IP
    keys: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", tuple(self.path.split(".")))


K = Kind
_UA = "payload.userAgentParsed"
_GEO = "payload.signInContext"
_ERR = "payload.error"
# Names the enricher spliced into the record (enrich.py: ``Enricher.annotate``).
_NAMES = "_names"

_EVENT_HEAD = (
    Field("@timestamp", K.TIME),
    Field("event.id", K.STR, ("id",)),
    Field("event.action", K.STR, ("key",)),
)


def _event_tail(dataset: str) -> tuple[Field, ...]:
    return (
        Field("event.kind", K.CONST, default="event"),
        Field("event.module", K.CONST, default="logto"),
        Field("event.dataset", K.CONST, default=dataset),
        Field("event", K.RULES),
    )


_USER_AGENT = (
    Field("user_agent.name", K.STR, (f"{_UA}.browser.name",)),
    Field("user_agent.version", K.STR, (f"{_UA}.browser.version",)),
    Field("user_agent.os.name", K.STR, (f"{_UA}.os.name",)),
    Field("user_agent.os.version", K.STR, (f"{_UA}.os.version",)),
    Field("user_agent.device.name", K.STR, (f"{_UA}.device.model",)),
    Field("user_agent.original", K.STR, ("payload.userAgent", f"{_UA}.ua")),
)

# A Logto audit-log record: a ``logs`` row or a Management API log.
AUDIT: tuple[Field, ...] = (
    *_EVENT_HEAD,
    Field(
        "event.outcome",
        K.OUTCOME,
        ("payload.result",),
        values=(("Success", "success"), ("Error", "failure")),
        default="unknown",
    ),
    *_event_tail("logto.audit"),
    Field("error.message", K.STR, (_ERR,)),
    Field("error.message", K.TEXT, (f"{_ERR}.message",)),
    Field("error.code", K.CODE, (f"{_ERR}.code",)),
    Field("error.type", K.STR, (f"{_ERR}.name",)),
    Field("error.stack_trace", K.STR, (f"{_ERR}.stack",)),
    Field("organization.id", K.STR, ("tenantId", "tenant_id")),
    Field("user.id", K.STR, ("payload.userId",)),
    Field("user.name", K.STR, (f"{_NAMES}.user",)),
    Field("user.email", K.STR, (f"{_NAMES}.email",)),
    Field("source.ip", K.IP, ("payload.ip",)),
    Field("source.geo.country_iso_code", K.STR, (f"{_GEO}.country",)),
    Field("source.geo.city_name", K.STR, (f"{_GEO}.city",)),
    Field("source.geo.location", K.GEO_POINT, (f"{_GEO}.latitude", f"{_GEO}.longitude")),
    Field("client.ip", K.IP, ("payload.ip",)),
    *_USER_AGENT,
    Field("logto.family", K.FAMILY),
    Field("logto.tenant_id", K.STR, ("tenantId", "tenant_id")),
    Field("logto.ip", K.BAD_IP, ("payload.ip",), tag=INVALID_IP_TAG),
    Field("logto.application_id", K.STR, ("payload.applicationId",)),
    Field("logto.application_name", K.STR, (f"{_NAMES}.application",)),
    Field("logto.application_type", K.STR, (f"{_NAMES}.application_type",)),
    Field("logto.session_id", K.STR, ("payload.sessionId",)),
    Field("logto.interaction_event", K.STR, ("payload.interactionEvent",)),
    Field("logto.hook_id", K.STR, ("payload.hookId",)),
    Field("logto.payload", K.PAYLOAD, ("payload",)),
    Field("tags", K.TAGS),
)

# A webhook delivery as the ``webhook`` input spools it. ``outcome`` and ``target`` are worked
# out from the delivery first (document.py: ``hook_view``); the rest is read as it comes.
_IP = ("payload.userIp", "payload.ip")
WEBHOOK: tuple[Field, ...] = (
    *_EVENT_HEAD,
    Field("event.outcome", K.STR, ("outcome",)),
    *_event_tail("logto.webhook"),
    Field("user.id", K.STR, ("payload.userId", "payload.user.id")),
    Field("user.name", K.STR, ("payload.user.username", "payload.user.name", f"{_NAMES}.user")),
    Field("user.email", K.STR, (f"{_NAMES}.email",)),
    Field("user.target.id", K.STR, ("target.id",)),
    Field("user.target.name", K.STR, ("target.username", "target.name")),
    Field("source.ip", K.IP, _IP),
    Field("client.ip", K.IP, _IP),
    *_USER_AGENT,
    Field("http.request.method", K.STR, ("payload.method",)),
    Field("http.response.status_code", K.INT, ("payload.status",)),
    Field("url.path", K.STR, ("payload.path",)),
    Field("related.user", K.COLLECT, ("user.id", "user.name", "user.target.id", "user.target.name")),
    Field("logto.family", K.CONST, default="webhook"),
    Field("logto.ip", K.BAD_IP, _IP, tag=INVALID_IP_TAG),
    Field("logto.route", K.STR, ("payload.matchedRoute",)),
    Field("logto.application_id", K.STR, ("payload.applicationId", "payload.application.id")),
    Field("logto.application_name", K.STR, ("payload.application.name", f"{_NAMES}.application")),
    Field("logto.application_type", K.STR, ("payload.application.type", f"{_NAMES}.application_type")),
    Field("logto.session_id", K.STR, ("payload.sessionId",)),
    Field("logto.interaction_event", K.STR, ("payload.interactionEvent",)),
    Field("logto.hook_id", K.STR, ("payload.hookId",)),
    Field("logto.payload", K.PAYLOAD, ("payload",)),
    Field("tags", K.TAGS),
)


def sources_of(rows: tuple[Field, ...], path: str) -> tuple[tuple[str, ...], ...]:
    """The source key paths of field ``path`` in ``rows``, split (what others reading the same
    record members use, so a source is named once: here)."""
    return tuple(tuple(src.split(".")) for row in rows if row.path == path for src in row.sources)


class ShapeError(ValueError):
    """A table the interpreters cannot follow (raised at import: a broken row never ships)."""


def check(rows: tuple[Field, ...]) -> tuple[Field, ...]:
    """Refuse tables whose objects are not contiguous, or whose rows miss what their kind needs."""
    closed: set[tuple[str, ...]] = set()
    prev: tuple[str, ...] = ()  # the objects the previous row wrote into
    for row in rows:
        parents = row.keys if row.kind is Kind.RULES else row.keys[:-1]
        closed |= {prev[:i] for i in range(1, len(prev) + 1) if prev[:i] != parents[:i]}
        for i in range(1, len(parents) + 1):
            if parents[:i] in closed:
                raise ShapeError(f"{row.path}: rows of {'.'.join(parents[:i])} are not contiguous")
        prev = parents
        needs = {Kind.GEO_POINT: 2}.get(row.kind)
        if needs is not None and len(row.sources) != needs:
            raise ShapeError(f"{row.path}: {row.kind.name} takes {needs} sources")
        if row.kind in (Kind.BAD_IP,) and row.tag not in TAG_ORDER:
            raise ShapeError(f"{row.path}: tag {row.tag!r} is not in TAG_ORDER")
    return rows


check(AUDIT)
check(WEBHOOK)


NativeRow = tuple[int, bool, tuple[bytes, ...], tuple[tuple[bytes, ...], ...], tuple[bytes, ...], int]


def native_rows(rows: tuple[Field, ...] = AUDIT) -> tuple[NativeRow, ...]:
    """The table as the native path takes it: per row (kind, alternative to the previous row,
    path keys as JSON strings, source key paths, strings, tag bit). Strings: OUTCOME ``(from, to,
    …, default)``, CONST ``(default as JSON,)``, TAGS the tags as JSON in ``TAG_ORDER``."""
    out: list[NativeRow] = []
    prev: Field | None = None
    for row in rows:
        if row.kind in PYTHON_ONLY:
            raise ShapeError(f"{row.path}: {row.kind.name} is not known to the native path")
        strings: tuple[bytes, ...] = ()
        if row.kind is Kind.OUTCOME:
            strings = (*(s.encode() for pair in row.values for s in pair), row.default.encode())
        elif row.kind is Kind.CONST:
            strings = (orjson.dumps(row.default),)
        elif row.kind is Kind.TAGS:
            strings = tuple(orjson.dumps(t) for t in TAG_ORDER)
        out.append(
            (
                int(row.kind),
                prev is not None and prev.path == row.path,
                tuple(orjson.dumps(k) for k in row.keys),
                tuple(tuple(k.encode() for k in s.split(".")) for s in row.sources),
                strings,
                TAG_ORDER.index(row.tag) if row.tag else -1,
            )
        )
        prev = row
    return tuple(out)
