"""Reading the TOML configuration: ``load_config(path)`` is the entry point.

It parses TOML, substitutes ``${VAR}`` and ``${VAR:-default}`` in string values, reads
``*_file`` secrets, validates against the models of ``shipper.config``, and raises
``ConfigError`` whose message names the file, the key and the problem (never a secret value).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any, get_args

from pydantic import (
    BaseModel,
    ValidationError,
)

from shipper.config import ShipperConfig
from shipper.errors import ConfigError

log = logging.getLogger(__name__)
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _type_tag(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("type")
    args = get_args(field.annotation) if field is not None else ()
    return args[0] if args else None


def keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys a config section accepts, for the section at ``loc`` (a pydantic error location:
    list indices and union tags such as ``file`` included)."""
    models: list[type[BaseModel]] = [ShipperConfig]
    for part in loc:
        if isinstance(part, int):
            continue
        tagged = [m for m in models if _type_tag(m) == part]
        if tagged:
            models = tagged
            continue
        models = [
            sub
            for m in models
            if (f := m.model_fields.get(part)) is not None
            for sub in _models_in(f.annotation)
        ]
    return sorted({f.alias or name for m in models for name, f in m.model_fields.items()})


def did_you_mean(loc: tuple[Any, ...]) -> str:
    """`` (did you mean 'hosts'?)`` for an unknown key close to a known one."""
    close = difflib.get_close_matches(str(loc[-1]), keys_at(loc[:-1]), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def substitute_env(value: Any, env: dict[str, str], where: tuple[Any, ...] = ()) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string; ``$$`` is a literal ``$``."""
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{_loc(where)}: environment variable {name} is not set")

        return _VAR.sub(repl, value)
    if isinstance(value, dict):
        return {k: substitute_env(v, env, (*where, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, env, (*where, i)) for i, v in enumerate(value)]
    return value


def _read_secret_files(data: dict[str, Any], where: tuple[Any, ...]) -> None:
    """``foo_file = PATH`` fills ``foo`` from the file (trailing newline stripped)."""
    for key in [k for k in data if k.endswith("_file") and k[: -len("_file")]]:
        target = key[: -len("_file")]
        if target not in {"api_key", "password", "dsn", "app_secret", "signing_key", "url", "secret"}:
            continue
        if data.get(target) is not None:
            raise ConfigError(f"{_loc((*where, key))}: set either {target} or {key}, not both")
        path = Path(str(data[key]))
        try:
            data[target] = path.read_text(encoding="utf-8").strip()
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError as exc:
            raise ConfigError(f"{_loc((*where, key))}: cannot read {path}: {exc.strerror}") from None
        if mode & 0o077:
            log.warning(
                "%s: %s is readable by %s (mode %04o): chmod 600 it",
                _loc((*where, key)),
                path,
                "others" if mode & 0o007 else "its group",
                mode,
            )


def parse_config(data: dict[str, Any], source: str, env: dict[str, str] | None = None) -> ShipperConfig:
    """Validate an already-parsed TOML document; ``source`` names it in error messages."""
    try:
        data = substitute_env(data, dict(os.environ) if env is None else env)
        for section, where in [(data.get("output"), ("output",)), (data.get("enrich"), ("enrich",))] + [
            (inp, ("inputs", i)) for i, inp in enumerate(data.get("inputs") or [])
        ]:
            if isinstance(section, dict):
                _read_secret_files(section, where)
        enrich = data.get("enrich")
        if isinstance(enrich, dict) and isinstance(enrich.get("management_api"), dict):
            _read_secret_files(enrich["management_api"], ("enrich", "management_api"))
        detect = data.get("detect")
        if isinstance(detect, dict):
            for i, notify in enumerate(detect.get("notify") or []):
                if isinstance(notify, dict):
                    _read_secret_files(notify, ("detect", "notify", i))
            respond = detect.get("respond")
            if isinstance(respond, dict) and isinstance(respond.get("management_api"), dict):
                _read_secret_files(respond["management_api"], ("detect", "respond", "management_api"))
        return ShipperConfig.model_validate(data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = tuple(
                p
                for p in err["loc"]
                if p not in ("file", "postgres", "logto-api", "webhook", "elasticsearch", "console")
                or len(err["loc"]) < 2
            )
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key" + did_you_mean(tuple(err["loc"]))
            lines.append(f"{source}: {_loc(loc)}: {msg}")
        raise ConfigError("\n".join(lines)) from None


def load_config(path: Path, env: dict[str, str] | None = None) -> ShipperConfig:
    """Read and validate the config file at ``path``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    cfg = parse_config(data, str(path), env)
    for warning in cfg.warnings():
        log.warning("%s: %s", path, warning)
    return cfg


def redacted(cfg: ShipperConfig) -> dict[str, Any]:
    """The effective config as plain data, secrets replaced by ``**********``."""
    return cfg.model_dump(mode="json", exclude={"output": {"api_key_file", "password_file"}})
