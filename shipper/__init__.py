"""logto-shipper: ship Logto audit logs into Elasticsearch and search them.

The public surface is ``__all__``: what the CLI, tests and embedding code may rely on; the
modules behind it may move. Names load on first use (PEP 562), so a normalizer worker that
imports ``shipper.normalize`` does not load the configuration, the client or the pipeline.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_WHERE = {
    # configuration
    "ShipperConfig": "shipper.config",
    "load_config": "shipper.configfile",
    "parse_config": "shipper.configfile",
    # the stages and what travels between them
    "Source": "shipper.sources",
    "Chunk": "shipper.sources",
    "Lag": "shipper.sources",
    "Normalizer": "shipper.normalize",
    "Document": "shipper.normalize",
    "Rejection": "shipper.normalize",
    "Segment": "shipper.records",
    "Batch": "shipper.records",
    "DocRefs": "shipper.records",
    "Framer": "shipper.records",
    "Stage": "shipper.records",
    "Sink": "shipper.sinks.base",
    "MemorySink": "shipper.sinks.memory",
    # running it
    "Runner": "shipper.pipeline.runner",
    "BatchLimits": "shipper.pipeline.runner",
    "build_runner": "shipper.wiring",
    "Daemon": "shipper.daemon",
    "Clock": "shipper.clock",
    "ManualClock": "shipper.clock",
    "SYSTEM_CLOCK": "shipper.clock",
    # errors (each maps to an exit code in the CLI)
    "ShipperError": "shipper.errors",
    "ConfigError": "shipper.errors",
    "OutputError": "shipper.errors",
    "OutputAuthError": "shipper.errors",
    "MissingDependency": "shipper.errors",
}
_RENAMED = {"SYSTEM_CLOCK": "SYSTEM"}

__all__ = ["__version__", *sorted(_WHERE)]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'shipper' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)
