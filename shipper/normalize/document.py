"""Turn one Logto record (a JSON line) into the ECS document we index.

Accepted record shapes (see README, "Data contract"):
- Management API: ``{"tenantId","id","key","payload","createdAt": <epoch ms>}``
- table row (``row_to_json(logs)``): ``{"tenant_id","id","key","payload","created_at": <ISO-8601>}``
- either with ``payload`` as a JSON-encoded string;
- a webhook delivery as the ``webhook`` input spools it: ``{"id","key": <event>,"createdAt",
  "origin": "webhook","payload": <the delivery>}`` (``webhook_document``).
"""

from __future__ import annotations

import importlib
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from shipper.normalize.categories import HOOK_EXCEPTION, categorize, categorize_hook, family
from shipper.normalize.mask import DEFAULT_RULES, RESHAPED_TAG, Masker, MaskRules, TooDeep


def _load_native() -> Any:
    """The native path (``_native/ecs.c``), which wheel builds add (hatch_build.py); None in
    editable installs, pure builds and wherever it could not be compiled."""
    try:
        return importlib.import_module("shipper.normalize._ecs")
    except ImportError:
        return None


NATIVE: Any = _load_native()
MAX_ID_BYTES = 512  # Elasticsearch refuses longer _id values
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


@dataclass(slots=True)
class Document:
    """A normalized record: ``body`` is exactly what gets indexed under ``_id = id``."""

    id: str
    timestamp: str  # @timestamp, ISO-8601 UTC with milliseconds
    epoch_ms: int  # same instant, for index naming without re-parsing
    body: dict[str, Any]


@dataclass(slots=True)
class Rejection:
    """A record that cannot be indexed; it goes to the dead-letter store with its raw bytes."""

    reason: str  # short machine-readable code, e.g. ``invalid_json``
    detail: str  # one human sentence, never containing record content
    raw: bytes


_minute_cache: dict[int, str] = {}
_SECONDS = tuple(f"{i:02d}." for i in range(60))
_MILLIS = tuple(f"{i:03d}Z" for i in range(1000))


def format_ms(ms: int) -> str:
    """ISO-8601 UTC with milliseconds. Everything up to the minute is cached (records come in
    time order), the rest is looked up: no formatting per record."""
    minute, rem = divmod(ms, 60_000)
    prefix = _minute_cache.get(minute)
    if prefix is None:
        if len(_minute_cache) > 4096:
            _minute_cache.clear()
        prefix = _minute_cache[minute] = (_EPOCH + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:")
    sec, milli = divmod(rem, 1000)
    return prefix + _SECONDS[sec] + _MILLIS[milli]


def parse_time(value: Any) -> int | None:
    """Epoch milliseconds from epoch-ms numbers/strings or ISO-8601; ``None`` if unparseable.

    Naive ISO timestamps are taken as UTC (what Filebeat and Vector assume too).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        ms = int(value)
    elif isinstance(value, str):
        s = value.strip()
        if s.isascii() and s.isdigit():  # str.isdigit() also accepts "²", which int() refuses
            ms = int(s)
        else:
            try:
                dt = datetime.fromisoformat(s)
            except ValueError:
                return None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            delta = dt - _EPOCH
            ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    else:
        return None
    return ms if 0 <= ms <= _MAX_MS else None


_IPV4_MAPPED = "::ffff:"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# Dotted quads exactly as inet_ntop writes them, bare or IPv4-mapped in lower case.
_CANONICAL_V4 = re.compile(rf"(?:::ffff:)?({_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET})", re.ASCII)


def normalize_ip(raw: str) -> str | None:
    """Canonical IP text, IPv4-mapped IPv6 unwrapped (``::ffff:203.0.113.7`` -> IPv4).

    ``inet_pton``/``inet_ntop`` rather than ``ipaddress``: 20x faster, same canonical forms
    (RFC 5952 for IPv6), and the normalizer sees a different address on almost every record.
    """
    s = raw.strip()
    m = _CANONICAL_V4.fullmatch(s)
    if m is not None:  # the usual cases, already canonical: no socket calls
        return m.group(1)
    try:
        if ":" not in s:
            return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, s))
        if s[:7].lower() == _IPV4_MAPPED and "." in s:
            try:
                return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, s[7:]))
            except OSError:
                pass  # e.g. ::ffff:0:1.2.3.4, which is IPv6
        packed = socket.inet_pton(socket.AF_INET6, s)
    except (OSError, ValueError):
        return None
    if packed[:12] == b"\0" * 10 + b"\xff\xff":
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    return socket.inet_ntop(socket.AF_INET6, packed)


def _str(v: Any) -> str | None:
    return v if type(v) is str and v else None


def _error_fields(err: Any) -> tuple[Any, dict[str, Any] | None]:
    """Decode ``payload.error`` (object, JSON or plain string) -> (payload value, ECS error)."""
    if isinstance(err, str):
        s = err.strip()
        if s.startswith("{"):
            try:
                decoded = orjson.loads(s)
            except orjson.JSONDecodeError:
                decoded = None
            if isinstance(decoded, dict):
                err = decoded
        if isinstance(err, str):
            return err, ({"message": err} if err else None)
    if not isinstance(err, dict):
        return err, None
    ecs: dict[str, Any] = {}
    msg = err.get("message")
    if msg is not None:
        ecs["message"] = msg if isinstance(msg, str) else orjson.dumps(msg).decode()
    code = err.get("code")
    if isinstance(code, str | int) and not isinstance(code, bool):
        ecs["code"] = str(code)
    name = _str(err.get("name"))
    if name:
        ecs["type"] = name
    stack = _str(err.get("stack"))
    if stack:
        ecs["stack_trace"] = stack
    return err, ecs or None


def _user_agent(payload: dict[str, Any]) -> dict[str, Any] | None:
    ua: dict[str, Any] = {}
    original = payload.get("userAgent")
    if type(original) is not str or not original:
        original = None
    parsed = payload.get("userAgentParsed")
    if type(parsed) is dict:
        original = original or _str(parsed.get("ua"))
        browser = parsed.get("browser")
        if type(browser) is dict:
            if name := _str(browser.get("name")):
                ua["name"] = name
            if version := _str(browser.get("version")):
                ua["version"] = version
        os_ = parsed.get("os")
        if type(os_) is dict:
            os_out = {}
            if name := _str(os_.get("name")):
                os_out["name"] = name
            if version := _str(os_.get("version")):
                os_out["version"] = version
            if os_out:
                ua["os"] = os_out
        device = parsed.get("device")
        if type(device) is dict and (model := _str(device.get("model"))):
            ua["device"] = {"name": model}
    if original:
        ua["original"] = original
    return ua or None


def _float(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _location(lat_value: Any, lon_value: Any) -> dict[str, float] | None:
    lat, lon = _float(lat_value), _float(lon_value)
    if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
        return {"lat": lat, "lon": lon}
    return None


def location_json(lat_value: Any, lon_value: Any) -> bytes | None:
    """``source.geo.location`` as JSON, for the native path (Python's ``float()`` and orjson's
    float formatting stay the only ones)."""
    loc = _location(lat_value, lon_value)
    return None if loc is None else orjson.dumps(loc)


def _geo(ctx: Any) -> dict[str, Any] | None:
    if not isinstance(ctx, dict):
        return None
    geo: dict[str, Any] = {}
    if country := _str(ctx.get("country")):
        geo["country_iso_code"] = country
    if city := _str(ctx.get("city")):
        geo["city_name"] = city
    if (loc := _location(ctx.get("latitude"), ctx.get("longitude"))) is not None:
        geo["location"] = loc
    return geo or None


class Normalizer:
    """Record -> ``Document`` | ``Rejection``. Stateless apart from caches; never raises."""

    def __init__(
        self, rules: MaskRules = DEFAULT_RULES, max_line_bytes: int = 1 << 20, native: Any = NATIVE
    ) -> None:
        self.masker = Masker(rules)
        self.max_line_bytes = max_line_bytes
        self._events: dict[tuple[str, str], tuple[str, tuple[str, ...], tuple[str, ...]]] = {}
        # The native path (``encode`` frames a block's lines; ``line`` is one document's JSON) for
        # the lines it recognises; this object decides the rest. The rules stay here: it asks
        # these methods once per key.
        self.native: Any = None
        if native is not None:
            self.native = native.Fast(self.masker._verdict, self._event_json, location_json, max_line_bytes)

    def line(self, raw: bytes) -> Document | Rejection:
        """Normalize one line (without its trailing newline)."""
        if len(raw) > self.max_line_bytes:
            return Rejection("line_too_long", f"line of {len(raw)} bytes exceeds {self.max_line_bytes}", raw)
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
        tenant = obj.get("tenantId", obj.get("tenant_id"))
        try:
            if obj.get("origin") == "webhook":
                return self._build_webhook(log_id, key, ms, payload)
            return self._build(log_id, key, ms, payload, tenant if isinstance(tenant, str) else None)
        except TooDeep:
            return Rejection("too_deep", "payload nested too deep to be written as JSON again", raw)

    def _event_parts(self, key: str, outcome: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """(family, categories, types) of a key and outcome, cached: keys repeat endlessly."""
        parts = self._events.get((key, outcome))
        if parts is None:
            category, type_ = categorize(key, outcome)
            parts = (family(key), category, type_)
            if len(self._events) < 20_000:  # keys may be made up by callers: stay bounded
                self._events[(key, outcome)] = parts
        return parts

    def _event_json(self, key: str, outcome: str) -> tuple[bytes, bytes]:
        """For the native path: the ``event`` fields after ``outcome`` as JSON members, and the
        family as JSON; the same as ``_build`` writes."""
        fam, category, type_ = self._event_parts(key, outcome)
        return orjson.dumps(_event_tail({}, category, type_))[1:-1], orjson.dumps(fam)

    def _build(self, log_id: str, key: str, ms: int, payload: dict[str, Any], tenant: str | None) -> Document:
        result = payload.get("result")
        outcome = "success" if result == "Success" else "failure" if result == "Error" else "unknown"
        fam, category, type_ = self._event_parts(key, outcome)
        ts = format_ms(ms)
        event = _event_tail({"id": log_id, "action": key, "outcome": outcome}, category, type_)
        doc: dict[str, Any] = {"@timestamp": ts, "event": event}
        logto: dict[str, Any] = {"family": fam}
        tags: list[str] | None = None

        if "error" in payload:
            decoded, err = _error_fields(payload["error"])
            if decoded is not payload["error"]:
                payload = {**payload, "error": decoded}
            if err:
                doc["error"] = err
        masked = self.masker.mask(payload)[0]
        if self.masker.reshaped:
            tags = [RESHAPED_TAG]

        if tenant:
            doc["organization"] = {"id": tenant}
            logto["tenant_id"] = tenant
        user_id = payload.get("userId")
        if type(user_id) is str and user_id:
            doc["user"] = {"id": user_id}
        raw_ip = payload.get("ip")
        if type(raw_ip) is str and raw_ip:
            ip = normalize_ip(raw_ip)
            if ip is None:
                logto["ip"] = raw_ip
                tags = [*(tags or ()), "logto_invalid_ip"]
            else:
                doc["source"] = {"ip": ip}
                doc["client"] = {"ip": ip}
        ctx = payload.get("signInContext")
        if ctx is not None and (geo := _geo(ctx)):
            doc.setdefault("source", {})["geo"] = geo
        if ("userAgent" in payload or "userAgentParsed" in payload) and (ua := _user_agent(payload)):
            doc["user_agent"] = ua
        for src, dst in _LOGTO_IDS:
            v = payload.get(src)
            if type(v) is str and v:
                logto[dst] = v
        logto["payload"] = masked
        doc["logto"] = logto
        if tags:
            doc["tags"] = tags
        return Document(log_id, ts, ms, doc)

    def _build_webhook(self, delivery_id: str, event_name: str, ms: int, payload: dict[str, Any]) -> Document:
        """A webhook delivery: who (``user``), whom (``user.target``), from where, which
        Management API call (``http``, ``url``, ``logto.route``); the body, masked, as
        ``logto.payload``."""
        status = payload.get("status")
        if event_name in HOOK_EXCEPTION:
            outcome = "failure"  # Logto's security signals: something was refused
        elif type(status) is int:
            outcome = "success" if status < 400 else "failure"
        else:
            outcome = "success"  # interaction and data hooks fire after success only
        category, type_ = categorize_hook(event_name)
        ts = format_ms(ms)
        event = {"id": delivery_id, "action": event_name, "outcome": outcome}
        doc: dict[str, Any] = {
            "@timestamp": ts,
            "event": _event_tail(event, category, type_, "logto.webhook"),
        }
        logto: dict[str, Any] = {"family": "webhook"}
        related: list[str] = []
        user: dict[str, Any] = {}
        if (uid := _str(payload.get("userId"))) is not None:
            user["id"] = uid
        who = payload.get("user")
        if type(who) is dict:
            user.setdefault("id", _str(who.get("id")))
            if (name := _str(who.get("username")) or _str(who.get("name"))) is not None:
                user["name"] = name
        data = payload.get("data")
        if event_name.startswith("User.") and type(data) is dict and (tid := _str(data.get("id"))):
            target = {"id": tid}
            if (tname := _str(data.get("username")) or _str(data.get("name"))) is not None:
                target["name"] = tname
            user["target"] = target
        user = {k: v for k, v in user.items() if v is not None}
        if user:
            doc["user"] = user
            related = [
                v for v in (user.get("id"), user.get("name"), *(user.get("target") or {}).values()) if v
            ]
        raw_ip = _str(payload.get("userIp")) or _str(payload.get("ip"))
        if raw_ip is not None:
            ip = normalize_ip(raw_ip)
            if ip is None:
                logto["ip"] = raw_ip
                doc["tags"] = ["logto_invalid_ip"]
            else:
                doc["source"] = {"ip": ip}
                doc["client"] = {"ip": ip}
        if ("userAgent" in payload) and (ua := _user_agent(payload)):
            doc["user_agent"] = ua
        method, path = _str(payload.get("method")), _str(payload.get("path"))
        if method is not None or type(status) is int:
            http: dict[str, Any] = {}
            if method is not None:
                http["request"] = {"method": method}
            if type(status) is int:
                http["response"] = {"status_code": status}
            doc["http"] = http
        if path is not None:
            doc["url"] = {"path": path}
        if (route := _str(payload.get("matchedRoute"))) is not None:
            logto["route"] = route
        app = payload.get("application")
        app_id = _str(payload.get("applicationId"))
        if type(app) is dict:
            app_id = app_id or _str(app.get("id"))
            if (app_name := _str(app.get("name"))) is not None:
                logto["application_name"] = app_name
            if (app_type := _str(app.get("type"))) is not None:
                logto["application_type"] = app_type
        if app_id is not None:
            logto["application_id"] = app_id
        for src, dst in (
            ("sessionId", "session_id"),
            ("interactionEvent", "interaction_event"),
            ("hookId", "hook_id"),
        ):
            if (v := _str(payload.get(src))) is not None:
                logto[dst] = v
        if related:
            doc["related"] = {"user": list(dict.fromkeys(related))}
        logto["payload"] = self.masker.mask(payload)[0]
        if self.masker.reshaped:
            doc["tags"] = [*doc.get("tags", ()), RESHAPED_TAG]
        doc["logto"] = logto
        return Document(delivery_id, ts, ms, doc)


def _event_tail(
    event: dict[str, Any], category: tuple[str, ...], type_: tuple[str, ...], dataset: str = "logto.audit"
) -> dict[str, Any]:
    """``event``'s fields after ``outcome``, added to it (``_build`` and the native path's)."""
    event["kind"] = "event"
    event["module"] = "logto"
    event["dataset"] = dataset
    event["type"] = [*type_]
    if category:
        event["category"] = [*category]
    return event


_LOGTO_IDS = (
    ("applicationId", "application_id"),
    ("sessionId", "session_id"),
    ("interactionEvent", "interaction_event"),
    ("hookId", "hook_id"),
)
