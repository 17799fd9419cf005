"""The state's records: documents, indices, and the clock ILM ages them by."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.es_server.settings import parse_time_value


class Clock:
    """Wall-clock milliseconds plus an offset tests can advance."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.offset_ms


@dataclass
class Doc:
    index: str
    id: str
    source: dict[str, Any]
    version: int
    seq_no: int
    fields: dict[str, list[Any]]
    visible_at: float  # monotonic time from which search sees it (refresh semantics)


@dataclass
class Index:
    name: str
    settings: dict[str, str]
    mappings: dict[str, Any]
    aliases: dict[str, dict[str, Any]]
    created_ms: int
    uuid: str = field(default_factory=lambda: uuid.uuid4().hex[:22])
    docs: dict[str, Doc] = field(default_factory=dict)
    seq: int = 0
    closed: bool = False
    types_cache: dict[str, dict[str, Any]] | None = None

    @property
    def hidden(self) -> bool:
        return self.settings.get("index.hidden") == "true"

    def refresh_interval(self) -> float:
        return (
            parse_time_value(self.settings.get("index.refresh_interval", "1s"), "index.refresh_interval")
            / 1000
        )

    def field_types(self) -> dict[str, dict[str, Any]]:
        """Full path -> field definition, including multi-fields; cached until mappings change."""
        if self.types_cache is None:
            out: dict[str, dict[str, Any]] = {}

            def walk(props: dict[str, Any], prefix: str) -> None:
                for name, fdef in props.items():
                    path = prefix + name
                    if "properties" in fdef or fdef.get("type", "object") == "object":
                        out[path] = {**fdef, "type": "object"}
                        walk(fdef.get("properties", {}), path + ".")
                        continue
                    out[path] = fdef
                    for sub, sdef in (fdef.get("fields") or {}).items():
                        out[f"{path}.{sub}"] = sdef

            walk(self.mappings.get("properties", {}), "")
            self.types_cache = out
        return self.types_cache

    def field_type(self, path: str) -> dict[str, Any] | None:
        types = self.field_types()
        if path in types:
            return types[path]
        parts = path.split(".")
        for i in range(len(parts) - 1, 0, -1):
            t = types.get(".".join(parts[:i]))
            if t is not None and t.get("type") == "flattened":
                return {"type": "keyword", "flattened_sub": True}
        return None

    def total_fields(self) -> int:
        return len(self.field_types())
