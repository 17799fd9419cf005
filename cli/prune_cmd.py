"""``logto-shipper prune``: shrink Logto's logs table safely."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
import orjson

from cli.context import EXIT_UNREACHABLE, Context, fail, pass_ctx
from cli.es import call, es_client, es_config
from shipper.config import PostgresInputConfig
from shipper.errors import ConfigError, postgres_driver
from shipper.redact import dsn_secrets, one_line
from shipper.sinks.elasticsearch.indexing import IndexNamer
from shipper.timespec import parse_duration


@click.command()
@click.option("--older-than", required=True, help="Age of rows to delete, e.g. 30d.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=500, show_default=True)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_ctx
def prune(ctx: Context, older_than: str, batch_size: int, dry_run: bool, fmt: str) -> None:
    """Delete rows from Logto's logs table that are older than --older-than AND verified indexed.

    Needs the postgres input in the config (its dsn and tenants) and the elasticsearch output.
    The database role needs SELECT and DELETE on logs.
    """
    try:
        import psycopg

        from shipper.tools.prune import prune as run_prune
    except ImportError:
        raise postgres_driver() from None

    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    cfg = ctx.config()
    pg = next((i for i in cfg.inputs if isinstance(i, PostgresInputConfig)), None)
    if pg is None or pg.dsn is None:
        raise ConfigError(f"{ctx.config_path}: prune needs an input of type 'postgres' with a dsn")
    out, idx = es_config(ctx)
    es = es_client(out)
    cutoff = datetime.now(UTC) - timedelta(seconds=age)
    try:
        conn = psycopg.connect(pg.dsn.get_secret_value(), autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        fail(
            f"cannot connect to postgres: {one_line(exc, dsn_secrets(pg.dsn.get_secret_value()))}",
            EXIT_UNREACHABLE,
        )
    with conn:
        report = call(
            "prune",
            lambda: run_prune(
                conn,
                es,
                IndexNamer(idx.prefix, idx.namespace).pattern,
                pg.tenants,
                cutoff,
                batch_size,
                dry_run,
            ),
        )
    if fmt == "json":
        click.echo(
            orjson.dumps({"dry_run": dry_run, "cutoff": cutoff.isoformat(), **report.__dict__}).decode()
        )
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"rows older than {older_than} (before {cutoff:%Y-%m-%d %H:%M:%S} UTC): {report.candidates}")
    click.echo(
        f"verified indexed: {report.verified}; {verb}: {report.verified if dry_run else report.deleted}"
    )
    click.echo(
        f"kept (not indexed yet): {report.not_indexed}"
        + (f", e.g. {', '.join(report.skipped_examples)}" if report.skipped_examples else "")
    )
