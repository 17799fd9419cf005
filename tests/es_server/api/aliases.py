"""Aliases: get, put, delete, _aliases actions."""

from __future__ import annotations

from typing import Any

from tests.es_server.errors import EsError, bad_request, index_not_found, resource_missing
from tests.es_server.transport import (
    INDEX_READ_OPTS,
    Handler,
    Request,
)


class AliasesApi:
    def routes_aliases(self, IX: str) -> list[tuple[str, str, Handler, set[str]]]:
        return [
            (
                "GET",
                r"(?:/" + IX + ")?/_alias(?:/(?P<name>[^/]+))?",
                self.h_get_alias,
                INDEX_READ_OPTS,
            ),
            (
                "HEAD",
                r"(?:/" + IX + ")?/_alias/(?P<name>[^/]+)",
                self.h_exists_alias,
                INDEX_READ_OPTS,
            ),
            (
                "PUT POST",
                r"/" + IX + "/_alias(?:es)?/(?P<name>[^/]+)",
                self.h_put_alias,
                {"master_timeout", "timeout"},
            ),
            (
                "DELETE",
                r"/" + IX + "/_alias(?:es)?/(?P<name>[^/]+)",
                self.h_delete_alias,
                {"master_timeout", "timeout"},
            ),
            ("POST", r"/_aliases", self.h_aliases, {"master_timeout", "timeout"}),
        ]

    def h_put_alias(self, r: Request) -> tuple[int, Any]:
        body = r.json()
        names = self.cluster.resolve(r.vars["index"])
        if not names:
            raise index_not_found(r.vars["index"])
        alias = r.vars["name"]
        from tests.es_server.settings import validate_index_name

        try:
            validate_index_name(alias)
        except EsError as exc:
            raise EsError(
                400,
                "invalid_alias_name_exception",
                exc.reason.replace("Invalid index name", "Invalid alias name"),
            ) from None
        if alias in self.cluster.indices:
            raise EsError(
                400,
                "invalid_alias_name_exception",
                f"Invalid alias name [{alias}]: an index or data stream exists with the same name as the alias",
            )
        for n in names:
            self.cluster.indices[n].aliases[alias] = {
                k: v
                for k, v in body.items()
                if k
                in (
                    "filter",
                    "routing",
                    "is_write_index",
                    "is_hidden",
                    "index_routing",
                    "search_routing",
                )
            }
        return 200, {"acknowledged": True}

    def h_delete_alias(self, r: Request) -> tuple[int, Any]:
        removed = False
        for n in self.cluster.resolve(r.vars["index"]):
            for a in list(self.cluster.indices[n].aliases):
                import fnmatch

                if (
                    any(fnmatch.fnmatchcase(a, p) for p in r.vars["name"].split(","))
                    or r.vars["name"] == "_all"
                ):
                    del self.cluster.indices[n].aliases[a]
                    removed = True
        if not removed:
            raise resource_missing("aliases_not_found_exception", f"aliases [{r.vars['name']}] missing")
        return 200, {"acknowledged": True}

    def h_aliases(self, r: Request) -> tuple[int, Any]:
        body = r.json(required=True)
        for action in body.get("actions", []):
            ((kind, spec),) = action.items()
            indices = spec.get("indices") or [spec.get("index")]
            aliases = spec.get("aliases") or [spec.get("alias")]
            for expr in indices:
                names = self.cluster.resolve(expr)
                for n in names:
                    for a in aliases:
                        if kind == "add":
                            self.cluster.indices[n].aliases[a] = {
                                k: v
                                for k, v in spec.items()
                                if k in ("filter", "is_write_index", "routing", "is_hidden")
                            }
                        elif kind == "remove":
                            self.cluster.indices[n].aliases.pop(a, None)
                        elif kind == "remove_index":
                            self.cluster.indices.pop(n, None)
                        else:
                            raise bad_request(f"test server: alias action [{kind}] is not implemented")
        return 200, {"acknowledged": True, "errors": False}

    def _alias_view(self, r: Request) -> dict[str, Any]:
        import fnmatch

        pats = r.vars.get("name", "*").split(",")
        names = self.cluster.resolve(
            r.vars.get("index", "_all"),
            ignore_unavailable=r.flag("ignore_unavailable"),
            expand_hidden="index" not in r.vars,
        )
        out = {}
        for n in names:
            al = {
                a: v
                for a, v in self.cluster.indices[n].aliases.items()
                if any(fnmatch.fnmatchcase(a, p) or p == "_all" for p in pats)
            }
            if al or "name" not in r.vars:
                out[n] = {"aliases": al}
        return out

    def h_get_alias(self, r: Request) -> tuple[int, Any]:
        out = self._alias_view(r)
        name = r.vars.get("name")
        if name:
            found = {a for v in out.values() for a in v["aliases"]}
            missing = sorted(p for p in name.split(",") if "*" not in p and p not in found and p != "_all")
            if missing:
                word = "alias" if len(missing) == 1 else "aliases"
                return 404, {"error": f"{word} [{','.join(missing)}] missing", "status": 404, **out}
        return 200, out

    def h_exists_alias(self, r: Request) -> tuple[int, Any]:
        try:
            out = self._alias_view(r)
        except EsError:
            return 404, None
        return (200 if any(v["aliases"] for v in out.values()) else 404), None
