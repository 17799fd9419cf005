"""_source filtering (includes, excludes, the _source parameters)."""

from __future__ import annotations

import fnmatch
from typing import Any

# -- source filtering -----------------------------------------------------------------------


def _flatten(src: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(src, dict):
        for k, v in src.items():
            p = f"{prefix}{k}"
            if isinstance(v, dict) and v:
                out.update(_flatten(v, p + "."))
            else:
                out[p] = v
    return out


def filter_source(src: dict[str, Any], includes: list[str], excludes: list[str]) -> dict[str, Any]:
    if not includes and not excludes:
        return src

    def keep(path: str) -> bool:
        inc = not includes or any(
            fnmatch.fnmatchcase(path, p) or path.startswith(p + ".") or fnmatch.fnmatchcase(path, p + ".*")
            for p in includes
        )
        exc = any(fnmatch.fnmatchcase(path, p) or path.startswith(p + ".") for p in excludes)
        return inc and not exc

    def walk(obj: Any, prefix: str) -> Any:
        out = {}
        for k, v in obj.items():
            p = f"{prefix}{k}"
            if isinstance(v, dict):
                if keep(p):
                    sub = walk(v, p + ".") if excludes else v
                    out[k] = sub
                else:
                    sub = walk(v, p + ".")
                    if sub:
                        out[k] = sub
            elif keep(p):
                out[k] = v
        return out

    return walk(src, "")


def source_spec(body_spec: Any, params: dict[str, str]) -> tuple[bool, list[str], list[str]]:
    includes: list[str] = []
    excludes: list[str] = []
    enabled = True
    spec = body_spec
    if "_source" in params:
        p = params["_source"]
        if p in ("false", "true"):
            enabled = p == "true"
        else:
            includes = p.split(",")
    if spec is not None:
        if spec is False:
            enabled = False
        elif spec is True:
            enabled = True
        elif isinstance(spec, str):
            includes = [spec]
        elif isinstance(spec, list):
            includes = spec
        elif isinstance(spec, dict):
            includes = _as_list(spec.get("includes", spec.get("include", [])))
            excludes = _as_list(spec.get("excludes", spec.get("exclude", [])))
    if params.get("_source_includes"):
        includes = params["_source_includes"].split(",")
    if params.get("_source_excludes"):
        excludes = params["_source_excludes"].split(",")
    return enabled, includes, excludes


def _as_list(v: Any) -> list[str]:
    return [v] if isinstance(v, str) else list(v or [])
