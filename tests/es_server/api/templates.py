"""Index and component templates, their simulation, data streams."""

from __future__ import annotations

from typing import Any

from tests.es_server.errors import bad_request, index_not_found, resource_missing
from tests.es_server.settings import nest_settings, normalize_settings
from tests.es_server.transport import (
    Handler,
    Request,
)


class TemplatesApi:
    def routes_templates(self, IX: str) -> list[tuple[str, str, Handler, set[str]]]:
        return [
            (
                "GET",
                r"/_data_stream(?:/(?P<name>[^/]+))?",
                self.h_get_data_stream,
                {"expand_wildcards", "include_defaults", "master_timeout", "verbose"},
            ),
            (
                "GET",
                r"/_index_template(?:/(?P<name>[^/]+))?",
                self.h_get_index_template,
                {"flat_settings", "local", "master_timeout", "include_defaults"},
            ),
            (
                "HEAD",
                r"/_index_template/(?P<name>[^/]+)",
                self.h_exists_index_template,
                {"flat_settings", "local", "master_timeout"},
            ),
            (
                "PUT POST",
                r"/_index_template/(?P<name>[^/_][^/]*)",
                self.h_put_index_template,
                {"create", "master_timeout", "cause"},
            ),
            (
                "DELETE",
                r"/_index_template/(?P<name>[^/]+)",
                self.h_delete_index_template,
                {"master_timeout", "timeout"},
            ),
            (
                "POST",
                r"/_index_template/_simulate",
                self.h_simulate_template,
                {"master_timeout", "include_defaults", "create", "cause"},
            ),
            (
                "POST",
                r"/_index_template/_simulate_index/(?P<name>[^/]+)",
                self.h_simulate_index,
                {"master_timeout", "include_defaults"},
            ),
            (
                "GET",
                r"/_component_template(?:/(?P<name>[^/]+))?",
                self.h_get_component_template,
                {"flat_settings", "local", "master_timeout", "include_defaults"},
            ),
            (
                "HEAD",
                r"/_component_template/(?P<name>[^/]+)",
                self.h_exists_component_template,
                {"local", "master_timeout"},
            ),
            (
                "PUT POST",
                r"/_component_template/(?P<name>[^/]+)",
                self.h_put_component_template,
                {"create", "master_timeout", "timeout"},
            ),
            (
                "DELETE",
                r"/_component_template/(?P<name>[^/]+)",
                self.h_delete_component_template,
                {"master_timeout", "timeout"},
            ),
        ]

    def h_put_index_template(self, r: Request) -> tuple[int, Any]:
        before = self.cluster.index_templates.get(r.vars["name"])
        self.cluster.put_index_template(r.vars["name"], r.json(required=True), r.flag("create"))
        self._stamp(self.cluster.index_templates[r.vars["name"]], before)
        return 200, {"acknowledged": True}

    def _stamp(self, stored: dict[str, Any], before: dict[str, Any] | None) -> None:
        """9.x records when a template was created and last changed (and echoes both)."""
        if self.major < 9:
            return
        now = self.clock.now_ms()
        stored["created_date_millis"] = (before or {}).get("created_date_millis", now)
        stored["modified_date_millis"] = now

    def _template_names(self, store: dict[str, Any], name: str | None, kind: str) -> list[str]:
        import fnmatch

        if name is None:
            return sorted(store)
        out = []
        for part in name.split(","):
            matched = [n for n in store if fnmatch.fnmatchcase(n, part)]
            if not matched and "*" not in part:
                raise resource_missing(
                    "resource_not_found_exception",
                    f"{kind} [{part}] not found"
                    if kind == "index template"
                    else f"{kind} matching [{part}] not found",
                )
            out += matched
        return sorted(set(out))

    def _get_templates(self, r: Request, store: dict[str, Any], kind: str, key: str) -> tuple[int, Any]:
        names = self._template_names(store, r.vars.get("name"), kind)
        item = key.removesuffix("s")
        flat = r.flag("flat_settings")
        return 200, {key: [{"name": n, item: self._tpl_view(store[n], flat)} for n in names]}

    def h_get_index_template(self, r: Request) -> tuple[int, Any]:
        return self._get_templates(r, self.cluster.index_templates, "index template", "index_templates")

    def _tpl_view(self, t: dict[str, Any], flat: bool) -> dict[str, Any]:
        out = dict(t)
        tpl = dict(out.get("template", {}))
        if "settings" in tpl:
            s = normalize_settings(tpl["settings"])
            tpl["settings"] = s if flat else nest_settings(s)
        out["template"] = tpl
        if "index_patterns" in out:  # index templates echo composed_of; component templates have none
            out.setdefault("composed_of", [])
        return out

    def h_exists_index_template(self, r: Request) -> tuple[int, Any]:
        return (200 if r.vars["name"] in self.cluster.index_templates else 404), None

    def h_delete_index_template(self, r: Request) -> tuple[int, Any]:
        names = self._template_names(self.cluster.index_templates, r.vars["name"], "index template")
        for n in names:
            del self.cluster.index_templates[n]
        return 200, {"acknowledged": True}

    def h_refuse(self, r: Request) -> tuple[int, Any]:
        raise bad_request(f"test server: {r.method} {r.path} is not implemented")

    def h_get_data_stream(self, r: Request) -> tuple[int, Any]:
        """The test server holds no data streams (README): wildcards match none; a concrete
        name is 404 index_not_found_exception, as GetDataStreamsTransportAction resolves it."""
        names = [n for n in (r.vars.get("name") or "*").split(",") if n]
        for n in names:
            if "*" not in n and n != "_all":
                raise index_not_found(n)
        return 200, {"data_streams": []}

    def h_simulate_template(self, r: Request) -> tuple[int, Any]:
        composed = self.cluster.simulate_template(r.json(required=True))
        return 200, {
            "template": {
                "settings": nest_settings(dict(composed["settings"])),
                "mappings": composed["mappings"],
                "aliases": composed["aliases"],
            },
            "overlapping": [],
        }

    def h_simulate_index(self, r: Request) -> tuple[int, Any]:
        composed = self.cluster.compose(r.vars["name"])
        settings = dict(composed["settings"])
        return 200, {
            "template": {
                "settings": nest_settings(settings),
                "mappings": composed["mappings"],
                "aliases": composed["aliases"],
            },
            "overlapping": [],
        }

    def h_put_component_template(self, r: Request) -> tuple[int, Any]:
        before = self.cluster.component_templates.get(r.vars["name"])
        self.cluster.put_component_template(r.vars["name"], r.json(required=True), r.flag("create"))
        self._stamp(self.cluster.component_templates[r.vars["name"]], before)
        return 200, {"acknowledged": True}

    def h_get_component_template(self, r: Request) -> tuple[int, Any]:
        return self._get_templates(
            r, self.cluster.component_templates, "component template", "component_templates"
        )

    def h_exists_component_template(self, r: Request) -> tuple[int, Any]:
        return (200 if r.vars["name"] in self.cluster.component_templates else 404), None

    def h_delete_component_template(self, r: Request) -> tuple[int, Any]:
        names = self._template_names(self.cluster.component_templates, r.vars["name"], "component template")
        for n in names:
            users = [t for t, b in self.cluster.index_templates.items() if n in b.get("composed_of", [])]
            if users:
                raise bad_request(
                    f"component templates [{n}] cannot be removed as they are still in use by index templates [{', '.join(users)}]"
                )
            del self.cluster.component_templates[n]
        return 200, {"acknowledged": True}
