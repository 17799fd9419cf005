"""``search``, ``user``, ``show``: the audit log from a shell.

Exit codes: 0 with hits, 1 without, 2 usage error, 3 cluster unreachable or auth failure.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Any

import click
import orjson

from cli import render
from cli.context import EXIT_PROBLEMS, Context, pass_ctx
from cli.es import call
from cli.filters import (
    filter_options,
    filter_options_but_user,
    index_of,
    listing_options,
    make_filters,
    output_options,
    resolve_names,
    show_current_names,
)
from shipper import timespec
from shipper.timespec import parse_duration
from shipper.tools import search as s


def _run_search(
    ctx: Context, filters: s.Filters, limit: int, sort: str, fmt: str | None, utc: bool, resolve: bool = False
) -> None:
    client, index = index_of(ctx)
    resolve_names(client, index, filters)
    _, notes = filters.query()
    for n in notes:
        click.echo(f"note: {n}", err=True)
    started = time.monotonic()
    docs: list[dict[str, Any]] = []
    total, relation = 0, "eq"
    for page in call("search", lambda: list(s.search(client, index, filters, limit, sort))):
        docs += [h["_source"] for h in page.hits]
        total, relation = page.total, page.total_relation
    if resolve:
        show_current_names(ctx, docs)
    render.emit_docs(docs, fmt or render.default_format(), utc)
    ms = int((time.monotonic() - started) * 1000)
    click.echo(f"{len(docs)} of {total}{'+' if relation == 'gte' else ''} hits, {ms} ms", err=True)
    if filters.until is None and (note := refresh_note(ctx)):
        click.echo(f"note: {note}", err=True)
    if not docs:
        for hint in empty_hints(client, index, filters, utc):
            click.echo(f"hint: {hint}", err=True)
        sys.exit(EXIT_PROBLEMS)


def empty_hints(client: Any, index: str, filters: s.Filters, utc: bool) -> list[str]:
    """Where the events are when a window holds none: how many match outside it, the newest,
    and the --since that would reach it."""
    found = call("search", lambda: s.span_any_time(client, index, filters))
    if not found.total or found.newest_ms is None:
        return ["no indexed event matches these filters at any time"]
    now = datetime.now(UTC)
    newest = datetime.fromtimestamp(found.newest_ms / 1000, UTC)
    hints = [
        f"{found.total:,} matching events lie outside the window; the newest is from "
        f"{render.when(newest.isoformat(), utc)}"
    ]
    start = timespec.resolve_time(filters.since, now)
    if start is not None and newest < start:
        days = int((now - newest).total_seconds() // 86400) + 1  # strictly past the newest
        hints.append(f"try --since {days}d")
    elif filters.until is not None:
        hints.append("try a later --until, or none")
    return hints


def refresh_note(ctx: Context) -> str | None:
    """When this host's daemon shipped moments ago: its newest events may not be searchable
    until the index refreshes."""
    from shipper.pipeline.progress import read_status

    cfg = ctx.config()
    st = read_status(cfg.state.dir)
    shipped_at = st.get("last_shipped_at") if st else None
    if not isinstance(shipped_at, (int, float)):
        return None
    refresh = cfg.index.refresh_interval
    ago = time.time() - shipped_at
    if ago > parse_duration(refresh) + 5:  # 5: how often the daemon writes status.json
        return None
    return (
        f"the daemon shipped events {max(0, ago):.0f} s ago; the index makes them searchable "
        f"when it refreshes (every {refresh})"
    )


@click.command("search")
@filter_options
@listing_options
@output_options
@pass_ctx
def search_cmd(ctx: Context, /, limit: int, sort: str, fmt: str | None, utc: bool, **kw: Any) -> None:
    """Audit-log events matching the filters (default: the last 7 days)."""
    resolve = kw.pop("resolve")
    _run_search(ctx, make_filters(kw), limit, sort, fmt, utc, resolve)


@click.command("user")
@click.argument("user_id")
@filter_options_but_user
@listing_options
@output_options
@pass_ctx
def user_cmd(
    ctx: Context, /, user_id: str, limit: int, sort: str, fmt: str | None, utc: bool, **kw: Any
) -> None:
    """One user's events (the console's per-user view); USER_ID may be a username or email."""
    kw["users"] = (user_id,)
    resolve = kw.pop("resolve")
    _run_search(ctx, make_filters(kw), limit, sort, fmt, utc, resolve)


DETAIL_FIELDS = [
    ("Event", "event.action"),
    ("Result", "event.outcome"),
    ("Log ID", "event.id"),
    ("Time", "@timestamp"),
    ("User", "user.id"),
    ("Application", "logto.application_id"),
    ("Session", "logto.session_id"),
    ("IP", "source.ip"),
    ("Country", "source.geo.country_iso_code"),
    ("City", "source.geo.city_name"),
    ("User agent", "user_agent.original"),
    ("Error", "error.message"),
    ("Error code", "error.code"),
    ("Tenant", "logto.tenant_id"),
    ("Category", "event.category"),
    ("Type", "event.type"),
]


@click.command("show")
@click.argument("log_id")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--utc", is_flag=True)
@pass_ctx
def show_cmd(ctx: Context, log_id: str, fmt: str, utc: bool) -> None:
    """One event in detail, with its (masked) raw payload."""
    client, index = index_of(ctx)
    body = {"query": {"term": {"event.id": log_id}}, "size": 1}
    resp = call(
        "show",
        lambda: client.search(index=index, body=body, ignore_unavailable=True, allow_no_indices=True),
    )
    hits = resp["hits"]["hits"]
    if not hits:
        click.echo(f"no event with id {log_id}", err=True)
        sys.exit(EXIT_PROBLEMS)
    src = hits[0]["_source"]
    if fmt == "json":
        click.echo(orjson.dumps({"_index": hits[0]["_index"], **src}, option=orjson.OPT_INDENT_2).decode())
        return
    for label, path in DETAIL_FIELDS:
        v = render.get(src, path)
        if v in (None, "", []):
            continue
        if path == "@timestamp":
            v = render.when(v, utc)
        click.echo(f"{label + ':':13} {', '.join(v) if isinstance(v, list) else v}")
    click.echo(f"{'Index:':13} {hits[0]['_index']}")
    click.echo("Payload:")
    click.echo(orjson.dumps(render.get(src, "logto.payload") or {}, option=orjson.OPT_INDENT_2).decode())
