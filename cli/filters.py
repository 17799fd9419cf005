"""The options the search commands share (filters, listing, output) and what they become."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from cli.context import Context
from cli.es import call, es_client, es_config
from shipper import timespec
from shipper.sinks.elasticsearch.indexing import IndexNamer
from shipper.tools import search as s


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return timespec.parse_when(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _ips(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    try:
        return [s.parse_ip(v) for v in value]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def filter_options(fn: Callable[..., Any], with_user: bool = True) -> Callable[..., Any]:
    opts = [
        click.option("--user", "users", multiple=True, help="User id, username or email (repeatable)."),
        click.option(
            "--event",
            "events",
            multiple=True,
            help="Event key (any case), wildcard (Interaction.SignIn.*) or family (token, interaction, ...).",
        ),
        click.option("--app", "apps", multiple=True, help="Application id or name (repeatable)."),
        click.option("--ip", "ips", multiple=True, callback=_ips, help="IP address or CIDR range."),
        click.option("--session", "sessions", multiple=True, help="Session id."),
        click.option("--result", type=click.Choice(["success", "failure"]), help="Outcome."),
        click.option(
            "--since",
            default="7d",
            callback=_when,
            show_default=True,
            help="Duration (15m, 24h, 7d) or ISO-8601 time.",
        ),
        click.option("--until", default=None, callback=_when, help="Duration or ISO-8601 time."),
    ]
    for o in reversed(opts[0 if with_user else 1 :]):
        fn = o(fn)
    return fn


def filter_options_but_user(fn: Callable[..., Any]) -> Callable[..., Any]:
    return filter_options(fn, with_user=False)


def output_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--resolve-names",
        "resolve",
        is_flag=True,
        help="Show current application/user names instead of those indexed.",
    )(fn)
    fn = click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json", "ndjson", "csv"]),
        default=None,
        help="Default: table on a terminal, ndjson otherwise.",
    )(fn)
    return click.option("--utc", is_flag=True, help="Show times in UTC (default: local time).")(fn)


def resolve_names(client: Any, index: str, filters: s.Filters) -> None:
    """Turn --app names into ids (an ambiguous name lists its candidates and exits 2) and add
    the ids of users indexed under a --user name, so events that carry only the id are found."""
    if filters.users:
        filters.users, notes = call("search", lambda: s.resolve_users(client, index, filters.users))
        for n in notes:
            click.echo(f"note: {n}", err=True)
    if not filters.apps:
        return
    try:
        filters.apps = call("search", lambda: s.resolve_apps(client, index, filters.apps))
    except s.AmbiguousName as exc:
        click.echo(
            f"logto-shipper: application name {exc.name!r} is ambiguous; use one of these ids:", err=True
        )
        for app_id, name in exc.candidates:
            click.echo(f"  {app_id}  {name}", err=True)
        sys.exit(2)


def listing_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--sort", type=click.Choice(["newest", "oldest"]), default="newest", show_default=True)(
        fn
    )
    return click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)(fn)


def make_filters(kw: dict[str, Any]) -> s.Filters:
    """The filters of a command's options; an inverted --since/--until is a usage error."""
    try:
        timespec.check_range(kw["since"], kw["until"], datetime.now(UTC))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return s.Filters(
        users=list(kw.get("users", ())),
        events=list(kw["events"]),
        apps=list(kw["apps"]),
        ips=list(kw["ips"]),
        sessions=list(kw["sessions"]),
        result=kw["result"],
        since=kw["since"],
        until=kw["until"],
    )


def index_of(ctx: Context) -> tuple[Any, str]:
    out, idx = es_config(ctx)
    return es_client(out), IndexNamer(idx.prefix, idx.namespace).pattern


def show_current_names(ctx: Context, docs: list[dict[str, Any]]) -> None:
    """--resolve-names: display today's names (documents keep those valid when indexed)."""
    from shipper.namesources import current_names
    from shipper.wiring import build_enricher

    enricher = build_enricher(ctx.config(), start=False)
    if enricher is None or not enricher.sources:
        click.echo("note: --resolve-names needs a name source ([enrich] dsn or the postgres input)", err=True)
        return
    try:
        current_names(enricher.sources, docs)
    except Exception as exc:
        click.echo(f"note: names not re-resolved ({type(exc).__name__}); showing indexed names", err=True)
    finally:
        enricher.stop()
