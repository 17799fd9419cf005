"""Wheel build hook: the normalizer's native path and its hot modules compiled, wherever that works.

A wheel build (``pip install .``, ``pip wheel .``) adds two things, each on its own:

- the native path ``shipper.normalize._ecs`` (``shipper/normalize/_native``: C over the vendored
  yyjson reader), which turns the usual Logto lines into framed documents without a Python object
  per field and leaves every other line to the Python normalizer;
- the modules listed under ``[tool.hatch.build.targets.wheel.hooks.custom]`` compiled with mypyc
  (hatch-mypyc, as black builds its wheels): the same code, about a third fewer instructions.

The result stays pure Python (same behaviour, slower) when:

- the install is editable (``pip install -e .``): an edited ``.py`` must never be shadowed by a
  stale extension module, so developers and the test suite run the sources;
- ``LOGTO_SHIPPER_PURE=1`` asks for it;
- compiling fails (no C compiler or Python headers, say): a warning names the cause.

hatch-mypyc builds in place; the extension modules are removed from the source tree once the
wheel holds them, for the same reason as above. The native module is built outside the tree.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PURE_ENV = "LOGTO_SHIPPER_PURE"
# What compiling needs in pip's build environment; asked for only when compiling is wanted, so a
# LOGTO_SHIPPER_PURE=1 build needs nothing beyond hatchling.
COMPILE_REQUIRES = ["hatch-mypyc>=0.16", "mypy>=1.10", "orjson>=3.9", "isal>=1.6", "setuptools>=61"]


def _pure_asked() -> bool:
    return os.environ.get(PURE_ENV, "").strip() not in ("", "0")


def _pure_wanted(version: str) -> str | None:
    """Why this build stays pure Python, or None."""
    if version == "editable":
        return "editable install"
    if _pure_asked():
        return f"{PURE_ENV} is set"
    return None


def _build_native(out_dir: Path) -> Path:
    path = Path(__file__).resolve().parent / "shipper" / "normalize" / "_native" / "build.py"
    spec = importlib.util.spec_from_file_location("_shipper_native_build", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Path(module.build(out_dir))


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
        native_dir: str | None = None

        def initialize(self, version: str, build_data: dict[str, Any]) -> None:
            why = _pure_wanted(version)
            if why is not None or self.target_name != "wheel":
                return
            self._add_native(build_data)
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

        def _add_native(self, build_data: dict[str, Any]) -> None:
            self.native_dir = tempfile.mkdtemp(prefix="logto-shipper-native-")
            try:
                so = _build_native(Path(self.native_dir))
            except Exception as exc:  # setuptools/distutils raise their own CompileError, LinkError
                self.app.display_warning(
                    "logto-shipper: compiling the native normalizer path failed; the Python "
                    f"normalizer does all the work (same behaviour, more CPU a record): {exc}"
                )
                return
            build_data["force_include"][str(so)] = f"shipper/normalize/{so.name}"
            build_data["pure_python"] = False
            build_data["infer_tag"] = True

        def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
            if self.compiled:
                self.clean([version])
            if self.native_dir:
                shutil.rmtree(self.native_dir, ignore_errors=True)

    return CompiledNormalizer


class _Pure(_Requires, BuildHookInterface[Any]):
    """Before pip has installed the build requirements (it asks the hook for them), or without them."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if _pure_wanted(version) is None:
            self.app.display_warning("logto-shipper: hatch-mypyc is not installed; building pure Python")
