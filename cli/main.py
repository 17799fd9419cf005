"""``logto-shipper``: the command group, its global options, and error-to-exit-code mapping.

Environment variables (the one naming rule, also in the README): a global option ``--foo-bar``
reads ``LOGTO_SHIPPER_FOO_BAR``; an option of a command reads
``LOGTO_SHIPPER_<COMMAND>_<OPTION>`` (``LOGTO_SHIPPER_SEARCH_SINCE``; nested commands join
their names: ``LOGTO_SHIPPER_RETENTION_SET_YES``). ``--help`` shows each option's variable.
Global options are accepted before and after the command name (``run --config FILE``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cli.context import COLOR_MODES, EXIT_PROBLEMS, EXIT_UNREACHABLE, EXIT_USAGE, Context, fail
from shipper import __version__
from shipper.config import DEFAULT_CONFIG_PATH
from shipper.errors import ConfigError, MissingDependency, OutputAuthError, OutputError, ShipperError
from shipper.logs import setup_logging
from shipper.normalize import describe as describe_normalizer

PREFIX = "LOGTO_SHIPPER"
LOG_LEVELS = ["debug", "info", "warning", "error"]
LOG_FORMATS = ["text", "json"]


class Group(click.Group):
    """Turns the daemon's own errors into one-line messages and meaningful exit codes."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (ConfigError, MissingDependency) as exc:
            fail(str(exc), EXIT_USAGE)
        except OutputAuthError as exc:
            fail(f"authentication failed: {exc}", EXIT_UNREACHABLE)
        except OutputError as exc:
            fail(str(exc), EXIT_UNREACHABLE)
        except ShipperError as exc:
            fail(str(exc), EXIT_PROBLEMS)
        return None


def _global_options(with_env: bool) -> list[Callable[[Any], Any]]:
    """--config, --log-level, --log-format, --color. On the group they read the environment and set the
    defaults; repeated after a command name they override the group's only when given."""

    def env(name: str) -> str | None:
        return f"{PREFIX}_{name}" if with_env else None

    def set_config(ctx: click.Context, _: click.Parameter, value: Path | None) -> None:
        if value is not None and not with_env:
            ctx.ensure_object(Context).use_config(value)

    def set_logging(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if value is None or with_env:
            return
        store = ctx.find_root().meta
        store[param.name or ""] = value
        setup_logging(store.get("log_level", "info"), store.get("log_format", "text"))

    def log_option(flag: str, choices: list[str], default: str, text: str) -> Callable[[Any], Any]:
        return click.option(
            flag,
            type=click.Choice(choices),
            default=default if with_env else None,
            envvar=env(flag.lstrip("-").upper().replace("-", "_")),
            allow_from_autoenv=False,
            expose_value=with_env,
            callback=None if with_env else set_logging,
            show_default=with_env,
            help=text,
        )

    def set_color(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
        if value is not None:
            ctx.find_root().meta["color"] = value

    return [
        click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            envvar=env("CONFIG"),
            allow_from_autoenv=False,
            expose_value=with_env,
            callback=None if with_env else set_config,
            help=f"Config file [default {DEFAULT_CONFIG_PATH}].",
        ),
        log_option("--log-level", LOG_LEVELS, "info", "Log level."),
        log_option(
            "--log-format", LOG_FORMATS, "text", "Log format: text (journald-friendly) or JSON lines."
        ),
        click.option(
            "--color",
            type=click.Choice(COLOR_MODES),
            default="auto" if with_env else None,
            envvar=env("COLOR"),
            allow_from_autoenv=False,
            expose_value=False,
            callback=set_color,
            show_default=with_env,
            help="Colour in tables: auto (a terminal without NO_COLOR), always, never.",
        ),
    ]


def _apply(options: list[Callable[[Any], Any]], fn: Any) -> Any:
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _apply_group_options(fn: Any) -> Any:
    return _apply(_global_options(with_env=True), fn)


@click.group(
    cls=Group,
    context_settings={"auto_envvar_prefix": PREFIX, "show_default": True},
)
@_apply_group_options
@click.version_option(
    __version__,
    prog_name="logto-shipper",
    message=f"%(prog)s %(version)s (normalizer: {describe_normalizer()})",
    allow_from_autoenv=False,
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, log_level: str, log_format: str) -> None:
    """Ship Logto's audit log (its PostgreSQL `logs` table, the Management API, webhooks,
    JSON-lines files) into Elasticsearch, and search it."""
    ctx.meta.update(log_level=log_level, log_format=log_format)
    setup_logging(log_level, log_format)
    ctx.obj = Context(config_path or DEFAULT_CONFIG_PATH, explicit=config_path is not None)


def _env_name(path: list[str], opt: click.Option) -> str:
    flag = next((o for o in opt.opts if o.startswith("--")), opt.opts[0]).lstrip("-")
    return "_".join([PREFIX, *path, flag]).upper().replace("-", "_")


def _finish(cmd: click.Command, path: list[str]) -> None:
    """Every command, nested ones too, takes the global options after its name too, and each
    of its options reads ``LOGTO_SHIPPER_<COMMAND>_<OPTION>`` (named after the flag, not the
    Python parameter), shown in ``--help``."""
    for p in cmd.params:
        if isinstance(p, click.Option) and p.envvar is None and p.allow_from_autoenv:
            p.envvar, p.show_envvar = _env_name(path, p), True
    names = {p.name for p in cmd.params}
    holder = _apply(_global_options(with_env=False), lambda: None)
    for param in reversed(getattr(holder, "__click_params__", [])):
        if param.name not in names:
            cmd.params.append(param)
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            _finish(sub, [*path, name])


def _register() -> None:
    from cli import (
        alerts_cmd,
        config_cmd,
        normalize_cmd,
        prune_cmd,
        run_cmd,
        search_cmd,
        service_cmd,
        setup_cmd,
        status_cmd,
        tail_cmd,
        top_cmd,
    )

    for cmd in [
        normalize_cmd.normalize,
        config_cmd.config,
        run_cmd.run,
        setup_cmd.setup,
        setup_cmd.retention,
        setup_cmd.test_group,
        prune_cmd.prune,
        service_cmd.install_service,
        search_cmd.search_cmd,
        search_cmd.user_cmd,
        search_cmd.show_cmd,
        top_cmd.top_cmd,
        tail_cmd.tail_cmd,
        status_cmd.status_cmd,
        alerts_cmd.alerts_cmd,
        alerts_cmd.detect_cmd,
    ]:
        cli.add_command(cmd)
        _finish(cmd, [cmd.name or ""])


_register()
for _p in cli.params:
    if isinstance(_p, click.Option):
        _p.show_envvar = _p.envvar is not None


def main() -> None:
    cli(prog_name="logto-shipper")
