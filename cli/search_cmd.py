"""``search``, ``user``, ``show``, ``top``, ``tail``, ``status``: the audit log from a shell.

Exit codes: 0 with hits, 1 without, 2 usage error, 3 cluster unreachable or auth failure.
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from cli import render
from cli.context import EXIT_PROBLEMS, EXIT_USAGE, Context, fail, pass_ctx
from cli.es import call, cluster_identity, es_client, es_config
from shipper import search as s
from shipper.config import parse_duration
from shipper.indexing import IndexNamer


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return s.parse_when(value)
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
        s.check_range(kw["since"], kw["until"], datetime.now(UTC))
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


def _index(ctx: Context) -> tuple[Any, str]:
    out, idx = es_config(ctx)
    return es_client(out), IndexNamer(idx.prefix, idx.namespace).pattern


def show_current_names(ctx: Context, docs: list[dict[str, Any]]) -> None:
    """--resolve-names: display today's names (documents keep those valid when indexed)."""
    from shipper.app import build_enricher
    from shipper.enrich import current_names

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


def _run_search(
    ctx: Context, filters: s.Filters, limit: int, sort: str, fmt: str | None, utc: bool, resolve: bool = False
) -> None:
    client, index = _index(ctx)
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
    start = s.resolve_time(filters.since, now)
    if start is not None and newest < start:
        days = int((now - newest).total_seconds() // 86400) + 1  # strictly past the newest
        hints.append(f"try --since {days}d")
    elif filters.until is not None:
        hints.append("try a later --until, or none")
    return hints


def refresh_note(ctx: Context) -> str | None:
    """When this host's daemon shipped moments ago: its newest events may not be searchable
    until the index refreshes."""
    from shipper.es_setup import refresh_interval
    from shipper.pipeline.progress import read_status

    cfg = ctx.config()
    st = read_status(cfg.state.dir)
    shipped_at = st.get("last_shipped_at") if st else None
    if not isinstance(shipped_at, (int, float)):
        return None
    refresh = refresh_interval()
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
    client, index = _index(ctx)
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
    client, index = _index(ctx)
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
    client, index = _index(ctx)
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


@click.command("status")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_ctx
def status_cmd(ctx: Context, fmt: str) -> None:
    """Cluster, indices, ILM state and retention; checkpoint lag of this host's daemon."""
    from shipper.es_setup import ILM_UNAVAILABLE, ilm_available, policy_name

    out, idx = es_config(ctx)
    client = es_client(out)
    pattern = IndexNamer(idx.prefix, idx.namespace).pattern
    health = call("status", client.cluster.health)
    _, version = call("status", lambda: cluster_identity(client))
    cat = call("status", lambda: client.cat.indices(index=pattern, format="json", bytes="b"))
    phases: dict[str, Any] = {}
    retention = None
    ilm = call("status", lambda: ilm_available(client, policy_name(idx)))
    if ilm:
        es = client.options(ignore_status=404)
        explain = call("status", lambda: es.ilm.explain_lifecycle(index=pattern))
        pol = call("status", lambda: es.ilm.get_lifecycle(name=policy_name(idx)))
        phases = explain.get("indices", {}) if explain.meta.status == 200 else {}
        if pol.meta.status == 200:
            delete = pol[policy_name(idx)]["policy"]["phases"].get("delete")
            retention = delete.get("min_age") if delete else None
    indices = sorted(cat.body, key=lambda r: r["index"])
    daemon = daemon_status(ctx.config().state.dir)
    report: dict[str, Any] = {
        "cluster": {
            "name": health.get("cluster_name"),
            "version": version,
            "health": health["status"],
        },
        "ilm": ilm,
        "retention": retention,
        "indices": [
            {
                "index": r["index"],
                "docs": int(r.get("docs.count") or 0),
                "bytes": int(r.get("store.size") or 0),
                "phase": phases.get(r["index"], {}).get("phase"),
            }
            for r in indices
        ],
        "daemon": daemon,
    }
    if fmt == "json":
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return
    c = report["cluster"]
    click.echo(f"cluster: {c['name']} (Elasticsearch {c['version']}), health {c['health']}")
    click.echo(f"retention: {retention or ('no policy (run setup)' if ilm else ILM_UNAVAILABLE)}")
    rows = [
        {
            "index": r["index"],
            "docs": str(r["docs"]),
            "size": _human(r["bytes"]),
            "ilm phase": r["phase"] or "-",
        }
        for r in report["indices"]
    ]
    if rows:
        render.print_table(rows, ["index", "docs", "size", "ilm phase"])
    else:
        click.echo("no indices yet")
    for line in describe_daemon(daemon):
        click.echo(line)


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n:.1f} TiB"


def daemon_status(state_dir: Path) -> dict[str, Any]:
    """What this host's daemon last wrote to ``status.json`` (totals, every input's lag), with
    ``running`` and ``age_seconds``; without one, what the registry tells (``from_registry``)."""
    import os

    from shipper.pipeline.progress import read_status

    st = read_status(state_dir)
    if st is not None:
        age = max(0.0, time.time() - float(st.get("updated", 0)))
        try:
            os.kill(int(st.get("pid", 0)), 0)
            alive = True
        except PermissionError:
            alive = True  # another user's process (the service user): it exists
        except (OSError, ValueError):
            alive = False
        return {**st, "running": alive and age < 120, "age_seconds": round(age, 1)}
    return {"running": False, "from_registry": True, "inputs": registry_lag(state_dir)}


def describe_daemon(d: dict[str, Any]) -> list[str]:
    from shipper.pipeline.progress import describe_lag
    from shipper.sources import Lag

    lines = []
    if d.get("from_registry"):
        lines.append("daemon: no status.json (not started here, or state dir not readable)")
    else:
        t = d.get("totals", {})
        state = "running" if d.get("running") else f"not running (last update {d.get('age_seconds')} s ago)"
        lines.append(
            f"daemon: {state}, pid {d.get('pid')}: {t.get('shipped', 0):,} shipped "
            f"({d.get('per_second', 0)}/s), {t.get('rejected', 0):,} rejected, "
            f"{t.get('dead_lettered', 0):,} dead-lettered since start"
        )
        if t.get("expired"):
            lines.append(
                f"daemon: {t['expired']:,} events not shipped: older than the retention "
                f"(oldest {d.get('expired_oldest') or '?'}; [index] ship_expired = true ships them)"
            )
    for i in d.get("inputs") or []:
        lines.append("input " + describe_lag(Lag(**i)))
    return lines


def registry_lag(state_dir: Path) -> list[dict[str, Any]]:
    """Each stream's lag from the checkpoint alone: bytes for files, seconds for postgres."""
    import os
    from datetime import UTC, datetime

    try:
        data = orjson.loads((state_dir / "registry.json").read_bytes())
        streams = data.get("streams", {}) if isinstance(data, dict) else {}
    except (OSError, orjson.JSONDecodeError):
        return []
    out: list[dict[str, Any]] = []
    for name, entry in streams.items() if isinstance(streams, dict) else ():
        if not isinstance(entry, dict):
            continue
        pos = entry.get("position")
        if isinstance(pos, list) and pos and isinstance(pos[0], str):
            try:
                when = datetime.fromisoformat(pos[0])
            except ValueError:
                continue
            secs = max(0.0, (datetime.now(UTC) - when).total_seconds())
            out.append({"source": name, "unit": "seconds", "value": secs})
            continue
        try:
            st = os.stat(entry["path"])
            offset = int(entry.get("offset", 0))
        except (OSError, TypeError, KeyError, ValueError):
            continue
        if st.st_ino == entry.get("ino"):
            out.append({"source": entry["path"], "unit": "bytes", "value": max(0, st.st_size - offset)})
    return out


COMMANDS = [search_cmd, user_cmd, show_cmd, top_cmd, tail_cmd, status_cmd]
