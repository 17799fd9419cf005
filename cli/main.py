"""``logto-shipper``: the command group and its shared options.

Exit codes: 0 success; 1 the command ran but found problems (rejected lines, no hits);
2 usage or configuration error; 3 output/cluster unreachable or authentication failed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from shipper import __version__
from shipper.config import DEFAULT_CONFIG_PATH, ShipperConfig, load_config
from shipper.errors import ConfigError, OutputAuthError, OutputError, ShipperError
from shipper.logs import setup_logging
from shipper.normalize import describe as describe_normalizer

EXIT_PROBLEMS, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3


class Context:
    """What every command gets: where the config is, loaded on demand."""

    def __init__(self, config_path: Path, explicit: bool) -> None:
        self.config_path = config_path
        self.explicit = explicit
        self._config: ShipperConfig | None = None

    def config(self) -> ShipperConfig:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def config_if_present(self) -> ShipperConfig | None:
        """The config when given explicitly or present at the default path."""
        if self.explicit or self.config_path.exists():
            return self.config()
        return None


pass_ctx = click.make_pass_decorator(Context)


def fail(message: str, code: int) -> None:
    click.echo(f"logto-shipper: {message}", err=True)
    sys.exit(code)


class Group(click.Group):
    """Turns the daemon's own errors into one-line messages and meaningful exit codes."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            fail(str(exc), EXIT_USAGE)
        except OutputAuthError as exc:
            fail(f"authentication failed: {exc}", EXIT_UNREACHABLE)
        except OutputError as exc:
            fail(str(exc), EXIT_UNREACHABLE)
        except ShipperError as exc:
            fail(str(exc), EXIT_PROBLEMS)
        return None


@click.group(cls=Group, context_settings={"auto_envvar_prefix": "LOGTO_SHIPPER", "show_default": True})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Config file [env LOGTO_SHIPPER_CONFIG; default {DEFAULT_CONFIG_PATH}].",
)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text")
@click.version_option(
    __version__,
    prog_name="logto-shipper",
    message=f"%(prog)s %(version)s (normalizer: {describe_normalizer()})",
)
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, log_level: str, log_format: str) -> None:
    """Ship Logto audit logs into Elasticsearch, and search them."""
    setup_logging(log_level, log_format)
    ctx.obj = Context(config_path or DEFAULT_CONFIG_PATH, explicit=config_path is not None)


def _register() -> None:
    from cli import config_cmd, normalize_cmd, prune_cmd, run_cmd, search_cmd, service_cmd, setup_cmd

    cli.add_command(normalize_cmd.normalize)
    cli.add_command(config_cmd.config)
    cli.add_command(run_cmd.run)
    cli.add_command(setup_cmd.setup)
    cli.add_command(setup_cmd.retention)
    cli.add_command(setup_cmd.test_group)
    cli.add_command(prune_cmd.prune)
    cli.add_command(service_cmd.install_service)
    for cmd in search_cmd.COMMANDS:
        cli.add_command(cmd)


_register()


def main() -> None:
    cli(prog_name="logto-shipper")
