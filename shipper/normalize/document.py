"""Turn one Logto record (a JSON line) into the ECS document we index.

Accepted record shapes (see README, "Data contract"):
- Management API: ``{"tenantId","id","key","payload","createdAt": <epoch ms>}``
- table row (``row_to_json(logs)``): ``{"tenant_id","id","key","payload","created_at": <ISO-8601>}``
- either with ``payload`` as a JSON-encoded string;
- a webhook delivery as the ``webhook`` input spools it: ``{"id","key": <event>,"createdAt",
  "origin": "webhook","payload": <the delivery>}`` (``webhook_document``).

This module checks a record's envelope (id, key, time, payload) and hands it to the field table
(``fields.py``), which says what the document holds.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import orjson

from shipper.detect.signals import watched
from shipper.normalize import _built
from shipper.normalize.categories import HOOK_EXCEPTION, categorize, categorize_hook, family
from shipper.normalize.fields import AUDIT, JSON_IN_STRING, NATIVE_DECODE, Field, native_rows
from shipper.normalize.mask import DEFAULT_RULES, Masker, MaskRules, TooDeep
from shipper.normalize.values import location_json, parse_time, rules_members
from shipper.records import too_long


def _load_native() -> Any:
    """The native path (``_native/ecs.c``), which wheel builds add (hatch_build.py); None in
    editable installs, pure builds and wherever it could not be compiled."""
    try:
        return importlib.import_module("shipper.normalize._ecs")
    except ImportError:
        return None


NATIVE: Any = _load_native()
MAX_ID_BYTES = 512  # Elasticsearch refuses longer _id values
Parts = tuple[str, tuple[str, ...], tuple[str, ...]]


@dataclass(slots=True)
class Document:
    """A normalized record: ``body`` is exactly what gets indexed under ``_id = id``."""

    id: str
    epoch_ms: int  # ``@timestamp``, for index naming without re-parsing
    body: dict[str, Any]


@dataclass(slots=True)
class Rejection:
    """A record that cannot be indexed; it goes to the dead-letter store with its raw bytes."""

    reason: str  # short machine-readable code, e.g. ``invalid_json``
    detail: str  # one human sentence, never containing record content
    raw: bytes


class Normalizer:
    """Record -> ``Document`` | ``Rejection``. Stateless apart from caches; never raises."""

    def __init__(
        self,
        rules: MaskRules = DEFAULT_RULES,
        max_line_bytes: int = 1 << 20,
        native: Any = NATIVE,
        fields: tuple[Field, ...] = AUDIT,
    ) -> None:
        """``fields``: the audit records' table (fields.py); another one only in tests."""
        self.masker = Masker(rules)
        self.max_line_bytes = max_line_bytes
        self._events: dict[tuple[str, str], tuple[str, tuple[str, ...], tuple[str, ...]]] = {}
        # The native path (``encode`` frames a block's lines; ``line`` is one document's JSON) for
        # the lines it recognises; this object decides the rest. The rules stay here: it asks
        # these methods once per key.
        self.native: Any = None
        if native is not None:
            self.native = native.Fast(
                self.masker._verdict,
                self._event_json,
                location_json,
                max_line_bytes,
                native_rows(fields),
                NATIVE_DECODE,
            )
        # The builders are generated from the table (codegen.py): _built.py for the shipped one.
        self._build_audit = _built.build_audit if fields is AUDIT else _compiled(fields)

    def line(self, raw: bytes) -> Document | Rejection:
        """Normalize one line (without its trailing newline)."""
        if len(raw) > self.max_line_bytes:
            return Rejection(*too_long(len(raw), self.max_line_bytes), raw)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return Rejection("invalid_utf8", f"invalid UTF-8 at byte {exc.start}", raw)
            if "depth limit" in str(err):
                return Rejection("too_deep", "nested deeper than the 1,024 levels JSON is read to", raw)
            return Rejection("invalid_json", "line is not valid JSON", raw)
        if not isinstance(obj, dict):
            return Rejection("not_an_object", f"JSON {type(obj).__name__} is not an object", raw)
        return self.record(obj, raw)

    def record(self, obj: dict[str, Any], raw: bytes = b"") -> Document | Rejection:
        """Normalize an already-decoded record (the postgres source's path)."""
        log_id = obj.get("id")
        if not isinstance(log_id, str) or not log_id:
            return Rejection("missing_id", "record has no string 'id'", raw)
        if len(log_id.encode()) > MAX_ID_BYTES:
            return Rejection("invalid_id", f"'id' is longer than {MAX_ID_BYTES} bytes", raw)
        key = obj.get("key")
        if not isinstance(key, str) or not key:
            return Rejection("missing_key", "record has no string 'key'", raw)
        created = obj.get("createdAt", obj.get("created_at"))
        if created is None:
            return Rejection("missing_time", "record has no 'createdAt'/'created_at'", raw)
        ms = parse_time(created)
        if ms is None:
            return Rejection("invalid_time", "'createdAt'/'created_at' is not a valid time", raw)
        payload = obj.get("payload")
        if payload is None:
            payload = {}
        elif isinstance(payload, str):
            try:
                payload = orjson.loads(payload)
            except orjson.JSONDecodeError:
                return Rejection("invalid_payload", "'payload' string is not valid JSON", raw)
        if not isinstance(payload, dict):
            return Rejection("invalid_payload", "'payload' is not a JSON object", raw)
        for name in JSON_IN_STRING:
            value = payload.get(name)
            if type(value) is str and (decoded := _json_object(value)) is not None:
                payload = {**payload, name: decoded}
        view = obj if obj.get("payload") is payload else {**obj, "payload": payload}
        try:
            if obj.get("origin") == "webhook":
                hook = _hook_view(view, key, payload)
                return Document(log_id, ms, _built.build_webhook(hook, ms, _hook_rules, self.masker))
            return Document(log_id, ms, self._build_audit(view, ms, self._event_parts, self.masker))
        except TooDeep:
            return Rejection("too_deep", "payload nested too deep to be written as JSON again", raw)

    def _event_parts(self, key: str, outcome: str) -> Parts:
        """(family, categories, types) of a key and outcome, cached: keys repeat endlessly."""
        parts = self._events.get((key, outcome))
        if parts is None:
            category, type_ = categorize(key, outcome)
            parts = (family(key), category, type_)
            if len(self._events) < 20_000:  # keys may be made up by callers: stay bounded
                self._events[(key, outcome)] = parts
        return parts

    def _event_json(self, key: str, outcome: str) -> tuple[bytes, bytes, bool]:
        """For the native path: the RULES members (``"type":…,"category":…``) and the family,
        as JSON, as the Python builders write them; and whether detections read such records
        (``encode`` then lists them, so only those are looked at)."""
        fam, category, type_ = self._event_parts(key, outcome)
        return orjson.dumps(rules_members(category, type_))[1:-1], orjson.dumps(fam), watched(key, outcome)


def _compiled(fields: tuple[Field, ...]) -> Any:
    from shipper.normalize.codegen import compile_rows

    return compile_rows(fields)


def _json_object(text: str) -> dict[str, Any] | None:
    """The object a string holds as JSON (``JSON_IN_STRING``), else None."""
    s = text.strip()
    if not s.startswith("{"):
        return None
    try:
        decoded = orjson.loads(s)
    except orjson.JSONDecodeError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _hook_rules(key: str, outcome: str) -> Parts:
    return ("webhook", *categorize_hook(key))


def _hook_view(view: dict[str, Any], event_name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What the WEBHOOK rows read beyond the delivery: its outcome, and the user acted on."""
    status = payload.get("status")
    if event_name in HOOK_EXCEPTION:
        outcome = "failure"  # Logto's security signals: something was refused
    elif type(status) is int:
        outcome = "success" if status < 400 else "failure"
    else:
        outcome = "success"  # interaction and data hooks fire after success only
    data = payload.get("data")
    target = None
    if event_name.startswith("User.") and type(data) is dict:
        tid = data.get("id")
        target = data if type(tid) is str and tid else None
    return {**view, "outcome": outcome, "target": target}
