"""``top``: the most frequent values of a dimension, with histograms on one time axis."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import click
import orjson

from cli import render
from cli.context import EXIT_PROBLEMS, EXIT_USAGE, Context, fail, pass_ctx
from cli.es import call
from cli.filters import filter_options, index_of, make_filters, resolve_names
from cli.search_cmd import empty_hints
from shipper.tools import search as s

SPARK = "▁▂▃▄▅▆▇█"
# Why a dimension can be empty although events match (Logto OSS rows carry no location).
EMPTY_BECAUSE = {
    "countries": "Logto writes a location (payload.signInContext) only where its proxy reports one, "
    "as Logto Cloud does; self-hosted rows have none",
    "users": "the events name no user (e.g. sign-ins that failed before identification)",
    "apps": "the events name no application",
    "ips": "the events carry no IP address",
}


def _limit_or_size(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None:
        click.echo("note: --size is now --limit (as in search)", err=True)
    return value


def aligned(rows: list[dict[str, Any]], step_ms: int) -> tuple[list[list[int]], int | None]:
    """Every row's histogram on one time axis (each value's buckets span only its own events),
    and the first bucket's time."""
    keys = [int(h["key"]) for r in rows for h in r["histogram"]]
    if not keys:
        return [[] for _ in rows], None
    first, last = min(keys), max(keys)
    n = (last - first) // step_ms + 1
    out = []
    for r in rows:
        counts = [0] * n
        for h in r["histogram"]:
            counts[(int(h["key"]) - first) // step_ms] += h["count"]
        out.append(counts)
    return out, first


def sparkline(counts: list[int], per: int) -> str:
    merged = [sum(counts[i : i + per]) for i in range(0, len(counts), per)]
    peak = max(merged, default=0) or 1
    return "".join(SPARK[min(7, c * 7 // peak)] if c else " " for c in merged)


def histogram_axis(first_ms: int, buckets: int, per: int, by: str, width: int) -> str:
    """``2026-11-01 … 2026-12-03`` under the histogram, and what one character stands for."""
    fmt = "%Y-%m-%d" if by == "day" else "%m-%d %H:00"
    start = datetime.fromtimestamp(first_ms / 1000, UTC)
    end = datetime.fromtimestamp((first_ms + (buckets - 1) * s.INTERVAL_MS[by]) / 1000, UTC)
    left, right = start.strftime(fmt), end.strftime(fmt)
    if width >= len(left) + len(right) + 2:
        return left + " " * (width - len(left) - len(right)) + right
    return left


@click.command("top")
@click.argument("what", type=click.Choice(sorted(s.TOP_FIELDS)))
@filter_options
@click.option("--limit", type=click.IntRange(1, 1000), default=10, show_default=True, help="Values shown.")
@click.option("--size", type=click.IntRange(1, 1000), default=None, hidden=True, callback=_limit_or_size)
@click.option("--by", type=click.Choice(["hour", "day"]), help="Add a histogram per value (UTC buckets).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default=None)
@pass_ctx
def top_cmd(
    ctx: Context, /, what: str, limit: int, size: int | None, by: str | None, fmt: str | None, **kw: Any
) -> None:
    """Most frequent IPs, users, events, apps or countries, e.g. top ips --result failure."""
    limit = size or limit
    client, index = index_of(ctx)
    filters = make_filters(kw)
    resolve_names(client, index, filters)
    try:
        resp = call("top", lambda: s.top(client, index, filters, what, limit, by))
    except s.TooManyBuckets as exc:
        fail(str(exc), EXIT_USAGE)
    buckets = resp["aggregations"]["top"]["buckets"]
    rows = []
    for b in buckets:
        r: dict[str, Any] = {what: str(b["key"]), "count": b["doc_count"]}
        if by:
            r["histogram"] = [
                {"time": h["key_as_string"], "key": h["key"], "count": h["doc_count"]}
                for h in b["over_time"]["buckets"]
            ]
        rows.append(r)
    fmt = fmt or ("table" if render.is_tty() else "json")
    if fmt == "json":
        for r in rows:
            for h in r.get("histogram", ()):
                h.pop("key")
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
    elif fmt == "csv":
        click.echo(f"{what},count")
        for r in rows:
            click.echo(f"{r[what]},{r['count']}")
    elif rows:
        print_top_table(rows, what, by)
    total = resp["hits"]["total"]["value"]
    click.echo(f"{len(rows)} values over {total} events", err=True)
    if not rows:
        if total:
            field = s.TOP_FIELDS[what]
            why = EMPTY_BECAUSE.get(what, "")
            click.echo(
                f"hint: none of the {total:,} matching events has {field}" + (f": {why}" if why else ""),
                err=True,
            )
        else:
            for hint in empty_hints(client, index, filters, utc=False):
                click.echo(f"hint: {hint}", err=True)
        sys.exit(EXIT_PROBLEMS)


def print_top_table(rows: list[dict[str, Any]], what: str, by: str | None) -> None:
    trows = [{what: r[what], "count": f"{r['count']:,}"} for r in rows]
    columns = [what, "count"]
    footers: dict[str, str] = {}
    if by:
        step = s.INTERVAL_MS[by]
        series, first = aligned(rows, step)
        n = len(series[0]) if series else 0
        label_room = len(f"1 char = {n} {by}s")  # the footer of the first column, at most
        first_col = max(len(what), label_room, *(len(t[what]) for t in trows))
        used = first_col + max(5, *(len(t["count"]) for t in trows)) + 2 * render.GAP
        room = max(10, render.console().width - used)
        per = max(1, -(-n // room))
        for t, counts in zip(trows, series, strict=True):
            t["histogram"] = sparkline(counts, per)
        columns.append("histogram")
        if first is not None:
            chars = -(-n // per)
            unit = f"{per} {by}s" if per > 1 else f"1 {by}"
            footers = {
                "histogram": histogram_axis(first, n, per, by, chars),
                what: f"1 char = {unit}",
            }
    render.print_table(trows, columns, footers=footers)
