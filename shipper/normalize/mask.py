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


@dataclass
class Masker:
    """Applies ``MaskRules`` recursively; caches the verdict per key (keys repeat endlessly)."""

    rules: MaskRules = DEFAULT_RULES
    _verdicts: dict[str, bool] = field(default_factory=dict)

    def _secret(self, key: str) -> bool:
        v = self._verdicts.get(key)
        if v is None:
            v = self.rules.is_secret(key)
            if len(self._verdicts) < 100_000:  # bound: keys may be user-controlled URLs
                self._verdicts[key] = v
        return v

    def mask(self, value: Any, in_params: bool = False) -> tuple[Any, int]:
        """Return (masked copy, number of values masked). Input is not modified."""
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            n = 0
            rules = self.rules
            for k, v in value.items():
                # Booleans (``hasPassword``) and nulls reveal nothing; everything else is replaced.
                if (
                    v is not None
                    and v is not True
                    and v is not False
                    and (self._secret(k) or (in_params and canonical_key(k) in rules.params_keys))
                ):
                    out[k] = MASK
                    n += 1
                elif isinstance(v, (dict, list)):
                    out[k], m = self.mask(v, canonical_key(k) in rules.params_containers)
                    n += m
                else:
                    out[k] = v
            return out, n
        if isinstance(value, list):
            items = []
            n = 0
            for v in value:
                mv, m = self.mask(v, in_params)
                items.append(mv)
                n += m
            return items, n
        return value, 0
