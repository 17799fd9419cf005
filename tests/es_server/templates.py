"""Index and component templates: validation, composition, matching, simulation."""

from __future__ import annotations

import copy
import fnmatch
import uuid
from typing import Any

from tests.es_server.documents import _list
from tests.es_server.errors import EsError, bad_request
from tests.es_server.mapping import (
    merge_properties,
    validate_properties,
)
from tests.es_server.settings import normalize_settings


def _patterns_overlap(a: list[str], b: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(x, y) or fnmatch.fnmatchcase(y, x) for x in a for y in b)


class TemplateState:
    """A part of ``Cluster`` (store.py)."""

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
