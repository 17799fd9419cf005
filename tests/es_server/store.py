"""In-memory cluster state: indices and documents, templates, aliases, ILM policies.

Every public method runs under the server's lock. Times come from ``Clock`` so tests can move
ILM forward (``advance``) without waiting.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.es_server.errors import EsError, bad_request, index_not_found, resource_missing
from tests.es_server.mapping import (
    KEYWORDISH,
    MAX_TERM_BYTES,
    MODULE_TYPES,
    ConversionError,
    ImmenseTerm,
    convert,
    dynamic_for,
    merge_properties,
    parse_date,
    validate_properties,
)

OPTIONAL_MODULES = ("x-pack-ilm", "mapper-extras", "rest-root", "data-streams")
ORIGINATION_REGEX = r"^.*-(\d{4}.\d{2}.\d{2})(-[\d]+)?$"
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
ILM_PHASE_ACTIONS = {
    "hot": {
        "set_priority",
        "unfollow",
        "rollover",
        "readonly",
        "shrink",
        "forcemerge",
        "searchable_snapshot",
        "downsample",
    },
    "warm": {
        "set_priority",
        "unfollow",
        "readonly",
        "allocate",
        "migrate",
        "shrink",
        "forcemerge",
        "downsample",
    },
    "cold": {
        "set_priority",
        "unfollow",
        "readonly",
        "searchable_snapshot",
        "allocate",
        "migrate",
        "freeze",
        "downsample",
    },
    "frozen": {"searchable_snapshot", "unfollow"},
    "delete": {"wait_for_snapshot", "delete"},
}
PHASE_ORDER = ["hot", "warm", "cold", "frozen", "delete"]
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


def origination_ms(name: str) -> int:
    m = re.match(ORIGINATION_REGEX, name)
    if not m:
        raise bad_request(f"index name [{name}] does not match pattern '{ORIGINATION_REGEX}'")
    try:
        return (
            parse_date(m.group(1).replace("-", ".").replace("/", "."), "yyyy.MM.dd")
            if re.fullmatch(r"\d{4}\.\d{2}\.\d{2}", m.group(1))
            else _raise()
        )
    except (ConversionError, ValueError):
        raise bad_request(
            f"index name [{name}] contains date [{m.group(1)}] which couldn't be parsed "
            "using the 'yyyy.MM.dd' format"
        ) from None


def _raise() -> int:
    raise ValueError


def _patterns_overlap(a: list[str], b: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(x, y) or fnmatch.fnmatchcase(y, x) for x in a for y in b)


class Cluster:
    """All state of the test cluster."""

    def __init__(self, clock: Clock, modules: frozenset[str] | None = None) -> None:
        self.clock = clock
        # A node built without some modules (Elastic's integ-test zip): their field types and
        # settings are unknown there. None: every module.
        absent = set() if modules is None else set(OPTIONAL_MODULES) - modules
        self.absent_types = frozenset(t for m in absent for t in MODULE_TYPES.get(m, ()))
        self.refused_settings = ("index.lifecycle.",) if "x-pack-ilm" in absent else ()
        self.indices: dict[str, Index] = {}
        self.index_templates: dict[str, dict[str, Any]] = {}
        self.component_templates: dict[str, dict[str, Any]] = {}
        self.policies: dict[str, dict[str, Any]] = {}

    # -- name resolution -------------------------------------------------------------------

    def alias_targets(self, alias: str) -> list[str]:
        return [i.name for i in self.indices.values() if alias in i.aliases]

    def all_aliases(self) -> set[str]:
        return {a for i in self.indices.values() for a in i.aliases}

    def resolve(
        self,
        expr: str | None,
        ignore_unavailable: bool = False,
        allow_no_indices: bool = True,
        expand_hidden: bool = False,
    ) -> list[str]:
        """Concrete index names for a comma-separated expression with wildcards and aliases."""
        if expr in (None, "", "_all", "*") and expr != "*":
            expr = "*"
        names: list[str] = []
        for part in str(expr).split(","):
            part = part.strip()
            if not part:
                continue
            exclude = part.startswith("-") and names
            pat = part[1:] if exclude else part
            if "*" in pat or "?" in pat:
                matched = [
                    n
                    for n, ix in self.indices.items()
                    if fnmatch.fnmatchcase(n, pat)
                    and (expand_hidden or pat.startswith(".") or (not ix.hidden and not n.startswith(".")))
                ]
                for a in self.all_aliases():
                    if fnmatch.fnmatchcase(a, pat):
                        matched += self.alias_targets(a)
            elif pat in self.indices:
                matched = [pat]
            elif pat in self.all_aliases():
                matched = self.alias_targets(pat)
            elif exclude:
                matched = []
            else:
                if ignore_unavailable:
                    continue
                raise index_not_found(pat)
            if exclude:
                names = [n for n in names if n not in matched]
            else:
                names += [m for m in dict.fromkeys(matched) if m not in names]
        if not names and not allow_no_indices:
            raise index_not_found(str(expr))
        return sorted(names)

    def get_index(self, name: str) -> Index:
        ix = self.indices.get(name)
        if ix is None:
            raise index_not_found(name)
        return ix

    # -- templates -------------------------------------------------------------------------

    def put_component_template(self, name: str, body: dict[str, Any], create: bool = False) -> None:
        if not isinstance(body, dict) or "template" not in body:
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: template is missing;",
            )
        if create and name in self.component_templates:
            raise bad_request(f"component template [{name}] already exists")
        tpl = body["template"]
        self._validate_template_body(tpl)
        self.component_templates[name] = copy.deepcopy(body)

    def _validate_template_body(self, tpl: Any) -> None:
        if not isinstance(tpl, dict):
            raise bad_request("[template] must be an object", "x_content_parse_exception")
        for k in tpl:
            if k not in ("settings", "mappings", "aliases", "lifecycle", "data_stream_options"):
                raise EsError(400, "x_content_parse_exception", f"[1:1] [template] unknown field [{k}]")
        if "settings" in tpl:
            normalize_settings(tpl["settings"], self.refused_settings)
        if "mappings" in tpl:
            validate_properties(tpl["mappings"].get("properties", {}), absent=self.absent_types)

    def put_index_template(self, name: str, body: dict[str, Any], create: bool = False) -> None:
        allowed = {
            "index_patterns",
            "template",
            "composed_of",
            "priority",
            "version",
            "_meta",
            "data_stream",
            "allow_auto_create",
            "ignore_missing_component_templates",
            "deprecated",
        }
        for k in body:
            if k not in allowed:
                raise EsError(400, "x_content_parse_exception", f"[1:2] [index_template] unknown field [{k}]")
        patterns = body.get("index_patterns")
        if isinstance(patterns, str):
            patterns = [patterns]
        if not patterns:
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: index patterns are missing;",
            )
        if body.get("data_stream") is not None:
            raise bad_request("test server: data streams are not implemented")
        if create and name in self.index_templates:
            raise bad_request(f"index template [{name}] already exists")
        missing = [
            c
            for c in body.get("composed_of", [])
            if c not in self.component_templates
            and c not in body.get("ignore_missing_component_templates", [])
        ]
        if missing:
            raise EsError(
                400,
                "invalid_index_template_exception",
                f"index_template [{name}] invalid, cause [index template [{name}] specifies "
                f"component templates {_list(missing)} that do not exist]",
            )
        tpl = body.get("template", {})
        self._validate_template_body(
            {k: v for k, v in tpl.items() if k != "mappings"} if isinstance(tpl, dict) else tpl
        )
        self._validate_composed_mappings(name, body)
        priority = int(body.get("priority", 0) or 0)
        for other, ob in self.index_templates.items():
            if (
                other != name
                and int(ob.get("priority", 0) or 0) == priority
                and _patterns_overlap(patterns, ob["index_patterns"])
            ):
                raise bad_request(
                    f"index template [{name}] has index patterns {_list(patterns)} matching patterns from "
                    f"existing templates [{other}] with patterns ({other} => {_list(ob['index_patterns'])}) "
                    f"that have the same priority [{priority}], multiple index templates may not match "
                    "during index creation, please use a different priority"
                )
        self.index_templates[name] = {**copy.deepcopy(body), "index_patterns": patterns}

    def _validate_composed_mappings(self, name: str, body: dict[str, Any]) -> None:
        """MetadataIndexTemplateService.validateCompositeTemplate: the mappings of the template
        and its components together, a failure wrapped twice as Elasticsearch reports it."""
        composed = self.compose_template(body)
        try:
            validate_properties(composed["mappings"].get("properties", {}), absent=self.absent_types)
        except EsError as exc:
            err = EsError(
                400,
                "illegal_argument_exception",
                f"composable template [{name}] template after composition is invalid",
                caused_by={
                    "type": "illegal_argument_exception",
                    "reason": f"invalid composite mappings for [{name}]",
                    "caused_by": exc.cause(),
                },
            )
            raise err from None

    def matching_template(self, index: str) -> tuple[str, dict[str, Any]] | None:
        best = None
        for name, t in self.index_templates.items():
            matches = any(fnmatch.fnmatchcase(index, p) for p in t["index_patterns"])
            priority = int(t.get("priority", 0) or 0)
            if matches and (best is None or priority > int(best[1].get("priority", 0) or 0)):
                best = (name, t)
        return best

    def compose(self, index: str) -> dict[str, Any]:
        """Settings/mappings/aliases an index would get from templates (simulate API)."""
        match = self.matching_template(index)
        return {**self.compose_template(match[1] if match else None), "template": match[0] if match else None}

    def compose_template(self, t: dict[str, Any] | None) -> dict[str, Any]:
        settings: dict[str, str] = {}
        props: dict[str, Any] = {}
        mapping_extra: dict[str, Any] = {}
        aliases: dict[str, Any] = {}
        if t is not None:
            parts = [
                self.component_templates[c]["template"]
                for c in t.get("composed_of", [])
                if c in self.component_templates
            ] + [t.get("template", {})]
            for p in parts:
                settings.update(normalize_settings(p.get("settings", {})))
                m = p.get("mappings", {})
                props = merge_properties(props, m.get("properties", {}), override=True)
                mapping_extra.update({k: v for k, v in m.items() if k != "properties"})
                aliases.update(p.get("aliases", {}))
        mappings = {**mapping_extra, "properties": props} if props or mapping_extra else {}
        return {"settings": settings, "mappings": mappings, "aliases": aliases}

    def simulate_template(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /_index_template/_simulate``: the body validated as a template, then composed
        (as Elasticsearch's TransportSimulateTemplateAction does, without storing it)."""
        saved = dict(self.index_templates)
        name = "simulate_template_" + uuid.uuid4().hex[:22]
        try:
            self.put_index_template(name, body)
            return self.compose_template(self.index_templates[name])
        finally:
            self.index_templates = saved

    # -- indices ---------------------------------------------------------------------------

    def create_index(self, name: str, body: dict[str, Any] | None = None, auto: bool = False) -> Index:
        validate_index_name(name)
        if name in self.indices:
            ix = self.indices[name]
            raise EsError(
                400,
                "resource_already_exists_exception",
                f"index [{name}/{ix.uuid}] already exists",
                index_uuid=ix.uuid,
                index=name,
            )
        if name in self.all_aliases():
            raise EsError(
                400,
                "invalid_index_name_exception",
                f"Invalid index name [{name}], already exists as alias",
                index=name,
                index_uuid="_na_",
            )
        body = body or {}
        for k in body:
            if k not in ("settings", "mappings", "aliases"):
                raise parsing_unknown_key(k)
        composed = self.compose(name)
        settings = {
            **composed["settings"],
            **normalize_settings(body.get("settings", {}), self.refused_settings),
        }
        mappings = composed["mappings"]
        req_m = body.get("mappings") or {}
        if req_m:
            if "_doc" in req_m and len(req_m) == 1:
                raise EsError(
                    400,
                    "mapper_parsing_exception",
                    "Root mapping definition has unsupported parameters:  [_doc : {...}]",
                )
            validate_properties(req_m.get("properties", {}), absent=self.absent_types)
            mappings = {
                **mappings,
                **{k: v for k, v in req_m.items() if k != "properties"},
                "properties": merge_properties(
                    mappings.get("properties", {}), req_m.get("properties", {}), override=True
                ),
            }
        settings.setdefault("index.number_of_shards", "1")
        settings.setdefault("index.number_of_replicas", "1")
        now = self.clock.now_ms()
        if settings.get("index.lifecycle.parse_origination_date") == "true" and not settings.get(
            "index.lifecycle.origination_date"
        ):
            origination_ms(name)  # raises like Elasticsearch when the name carries no date
        settings["index.provided_name"] = name
        settings["index.creation_date"] = str(now)
        aliases = {**composed["aliases"], **(body.get("aliases") or {})}
        for a in aliases:
            if a in self.indices:
                raise EsError(
                    400,
                    "invalid_alias_name_exception",
                    f"Invalid alias name [{a}]: an index or data stream exists with the same name as the alias",
                )
        ix = Index(name, settings, mappings or {}, {a: (v or {}) for a, v in aliases.items()}, now)
        settings["index.uuid"] = ix.uuid
        settings["index.version.created"] = "8500003"
        self.indices[name] = ix
        return ix

    def delete_index(self, expr: str, ignore_unavailable: bool = False) -> None:
        for part in expr.split(","):
            if "*" not in part and part not in self.indices:
                if part in self.all_aliases():
                    raise bad_request(
                        f"The provided expression [{part}] matches an alias, specify the corresponding concrete indices instead."
                    )
                if not ignore_unavailable:
                    raise index_not_found(part)
        for n in self.resolve(expr, ignore_unavailable=True):
            self.indices.pop(n, None)

    # -- documents -------------------------------------------------------------------------

    def prepare(self, index: str, auto_create: bool = True) -> Index:
        ix = self.indices.get(index)
        if ix is None:
            if index in self.all_aliases():
                targets = self.alias_targets(index)
                writes = [t for t in targets if self.indices[t].aliases[index].get("is_write_index")]
                if len(writes) == 1 or len(targets) == 1:
                    return self.indices[(writes or targets)[0]]
                raise bad_request(
                    f"no write index is defined for alias [{index}]. The write index may be explicitly "
                    "disabled using is_write_index=false or the alias points to multiple indices without one "
                    "being designated as a write index"
                )
            if not auto_create:
                raise index_not_found(index)
            ix = self.create_index(index, auto=True)
        if ix.closed:
            raise EsError(400, "index_closed_exception", "closed", index=index, index_uuid=ix.uuid)
        return ix

    def index_doc(
        self,
        ix: Index,
        doc_id: str,
        source: Any,
        op: str,
        refresh: bool,
        if_seq_no: int | None = None,
        if_primary_term: int | None = None,
    ) -> tuple[Doc, str]:
        if not isinstance(source, dict):
            raise EsError(400, "document_parsing_exception", "[1:1] failed to parse: source is not an object")
        if doc_id == "":
            raise EsError(400, "illegal_argument_exception", "if _id is specified it must not be empty")
        check_id_length(doc_id)
        check_writable(ix)
        existing = ix.docs.get(doc_id)
        if op == "create" and existing is not None:
            raise EsError(
                409,
                "version_conflict_engine_exception",
                f"[{doc_id}]: version conflict, document already exists (current version [{existing.version}])",
                index_uuid=ix.uuid,
                shard="0",
                index=ix.name,
            )
        if if_seq_no is not None:
            cur_seq = existing.seq_no if existing else -2
            if existing is None or cur_seq != if_seq_no or (if_primary_term not in (None, 1)):
                raise EsError(
                    409,
                    "version_conflict_engine_exception",
                    f"[{doc_id}]: version conflict, required seqNo [{if_seq_no}], primary term [{if_primary_term}]. "
                    + (
                        f"current document has seqNo [{cur_seq}] and primary term [1]"
                        if existing
                        else "but no document was found"
                    ),
                    index_uuid=ix.uuid,
                    shard="0",
                    index=ix.name,
                )
        fields, new_props = self.parse_document(ix, doc_id, source)
        if new_props:
            ix.mappings = {
                **ix.mappings,
                "properties": merge_properties(ix.mappings.get("properties", {}), new_props),
            }
            ix.types_cache = None
            limit = int(ix.settings.get("index.mapping.total_fields.limit", "1000"))
            if ix.total_fields() > limit:
                raise EsError(
                    400,
                    "document_parsing_exception",
                    f"[1:1] failed to parse: Limit of total fields [{limit}] has been exceeded while adding new fields [{len(new_props)}]",
                )
        visible = time.monotonic() + (
            0 if refresh else ix.refresh_interval() if ix.refresh_interval() >= 0 else 1e12
        )
        doc = Doc(
            ix.name,
            doc_id,
            copy.deepcopy(source),
            (existing.version + 1) if existing else 1,
            ix.seq,
            fields,
            visible,
        )
        ix.seq += 1
        ix.docs[doc_id] = doc
        return doc, "updated" if existing else "created"

    def parse_document(
        self, ix: Index, doc_id: str, source: dict[str, Any]
    ) -> tuple[dict[str, list[Any]], dict[str, Any]]:
        """Index-time field values, and mappings to add dynamically (or raise like ES)."""
        fields: dict[str, list[Any]] = {}
        new_props: dict[str, Any] = {}
        root_dynamic = str(ix.mappings.get("dynamic", "true")).lower()
        date_detection = ix.mappings.get("date_detection", True) not in (False, "false")

        def add(path: str, values: list[Any]) -> None:
            if values:
                fields.setdefault(path, []).extend(values)

        def leaf(path: str, fdef: dict[str, Any], value: Any) -> None:
            ftype = fdef.get("type")
            if ftype == "object" or "properties" in fdef:
                return
            at = path
            try:
                if ftype == "flattened":
                    flat_leaves(path, fdef, value)
                    return
                add(path, convert(ftype, value, fdef))
                for sub, sdef in (fdef.get("fields") or {}).items():
                    at = f"{path}.{sub}"
                    add(at, convert(sdef.get("type"), value, sdef))
            except ConversionError as exc:
                reason = exc.reason(at) if isinstance(exc, ImmenseTerm) else str(exc)
                raise EsError(
                    400,
                    "document_parsing_exception",
                    f"[1:2] failed to parse field [{path}] of type [{ftype}] in document with id '{doc_id}'. "
                    f"Preview of field's value: '{value}'",
                    caused_by={"type": "illegal_argument_exception", "reason": reason},
                ) from None

        def flat_leaves(path: str, fdef: dict[str, Any], value: Any, keys: tuple[str, ...] = ()) -> None:
            """FlattenedFieldParser: a key path deeper than ``depth_limit`` (default 20) or a key
            holding ``\\0`` fails the document; so does a keyed term ``key\\0value`` longer than
            Lucene's term limit; values longer than ``ignore_above`` are skipped."""
            if isinstance(value, dict):
                for k, v in value.items():
                    if "\0" in k:
                        raise ConversionError(
                            "Keys in [flattened] fields cannot contain the reserved character \\0. "
                            f"Offending key: [{k}]."
                        )
                    if len(keys) + 1 > int(fdef.get("depth_limit", 20)):
                        raise ConversionError(
                            f"The provided [flattened] field [{path}] exceeds the maximum depth limit of "
                            f"[{int(fdef.get('depth_limit', 20))}]."
                        )
                    flat_leaves(path, fdef, v, (*keys, k))
            elif isinstance(value, list):
                for v in value:
                    flat_leaves(path, fdef, v, keys)
            elif value is not None:
                s = ("true" if value else "false") if isinstance(value, bool) else str(value)
                above = fdef.get("ignore_above")
                if above is not None and len(s) > int(above):
                    return
                key = ".".join(keys)
                if len(key.encode()) + 1 + len(s.encode()) > MAX_TERM_BYTES:
                    raise ConversionError(
                        f"Flattened field [{path}] contains one immense field whose keyed encoding is longer "
                        f"than the allowed max length of {MAX_TERM_BYTES} bytes. Key length: "
                        f"{len(key.encode())}, value length: {len(s.encode())} for key starting with "
                        f"[{key[:10]}]"
                    )
                add(path, [s])
                if key:
                    add(f"{path}.{key}", [s])

        def walk(
            obj: dict[str, Any],
            prefix: str,
            props: dict[str, Any],
            dynamic: str,
            new: dict[str, Any],
            parent: str,
        ) -> None:
            for key, value in obj.items():
                parts = key.split(".")
                if len(parts) > 1:
                    nested: Any = value
                    for p in reversed(parts[1:]):
                        nested = {p: nested}
                    walk({parts[0]: nested}, prefix, props, dynamic, new, parent)
                    continue
                path = prefix + key
                fdef = props.get(key) or new.get(key)
                if fdef is None:
                    if value is None or (isinstance(value, list) and not value):
                        continue
                    if dynamic == "strict":
                        raise EsError(
                            400,
                            "strict_dynamic_mapping_exception",
                            f"[1:2] mapping set to strict, dynamic introduction of [{key}] within [{parent}] is not allowed",
                        )
                    if dynamic in ("false", "runtime"):
                        continue
                    fdef = dynamic_for(value, date_detection)
                    if fdef is None:
                        continue
                    new[key] = fdef
                is_object = "properties" in fdef or fdef.get("type") == "object"
                if is_object:
                    if fdef.get("enabled") in (False, "false"):
                        continue
                    child_dyn = str(fdef.get("dynamic", dynamic)).lower()
                    items = value if isinstance(value, list) else [value]
                    for item in items:
                        if item is None:
                            continue
                        if not isinstance(item, dict):
                            raise EsError(
                                400,
                                "document_parsing_exception",
                                f"[1:2] object mapping for [{path}] tried to parse field [{key}] as object, but found a concrete value",
                            )
                        sub_new = new.setdefault(key, {"properties": {}}) if key in new else None
                        if sub_new is None:
                            holder: dict[str, Any] = {}
                            walk(
                                item,
                                path + ".",
                                fdef.get("properties", {}),
                                child_dyn,
                                holder,
                                path,
                            )
                            if holder:
                                new[key] = {"properties": holder}
                        else:
                            walk(
                                item,
                                path + ".",
                                fdef.get("properties", {}),
                                child_dyn,
                                sub_new.setdefault("properties", {}),
                                path,
                            )
                else:
                    if (
                        isinstance(value, dict)
                        and fdef.get("type") != "flattened"
                        and fdef.get("type") != "geo_point"
                    ):
                        raise EsError(
                            400,
                            "document_parsing_exception",
                            f"[1:2] failed to parse field [{path}] of type [{fdef.get('type')}] in document with id '{doc_id}'. "
                            f"Preview of field's value: '{value}'",
                            caused_by={
                                "type": "illegal_argument_exception",
                                "reason": "Can't get text on a START_OBJECT at 1:2",
                            },
                        )
                    leaf(path, fdef, value)

        walk(source, "", ix.mappings.get("properties", {}), root_dynamic, new_props, "_doc")
        return fields, new_props

    # -- ILM -------------------------------------------------------------------------------

    def put_policy(self, name: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or "policy" not in body:
            raise EsError(
                400,
                "parse_exception",
                "request body is required" if not body else "[put_lifecycle_request] policy is required",
            )
        policy = body["policy"]
        for k in policy:
            if k not in ("phases", "_meta"):
                raise EsError(
                    400,
                    "x_content_parse_exception",
                    f"[1:2] [lifecycle_policy] unknown field [{k}]",
                )
        phases = policy.get("phases", {})
        timings: list[tuple[str, int]] = []
        for phase, pdef in phases.items():
            if phase not in ILM_PHASE_ACTIONS:
                raise bad_request(f"Lifecycle does not support phase [{phase}]")
            for k in pdef:
                if k not in ("min_age", "actions"):
                    raise EsError(400, "x_content_parse_exception", f"[1:2] [phase] unknown field [{k}]")
            for action in pdef.get("actions", {}):
                if action not in set().union(*ILM_PHASE_ACTIONS.values()):
                    raise EsError(
                        400,
                        "x_content_parse_exception",
                        f"[1:2] [phases] failed to parse field [{phase}]",
                        caused_by={
                            "type": "named_object_not_found_exception",
                            "reason": f"[1:2] unknown field [{action}]",
                        },
                    )
                if action not in ILM_PHASE_ACTIONS[phase]:
                    raise bad_request(f"invalid action [{action}] defined in phase [{phase}]")
            needs_rollover = [
                a
                for a in ("forcemerge", "shrink", "readonly", "searchable_snapshot", "downsample")
                if a in pdef.get("actions", {})
            ]
            if phase == "hot" and needs_rollover and "rollover" not in pdef.get("actions", {}):
                raise bad_request(
                    f"the [{', '.join(needs_rollover)}] action(s) may not be used in the [hot] phase "
                    "without an accompanying [rollover] action"
                )
            timings.append((phase, parse_time_value(pdef.get("min_age", "0ms"), "min_age")))
        timings.sort(key=lambda t: PHASE_ORDER.index(t[0]))
        for (p1, t1), (p2, t2) in itertools.pairwise(timings):
            if t2 < t1:
                raise bad_request(
                    f"Your policy is configured to run the {p2} phase (min_age: {_fmt_age(phases[p2].get('min_age', '0ms'))}) "
                    f"before the {p1} phase (min_age: {_fmt_age(phases[p1].get('min_age', '0ms'))}). You should change the phase timing so "
                    "that the phases will execute in the order of hot, warm, then cold."
                )
        prev = self.policies.get(name)
        norm = {
            "phases": {
                p: {"min_age": d.get("min_age", "0ms"), "actions": d.get("actions", {})}
                for p, d in phases.items()
            }
        }
        if "_meta" in policy:
            norm["_meta"] = policy["_meta"]
        entry = {
            "version": (prev["version"] + 1) if prev else 1,
            "modified_date": _iso_now(self.clock.now_ms()),
            "policy": norm,
        }
        self.policies[name] = entry
        return entry

    def delete_policy(self, name: str) -> None:
        if name not in self.policies:
            raise resource_missing("resource_not_found_exception", f"Lifecycle policy not found: {name}")
        users = sorted(
            i.name for i in self.indices.values() if i.settings.get("index.lifecycle.name") == name
        )
        if users:
            raise bad_request(
                f"Cannot delete policy [{name}]. It is in use by one or more indices: {_list(users)}"
            )
        del self.policies[name]

    def lifecycle_date(self, ix: Index) -> int:
        od = ix.settings.get("index.lifecycle.origination_date")
        if od not in (None, "-1"):
            return int(od)
        if ix.settings.get("index.lifecycle.parse_origination_date") == "true":
            return origination_ms(ix.name)
        return ix.created_ms

    def explain(self, ix: Index) -> dict[str, Any]:
        pname = ix.settings.get("index.lifecycle.name")
        now = self.clock.now_ms()
        if not pname:
            return {
                "index": ix.name,
                "index_creation_date_millis": ix.created_ms,
                "time_since_index_creation": _age(now - ix.created_ms),
                "index_age": _age(now - ix.created_ms),
                "managed": False,
            }
        lc = self.lifecycle_date(ix)
        out: dict[str, Any] = {
            "index": ix.name,
            "index_creation_date_millis": ix.created_ms,
            "time_since_index_creation": _age(now - ix.created_ms),
            "index_age": _age(now - ix.created_ms),
            "managed": True,
            "policy": pname,
            "lifecycle_date_millis": lc,
            "age": _age(now - lc),
        }
        policy = self.policies.get(pname)
        if policy is None:
            out.update(
                {
                    "step": "ERROR",
                    "step_info": {
                        "type": "illegal_argument_exception",
                        "reason": f"policy [{pname}] does not exist",
                    },
                }
            )
            return out
        phase, pdef = self.current_phase(policy["policy"], now - lc)
        out.update(
            {
                "phase": phase,
                "phase_time_millis": lc,
                "action": "complete",
                "action_time_millis": lc,
                "step": "complete",
                "step_time_millis": lc,
                "phase_execution": {
                    "policy": pname,
                    "phase_definition": pdef,
                    "version": policy["version"],
                    "modified_date_in_millis": now,
                },
            }
        )
        return out

    @staticmethod
    def current_phase(policy: dict[str, Any], age_ms: int) -> tuple[str, dict[str, Any]]:
        current = ("new", {"min_age": "0ms", "actions": {}})
        for p in PHASE_ORDER:
            d = policy["phases"].get(p)
            if d is not None and parse_time_value(d.get("min_age", "0ms"), "min_age") <= age_ms:
                current = (p, d)
        return current

    def run_ilm(self) -> list[str]:
        """Apply delete phases that are due; returns deleted index names."""
        deleted = []
        now = self.clock.now_ms()
        for ix in list(self.indices.values()):
            pname = ix.settings.get("index.lifecycle.name")
            policy = self.policies.get(pname or "")
            if policy is None:
                continue
            phase, pdef = self.current_phase(policy["policy"], now - self.lifecycle_date(ix))
            if phase == "delete" and "delete" in pdef.get("actions", {}):
                del self.indices[ix.name]
                deleted.append(ix.name)
            elif "readonly" in pdef.get("actions", {}):
                # ReadOnlyAction adds the index write block (docs: ilm-readonly): later writes
                # get 403 cluster_block_exception per item.
                ix.settings["index.blocks.write"] = "true"
        return deleted


def check_id_length(doc_id: str) -> None:
    """IndexRequest.validate: an _id over 512 UTF-8 bytes fails validation (in _bulk, the whole
    request: BulkRequest.validate collects every item's errors)."""
    if len(doc_id.encode()) > 512:
        raise EsError(
            400,
            "action_request_validation_exception",
            f"Validation Failed: 1: id [{doc_id}] is too long, must be no longer than 512 bytes but was: "
            f"{len(doc_id.encode())};",
        )


# Index blocks (docs: index-modules-blocks): the block's id and description in the 403.
WRITE_BLOCKS = {
    "index.blocks.read_only": "FORBIDDEN/5/index read-only (api)",
    "index.blocks.read_only_allow_delete": "TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, "
    "index has read-only-allow-delete block; for more information, see "
    "https://www.elastic.co/guide/en/elasticsearch/reference/8.19/fix-watermark-errors.html",
    "index.blocks.write": "FORBIDDEN/8/index write (api)",
}


def check_writable(ix: Index) -> None:
    for setting, block in WRITE_BLOCKS.items():
        if str(ix.settings.get(setting, "false")).lower() == "true":
            status = 429 if block.startswith("TOO_MANY") else 403
            raise EsError(status, "cluster_block_exception", f"index [{ix.name}] blocked by: [{block}];")


def parsing_unknown_key(k: str) -> EsError:
    return EsError(400, "parse_exception", f"unknown key [{k}] for create index")


def _list(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _fmt_age(v: str) -> str:
    return str(v)


def _age(ms: int) -> str:
    if ms >= 86_400_000:
        return f"{ms / 86_400_000:.2f}d"
    if ms >= 3_600_000:
        return f"{ms / 3_600_000:.2f}h"
    if ms >= 60_000:
        return f"{ms / 60_000:.2f}m"
    return f"{ms / 1000:.2f}s"


def _iso_now(ms: int) -> str:
    from tests.es_server.mapping import format_date

    return format_date(ms)


__all__ = ["KEYWORDISH", "Clock", "Cluster", "Doc", "Index", "nest_settings"]
