"""The Python interpreter of the field table (``fields.py``): a record -> its document as a dict.

The native path (``_native/ecs.c``) interprets the same rows; tests/unit/test_native.py checks
that both write the same bytes. The loop runs once per record, so rows are compiled to plain
tuples first and each kind is a branch of one function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from shipper.normalize.fields import RESHAPED_TAG, TAG_ORDER, Field, Kind
from shipper.normalize.mask import Masker
from shipper.normalize.values import format_ms, location, normalize_ip

# (family, categories, types) of (key, outcome): categories.py, behind the normalizer's cache.
Rules = Callable[[str, str], tuple[str, tuple[str, ...], tuple[str, ...]]]
# (kind, parents, leaf, sources, alternative, values, default, tag)
_Row = tuple[int, tuple[str, ...], str, tuple[tuple[str, ...], ...], bool, dict[str, str], str, str]

_STR, _TEXT, _CODE, _IP, _BAD_IP, _GEO, _TIME, _OUTCOME = range(8)
_CONST, _RULES, _FAMILY, _PAYLOAD, _TAGS, _INT, _COLLECT = range(8, 15)
assert [*Kind] == list(range(15))


def _compile(rows: tuple[Field, ...]) -> list[_Row]:
    out: list[_Row] = []
    prev = ""
    for r in rows:
        parents, leaf = (r.keys, "") if r.kind is Kind.RULES else (r.keys[:-1], r.keys[-1])
        sources = tuple(tuple(s.split(".")) for s in r.sources)
        out.append((int(r.kind), parents, leaf, sources, r.path == prev, dict(r.values), r.default, r.tag))
        prev = r.path
    return out


def _at(view: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        if type(view) is not dict:
            return None
        view = view.get(k)
    return view


class Assembler:
    """Builds documents from one table. ``view`` is the record with its payload decoded (and,
    for webhook deliveries, the values worked out before: ``outcome``, ``target``)."""

    def __init__(self, rows: tuple[Field, ...], masker: Masker, rules: Rules) -> None:
        self.rows = _compile(rows)
        self.masker = masker
        self.rules = rules

    def build(self, view: dict[str, Any], ms: int) -> dict[str, Any]:
        """The document. Raises ``TooDeep`` (masking) for payloads JSON cannot hold again."""
        doc: dict[str, Any] = {}
        tags: set[str] = set()
        wrote = False
        outcome = ""
        v: Any
        for kind, parents, leaf, sources, alternative, values, default, tag in self.rows:
            if alternative and wrote:
                continue
            v = None
            if kind == _STR:
                for path in sources:
                    x = _at(view, path)
                    if type(x) is str and x:
                        v = x
                        break
            elif kind in (_IP, _BAD_IP):
                for path in sources:
                    x = _at(view, path)
                    if type(x) is str and x:
                        ip = normalize_ip(x)
                        if kind == _IP:
                            v = ip
                        elif ip is None:
                            v = x
                            tags.add(tag)
                        break
            elif kind == _TIME:
                v = format_ms(ms)
            elif kind == _OUTCOME:
                x = _at(view, sources[0])
                v = outcome = values.get(x, default) if type(x) is str else default
            elif kind == _CONST:
                v = default
            elif kind in (_RULES, _FAMILY):
                family, category, type_ = self.rules(view["key"], outcome)
                if kind == _FAMILY:
                    v = family
                else:
                    target = self._object(doc, parents)
                    target["type"] = [*type_]
                    if category:
                        target["category"] = [*category]
                    wrote = True
                    continue
            elif kind == _PAYLOAD:
                v = self.masker.mask(_at(view, sources[0]) or {})[0]
                if self.masker.reshaped:
                    tags.add(RESHAPED_TAG)
            elif kind == _TAGS:
                v = [t for t in TAG_ORDER if t in tags] or None
            elif kind == _TEXT:
                for path in sources:
                    x = _at(view, path)
                    if x is not None:
                        v = _text(x)
                        break
            elif kind == _CODE:
                for path in sources:
                    x = _at(view, path)
                    if type(x) is str or type(x) is int:
                        v = str(x)
                        break
            elif kind == _GEO:
                v = location(_at(view, sources[0]), _at(view, sources[1]))
            elif kind == _INT:
                for path in sources:
                    x = _at(view, path)
                    if type(x) is int:
                        v = x
                        break
            elif kind == _COLLECT:
                got = [x for path in sources if (x := _at(doc, path)) is not None]
                v = list(dict.fromkeys(got)) or None
            wrote = v is not None
            if wrote:
                self._object(doc, parents)[leaf] = v
        return doc

    @staticmethod
    def _object(doc: dict[str, Any], parents: tuple[str, ...]) -> dict[str, Any]:
        for p in parents:
            child = doc.get(p)
            if child is None:
                child = doc[p] = {}
            doc = child
        return doc


def _text(x: Any) -> str:
    return x if type(x) is str else orjson.dumps(x).decode()
