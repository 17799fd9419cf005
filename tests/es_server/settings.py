"""Index settings: the known ones, time values, flat and nested forms, index names."""

from __future__ import annotations

import re
from typing import Any

from tests.es_server.errors import EsError, bad_request

_INVALID_NAME_CHARS = set('\\/*?"<>| ,#:')
KNOWN_SETTINGS = {
    "index.number_of_shards",
    "index.number_of_replicas",
    "index.refresh_interval",
    "index.lifecycle.name",
    "index.lifecycle.parse_origination_date",
    "index.lifecycle.origination_date",
    "index.lifecycle.rollover_alias",
    "index.lifecycle.indexing_complete",
    "index.codec",
    "index.max_result_window",
    "index.hidden",
    "index.auto_expand_replicas",
    "index.priority",
    "index.number_of_routing_shards",
    "index.default_pipeline",
    "index.final_pipeline",
    "index.mode",
    "index.format",
    "index.provided_name",
    "index.creation_date",
    "index.uuid",
    "index.version.created",
}
KNOWN_SETTING_PREFIXES = (
    "index.analysis.",
    "index.routing.",
    "index.blocks.",
    "index.mapping.",
    "index.sort.",
    "index.query.",
    "index.translog.",
    "index.merge.",
    "index.search.",
    "index.indexing.",
    "index.store.",
)
_TIME_UNITS = {
    "nanos": 1e-6,
    "micros": 1e-3,
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
}


def parse_time_value(text: Any, setting: str) -> int:
    """Milliseconds of an Elasticsearch time value (``30s``, ``90d``, ``-1``)."""
    s = str(text).strip()
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?)(nanos|micros|ms|s|m|h|d)", s)
    if s in ("-1", "0"):
        return int(s)
    if not m:
        raise EsError(
            400,
            "illegal_argument_exception",
            f"failed to parse setting [{setting}] with value [{s}] as a time value: unit is missing or unrecognized",
        )
    return int(float(m.group(1)) * _TIME_UNITS[m.group(2)])


def _flatten_settings(settings: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if not isinstance(settings, dict):
        raise bad_request("settings must be an object", "x_content_parse_exception")
    for k, v in settings.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten_settings(v, key + "."))
        elif v is None:
            out[key] = None  # type: ignore[assignment]
        else:
            out[key] = (
                ("true" if v else "false")
                if isinstance(v, bool)
                else ([str(x) for x in v] if isinstance(v, list) else str(v))
            )  # type: ignore[assignment]
    return out


def normalize_settings(settings: Any, refused: tuple[str, ...] = ()) -> dict[str, str]:
    """Flat ``index.*`` settings; unknown ones (and ``refused`` prefixes: settings of a module
    this node lacks) fail as IndexScopedSettings.validate does."""
    flat = _flatten_settings(settings or {})
    out = {}
    for k, v in flat.items():
        key = k if k.startswith("index.") else f"index.{k}"
        known = key in KNOWN_SETTINGS or key.startswith(KNOWN_SETTING_PREFIXES)
        if not known or (refused and key.startswith(refused)):
            raise bad_request(
                f"unknown setting [{key}] please check that any required plugins are installed, "
                "or check the breaking changes documentation for removed settings"
            )
        out[key] = v
    return out


def nest_settings(flat: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in flat.items():
        if v is None:
            continue
        cur = out
        parts = k.split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
            if not isinstance(cur, dict):
                break
        else:
            cur[parts[-1]] = v
    return out


def validate_index_name(name: str) -> None:
    reason = None
    if name != name.lower():
        reason = "must be lowercase"
    elif any(c in _INVALID_NAME_CHARS for c in name):
        reason = 'must not contain the following characters [ , ", *, \\, <, |, ,, >, /, ?]'
    elif name.startswith(("-", "_", "+")):
        reason = "must not start with '_', '-', or '+'"
    elif name in (".", ".."):
        reason = "must not be '.' or '..'"
    elif len(name.encode()) > 255:
        reason = "index name is too long, (" + str(len(name.encode())) + " > 255)"
    if reason:
        raise EsError(
            400,
            "invalid_index_name_exception",
            f"Invalid index name [{name}], {reason}",
            index=name,
            index_uuid="_na_",
        )
