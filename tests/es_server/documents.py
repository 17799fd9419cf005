"""Indexing one document: versions, write blocks, id limits, and parsing its source against
the mapping (dynamic fields included).
"""

from __future__ import annotations

import copy
import time
from typing import Any

from tests.es_server.errors import EsError
from tests.es_server.mapping import (
    MAX_TERM_BYTES,
    ConversionError,
    ImmenseTerm,
    convert,
    dynamic_for,
    merge_properties,
)
from tests.es_server.model import Doc, Index


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


class DocumentState:
    """A part of ``Cluster`` (store.py)."""

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
