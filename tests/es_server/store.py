"""In-memory cluster state: indices and documents, templates, aliases, ILM policies.

Every public method runs under the server's lock. Times come from ``Clock`` so tests can move
ILM forward (``advance``) without waiting. ``Cluster`` is assembled from the parts in
``templates.py``, ``documents.py`` and ``ilm.py``; its records are in ``model.py``.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from tests.es_server.documents import DocumentState, parsing_unknown_key
from tests.es_server.errors import EsError, bad_request, index_not_found
from tests.es_server.ilm import IlmState, origination_ms
from tests.es_server.mapping import (
    MODULE_TYPES,
    merge_properties,
    validate_properties,
)
from tests.es_server.model import Clock, Index
from tests.es_server.settings import normalize_settings, validate_index_name
from tests.es_server.templates import TemplateState

OPTIONAL_MODULES = ("x-pack-ilm", "mapper-extras", "rest-root", "data-streams")


class Cluster(TemplateState, DocumentState, IlmState):
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
