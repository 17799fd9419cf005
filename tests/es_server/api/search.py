"""_search, _count and _refresh."""

from __future__ import annotations

from typing import Any

from tests.es_server.errors import EsError
from tests.es_server.query import search
from tests.es_server.transport import (
    Handler,
    Request,
)


class SearchApi:
    def routes_search(self, IX: str) -> list[tuple[str, str, Handler, set[str]]]:
        return [
            (
                "GET POST",
                r"(?:/" + IX + ")?/_search",
                self.h_search,
                {
                    "q",
                    "size",
                    "from",
                    "sort",
                    "_source",
                    "_source_includes",
                    "_source_excludes",
                    "track_total_hits",
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "rest_total_hits_as_int",
                    "timeout",
                    "typed_keys",
                    "search_type",
                    "request_cache",
                    "preference",
                    "routing",
                    "allow_partial_search_results",
                    "batched_reduce_size",
                    "ccs_minimize_roundtrips",
                    "max_concurrent_shard_requests",
                    "seq_no_primary_term",
                    "version",
                    "track_scores",
                    "terminate_after",
                    "stats",
                    "ignore_throttled",
                },
            ),
            (
                "GET POST",
                r"(?:/" + IX + ")?/_count",
                self.h_count,
                {
                    "q",
                    "ignore_unavailable",
                    "allow_no_indices",
                    "expand_wildcards",
                    "min_score",
                    "terminate_after",
                    "routing",
                    "preference",
                    "default_operator",
                    "df",
                    "analyzer",
                    "lenient",
                    "analyze_wildcard",
                },
            ),
            (
                "GET POST",
                r"(?:/" + IX + ")?/_refresh",
                self.h_refresh,
                {"ignore_unavailable", "allow_no_indices", "expand_wildcards"},
            ),
        ]

    def _search_names(self, r: Request) -> list[str]:
        return self.cluster.resolve(
            r.vars.get("index", "_all"),
            ignore_unavailable=r.flag("ignore_unavailable"),
            allow_no_indices=r.flag("allow_no_indices", True),
        )

    def h_search(self, r: Request) -> tuple[int, Any]:
        body = r.json()
        if not isinstance(body, dict):
            raise EsError(400, "x_content_parse_exception", "[1:1] request body must be an object")
        return 200, search(self.cluster, self._search_names(r), body, r.params)

    def h_count(self, r: Request) -> tuple[int, Any]:
        body = r.json()
        for k in body:
            if k != "query":
                raise EsError(400, "x_content_parse_exception", f"[1:2] request does not support [{k}]")
        return 200, search(self.cluster, self._search_names(r), body, r.params, count_only=True)

    def h_refresh(self, r: Request) -> tuple[int, Any]:
        names = self.cluster.resolve(
            r.vars.get("index", "_all"), ignore_unavailable=r.flag("ignore_unavailable")
        )
        for n in names:
            for d in self.cluster.indices[n].docs.values():
                d.visible_at = 0
        # total counts every copy (primaries x (1 + replicas)); one node holds only primaries.
        shards = total = 0
        for n in names:
            st = self.cluster.indices[n].settings
            primaries = int(st["index.number_of_shards"])
            shards += primaries
            total += primaries * (1 + int(st.get("index.number_of_replicas", "1")))
        return 200, {"_shards": {"total": total, "successful": shards, "failed": 0}}
