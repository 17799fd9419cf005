"""``logto-shipper config check``."""

from __future__ import annotations

import click
import orjson

from cli.context import Context, pass_ctx
from shipper.configfile import redacted


@click.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("check")
@pass_ctx
def check(ctx: Context) -> None:
    """Validate the config file and print the effective config, secrets redacted."""
    cfg = ctx.config()
    click.echo(orjson.dumps(redacted(cfg), option=orjson.OPT_INDENT_2).decode())
    click.echo(f"config OK: {ctx.config_path}", err=True)
