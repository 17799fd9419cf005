"""Single-document APIs and _bulk."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from tests.es_server.documents import check_id_length, check_writable
from tests.es_server.errors import EsError, bad_request
from tests.es_server.model import Index
from tests.es_server.transport import (
    Handler,
    Request,
    _BadJson,
)


class DocumentsApi:
    def routes_documents(self, IX: str) -> list[tuple[str, str, Handler, set[str]]]:
        return [
            (
                "POST PUT",
                r"(?:/" + IX + ")?/_bulk",
                self.h_bulk,
                {
                    "refresh",
                    "routing",
                    "timeout",
                    "wait_for_active_shards",
                    "pipeline",
                    "require_alias",
                    "_source",
                    "_source_includes",
                    "_source_excludes",
                    "require_data_stream",
                    "list_executed_pipelines",
                },
            ),
            (
                "PUT POST",
                r"/" + IX + "/_doc/(?P<id>[^/]+)",
                self.h_index,
                {
                    "op_type",
                    "refresh",
                    "routing",
                    "timeout",
                    "version",
                    "version_type",
                    "if_seq_no",
                    "if_primary_term",
                    "pipeline",
                    "wait_for_active_shards",
                    "require_alias",
                },
            ),
            (
                "POST",
                r"/" + IX + "/_doc",
                self.h_index,
                {
                    "op_type",
                    "refresh",
                    "routing",
                    "timeout",
                    "pipeline",
                    "wait_for_active_shards",
                    "require_alias",
                },
            ),
            (
                "PUT POST",
                r"/" + IX + "/_create/(?P<id>[^/]+)",
                self.h_create,
                {
                    "refresh",
                    "routing",
                    "timeout",
                    "version",
                    "version_type",
                    "pipeline",
                    "wait_for_active_shards",
                },
            ),
            (
                "GET HEAD",
                r"/" + IX + "/_doc/(?P<id>[^/]+)",
                self.h_get,
                {
                    "_source",
                    "_source_includes",
                    "_source_excludes",
                    "realtime",
                    "refresh",
                    "routing",
                    "preference",
                    "stored_fields",
                    "version",
                    "version_type",
                },
            ),
            (
                "DELETE",
                r"/" + IX + "/_doc/(?P<id>[^/]+)",
                self.h_delete_doc,
                {
                    "refresh",
                    "routing",
                    "timeout",
                    "version",
                    "version_type",
                    "if_seq_no",
                    "if_primary_term",
                    "wait_for_active_shards",
                },
            ),
        ]

    def _refresh_flag(self, r: Request) -> bool:
        v = r.params.get("refresh")
        if v is None or v == "false":
            return False
        if v in ("", "true", "wait_for"):
            return True
        raise bad_request(f"Unknown value for refresh: [{v}].")

    def _write_result(self, ix: Index, doc: Any, result: str, refreshed: bool = False) -> dict[str, Any]:
        replicas = int(ix.settings.get("index.number_of_replicas", "1"))
        out = {"_index": ix.name, "_id": doc.id, "_version": doc.version, "result": result}
        if refreshed:
            out["forced_refresh"] = True
        out.update(
            {
                "_shards": {"total": replicas + 1, "successful": 1, "failed": 0},
                "_seq_no": doc.seq_no,
                "_primary_term": 1,
            }
        )
        return out

    def h_index(self, r: Request) -> tuple[int, Any]:
        op = r.params.get("op_type", "index")
        if op not in ("index", "create"):
            raise bad_request(f"opType must be 'create' or 'index', found: [{op}]")
        doc_id = r.vars.get("id") or uuid.uuid4().hex[:20]
        ix = self.cluster.prepare(r.vars["index"])
        seq = r.params.get("if_seq_no")
        doc, result = self.cluster.index_doc(
            ix,
            doc_id,
            r.json(required=True),
            op,
            self._refresh_flag(r),
            int(seq) if seq is not None else None,
            int(r.params["if_primary_term"]) if "if_primary_term" in r.params else None,
        )
        refreshed = r.params.get("refresh") in ("", "true")
        return (201 if result == "created" else 200), self._write_result(ix, doc, result, refreshed)

    def h_create(self, r: Request) -> tuple[int, Any]:
        ix = self.cluster.prepare(r.vars["index"])
        doc, result = self.cluster.index_doc(
            ix, r.vars["id"], r.json(required=True), "create", self._refresh_flag(r)
        )
        return 201, self._write_result(ix, doc, result, r.params.get("refresh") in ("", "true"))

    def h_get(self, r: Request) -> tuple[int, Any]:
        from tests.es_server.source import filter_source, source_spec

        names = self.cluster.resolve(r.vars["index"])
        if len(names) != 1:
            raise bad_request(
                f"alias [{r.vars['index']}] has more than one index associated with it, can't execute a single index op"
            )
        ix = self.cluster.get_index(names[0])
        doc = ix.docs.get(r.vars["id"])
        if doc is None:
            return 404, {"_index": ix.name, "_id": r.vars["id"], "found": False}
        out: dict[str, Any] = {
            "_index": ix.name,
            "_id": doc.id,
            "_version": doc.version,
            "_seq_no": doc.seq_no,
            "_primary_term": 1,
            "found": True,
        }
        enabled, inc, exc = source_spec(None, r.params)
        if enabled:
            out["_source"] = filter_source(doc.source, inc, exc)
        return 200, out

    def h_delete_doc(self, r: Request) -> tuple[int, Any]:
        ix = self.cluster.prepare(r.vars["index"], auto_create=True)
        doc = ix.docs.pop(r.vars["id"], None)
        ix.seq += 1
        replicas = int(ix.settings.get("index.number_of_replicas", "1"))
        base = {
            "_index": ix.name,
            "_id": r.vars["id"],
            "_version": (doc.version + 1) if doc else 1,
            "_shards": {"total": replicas + 1, "successful": 1, "failed": 0},
            "_seq_no": ix.seq - 1,
            "_primary_term": 1,
        }
        return (200, {**base, "result": "deleted"}) if doc else (404, {**base, "result": "not_found"})

    def h_bulk(self, r: Request) -> tuple[int, Any]:
        started = time.monotonic()
        if self.faults.reject_bulk > 0:
            self.faults.reject_bulk -= 1
            raise EsError(
                429,
                "es_rejected_execution_exception",
                "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, "
                "replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, max_coordinating_and_primary_bytes=0]",
            )
        body = r.body
        if not body.strip():
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: no requests added;",
            )
        if not body.endswith(b"\n"):
            raise bad_request("The bulk request must be terminated by a newline [\\n]")
        lines = body.split(b"\n")[:-1]
        default_index = r.vars.get("index")
        refresh = self._refresh_flag(r)
        require_alias = r.flag("require_alias")
        ops: list[tuple[str, dict[str, Any], Any]] = []
        i = 0
        line_no = 0
        while i < len(lines):
            line_no += 1
            raw = lines[i]
            if not raw.strip():
                i += 1
                continue
            try:
                action = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise bad_request(
                    f"Malformed action/metadata line [{line_no}], expected START_OBJECT or END_OBJECT but found [VALUE_STRING]"
                ) from None
            if not isinstance(action, dict) or len(action) != 1:
                raise bad_request(
                    f"Malformed action/metadata line [{line_no}], expected START_OBJECT but found [{type(action).__name__}]"
                )
            ((op, meta),) = action.items()
            if op not in ("index", "create", "delete", "update"):
                raise bad_request(
                    f"Malformed action/metadata line [{line_no}], expected field [create], [delete], [index] or [update] but found [{op}]"
                )
            if not isinstance(meta, dict):
                raise bad_request(
                    f"Malformed action/metadata line [{line_no}], expected START_OBJECT but found [{type(meta).__name__}]"
                )
            for k in meta:
                if k not in (
                    "_index",
                    "_id",
                    "routing",
                    "if_seq_no",
                    "if_primary_term",
                    "version",
                    "version_type",
                    "pipeline",
                    "require_alias",
                    "dynamic_templates",
                    "retry_on_conflict",
                    "_source",
                    "op_type",
                    "list_executed_pipelines",
                ):
                    raise bad_request(f"Action/metadata line [{line_no}] contains an unknown parameter [{k}]")
            if op == "update":
                raise bad_request("test server: bulk [update] actions are not implemented")
            if meta.get("_id") is not None:
                check_id_length(str(meta["_id"]))
            if "_index" not in meta and default_index is None:
                raise EsError(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: index is missing;",
                )
            doc = None
            if op != "delete":
                i += 1
                line_no += 1
                if i >= len(lines):
                    raise bad_request(
                        f"Malformed action/metadata line [{line_no - 1}], expected a document source"
                    )
                try:
                    doc = orjson.loads(lines[i])
                except orjson.JSONDecodeError:
                    doc = _BadJson(lines[i])
            ops.append((op, meta, doc))
            i += 1
        items = []
        errors = False
        for op, meta, doc in ops:
            index = meta.get("_index", default_index)
            doc_id = meta.get("_id")
            item: dict[str, Any]
            try:
                item_requires = meta.get("require_alias", require_alias)
                if item_requires and index not in self.cluster.all_aliases():
                    raise EsError(
                        404,
                        "index_not_found_exception",
                        f"no such index [{index}] and [require_alias] request flag is [true] and [{index}] is not an alias",
                        **{
                            "resource.type": "index_expression",
                            "resource.id": index,
                            "index_uuid": "_na_",
                            "index": index,
                        },
                    )
                if op == "delete":
                    ix = self.cluster.prepare(index)
                    check_writable(ix)
                    existing = ix.docs.pop(str(doc_id), None)
                    ix.seq += 1
                    replicas = int(ix.settings.get("index.number_of_replicas", "1"))
                    item = {
                        "_index": ix.name,
                        "_id": str(doc_id),
                        "_version": (existing.version + 1) if existing else 1,
                        "result": "deleted" if existing else "not_found",
                        "_shards": {"total": replicas + 1, "successful": 1, "failed": 0},
                        "_seq_no": ix.seq - 1,
                        "_primary_term": 1,
                        "status": 200 if existing else 404,
                    }
                else:
                    if self.faults.item_fail_rate and self.faults.rng.random() < self.faults.item_fail_rate:
                        st = self.faults.item_fail_status
                        raise EsError(
                            st,
                            "es_rejected_execution_exception"
                            if st == 429
                            else "unavailable_shards_exception",
                            "rejected execution of primary operation"
                            if st == 429
                            else f"[{index}][0] primary shard is not active Timeout: [1m]",
                        )
                    ix = self.cluster.prepare(index)
                    if isinstance(doc, _BadJson):
                        raise EsError(
                            400,
                            "document_parsing_exception",
                            "[1:2] failed to parse",
                            caused_by={
                                "type": "x_content_parse_exception",
                                "reason": "[1:2] Unexpected character",
                            },
                        )
                    d, result = self.cluster.index_doc(
                        ix,
                        str(doc_id) if doc_id is not None else uuid.uuid4().hex[:20],
                        doc,
                        "create" if op == "create" else meta.get("op_type", "index"),
                        refresh,
                        meta.get("if_seq_no"),
                        meta.get("if_primary_term"),
                    )
                    item = {
                        **self._write_result(ix, d, result),
                        "status": 201 if result == "created" else 200,
                    }
            except EsError as exc:
                errors = True
                item = {
                    "_index": index,
                    "_id": str(doc_id) if doc_id is not None else None,
                    "status": exc.status,
                    "error": exc.cause(),
                }
                if exc.status == 409:
                    item["error"] = {**exc.cause()}
            items.append({op: item})
        return 200, {
            "errors": errors,
            "took": int((time.monotonic() - started) * 1000),
            "items": items,
        }
