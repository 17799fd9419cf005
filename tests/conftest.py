"""Shared fixtures. ``SHARED`` is ../shared next to the project (absent in a user's checkout)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
if not (SHARED / "logto").is_dir():
    # A clean clone in a temp dir: look for the shared folder next to the original checkout.
    import os

    SHARED = Path(os.environ.get("SHIPPER_SHARED_DIR", str(SHARED)))


def shared_or_skip(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (../shared is only next to the developers' checkout)")
    return path
