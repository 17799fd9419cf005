"""The public surface is pinned: a name added, removed or moved out of reach fails here."""

from __future__ import annotations

import subprocess
import sys

import shipper

PINNED = [
    "__version__",
    "Batch",
    "BatchLimits",
    "Chunk",
    "Clock",
    "ConfigError",
    "Daemon",
    "DocRefs",
    "Document",
    "Framer",
    "Lag",
    "ManualClock",
    "MemorySink",
    "MissingDependency",
    "Normalizer",
    "OutputAuthError",
    "OutputError",
    "Rejection",
    "Runner",
    "SYSTEM_CLOCK",
    "Segment",
    "ShipperConfig",
    "ShipperError",
    "Sink",
    "Source",
    "Stage",
    "build_runner",
    "load_config",
    "parse_config",
]


def test_all_is_pinned_and_every_name_resolves():
    assert shipper.__all__ == PINNED
    for name in PINNED:
        assert getattr(shipper, name) is not None, name
    assert shipper.SYSTEM_CLOCK.monotonic() > 0
    assert issubclass(shipper.OutputAuthError, shipper.OutputError)


def test_importing_the_package_loads_nothing_heavy():
    """A normalizer worker imports ``shipper.normalize``: that must not load the client,
    pydantic or the pipeline through the package's public names."""
    code = (
        "import sys, shipper.normalize.worker; "
        "print(sorted(m for m in ('elasticsearch', 'pydantic', 'shipper.wiring', 'shipper.config') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
