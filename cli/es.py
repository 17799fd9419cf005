"""What the cluster-facing commands share: the ES config, a client, error mapping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from cli.context import Context
from shipper.config import ElasticsearchOutputConfig, IndexConfig
from shipper.errors import ConfigError

T = TypeVar("T")


def es_config(ctx: Context) -> tuple[ElasticsearchOutputConfig, IndexConfig]:
    cfg = ctx.config()
    if not isinstance(cfg.output, ElasticsearchOutputConfig):
        raise ConfigError(
            f"{ctx.config_path}: output.type is {cfg.output.type!r}; this command needs 'elasticsearch'"
        )
    return cfg.output, cfg.index


def es_client(out: ElasticsearchOutputConfig) -> Any:
    from shipper.sinks.elasticsearch.client import make_client

    return make_client(out)


def call(what: str, fn: Callable[[], T]) -> T:
    """Run cluster calls; connection/auth problems become OutputError (exit 3, one line)."""
    from shipper.sinks.elasticsearch.client import ApiError, TransportError, translate

    try:
        return fn()
    except (ApiError, TransportError) as exc:
        raise translate(exc, what) from None


def cluster_identity(client: Any) -> tuple[str, str]:
    """(cluster name, version) from ``GET /``, or from health and the local node where a node
    does not serve ``GET /`` (405: no ``rest-root`` module, as in Elastic's integ-test build)."""
    from shipper.sinks.elasticsearch.client import ApiError, no_root_endpoint

    try:
        info = client.info()
        return str(info.get("cluster_name")), str(info["version"]["number"])
    except ApiError as exc:
        if not no_root_endpoint(exc):
            raise
    name = client.cluster.health()["cluster_name"]
    nodes = client.nodes.info(node_id="_local", metric="_none", filter_path="nodes.*.version")
    return str(name), str(next(iter(nodes["nodes"].values()))["version"])
