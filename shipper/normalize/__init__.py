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

__all__ = ["COMPILED", "DEFAULT_RULES", "Document", "MaskRules", "Normalizer", "Rejection"]
