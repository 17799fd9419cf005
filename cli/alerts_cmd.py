"""``alerts``: what the detections raised; ``detect``: the same rules over indexed history.

Exit codes (as the search commands): 0 with alerts, 1 without, 2 usage error, 3 cluster
unreachable or auth failure.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from cli import render
from cli.context import EXIT_PROBLEMS, Context, pass_ctx
from cli.es import call, es_client, es_config
from cli.filters import _when
from shipper.detect.alerts import document
from shipper.detect.rules import RULE_IDS, Detector, Setting, rules
from shipper.sinks.elasticsearch.indexing import IndexNamer
from shipper.timespec import parse_duration
from shipper.tools import alerts as a

COLUMNS = ["time", "rule", "entity", "count", "ips"]


def _rows(docs: list[dict[str, Any]], utc: bool) -> list[dict[str, str]]:
    clock = render.Clock(utc)
    return [
        {
            "time": clock(d["@timestamp"]),
            "rule": render.get(d, "rule.name") or "",
            "entity": render.get(d, "logto_shipper.alert.entity") or "",
            "count": str(render.get(d, "logto_shipper.alert.count") or ""),
            "ips": ", ".join(render.get(d, "related.ip") or []),
        }
        for d in docs
    ]


def _emit(docs: list[dict[str, Any]], fmt: str | None, utc: bool) -> None:
    fmt = fmt or render.default_format()
    if fmt == "ndjson":
        for d in docs:
            sys.stdout.buffer.write(orjson.dumps(d) + b"\n")
        sys.stdout.buffer.flush()
    elif fmt == "json":
        click.echo(orjson.dumps(docs, option=orjson.OPT_INDENT_2).decode())
    elif docs:
        render.print_table(_rows(docs, utc), COLUMNS, headers={"time": f"TIME ({render.Clock(utc).zone})"})


def _options(fn: Any) -> Any:
    for o in reversed(
        [
            click.option(
                "--rule", "rule_names", multiple=True, type=click.Choice(RULE_IDS), help="Rule (repeatable)."
            ),
            click.option("--until", default=None, callback=_when, help="Duration or ISO-8601 time."),
            click.option(
                "--format",
                "fmt",
                type=click.Choice(["table", "json", "ndjson"]),
                default=None,
                help="Default: table on a terminal, ndjson otherwise.",
            ),
            click.option("--utc", is_flag=True, help="Show times in UTC (default: local time)."),
        ]
    ):
        fn = o(fn)
    return fn


@click.command("alerts")
@click.option("--since", default="24h", callback=_when, show_default=True, help="Duration or ISO-8601 time.")
@_options
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@pass_ctx
def alerts_cmd(
    ctx: Context,
    /,
    since: str,
    until: str | None,
    rule_names: tuple[str, ...],
    fmt: str | None,
    utc: bool,
    limit: int,
) -> None:
    """Alerts the daemon's detections raised, newest first (index <prefix>-alerts-<namespace>)."""
    out, idx = es_config(ctx)
    client = es_client(out)
    alias = IndexNamer(idx.prefix, f"alerts-{idx.namespace}").alias
    docs = call("alerts", lambda: a.list_alerts(client, alias, since, until, list(rule_names), limit))
    _emit(docs, fmt, utc)
    click.echo(f"{len(docs)} alerts", err=True)
    if not docs:
        sys.exit(EXIT_PROBLEMS)


@click.command("detect")
@click.option("--since", default="30d", callback=_when, show_default=True, help="Duration or ISO-8601 time.")
@_options
@click.option("--threshold", type=click.IntRange(min=1), help="Try this threshold (with one --rule).")
@click.option("--window", help="Try this window, e.g. 10m (with one --rule).")
@pass_ctx
def detect_cmd(
    ctx: Context,
    /,
    since: str,
    until: str | None,
    rule_names: tuple[str, ...],
    fmt: str | None,
    utc: bool,
    threshold: int | None,
    window: str | None,
) -> None:
    """Run the detection rules over indexed history: the alerts they would have raised.

    The rules and thresholds are the config's [detect] ones; --threshold/--window try others
    for one --rule. Nothing is written: the daemon's alerts stay as they are.
    """
    cfg = ctx.config()
    out, idx = es_config(ctx)
    settings = cfg.detect.settings()
    if threshold is not None or window is not None:
        if len(rule_names) != 1:
            raise click.UsageError("--threshold and --window need exactly one --rule")
        try:
            window_ms = int(parse_duration(window) * 1000) if window else None
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--window") from None
        settings[rule_names[0]] = Setting(True, threshold, window_ms)
    chosen = [r for r in rules(settings) if not rule_names or r.id in rule_names]
    client = es_client(out)
    pattern = IndexNamer(idx.prefix, idx.namespace).pattern
    kinds = call("detect", lambda: a.counts(client, pattern, since, until))
    total = sum(kinds.values())
    tty = sys.stderr.isatty()

    def progress(n: int) -> None:
        if tty:
            click.echo(f"\r{n:,} of ~{total:,} events read", err=True, nl=False)

    detector = Detector(chosen, cfg.detect.max_keys)
    fired = call("detect", lambda: a.replay(a.events(client, pattern, since, until), detector, progress))
    if tty and total:
        click.echo("", err=True)
    docs = [document(x, x.at_ms) for x in fired]
    _emit(docs, fmt, utc)
    looked = ", ".join(f"{n:,} {k}" for k, n in kinds.items() if n)
    click.echo(
        f"{len(docs)} alerts from {len(chosen)} rules over {looked or 'no events they look at'}", err=True
    )
    if not docs:
        sys.exit(EXIT_PROBLEMS)
