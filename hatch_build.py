"""Wheel build hook: the normalizer's hot modules compiled with mypyc wherever that works.

A wheel build (``pip install .``, ``pip wheel .``) compiles the modules listed under
``[tool.hatch.build.targets.wheel.hooks.custom]`` with mypyc (hatch-mypyc, as black builds its
wheels): the same code, about a third fewer instructions a record. The result stays pure Python
(same behaviour, slower) when:

- the install is editable (``pip install -e .``): an edited ``.py`` must never be shadowed by a
  stale extension module, so developers and the test suite run the sources;
- ``LOGTO_SHIPPER_PURE=1`` asks for it;
- compiling fails (no C compiler or Python headers, say): a warning names the cause.

hatch-mypyc builds in place; the extension modules are removed from the source tree once the
wheel holds them, for the same reason as above.
"""

from __future__ import annotations

import os
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PURE_ENV = "LOGTO_SHIPPER_PURE"
# What compiling needs in pip's build environment; asked for only when compiling is wanted, so a
# LOGTO_SHIPPER_PURE=1 build needs nothing beyond hatchling.
COMPILE_REQUIRES = ["hatch-mypyc>=0.16", "mypy>=1.10", "orjson>=3.9", "isal>=1.6"]


def _pure_asked() -> bool:
    return os.environ.get(PURE_ENV, "").strip() not in ("", "0")


def _pure_wanted(version: str) -> str | None:
    """Why this build stays pure Python, or None."""
    if version == "editable":
        return "editable install"
    if _pure_asked():
        return f"{PURE_ENV} is set"
    return None


class _Requires:
    def dependencies(self) -> list[str]:
        """Build requirements beyond hatchling (pip asks before it builds)."""
        return [] if _pure_asked() else COMPILE_REQUIRES


def get_build_hook() -> type[BuildHookInterface[Any]]:
    try:
        from hatch_mypyc.plugin import MypycBuildHook
    except ImportError:  # build requirements not installed (e.g. --no-build-isolation without them)
        return _Pure

    class CompiledNormalizer(_Requires, MypycBuildHook):  # type: ignore[misc]
        compiled = False

        def initialize(self, version: str, build_data: dict[str, Any]) -> None:
            why = _pure_wanted(version)
            if why is not None or self.target_name != "wheel":
                return
            try:
                super().initialize(version, build_data)
            except Exception as exc:  # hatch-mypyc raises a bare Exception with mypyc's output
                self.clean([version])
                tail = str(exc).strip().splitlines()[-5:]
                self.app.display_warning(
                    "logto-shipper: compiling the normalizer failed; building pure Python instead "
                    "(same behaviour, more CPU a record):\n  " + "\n  ".join(tail)
                )
                return
            self.compiled = True

        def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
            if self.compiled:
                self.clean([version])

    return CompiledNormalizer


class _Pure(_Requires, BuildHookInterface[Any]):
    """Before pip has installed the build requirements (it asks the hook for them), or without them."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if _pure_wanted(version) is None:
            self.app.display_warning("logto-shipper: hatch-mypyc is not installed; building pure Python")
