"""Index lifecycle (create, get, delete, close, open), mappings, settings, _cat/indices."""

from __future__ import annotations

from typing import Any

import orjson

from tests.es_server.errors import EsError, bad_request
from tests.es_server.model import Index
from tests.es_server.settings import nest_settings, normalize_settings
from tests.es_server.transport import (
    INDEX_READ_OPTS,
    Handler,
    Request,
    _size,
    _Text,
)


class IndicesApi:
    def routes_indices(self, IX: str) -> list[tuple[str, str, Handler, set[str]]]:
        return [
            (
                "GET",
                r"/_cat/indices(?:/" + IX + ")?",
                self.h_cat_indices,
                {
                    "format",
                    "h",
                    "s",
                    "v",
                    "bytes",
                    "health",
                    "pri",
                    "expand_wildcards",
                    "help",
                    "time",
                    "local",
                    "master_timeout",
                    "include_unloaded_segments",
                },
            ),
            (
                "GET",
                r"(?:/" + IX + ")?/_mapping",
                self.h_get_mapping,
                INDEX_READ_OPTS,
            ),
            (
                "PUT POST",
                r"/" + IX + "/_mapping",
                self.h_put_mapping,
                {
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "master_timeout",
                    "timeout",
                    "write_index_only",
                },
            ),
            (
                "GET",
                r"(?:/" + IX + ")?/_settings(?:/(?P<name>[^/]+))?",
                self.h_get_settings,
                {
                    "flat_settings",
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "local",
                    "master_timeout",
                    "include_defaults",
                },
            ),
            (
                "PUT",
                r"(?:/" + IX + ")?/_settings",
                self.h_put_settings,
                {
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "preserve_existing",
                    "master_timeout",
                    "timeout",
                    "flat_settings",
                    "reopen",
                },
            ),
            (
                "POST",
                r"/" + IX + "/_close",
                self.h_close,
                {
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "master_timeout",
                    "timeout",
                    "wait_for_active_shards",
                },
            ),
            (
                "POST",
                r"/" + IX + "/_open",
                self.h_open,
                {
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "master_timeout",
                    "timeout",
                    "wait_for_active_shards",
                },
            ),
            (
                "PUT",
                r"/(?P<index>[^/_][^/]*)",
                self.h_create_index,
                {"master_timeout", "timeout", "wait_for_active_shards"},
            ),
            (
                "GET",
                r"/" + IX,
                self.h_get_index,
                {
                    "flat_settings",
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "local",
                    "master_timeout",
                    "include_defaults",
                    "features",
                },
            ),
            (
                "HEAD",
                r"/" + IX,
                self.h_exists_index,
                {
                    "flat_settings",
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "local",
                    "include_defaults",
                },
            ),
            (
                "DELETE",
                r"/" + IX,
                self.h_delete_index,
                {
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "master_timeout",
                    "timeout",
                },
            ),
        ]

    def h_create_index(self, r: Request) -> tuple[int, Any]:
        name = r.vars["index"]
        if name.startswith("_"):
            raise EsError(
                400,
                "invalid_index_name_exception",
                f"Invalid index name [{name}], must not start with '_', '-', or '+'",
                index=name,
                index_uuid="_na_",
            )
        body = r.json()
        ix = self.cluster.create_index(name, body)
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": ix.name}

    def h_delete_index(self, r: Request) -> tuple[int, Any]:
        self.cluster.delete_index(r.vars["index"], r.flag("ignore_unavailable"))
        return 200, {"acknowledged": True}

    def h_exists_index(self, r: Request) -> tuple[int, Any]:
        try:
            names = self.cluster.resolve(
                r.vars["index"],
                ignore_unavailable=r.flag("ignore_unavailable"),
                allow_no_indices=r.flag("allow_no_indices", False),
            )
        except EsError:
            return 404, None
        return (200 if names else 404), None

    def _index_view(self, ix: Index, flat: bool) -> dict[str, Any]:
        settings = {k: v for k, v in ix.settings.items() if v is not None}
        return {
            "aliases": ix.aliases,
            "mappings": ix.mappings,
            "settings": settings if flat else nest_settings(settings),
        }

    def h_get_index(self, r: Request) -> tuple[int, Any]:
        names = self.cluster.resolve(
            r.vars["index"],
            ignore_unavailable=r.flag("ignore_unavailable"),
            allow_no_indices=r.flag("allow_no_indices", True),
        )
        return 200, {n: self._index_view(self.cluster.indices[n], r.flag("flat_settings")) for n in names}

    def h_get_mapping(self, r: Request) -> tuple[int, Any]:
        names = self.cluster.resolve(
            r.vars.get("index", "_all"), ignore_unavailable=r.flag("ignore_unavailable")
        )
        return 200, {n: {"mappings": self.cluster.indices[n].mappings} for n in names}

    def h_put_mapping(self, r: Request) -> tuple[int, Any]:
        from tests.es_server.mapping import merge_properties, validate_properties

        body = r.json(required=True)
        validate_properties(body.get("properties", {}))
        for n in self.cluster.resolve(r.vars["index"]):
            ix = self.cluster.indices[n]
            ix.mappings = {
                **ix.mappings,
                **{k: v for k, v in body.items() if k != "properties"},
                "properties": merge_properties(ix.mappings.get("properties", {}), body.get("properties", {})),
            }
            ix.types_cache = None
        return 200, {"acknowledged": True}

    def h_get_settings(self, r: Request) -> tuple[int, Any]:
        import fnmatch

        names = self.cluster.resolve(
            r.vars.get("index", "_all"), ignore_unavailable=r.flag("ignore_unavailable")
        )
        out = {}
        for n in names:
            s = {k: v for k, v in self.cluster.indices[n].settings.items() if v is not None}
            if r.vars.get("name"):
                s = {
                    k: v
                    for k, v in s.items()
                    if any(fnmatch.fnmatchcase(k, p) for p in r.vars["name"].split(","))
                }
            out[n] = {"settings": s if r.flag("flat_settings") else nest_settings(s)}
        return 200, out

    def h_put_settings(self, r: Request) -> tuple[int, Any]:
        body = r.json(required=True)
        settings = normalize_settings(
            body.get("settings", body) if isinstance(body, dict) else {}, self.cluster.refused_settings
        )
        for static in ("index.number_of_shards", "index.lifecycle.parse_origination_date"):
            if static in settings and static == "index.number_of_shards":
                raise bad_request(f"Can't update non dynamic settings [[{static}]] for open indices")
        for n in self.cluster.resolve(r.vars.get("index", "_all")):
            ix = self.cluster.indices[n]
            for k, v in settings.items():
                if v is None:
                    ix.settings.pop(k, None)
                else:
                    ix.settings[k] = v
        return 200, {"acknowledged": True}

    def h_close(self, r: Request) -> tuple[int, Any]:
        names = self.cluster.resolve(r.vars["index"])
        for n in names:
            self.cluster.indices[n].closed = True
        return 200, {
            "acknowledged": True,
            "shards_acknowledged": True,
            "indices": {n: {"closed": True} for n in names},
        }

    def h_open(self, r: Request) -> tuple[int, Any]:
        for n in self.cluster.resolve(r.vars["index"]):
            self.cluster.indices[n].closed = False
        return 200, {"acknowledged": True, "shards_acknowledged": True}

    def h_cat_indices(self, r: Request) -> tuple[int, Any]:
        names = self.cluster.resolve(
            r.vars.get("index", "*"),
            expand_hidden=r.params.get("expand_wildcards") in ("all", "hidden"),
        )
        rows = []
        for n in names:
            ix = self.cluster.indices[n]
            size = sum(len(orjson.dumps(d.source)) for d in ix.docs.values())
            replicas = int(ix.settings.get("index.number_of_replicas", "1"))
            rows.append(
                {
                    "health": "green" if replicas == 0 else "yellow",
                    "status": "close" if ix.closed else "open",
                    "index": n,
                    "uuid": ix.uuid,
                    "pri": ix.settings.get("index.number_of_shards", "1"),
                    "rep": str(replicas),
                    "docs.count": None if ix.closed else str(len(ix.docs)),
                    "docs.deleted": None if ix.closed else "0",
                    "store.size": None if ix.closed else _size(size, r.params.get("bytes")),
                    "pri.store.size": None if ix.closed else _size(size, r.params.get("bytes")),
                    "dataset.size": None if ix.closed else _size(size, r.params.get("bytes")),
                }
            )
        if r.params.get("health"):
            if r.params["health"] not in ("green", "yellow", "red", "unknown", "unavailable"):
                raise bad_request(f"Invalid health status [{r.params['health']}]")
            rows = [x for x in rows if x["health"] == r.params["health"]]
        if r.params.get("s"):
            key = r.params["s"].split(":")[0]
            rows.sort(key=lambda x: str(x.get(key)), reverse=r.params["s"].endswith(":desc"))
        if r.params.get("h"):
            cols = r.params["h"].split(",")
            rows = [{c: x.get(c) for c in cols} for x in rows]
        if r.params.get("format") == "json":
            return 200, rows
        if r.params.get("format") not in (None, "txt", "text"):
            raise bad_request(f"test server: _cat format [{r.params['format']}] is not implemented")
        cols = list(rows[0]) if rows else (r.params.get("h", "").split(",") if r.params.get("h") else [])
        if not rows and not r.flag("v"):
            return 200, _Text("")
        lines = []
        if r.flag("v"):
            lines.append(cols)
        lines += [[("" if x[c] is None else str(x[c])) for c in cols] for x in rows]
        widths = [max((len(line[i]) for line in lines), default=0) for i in range(len(cols))]
        text = "".join(
            " ".join(v.ljust(widths[i]) for i, v in enumerate(line)).rstrip() + "\n" for line in lines
        )
        return 200, _Text(text)
