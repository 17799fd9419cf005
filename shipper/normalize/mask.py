"""Secret masking of Logto payloads.

Logto before 1.42 only masked keys named exactly ``password``/``secret``; rows written by
older releases carry refresh tokens, authorization codes, PKCE verifiers and password hashes in
plain text. Everything leaving the normalizer passes through ``Masker.mask``.

Rules apply to the key, lower-cased, with ``_`` and ``-`` removed. Users can add rules in
``[mask]`` but never remove the defaults, so masking cannot be switched off by accident.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

MASK = "******"
# What the ``flattened`` mapping of ``logto.payload`` accepts (mappings/component-mappings.json):
# key paths of at most ``depth_limit`` (20) keys, no ``\0`` in keys, and keyed terms
# ``path\0value`` under Lucene's 32,766 bytes: with keys of at most 1,000 bytes, 20 of them and a
# value under ``ignore_above`` (1,024 UTF-16 units, at most 3,072 bytes) always fit.
FLAT_DEPTH = 20
MAX_KEY_BYTES = 1000
RESHAPED_TAG = "logto_payload_reshaped"


class TooDeep(Exception):
    """A payload nested deeper than JSON text can be written again (orjson: 255 levels)."""


def canonical_key(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


@dataclass(frozen=True)
class MaskRules:
    """Which keys are secrets. All comparisons are on ``canonical_key(key)``."""

    equal: frozenset[str] = frozenset({"authorization", "token"})
    suffix: tuple[str, ...] = ("token",)
    contain: tuple[str, ...] = (
        "secret",
        "password",
        "apikey",
        "privatekey",
        "credential",
        "cookie",
    )
    # OAuth values that are only secrets inside request parameters: ``error.code`` elsewhere is
    # a diagnostic such as ``session.invalid_credentials`` and must stay readable.
    params_keys: frozenset[str] = frozenset({"code", "codeverifier"})
    params_containers: frozenset[str] = frozenset({"params"})

    def extended(
        self,
        equal: list[str] = (),  # type: ignore[assignment]
        suffix: list[str] = (),  # type: ignore[assignment]
        contain: list[str] = (),  # type: ignore[assignment]
        params_keys: list[str] = (),  # type: ignore[assignment]
    ) -> MaskRules:
        """Return these rules plus extra ones; defaults are never dropped."""
        return MaskRules(
            equal=self.equal | {canonical_key(k) for k in equal},
            suffix=self.suffix + tuple(canonical_key(k) for k in suffix),
            contain=self.contain + tuple(canonical_key(k) for k in contain),
            params_keys=self.params_keys | {canonical_key(k) for k in params_keys},
            params_containers=self.params_containers,
        )

    def is_secret(self, key: str) -> bool:
        k = canonical_key(key)
        return k in self.equal or any(k.endswith(s) for s in self.suffix) or any(c in k for c in self.contain)


DEFAULT_RULES = MaskRules()


_PLAIN, _SECRET, _CONTAINER, _RESHAPE = 0, 1, 2, 3  # _RESHAPE: a key ``flattened`` refuses


def escape_key(key: str) -> str:
    """A key ``flattened`` accepts: ``\0`` written as the six characters ``\u0000``; a key over
    ``MAX_KEY_BYTES`` cut (on a character boundary) and marked with ``…``."""
    key = key.replace("\0", "\\u0000")
    raw = key.encode()
    if len(raw) > MAX_KEY_BYTES:
        key = raw[: MAX_KEY_BYTES - 3].decode(errors="ignore") + "…"
    return key


def as_json_text(value: Any) -> str:
    """A (masked) subtree the mapping cannot take as an object, kept as JSON text."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson writes 255 levels; the stdlib until the recursion limit
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        except RecursionError:
            raise TooDeep from None


@dataclass
class Masker:
    """Applies ``MaskRules`` recursively, copy-on-write: untouched subtrees are shared.

    Verdicts are cached per key (keys repeat endlessly); the cache is bounded because keys may
    be user-controlled URLs.
    """

    rules: MaskRules = DEFAULT_RULES
    reshaped: int = 0  # subtrees kept as JSON text and keys escaped by the last ``mask``
    _verdicts: dict[str, int] = field(default_factory=dict)
    _in_params: dict[str, int] = field(default_factory=dict)  # the same, inside ``params``

    def _verdict(self, key: str, in_params: bool = False) -> int:
        """PLAIN, SECRET, CONTAINER or RESHAPE for ``key``, inside ``params`` or not; cached per
        table. RESHAPE (the key must be escaped first) also tells the native path to leave the
        record to this class."""
        table = self._in_params if in_params else self._verdicts
        v = table.get(key)
        if v is None:
            k = canonical_key(key)
            if "\0" in key or (len(key) * 4 > MAX_KEY_BYTES and len(key.encode()) > MAX_KEY_BYTES):
                v = _RESHAPE
            elif self._is_secret(key, in_params):
                v = _SECRET
            elif k in self.rules.params_containers:
                v = _CONTAINER
            else:
                v = _PLAIN
            if len(table) < 100_000:
                table[key] = v
        return v

    def _is_secret(self, key: str, in_params: bool) -> bool:
        return self.rules.is_secret(key) or (in_params and canonical_key(key) in self.rules.params_keys)

    def mask(self, value: Any, in_params: bool = False) -> tuple[Any, int]:
        """Return (masked value, number of values masked), shaped for the ``flattened`` mapping:
        objects deeper than ``FLAT_DEPTH`` keys become their JSON text, keys it refuses are
        escaped (counted in ``reshaped``). The input is never modified. Raises ``TooDeep``."""
        self.reshaped = 0
        if isinstance(value, dict):
            return self._mask_dict(value, in_params, 0)
        if isinstance(value, list):
            return self._mask_list(value, in_params, 0)
        return value, 0

    def _flat_leaf(self, value: dict[str, Any], in_params: bool) -> tuple[str, int]:
        """An object whose members would sit deeper than ``FLAT_DEPTH``: masked, as JSON text."""
        inner = Masker(self.rules)
        masked, m = inner._mask_dict(value, in_params, -(1 << 30))  # not cut again inside
        self.reshaped += 1 + inner.reshaped
        return as_json_text(masked), m

    def _reshape_key(self, k: str, v: Any, in_params: bool, depth: int) -> tuple[str, Any, int]:
        self.reshaped += 1
        if self._is_secret(k, in_params) and v is not None and type(v) is not bool:
            return escape_key(k), MASK, 1
        if type(v) is dict:
            new, m = self._child_dict(v, canonical_key(k) in self.rules.params_containers, depth)
            return escape_key(k), new, m
        if type(v) is list:
            new, m = self._mask_list(v, canonical_key(k) in self.rules.params_containers, depth + 1)
            return escape_key(k), new, m
        return escape_key(k), v, 0

    def _child_dict(self, v: dict[str, Any], in_params: bool, depth: int) -> tuple[Any, int]:
        if depth + 1 >= FLAT_DEPTH and v:
            return self._flat_leaf(v, in_params)
        return self._mask_dict(v, in_params, depth + 1)

    def _mask_dict(self, value: dict[str, Any], in_params: bool, depth: int) -> tuple[Any, int]:
        # The hot loop of the normalizer: verdicts come from one table lookup, literals stand for
        # PLAIN (0), SECRET (1), CONTAINER (2) and RESHAPE (3), and a plain scalar costs a lookup
        # and a type test. ``depth``: keys on the path to ``value``'s members, minus one.
        out: dict[str, Any] | None = None
        renamed: dict[str, str] | None = None
        n = 0
        table = self._in_params if in_params else self._verdicts
        new: Any
        for k, v in value.items():
            verdict = table.get(k)
            if verdict is None:
                verdict = self._verdict(k, in_params)
            t = type(v)
            if verdict == 3:
                k2, new, m = self._reshape_key(k, v, in_params, depth)
                n += m
                renamed = renamed or {}
                renamed[k] = k2
            elif verdict == 1:
                if v is None or t is bool:
                    continue  # booleans and nulls reveal nothing
                new = MASK
                n += 1
            elif t is dict:
                if depth + 1 >= FLAT_DEPTH and v:
                    new, m = self._flat_leaf(v, verdict == 2)
                else:
                    new, m = self._mask_dict(v, verdict == 2, depth + 1)
                    if new is v:
                        continue
                n += m
            elif t is list:
                new, m = self._mask_list(v, verdict == 2, depth + 1)
                if new is v:
                    continue
                n += m
            else:
                continue
            if out is None:
                out = dict(value)
            out[k] = new
        if renamed is not None:  # rebuilt in order; an escaped key never replaces a member
            src = value if out is None else out
            out = {}
            for k, v in src.items():
                k2 = renamed.get(k, k)
                while k2 in out or (k2 != k and k2 in value):
                    k2 += "_"
                out[k2] = v
        return (value if out is None else out), n

    def _mask_list(self, value: list[Any], in_params: bool, depth: int) -> tuple[list[Any], int]:
        # ``depth``: keys on the path to the list (arrays add no key to a flattened path).
        out: list[Any] | None = None
        n = 0
        for i, v in enumerate(value):
            new: Any
            if type(v) is dict:
                if depth >= FLAT_DEPTH and v:
                    new, m = self._flat_leaf(v, in_params)
                else:
                    new, m = self._mask_dict(v, in_params, depth)
            elif type(v) is list:
                new, m = self._mask_list(v, in_params, depth)
            else:
                continue
            n += m
            if new is not v:
                if out is None:
                    out = list(value)
                out[i] = new
        return (value if out is None else out), n
