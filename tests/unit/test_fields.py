"""The field table (shipper/normalize/fields.py) against what it must agree with: the index
mapping, the README's data contract, and the rules both interpreters rely on."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipper.normalize import Normalizer
from shipper.normalize.fields import AUDIT, WEBHOOK, Field, Kind, ShapeError, check

ROOT = Path(__file__).resolve().parents[2]
# What each kind writes, and the mapping types that can hold it.
TYPES: dict[Kind, set[str]] = {
    Kind.STR: {"keyword", "wildcard", "match_only_text", "text", "constant_keyword"},
    Kind.TEXT: {"keyword", "wildcard", "match_only_text", "text"},
    Kind.CODE: {"keyword"},
    Kind.IP: {"ip"},
    Kind.BAD_IP: {"keyword"},
    Kind.GEO_POINT: {"geo_point"},
    Kind.TIME: {"date", "date_nanos"},
    Kind.OUTCOME: {"keyword"},
    Kind.CONST: {"keyword", "constant_keyword"},
    Kind.FAMILY: {"keyword"},
    Kind.PAYLOAD: {"flattened"},
    Kind.TAGS: {"keyword"},
    Kind.INT: {"long", "integer", "short"},
    Kind.COLLECT: {"keyword"},
}


def _mapped(props: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for name, spec in props.items():
        if "properties" in spec:
            yield from _mapped(spec["properties"], f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", spec.get("type", "object")


MAPPED = dict(
    _mapped(
        json.loads((ROOT / "mappings/component-mappings.json").read_text())["template"]["mappings"][
            "properties"
        ]
    )
)


@pytest.mark.parametrize(
    "row", [r for r in AUDIT + WEBHOOK if r.kind is not Kind.RULES], ids=lambda r: r.path
)
def test_every_field_is_mapped_with_a_type_that_holds_its_kind(row: Field) -> None:
    assert row.path in MAPPED, f"{row.path}: add it to mappings/component-mappings.json"
    assert MAPPED[row.path] in TYPES[row.kind], f"{row.path}: {MAPPED[row.path]} cannot hold {row.kind.name}"


def test_the_readme_data_contract_names_every_field() -> None:
    text = (ROOT / "README.md").read_text()
    contract = text[text.index("## The data contract") : text.index("**Limits: nothing is refused")]
    named = set(re.findall(r"`([@a-z_.*]+)`", contract))
    for row in AUDIT + WEBHOOK:
        if row.kind is Kind.RULES:
            continue
        prefixes = {".".join(row.keys[:i]) + ".*" for i in range(1, len(row.keys))}
        assert row.path in named or prefixes & named, f"{row.path}: say where it comes from in the README"


def test_objects_must_be_contiguous_so_both_writers_agree_on_key_order() -> None:
    with pytest.raises(ShapeError, match="rows of user are not contiguous"):
        check(
            (
                Field("user.id", Kind.STR, ("a",)),
                Field("source.ip", Kind.IP, ("b",)),
                Field("user.name", Kind.STR, ("c",)),
            )
        )
    with pytest.raises(ShapeError, match="GEO_POINT takes 2 sources"):
        check((Field("source.geo.location", Kind.GEO_POINT, ("lat",)),))
    with pytest.raises(ShapeError, match="not in TAG_ORDER"):
        check((Field("logto.ip", Kind.BAD_IP, ("ip",), tag="other"),))
    # nested objects may close and their parent go on
    check((Field("a.b.c", Kind.STR), Field("a.d", Kind.STR), Field("e", Kind.STR)))


def test_alternatives_first_that_yields_wins() -> None:
    n = Normalizer(native=None)
    plain = n.record({"id": "1", "key": "K", "createdAt": 1, "payload": {"error": "boom"}})
    obj = n.record({"id": "1", "key": "K", "createdAt": 1, "payload": {"error": {"message": ""}}})
    empty = n.record({"id": "1", "key": "K", "createdAt": 1, "payload": {"error": ""}})
    assert plain.body["error"] == {"message": "boom"}  # type: ignore[union-attr]
    assert obj.body["error"] == {"message": ""}  # type: ignore[union-attr]
    assert "error" not in empty.body  # type: ignore[union-attr]


def test_sources_take_the_first_value_of_the_kinds_type() -> None:
    n = Normalizer(native=None)
    doc = n.record({"id": "1", "key": "K", "createdAt": 1, "tenantId": "", "tenant_id": "t", "payload": {}})
    assert doc.body["organization"] == {"id": "t"} and doc.body["logto"]["tenant_id"] == "t"  # type: ignore[union-attr]
    ua = n.record(
        {
            "id": "1",
            "key": "K",
            "createdAt": 1,
            "payload": {"userAgent": "", "userAgentParsed": {"ua": "Mozilla"}},
        }
    )
    assert ua.body["user_agent"] == {"original": "Mozilla"}  # type: ignore[union-attr]


def test_the_generated_builders_are_current() -> None:
    from shipper.normalize import codegen

    assert codegen.TARGET.read_text() == codegen.render(), "run: python -m shipper.normalize.codegen"
    assert codegen.main(["--check"]) == 0


def test_a_table_compiled_at_run_time_builds_what_the_shipped_builder_does() -> None:
    """``Normalizer(fields=...)`` compiles its table from the same generated text."""
    import orjson

    from bench.generate import lines

    shipped = Normalizer(native=None)
    rebuilt = Normalizer(native=None, fields=AUDIT[:-1] + AUDIT[-1:])  # equal, not the same object
    assert rebuilt._build_audit is not shipped._build_audit
    for raw in lines(500, seed=2):
        a, b = shipped.line(raw.rstrip(b"\n")), rebuilt.line(raw.rstrip(b"\n"))
        assert orjson.dumps(getattr(a, "body", None)) == orjson.dumps(getattr(b, "body", None))
