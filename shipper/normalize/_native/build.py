"""Compile the native path (``ecs.c`` and the vendored yyjson) into ``shipper.normalize._ecs``.

Used by hatch_build.py for wheels and by the tests; both load this file by its path, so it
imports nothing of the package. setuptools does the compiling (compiler, flags, file suffix).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULE = "shipper.normalize._ecs"
SOURCES = [HERE / "ecs.c", HERE / "yyjson" / "yyjson.c"]
# ecs.c includes these (one translation unit): a change to one rebuilds the module
HEADERS = sorted(HERE.glob("*.h"))
# Only yyjson's reader is used: the rest is left out (half the compile time).
DEFINES = [
    ("YYJSON_DISABLE_WRITER", "1"),
    ("YYJSON_DISABLE_UTILS", "1"),
    ("YYJSON_DISABLE_INCR_READER", "1"),
    ("YYJSON_DISABLE_NON_STANDARD", "1"),
]


def build(out_dir: Path) -> Path:
    """Compile into ``out_dir``; the extension module's path. Raises when compiling fails."""
    from setuptools import Distribution, Extension  # type: ignore[import-untyped]
    from setuptools.command.build_ext import build_ext  # type: ignore[import-untyped]

    ext = Extension(
        MODULE,
        sources=[str(s) for s in SOURCES],
        depends=[str(h) for h in HEADERS],
        include_dirs=[str(HERE)],
        define_macros=DEFINES,
        extra_compile_args=["-O3"],
    )
    cmd = build_ext(Distribution({"name": "logto-shipper-native", "ext_modules": [ext]}))
    cmd.build_lib = str(out_dir)
    cmd.build_temp = str(out_dir / "tmp")
    cmd.ensure_finalized()
    cmd.run()
    return Path(cmd.get_ext_fullpath(MODULE))
