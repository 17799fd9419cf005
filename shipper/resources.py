"""Where the bundled files (mappings/, ilm/, deploy/) are: in the wheel or in the checkout."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """``mappings``, ``ilm`` or ``deploy``: packaged copy first, then the source checkout."""
    packaged = _PKG / "_data" / name
    if packaged.is_dir():
        return packaged
    checkout = _PKG.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"bundled folder {name!r} not found (broken installation?)")
