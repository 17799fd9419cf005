"""``status``: the cluster, the indices and their lifecycle, and this host's daemon."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import orjson

from cli import render
from cli.context import Context, pass_ctx
from cli.es import call, cluster_identity, es_client, es_config
from shipper.sinks.elasticsearch.indexing import IndexNamer


@click.command("status")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_ctx
def status_cmd(ctx: Context, fmt: str) -> None:
    """Cluster, indices, ILM state and retention; checkpoint lag of this host's daemon."""
    from shipper.sinks.elasticsearch.setup import ILM_UNAVAILABLE, ilm_available, policy_name

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
    """Each stream's lag from the checkpoint alone (no daemon reporting)."""
    from dataclasses import asdict

    from shipper.pipeline.checkpoint import offline_lag, read_registry

    reg = read_registry(state_dir)
    return [asdict(lag) for lag in offline_lag(reg, time.time())] if reg is not None else []
