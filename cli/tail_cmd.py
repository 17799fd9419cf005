"""``tail``: follow new events as they are indexed; waits for a lost cluster."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import click

from cli import render
from cli.context import Context, pass_ctx
from cli.filters import filter_options, index_of, make_filters, output_options
from shipper.tools import search as s


@click.command("tail")
@filter_options
@click.option(
    "--interval",
    type=click.FloatRange(0.2),
    default=2.0,
    show_default=True,
    help="Seconds between polls.",
)
@click.option(
    "--lag",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="Seconds to look back for events indexed late (exactly-once display via their ids).",
)
@output_options
@click.option("--max-polls", type=int, default=0, hidden=True)
@pass_ctx
def tail_cmd(
    ctx: Context,
    /,
    interval: float,
    lag: float,
    fmt: str | None,
    utc: bool,
    max_polls: int,
    **kw: Any,
) -> None:
    """Follow new events as they are indexed, until Ctrl-C; waits for a lost cluster."""
    kw.pop("resolve")  # tail shows names as indexed
    client, index = index_of(ctx)
    filters = make_filters(kw)
    if kw["since"] == "now-7d":
        filters.since = "now-1m"
    seen: OrderedDict[str, None] = OrderedDict()
    fmt = fmt or render.default_format()
    clock = render.Clock(utc)
    width = render.console().width  # fixed for the whole tail: every batch lines up
    header, waiting, failures, polls = True, False, 0, 0
    try:
        while True:
            polls += 1
            try:
                pages = list(s.search(client, index, filters, 10_000, "oldest"))
            except Exception as exc:
                delay = lost_cluster(exc, failures)
                failures += 1
                if max_polls and polls >= max_polls:
                    return
                time.sleep(delay)
                continue
            if failures:
                click.echo("tail: the cluster answers again", err=True)
                failures = 0
            docs = []
            for page in pages:
                for h in page.hits:
                    if h["_id"] not in seen:
                        seen[h["_id"]] = None
                        docs.append(h["_source"])
            while len(seen) > 100_000:
                seen.popitem(last=False)
            if docs and fmt == "table":
                render.print_docs(docs, clock, header=header, fixed=True, width=width)
                header = False
            elif docs:
                render.emit_docs(docs, fmt, utc)
            elif header and not waiting and fmt == "table":
                click.echo("waiting for events… (Ctrl-C to stop)", err=True)
                waiting = True
            if docs:
                newest = docs[-1].get("@timestamp")
                if newest:
                    filters.since = f"{newest}||-{int(lag)}s"
            if max_polls and polls >= max_polls:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        return


def lost_cluster(exc: Exception, failures: int) -> float:
    """Seconds to wait before the next poll when the cluster is unreachable or busy (said on
    stderr once per outage and then on each growing wait); anything else ends ``tail``."""
    from shipper.sinks.elasticsearch.client import ApiError, TransportError, translate
    from shipper.sinks.elasticsearch.retry import Backoff, Outcome, classify

    if isinstance(exc, ApiError) and classify(exc.meta.status) is not Outcome.RETRY:
        raise translate(exc, "tail") from None
    if not isinstance(exc, ApiError | TransportError):
        raise exc
    delay = max(1.0, Backoff(initial=1.0, cap=30.0).delay(failures))
    click.echo(f"tail: {translate(exc, 'cluster')}; retrying in {delay:.0f} s", err=True)
    return delay
