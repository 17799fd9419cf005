"""Index lifecycle management: policies, explain, remove, status."""

from __future__ import annotations

from typing import Any

from tests.es_server.errors import bad_request, resource_missing
from tests.es_server.settings import normalize_settings
from tests.es_server.transport import (
    Handler,
    Request,
)


class IlmApi:
    def routes_ilm(self, IX: str) -> list[tuple[str, str, Handler, set[str]]]:
        return [
            (
                "GET",
                r"/_ilm/policy(?:/(?P<name>[^/]+))?",
                self.h_get_policy,
                {"master_timeout", "timeout"},
            ),
            (
                "PUT",
                r"/_ilm/policy/(?P<name>[^/]+)",
                self.h_put_policy,
                {"master_timeout", "timeout"},
            ),
            (
                "DELETE",
                r"/_ilm/policy/(?P<name>[^/]+)",
                self.h_delete_policy,
                {"master_timeout", "timeout"},
            ),
            ("GET", r"/_ilm/status", self.h_ilm_status, set()),
            (
                "GET",
                r"/" + IX + "/_ilm/explain",
                self.h_ilm_explain,
                {"only_managed", "only_errors", "master_timeout"},
            ),
            ("POST", r"/" + IX + "/_ilm/remove", self.h_ilm_remove, set()),
        ]

    def h_put_policy(self, r: Request) -> tuple[int, Any]:
        self.cluster.put_policy(r.vars["name"], r.json(required=True))
        return 200, {"acknowledged": True}

    def h_get_policy(self, r: Request) -> tuple[int, Any]:
        name = r.vars.get("name")
        if name is None:
            names = sorted(self.cluster.policies)
        else:
            if "*" in name and "," in name:
                raise bad_request(
                    "wildcard only supports a single value, please use comma-separated values or a single wildcard value"
                )
            import fnmatch

            names = []
            for part in name.split(","):
                matched = [n for n in self.cluster.policies if fnmatch.fnmatchcase(n, part)]
                if not matched and "*" not in part:
                    raise resource_missing(
                        "resource_not_found_exception", f"Lifecycle policy not found: [{part}]"
                    )
                names += matched
        out = {}
        for n in names:
            p = self.cluster.policies[n]
            used = sorted(
                i.name for i in self.cluster.indices.values() if i.settings.get("index.lifecycle.name") == n
            )
            out[n] = {
                **p,
                "in_use_by": {
                    "indices": used,
                    "data_streams": [],
                    "composable_templates": sorted(
                        t
                        for t, b in self.cluster.index_templates.items()
                        if normalize_settings(b.get("template", {}).get("settings", {})).get(
                            "index.lifecycle.name"
                        )
                        == n
                    ),
                },
            }
        return 200, out

    def h_delete_policy(self, r: Request) -> tuple[int, Any]:
        self.cluster.delete_policy(r.vars["name"])
        return 200, {"acknowledged": True}

    def h_ilm_status(self, r: Request) -> tuple[int, Any]:
        return 200, {"operation_mode": "RUNNING"}

    def h_ilm_explain(self, r: Request) -> tuple[int, Any]:
        names = self.cluster.resolve(r.vars["index"])
        out = {}
        for n in names:
            e = self.cluster.explain(self.cluster.indices[n])
            if (r.flag("only_managed") or r.flag("only_errors")) and not e["managed"]:
                continue
            if r.flag("only_errors") and e.get("step") != "ERROR":
                continue
            out[n] = e
        return 200, {"indices": out}

    def h_ilm_remove(self, r: Request) -> tuple[int, Any]:
        for n in self.cluster.resolve(r.vars["index"]):
            self.cluster.indices[n].settings.pop("index.lifecycle.name", None)
        return 200, {"has_failures": False, "failed_indexes": []}
