"""Secret masking of Logto payloads.

Logto before 1.42 only masked keys named exactly ``password``/``secret``; rows written by
older releases carry refresh tokens, authorization codes, PKCE verifiers and password hashes in
plain text. Everything leaving the normalizer passes through ``Masker.mask``.

Rules apply to the key, lower-cased, with ``_`` and ``-`` removed. Users can add rules in
``[mask]`` but never remove the defaults, so masking cannot be switched off by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MASK = "******"


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


_PLAIN, _SECRET, _CONTAINER = 0, 1, 2


@dataclass
class Masker:
    """Applies ``MaskRules`` recursively, copy-on-write: untouched subtrees are shared.

    Verdicts are cached per key (keys repeat endlessly); the cache is bounded because keys may
    be user-controlled URLs.
    """

    rules: MaskRules = DEFAULT_RULES
    _verdicts: dict[str, int] = field(default_factory=dict)
    _in_params: dict[str, int] = field(default_factory=dict)  # the same, inside ``params``

    def _verdict(self, key: str, in_params: bool = False) -> int:
        """PLAIN, SECRET or CONTAINER for ``key``, inside ``params`` or not; cached per table."""
        table = self._in_params if in_params else self._verdicts
        v = table.get(key)
        if v is None:
            k = canonical_key(key)
            if self.rules.is_secret(key) or (in_params and k in self.rules.params_keys):
                v = _SECRET
            elif k in self.rules.params_containers:
                v = _CONTAINER
            else:
                v = _PLAIN
            if len(table) < 100_000:
                table[key] = v
        return v

    def mask(self, value: Any, in_params: bool = False) -> tuple[Any, int]:
        """Return (masked value, number of values masked). The input is never modified."""
        if isinstance(value, dict):
            return self._mask_dict(value, in_params)
        if isinstance(value, list):
            return self._mask_list(value, in_params)
        return value, 0

    def _mask_dict(self, value: dict[str, Any], in_params: bool) -> tuple[dict[str, Any], int]:
        # The hot loop of the normalizer: verdicts come from one table lookup, literals stand for
        # PLAIN (0), SECRET (1) and CONTAINER (2), and a plain scalar costs a lookup and a type test.
        out: dict[str, Any] | None = None
        n = 0
        table = self._in_params if in_params else self._verdicts
        for k, v in value.items():
            verdict = table.get(k)
            if verdict is None:
                verdict = self._verdict(k, in_params)
            t = type(v)
            if verdict == 1:
                if v is None or t is bool:
                    continue  # booleans and nulls reveal nothing
                new: Any = MASK
                n += 1
            elif t is dict:
                new, m = self._mask_dict(v, verdict == 2)
                if new is v:
                    continue
                n += m
            elif t is list:
                new, m = self._mask_list(v, verdict == 2)
                if new is v:
                    continue
                n += m
            else:
                continue
            if out is None:
                out = dict(value)
            out[k] = new
        return (value if out is None else out), n

    def _mask_list(self, value: list[Any], in_params: bool) -> tuple[list[Any], int]:
        out: list[Any] | None = None
        n = 0
        for i, v in enumerate(value):
            new: Any
            if type(v) is dict:
                new, m = self._mask_dict(v, in_params)
            elif type(v) is list:
                new, m = self._mask_list(v, in_params)
            else:
                continue
            n += m
            if new is not v:
                if out is None:
                    out = list(value)
                out[i] = new
        return (value if out is None else out), n
