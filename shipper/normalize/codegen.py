"""Write the Python normalizer's document builders from the field table (``fields.py``).

    python -m shipper.normalize.codegen          # rewrite shipper/normalize/_built.py
    python -m shipper.normalize.codegen --check  # exit 1 when it is stale (the tests check too)

Why generated code rather than a loop over the rows: the builders run once per record, and
straight-line code (each source path read once, each object a local dict) is what the
hand-written normalizer was, so it keeps its speed, in CPython and compiled by mypyc alike. The
rows stay the one place a field is declared; the native path interprets the same rows.

``compile_rows`` builds a builder for another table (tests) from the same generated text.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shipper.normalize.fields import AUDIT, RESHAPED_TAG, TAG_ORDER, WEBHOOK, Field, Kind

TARGET = Path(__file__).with_name("_built.py")
Builder = Callable[[dict[str, Any], int, Any, Any], dict[str, Any]]

_HEADER = '''"""Generated from shipper/normalize/fields.py by shipper/normalize/codegen.py: do not edit.

    python -m shipper.normalize.codegen   # after changing a row
"""

# ruff: noqa
from __future__ import annotations

from typing import Any

import orjson

from shipper.normalize.values import format_ms, location, normalize_ip, rules_members
'''


# Per kind reading sources: what a source's value must be (``{v}``: its local), and the value
# written from it. The first source that passes wins.
_TEST = {
    Kind.STR: "type({v}) is str and {v}",
    Kind.TEXT: "{v} is not None",
    Kind.CODE: "type({v}) is str or type({v}) is int",
    Kind.INT: "type({v}) is int",
}
_VALUE = {
    Kind.STR: "{v}",
    Kind.TEXT: "{v} if type({v}) is str else orjson.dumps({v}).decode()",
    Kind.CODE: "str({v})",
    Kind.INT: "{v}",
}


class _Writer:
    """One builder function: locals for every source path and object, rows in order."""

    def __init__(self, name: str, rows: tuple[Field, ...]) -> None:
        self.name = name
        self.rows = rows
        self.lines: list[str] = []
        self.paths: dict[tuple[str, ...], str] = {(): "view"}
        self.objects: dict[tuple[str, ...], str] = {(): "doc"}
        self.ips: dict[tuple[tuple[str, ...], ...], str] = {}
        self.made = 0  # objects made so far: each gets a name of its own
        self.rules = False
        self.prev = ""  # the previous row's path: a row of the same path is an alternative

    def emit(self, line: str, depth: int = 1) -> None:
        self.lines.append("    " * depth + line)

    def path(self, keys: tuple[str, ...]) -> str:
        """The local holding the value at ``keys`` (None when absent), read once."""
        var = self.paths.get(keys)
        if var is None:
            parent = self.path(keys[:-1])
            var = self.paths[keys] = f"s{len(self.paths)}"
            if parent == "view":
                self.emit(f"{var} = view.get({keys[-1]!r})")
            else:
                self.emit(f"{var} = {parent}.get({keys[-1]!r}) if type({parent}) is dict else None")
        return var

    def obj(self, keys: tuple[str, ...]) -> str:
        var = self.objects.get(keys)
        if var is None:
            self.obj(keys[:-1])
            self.made += 1
            var = self.objects[keys] = f"o{self.made}"
            self.emit(f"{var}: dict[str, Any] = {{}}")
        return var

    def chain(self, cases: list[tuple[str, str]], depth: int = 1) -> None:
        """``if``/``elif`` over (condition, statement) pairs."""
        for i, (cond, then) in enumerate(cases):
            self.emit(f"{'if' if i == 0 else 'elif'} {cond}:", depth)
            self.emit(then, depth + 1)

    def close_outside(self, parents: tuple[str, ...]) -> None:
        """Close the open objects that are not ``parents`` or above it, innermost first."""
        for keys in sorted(self.objects, key=len, reverse=True):
            if keys and keys != parents[: len(keys)]:
                self.close(keys)

    def close(self, keys: tuple[str, ...]) -> None:
        """Attach a finished object to its parent, if it holds anything (rows are contiguous)."""
        var = self.objects.pop(keys)
        parent = self.obj(keys[:-1])
        self.emit(f"if {var}:")
        self.emit(f"{parent}[{keys[-1]!r}] = {var}", 2)

    def build(self) -> list[str]:
        self.emit(
            f"def {self.name}(view: dict[str, Any], ms: int, rules: Any, masker: Any) -> dict[str, Any]:", 0
        )
        self.emit("doc: dict[str, Any] = {}")
        self.emit("tags = 0")
        self.emit('outcome = ""')
        for row in self.rows:
            parents = row.keys if row.kind is Kind.RULES else row.keys[:-1]
            self.close_outside(parents)
            self.row(row, self.obj(parents))
        self.close_outside(())
        self.emit("return doc")
        return self.lines

    def row(self, row: Field, target: str) -> None:
        leaf = row.keys[-1]
        put = f"{target}[{leaf!r}]"
        # Reads first, unconditionally: a later row may use the same locals.
        srcs = [] if row.kind is Kind.COLLECT else [self.path(tuple(s.split("."))) for s in row.sources]
        if row.kind in (Kind.IP, Kind.BAD_IP):
            sel, ip = self.address(tuple(tuple(s.split(".")) for s in row.sources), srcs)
        depth = 1
        if row.path == self.prev:
            self.emit(f"if {leaf!r} not in {target}:")
            depth = 2
        self.prev = row.path
        k = row.kind
        if k in _TEST:
            self.chain([(_TEST[k].format(v=v), f"{put} = {_VALUE[k].format(v=v)}") for v in srcs], depth)
        elif k in (Kind.IP, Kind.BAD_IP):
            if k is Kind.IP:
                self.emit(f"if {ip} is not None:", depth)
                self.emit(f"{put} = {ip}", depth + 1)
            else:
                self.emit(f"if {sel} is not None and {ip} is None:", depth)
                self.emit(f"{put} = {sel}", depth + 1)
                self.emit(f"tags |= {1 << TAG_ORDER.index(row.tag)}", depth + 1)
        elif k is Kind.GEO_POINT:
            self.emit(f"loc = location({srcs[0]}, {srcs[1]})", depth)
            self.emit("if loc is not None:", depth)
            self.emit(f"{put} = loc", depth + 1)
        elif k is Kind.TIME:
            self.emit(f"{put} = format_ms(ms)", depth)
        elif k is Kind.OUTCOME:
            self.emit(f"outcome = {row.default!r}", depth)
            self.chain(
                [(f"{srcs[0]} == {given!r}", f"outcome = {meant!r}") for given, meant in row.values], depth
            )
            self.emit(f"{put} = outcome", depth)
        elif k is Kind.CONST:
            self.emit(f"{put} = {row.default!r}", depth)
        elif k in (Kind.RULES, Kind.FAMILY):
            if not self.rules:
                self.rules = True
                self.emit('family, category, types = rules(view["key"], outcome)', depth)
            if k is Kind.FAMILY:
                self.emit(f"{put} = family", depth)
            else:
                self.emit(f"{target}.update(rules_members(category, types))", depth)
        elif k is Kind.PAYLOAD:
            self.emit(f"{put} = masker.mask({srcs[0]} or {{}})[0]", depth)
            self.emit("if masker.reshaped:", depth)
            self.emit(f"tags |= {1 << TAG_ORDER.index(RESHAPED_TAG)}", depth + 1)
        elif k is Kind.TAGS:
            self.emit("if tags:", depth)
            self.emit(f"{put} = [t for i, t in enumerate({TAG_ORDER!r}) if tags >> i & 1]", depth + 1)
        elif k is Kind.COLLECT:
            parts = []
            for s in row.sources:
                keys = tuple(s.split("."))
                parts.append(f"{self.objects.get(keys[:-1]) or self._closed(keys[:-1])}.get({keys[-1]!r})")
            self.emit(f"got = [x for x in ({', '.join(parts)},) if x is not None]", depth)
            self.emit("if got:", depth)
            self.emit(f"{put} = list(dict.fromkeys(got))", depth + 1)
        else:  # pragma: no cover - every kind is handled above
            raise ValueError(f"{row.path}: kind {k.name} has no generated form")

    def address(self, key: tuple[tuple[str, ...], ...], srcs: list[str]) -> tuple[str, str]:
        """(selected string, its canonical address) locals for these sources, worked out once."""
        var = self.ips.get(key)
        if var is None:
            var = self.ips[key] = f"a{len(self.ips)}"
            self.emit(f"{var}s = None")
            self.chain([(_TEST[Kind.STR].format(v=v), f"{var}s = {v}") for v in srcs])
            self.emit(f"{var} = normalize_ip({var}s) if {var}s is not None else None")
        return f"{var}s", var

    def _closed(self, keys: tuple[str, ...]) -> str:
        # An object already attached: read back from the document (COLLECT after its rows).
        expr = "doc"
        for k in keys:
            expr = f"{expr}.get({k!r}, {{}})"
        return f"({expr})"


def render_rows(name: str, rows: tuple[Field, ...]) -> str:
    return "\n".join(_Writer(name, rows).build()) + "\n"


def render() -> str:
    return "\n\n".join([_HEADER, render_rows("build_audit", AUDIT), render_rows("build_webhook", WEBHOOK)])


def compile_rows(rows: tuple[Field, ...]) -> Builder:
    """A builder for another table, from the same generated text (tests)."""
    scope: dict[str, Any] = {}
    exec(compile(_HEADER + "\n\n" + render_rows("build", rows), "<fields>", "exec"), scope)
    built: Builder = scope["build"]
    return built


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in args:
        if TARGET.read_text() != text:
            print(f"{TARGET} is stale: run python -m shipper.normalize.codegen", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
