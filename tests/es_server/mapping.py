"""Field mappings: explicit types, dynamic mapping, and value conversion per type.

Supported types: keyword, constant_keyword, text, match_only_text, wildcard, date, date_nanos,
long, integer, short, byte, unsigned_long, double, float, half_float, scaled_float, boolean, ip,
geo_point, flattened, object (incl. ``enabled: false``). Anything else is rejected on mapping
(``mapper_parsing_exception: No handler for type [x] declared on field [y]``), as Elasticsearch
does for unknown types.
"""

from __future__ import annotations

import ipaddress
import math
import re
from datetime import UTC, datetime
from typing import Any

from tests.es_server.errors import EsError

NUMERIC = {
    "long",
    "integer",
    "short",
    "byte",
    "unsigned_long",
    "double",
    "float",
    "half_float",
    "scaled_float",
}
INTEGER_RANGES = {
    "long": (-(2**63), 2**63 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "short": (-(2**15), 2**15 - 1),
    "byte": (-128, 127),
    "unsigned_long": (0, 2**64 - 1),
}
KEYWORDISH = {"keyword", "constant_keyword", "wildcard"}
TEXTISH = {"text", "match_only_text"}
LEAF = (
    NUMERIC
    | KEYWORDISH
    | TEXTISH
    | {"date", "date_nanos", "boolean", "ip", "geo_point", "flattened", "binary"}
)
_TOKEN = re.compile(r"\w+", re.UNICODE)
_DATE_DETECT = re.compile(
    r"^\d{4}[-/]\d{2}[-/]\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ConversionError(ValueError):
    pass


# Lucene's IndexWriter.MAX_TERM_LENGTH: a longer indexed term fails the whole document.
MAX_TERM_BYTES = 32766


class ImmenseTerm(ConversionError):
    """A keyword value over MAX_TERM_BYTES; the message needs the field, so the caller builds it."""

    def __init__(self, term: bytes) -> None:
        super().__init__("immense term")
        self.term = term

    def reason(self, field: str) -> str:
        # IndexingChain.processField's message, as Elasticsearch returns it in caused_by.
        return (
            f'Document contains at least one immense term in field="{field}" (whose UTF8 encoding is '
            f"longer than the max length {MAX_TERM_BYTES}), all of which were skipped. Please correct the "
            f"analyzer to not produce such terms. The prefix of the first immense term is: "
            f"'{list(self.term[:30])}...'"
        )


def analyze(text: str) -> list[str]:
    """The standard analyzer, closely enough: unicode word tokens, lower-cased."""
    return [t.lower() for t in _TOKEN.findall(text)]


def parse_date(value: Any, fmt: str | None = None) -> int:
    """Epoch millis from the default ``strict_date_optional_time||epoch_millis`` formats."""
    formats = (fmt or "strict_date_optional_time||epoch_millis").split("||")
    if isinstance(value, bool):
        raise ConversionError("boolean is not a date")
    if isinstance(value, int | float):
        if "epoch_millis" in formats or "epoch_second" in formats:
            return int(value * 1000) if formats[0] == "epoch_second" else int(value)
        raise ConversionError("number is not a date")
    if not isinstance(value, str):
        raise ConversionError("not a date")
    s = value.strip()
    for f in formats:
        f = f.strip()
        if f in ("epoch_millis", "epoch_second") and re.fullmatch(r"-?\d+(\.\d+)?", s):
            return int(float(s) * (1000 if f == "epoch_second" else 1))
        if f in (
            "strict_date_optional_time",
            "date_optional_time",
            "strict_date_time",
            "date_time",
            "strict_date_optional_time_nanos",
            "yyyy-MM-dd'T'HH:mm:ss.SSSZ",
            "yyyy-MM-dd",
        ):
            try:
                return _iso(s)
            except ValueError:
                continue
        if f in ("yyyy/MM/dd HH:mm:ss", "yyyy/MM/dd HH:mm:ss||yyyy/MM/dd", "yyyy/MM/dd"):
            for p in ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d"):
                try:
                    return _ms(datetime.strptime(s, p).replace(tzinfo=UTC))
                except ValueError:
                    continue
        if any(c in f for c in "yMdHms"):
            try:
                dt = datetime.strptime(s, java_to_strptime(f))
                return _ms(dt if dt.tzinfo else dt.replace(tzinfo=UTC))
            except ValueError:
                continue
    raise ConversionError(f"failed to parse date field [{value}] with format [{fmt or formats[0]}]")


def java_to_strptime(fmt: str) -> str:
    """A Java/Joda date pattern (``yyyy-MM-dd HH:mm:ss.SSS``) as a strptime format."""
    out, i = "", 0
    table = [
        ("yyyy", "%Y"),
        ("uuuu", "%Y"),
        ("MM", "%m"),
        ("dd", "%d"),
        ("HH", "%H"),
        ("mm", "%M"),
        ("ss", "%S"),
        ("SSSSSSSSS", "%f"),
        ("SSSSSS", "%f"),
        ("SSS", "%f"),
        ("XXX", "%z"),
        ("Z", "%z"),
    ]
    while i < len(fmt):
        if fmt[i] == "'":
            j = fmt.index("'", i + 1)
            out += fmt[i + 1 : j]
            i = j + 1
            continue
        for jp, py in table:
            if fmt.startswith(jp, i):
                out += py
                i += len(jp)
                break
        else:
            out += "%%" if fmt[i] == "%" else fmt[i]
            i += 1
    return out


def _ms(dt: datetime) -> int:
    d = dt - EPOCH
    return (d.days * 86400 + d.seconds) * 1000 + d.microseconds // 1000


def _iso(s: str) -> int:
    if not re.match(r"^[+-]?\d{4}", s):
        raise ValueError(s)
    if len(s) == 4:
        s += "-01-01"
    elif len(s) == 7:
        s += "-01"
    t = s.replace("z", "Z")
    m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})\.(\d+)(.*)$", t)
    if m and len(m.group(2)) > 6:
        t = m.group(1) + "." + m.group(2)[:6] + m.group(3)
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return _ms(dt)


def format_date(ms: int) -> str:
    from datetime import timedelta

    dt = EPOCH + timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def convert(ftype: str, value: Any, fdef: dict[str, Any]) -> list[Any]:
    """Indexed values of one source value for a field type; raises ConversionError."""
    if value is None:
        nv = fdef.get("null_value")
        return [] if nv is None else convert(ftype, nv, fdef)
    if (
        ftype == "geo_point"
        and isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) for v in value)
    ):
        return [_geo(value)]
    if isinstance(value, list):
        out: list[Any] = []
        for v in value:
            out.extend(convert(ftype, v, fdef))
        return out
    if ftype in KEYWORDISH:
        if isinstance(value, dict):
            raise ConversionError("object where a keyword was expected")
        s = (
            value
            if isinstance(value, str)
            else ("true" if value is True else "false" if value is False else str(value))
        )
        above = fdef.get("ignore_above")
        if above is not None and len(s) > int(above):
            return []
        if ftype == "keyword" and len(s.encode()) > MAX_TERM_BYTES:
            raise ImmenseTerm(s.encode())
        return [s]
    if ftype in TEXTISH:
        if isinstance(value, dict):
            raise ConversionError("object where text was expected")
        return [
            value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
        ]
    if ftype in ("date", "date_nanos"):
        return [parse_date(value, fdef.get("format"))]
    if ftype in NUMERIC:
        return [_number(ftype, value, fdef)]
    if ftype == "boolean":
        if value is True or value == "true":
            return [True]
        if value is False or value == "false" or value == "":
            return [False]
        raise ConversionError(f"Failed to parse value [{value}] as only [true] or [false] are allowed.")
    if ftype == "ip":
        if not isinstance(value, str):
            raise ConversionError(f"'{value}' is not an IP string literal.")
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            raise ConversionError(f"'{value}' is not an IP string literal.") from None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return [ip]
    if ftype == "geo_point":
        return [_geo(value)]
    if ftype == "binary":
        import base64

        try:
            base64.b64decode(str(value), validate=True)
        except ValueError:
            raise ConversionError("failed to decode base64") from None
        return [value]
    raise ConversionError(f"unsupported type {ftype}")


def _number(ftype: str, value: Any, fdef: dict[str, Any]) -> float | int:
    if isinstance(value, (bool, dict)):
        raise ConversionError(f"Current token ({type(value).__name__}) not numeric")
    try:
        num = float(value) if isinstance(value, str) else value
    except ValueError:
        raise ConversionError(f'For input string: "{value}"') from None
    if not isinstance(num, int | float) or (isinstance(num, float) and not math.isfinite(num)):
        raise ConversionError(f"[{value}] is not a finite number")
    if ftype in INTEGER_RANGES:
        lo, hi = INTEGER_RANGES[ftype]
        if (
            isinstance(value, str)
            and not re.fullmatch(r"-?\d+(\.0*)?", value.strip())
            and fdef.get("coerce", True)
        ):
            num = int(float(value))
        if num < lo or num > hi:
            raise ConversionError(f"Value [{value}] is out of range for a {ftype}")
        return int(num)
    return float(num)


def _geo(value: Any) -> tuple[float, float]:
    try:
        if isinstance(value, dict):
            lat, lon = float(value["lat"]), float(value["lon"])
        elif isinstance(value, list) and len(value) == 2:
            lon, lat = float(value[0]), float(value[1])
        elif isinstance(value, str) and "," in value:
            lat, lon = (float(x) for x in value.split(",", 1))
        else:
            raise ValueError
    except (KeyError, ValueError, TypeError):
        raise ConversionError("failed to parse geo_point") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ConversionError(
            f"illegal latitude value [{lat}]" if abs(lat) > 90 else f"illegal longitude value [{lon}]"
        )
    return (lat, lon)


# Each type's mapping parameters (the Elasticsearch reference, "Mapping parameters" and each
# field type's page; the builders' Parameter lists in server/.../index/mapper). Any other key is
# refused as FieldMapper.Builder.parse does: "unknown parameter [x] on mapper [f] of type [t]".
_FIELD_COMMON = {"type", "meta", "fields", "copy_to"}
_SCRIPTED = {"script", "on_script_error"}
_NUMBER_PARAMS = {"coerce", "doc_values", "ignore_malformed", "index", "null_value", "store"}
_NUMBER_PARAMS |= _SCRIPTED | {"time_series_dimension", "time_series_metric"}
_KEYWORD_PARAMS = {"doc_values", "eager_global_ordinals", "ignore_above", "index", "index_options"}
_KEYWORD_PARAMS |= {"norms", "null_value", "store", "similarity", "normalizer"}
_KEYWORD_PARAMS |= {"split_queries_on_whitespace", "time_series_dimension"} | _SCRIPTED
_TEXT_PARAMS = {"analyzer", "search_analyzer", "search_quote_analyzer", "eager_global_ordinals"}
_TEXT_PARAMS |= {"fielddata", "fielddata_frequency_filter", "index", "index_options", "index_prefixes"}
_TEXT_PARAMS |= {"index_phrases", "norms", "position_increment_gap", "store", "similarity", "term_vector"}
MAPPING_PARAMS: dict[str, set[str]] = {
    "keyword": _KEYWORD_PARAMS,
    "constant_keyword": {"value"},
    "wildcard": {"null_value", "ignore_above"},
    "text": _TEXT_PARAMS,
    "match_only_text": set(),
    "date": {"doc_values", "format", "locale", "ignore_malformed", "index", "null_value", "store"}
    | _SCRIPTED,
    "date_nanos": {"doc_values", "format", "locale", "ignore_malformed", "index", "null_value", "store"}
    | _SCRIPTED,
    **{t: _NUMBER_PARAMS for t in NUMERIC - {"scaled_float"}},
    "scaled_float": _NUMBER_PARAMS | {"scaling_factor"},
    "boolean": {"doc_values", "index", "null_value", "store", "ignore_malformed"} | _SCRIPTED,
    "ip": {"doc_values", "ignore_malformed", "index", "null_value", "store", "time_series_dimension"}
    | _SCRIPTED,
    "geo_point": {"doc_values", "ignore_malformed", "ignore_z_value", "index", "null_value", "store"}
    | _SCRIPTED,
    "flattened": {"depth_limit", "doc_values", "eager_global_ordinals", "ignore_above", "index"}
    | {"index_options", "null_value", "similarity", "split_queries_on_whitespace"}
    | {"time_series_dimensions"},
    "binary": {"doc_values", "store"},
}
OBJECT_PARAMS = {"type", "dynamic", "enabled", "properties", "subobjects"}


def _mapping_error(reason: str, cause_type: str = "mapper_parsing_exception") -> EsError:
    return EsError(
        400,
        "mapper_parsing_exception",
        f"Failed to parse mapping: {reason}",
        caused_by={"type": cause_type, "reason": reason},
    )


# Field types a module provides (a node built without it refuses them as MappingParser does).
MODULE_TYPES = {"mapper-extras": frozenset({"match_only_text", "scaled_float"})}


def validate_properties(props: Any, path: str = "", absent: frozenset[str] = frozenset()) -> None:
    """Reject mappings Elasticsearch would reject (unknown types and parameters, empty names,
    malformed properties); ``absent``: types whose module this node lacks."""
    if not isinstance(props, dict):
        raise EsError(400, "mapper_parsing_exception", "Expected map for property [properties]")
    for name, fdef in props.items():
        full = f"{path}{name}"
        if name == "":
            raise _mapping_error("field name cannot be an empty string", "illegal_argument_exception")
        if not isinstance(fdef, dict):
            raise EsError(
                400,
                "mapper_parsing_exception",
                f"Expected map for property [fields] on field [{full}] but got a class java.lang.String",
            )
        ftype = fdef.get("type", "object" if "properties" in fdef or "type" not in fdef else None)
        if ftype in ("object", "nested") or "properties" in fdef:
            if ftype == "nested":
                raise EsError(
                    400,
                    "mapper_parsing_exception",
                    f"test server: nested type not implemented (field [{full}])",
                )
            for k in fdef:
                if k not in OBJECT_PARAMS:
                    raise _mapping_error(f"unknown parameter [{k}] on mapper [{name}] of type [object]")
            validate_properties(fdef.get("properties", {}), full + ".", absent)
            continue
        if ftype in absent:
            raise _mapping_error(
                f"The mapper type [{ftype}] declared on field [{name}] does not exist. It might have been "
                "created within a future version or requires a plugin to be installed. Check the documentation."
            )
        if ftype not in LEAF:
            raise EsError(
                400,
                "mapper_parsing_exception",
                f"No handler for type [{ftype}] declared on field [{full}]",
            )
        for k in fdef:
            if k not in _FIELD_COMMON and k not in MAPPING_PARAMS[ftype]:
                raise _mapping_error(f"unknown parameter [{k}] on mapper [{name}] of type [{ftype}]")
        for sub, sdef in (fdef.get("fields") or {}).items():
            validate_properties({sub: sdef}, full + ".", absent)


def merge_properties(
    base: dict[str, Any], extra: dict[str, Any], path: str = "", override: bool = False
) -> dict[str, Any]:
    """Merge mapping ``extra`` into ``base``.

    ``override`` is Elasticsearch's INDEX_TEMPLATE merge (components, then the template, then the
    create-index request: later definitions replace earlier ones); otherwise (put mapping,
    dynamic updates) a changed leaf type is an error.
    """
    out = dict(base)
    for name, fdef in extra.items():
        cur = out.get(name)
        if cur is None:
            out[name] = fdef
            continue
        ctype, ntype = cur.get("type", "object"), fdef.get("type", "object")
        if "properties" in cur or "properties" in fdef:
            merged = dict(cur)
            merged.update({k: v for k, v in fdef.items() if k != "properties"})
            merged["properties"] = merge_properties(
                cur.get("properties", {}), fdef.get("properties", {}), f"{path}{name}.", override
            )
            out[name] = merged
        elif ctype != ntype and override:
            out[name] = fdef
        elif ctype != ntype:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"mapper [{path}{name}] cannot be changed from type [{ctype}] to [{ntype}]",
            )
        else:
            out[name] = {**cur, **fdef}
    return out


def dynamic_for(value: Any, date_detection: bool) -> dict[str, Any] | None:
    """The mapping dynamic mapping would create for a new field with this value."""
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "long"}
    if isinstance(value, float):
        return {"type": "float"}
    if isinstance(value, str):
        if date_detection and _DATE_DETECT.match(value):
            try:
                parse_date(value)
                return {"type": "date"}
            except ConversionError:
                pass
        return {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
    if isinstance(value, dict):
        return {"properties": {}}
    if isinstance(value, list):
        for v in value:
            if v is not None:
                return dynamic_for(v, date_detection)
        return None
    return None
