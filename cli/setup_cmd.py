"""``setup``, ``retention`` and ``test output``: the cluster side of the daemon."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from cli.context import EXIT_PROBLEMS, EXIT_UNREACHABLE, Context, fail, pass_ctx
from cli.es import call, cluster_identity, es_client, es_config
from shipper.timespec import parse_duration


@click.command()
@click.option("--dry-run", is_flag=True, help="Print what would change, one line each; change nothing.")
@click.option(
    "--verbose", "-v", is_flag=True, help="With --dry-run: also print each body that would be sent."
)
@click.option(
    "--kibana-url",
    default=None,
    help="Also import the data views, dashboard and searches here, and install the detections "
    "that are counts of events as Kibana alerting rules.",
)
@click.option("--kibana-space", default=None, help="Kibana space id [default: the default space].")
@pass_ctx
def setup(
    ctx: Context, dry_run: bool, verbose: bool, kibana_url: str | None, kibana_space: str | None
) -> None:
    """Install or reconcile the ILM policy and index templates (idempotent); optionally Kibana objects."""
    from shipper.sinks.elasticsearch import setup as es_setup
    from shipper.tools import kibana

    out, idx = es_config(ctx)
    client = es_client(out)
    changes = call("setup", lambda: es_setup.plan(client, idx))
    for c in changes:
        click.echo(
            f"{c.action:9} {c.desired.kind:18} {c.desired.name}" + (f"  ({c.detail})" if c.detail else "")
        )
        if dry_run:
            for line in c.differences:
                click.echo(f"          {line}")
        if dry_run and verbose and c.action in ("create", "update"):
            click.echo(orjson.dumps(c.desired.body, option=orjson.OPT_INDENT_2).decode())
    if dry_run:
        if kibana_url:
            click.echo(
                f"would import {len(kibana.bundle(idx).splitlines())} Kibana objects into {kibana_url}"
            )
        pending = sum(c.action in ("create", "update") for c in changes)
        click.echo(
            f"dry run: {pending} would change, nothing was changed"
            + ("" if verbose or not pending else " (--verbose shows the bodies)"),
            err=True,
        )
        return
    done = call("setup", lambda: es_setup.apply(client, changes))
    unavailable = sum(c.action == "unavailable" for c in changes)
    click.echo(
        f"setup complete: {len(done)} changed, {len(changes) - len(done) - unavailable} already up to date"
        + (f", {unavailable} unavailable on this cluster" if unavailable else ""),
        err=True,
    )
    if kibana_url:
        report = kibana.import_objects(kibana_url, kibana_space, out, idx)
        cfg = ctx.config()
        if cfg.detect.enabled:
            from shipper.detect.rules import rules

            more = kibana.install_rules(kibana_url, kibana_space, out, idx, rules(cfg.detect.settings()))
            report.created += more.created
            report.updated += more.updated
            report.errors += more.errors
        for name in report.created:
            click.echo(f"created   {name}")
        for name in report.updated:
            click.echo(f"updated   {name}")
        for err in report.errors:
            click.echo(f"error     {err}", err=True)
        click.echo(
            f"kibana: {len(report.created)} created, {len(report.updated)} updated, "
            f"{len(report.errors)} errors",
            err=True,
        )
        if report.errors:
            sys.exit(EXIT_PROBLEMS)


@click.group()
def retention() -> None:
    """Show or change how long audit logs are kept."""


def _delete_age(policy: dict[str, Any]) -> str | None:
    phase = policy.get("phases", {}).get("delete")
    return phase.get("min_age") if phase else None


@retention.command("show")
@pass_ctx
def retention_show(ctx: Context) -> None:
    """Print the retention of the ILM policy on the cluster."""
    from shipper.sinks.elasticsearch.setup import policy_name

    out, idx = es_config(ctx)
    name = policy_name(idx)
    client = es_client(out)
    r = call("retention", lambda: client.options(ignore_status=404).ilm.get_lifecycle(name=name))
    if r.meta.status == 404:
        fail(f"ILM policy {name} does not exist; run 'logto-shipper setup'", 1)
    age = _delete_age(r[name]["policy"])
    click.echo(f"{name}: indices are deleted {age} after their day" if age else f"{name}: no delete phase")
    if age and age != idx.retention:
        click.echo(
            f"note: the config says retention = {idx.retention!r}; 'run' and 'setup' apply the config",
            err=True,
        )


@retention.command("set")
@click.argument("duration")
@click.option("--yes", is_flag=True, help="Do not ask before a retention under one day.")
@pass_ctx
def retention_set(ctx: Context, duration: str, yes: bool) -> None:
    """Change the retention (e.g. 30d) of the ILM policy on the cluster."""
    from datetime import UTC, datetime

    from shipper.sinks.elasticsearch.setup import policy_name, render_policy

    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="DURATION") from None
    out, idx = es_config(ctx)
    if seconds < 86400 and not yes:
        click.confirm(
            f"A retention of {duration} deletes each day's index {duration} after that day "
            "begins (UTC), today's included: new events are gone within hours. Set it",
            abort=True,
            err=True,
        )
    client = es_client(out)
    body = render_policy(idx, duration, datetime.now(UTC).isoformat(timespec="seconds"))
    call("retention", lambda: client.ilm.put_lifecycle(name=policy_name(idx), policy=body["policy"]))
    click.echo(f"{policy_name(idx)}: retention set to {duration}")
    if duration != idx.retention:
        click.echo(
            f'note: set [index] retention = "{duration}" in {ctx.config_path} too, or the next '
            "'run'/'setup' puts the configured value back",
            err=True,
        )


@click.group("test")
def test_group() -> None:
    """Check that the configured output works."""


@test_group.command("output")
@pass_ctx
def test_output(ctx: Context) -> None:
    """Connect, check the version and the privileges setup and indexing need."""
    out, idx = es_config(ctx)
    client = es_client(out)
    name, version = call(f"connect to {', '.join(out.hosts)}", lambda: cluster_identity(client))
    major = int(version.split(".")[0])
    click.echo(f"connected: {', '.join(out.hosts)} ({name}, Elasticsearch {version})")
    if major not in (8, 9):
        fail(f"Elasticsearch {version} is not supported (needs 8.x or 9.x)", 1)
    pattern = f"{idx.prefix}-*"
    wanted_cluster = ["monitor", "manage_ilm", "manage_index_templates"]
    wanted_index = ["create_doc", "create_index", "view_index_metadata", "read"]
    from shipper.sinks.elasticsearch.client import ApiError

    try:
        r = client.security.has_privileges(
            cluster=wanted_cluster, index=[{"names": [pattern], "privileges": wanted_index}]
        )
    except ApiError as exc:
        if exc.meta.status in (400, 500, 501):
            click.echo("privileges: security is disabled on this cluster (no check needed)")
            click.echo("verdict: OK")
            return
        raise
    missing = [p for p, ok in r["cluster"].items() if not ok]
    missing += [f"{p} on {pattern}" for p, ok in r["index"].get(pattern, {}).items() if not ok]
    for p in wanted_cluster:
        click.echo(f"  cluster privilege {p:24} {'yes' if r['cluster'].get(p) else 'MISSING'}")
    for p in wanted_index:
        click.echo(f"  index privilege {p:26} {'yes' if r['index'].get(pattern, {}).get(p) else 'MISSING'}")
    if missing:
        click.echo(f"verdict: missing privileges: {', '.join(missing)}")
        sys.exit(EXIT_UNREACHABLE)
    click.echo("verdict: OK")
