"""Normalize Logto audit-log records into the indexed ECS documents.

The per-record path uses plain dicts and orjson only; pydantic stays at the boundaries.
``Normalizer.line(raw)`` is the whole contract: bytes in, ``Document`` or ``Rejection`` out,
never an exception.
"""

from shipper.normalize import document as _document
from shipper.normalize.document import Document, Normalizer, Rejection
from shipper.normalize.mask import DEFAULT_RULES, MaskRules

# True when this install runs the mypyc-compiled normalizer (see hatch_build.py).
COMPILED = not (_document.__file__ or "").endswith(".py")
# True when it has the native path (shipper/normalize/_native, built into wheels).
NATIVE = _document.NATIVE is not None


def describe() -> str:
    """Which normalizer this install runs, for ``--version`` and the daemon's first log line."""
    parts = [f"native JSON path (yyjson {_document.NATIVE.YYJSON_VERSION})"] if NATIVE else []
    if COMPILED:
        parts.append("compiled with mypyc")
    return " + ".join(parts) or "pure Python"


__all__ = [
    "COMPILED",
    "DEFAULT_RULES",
    "NATIVE",
    "Document",
    "MaskRules",
    "Normalizer",
    "Rejection",
    "describe",
]
