"""Root info, nodes, health and security (who am I, privileges)."""

from __future__ import annotations

from typing import Any

from tests.es_server.errors import bad_request
from tests.es_server.transport import (
    Handler,
    Request,
)


class ClusterApi:
    def routes_cluster(self, IX: str) -> list[tuple[str, str, Handler, set[str]]]:
        return [
            ("GET HEAD", r"/", self.h_info, set()),
            (
                "GET",
                r"/_nodes(?:/(?P<node_id>[^/_][^/]*|_all|_local|_master))?(?:/(?P<metric>[^/]+))?",
                self.h_nodes_info,
                {"flat_settings", "timeout"},
            ),
            (
                "GET",
                r"/_cluster/health(?:/" + IX + ")?",
                self.h_health,
                {
                    "wait_for_status",
                    "timeout",
                    "level",
                    "wait_for_no_relocating_shards",
                    "wait_for_active_shards",
                    "wait_for_events",
                    "wait_for_no_initializing_shards",
                    "wait_for_nodes",
                    "local",
                    "master_timeout",
                    "expand_wildcards",
                },
            ),
            ("GET", r"/_security/_authenticate", self.h_authenticate, set()),
            ("GET POST", r"/_security/user/_has_privileges", self.h_has_privileges, set()),
        ]

    def h_info(self, r: Request) -> tuple[int, Any]:
        return 200, {
            "name": "es-test-server",
            "cluster_name": "logto-shipper-test",
            "cluster_uuid": self.cluster_uuid,
            "version": {
                "number": self.version,
                "build_flavor": "default",
                "build_type": "tar",
                "build_hash": "0" * 40,
                "build_date": "2025-01-01T00:00:00.000Z",
                "build_snapshot": False,
                "lucene_version": "9.11.1",
                "minimum_wire_compatibility_version": f"{self.major - 1}.17.0",
                "minimum_index_compatibility_version": f"{self.major - 1}.0.0",
            },
            "tagline": "You Know, for Search",
        }

    NODE_ID = "es-test-server-node-0000"

    def h_nodes_info(self, r: Request) -> tuple[int, Any]:
        """``GET /_nodes[/{node_id}[/{metric}]]``: the one node, with ``plugins`` (its modules)
        when asked; other metrics are refused, never answered empty."""
        node_ids = (r.vars.get("node_id") or "_all").split(",")
        if not any(n in ("_all", "_local", "_master", self.NODE_ID, "*") for n in node_ids):
            return 200, {
                "_nodes": {"total": 0, "successful": 0, "failed": 0},
                "cluster_name": "logto-shipper-test",
                "nodes": {},
            }
        metrics = set((r.vars.get("metric") or "_none").split(","))
        unknown = metrics - {"_none", "plugins", "_all"}
        if unknown:
            raise bad_request(f"test server: nodes info metric {sorted(unknown)} is not implemented")
        node: dict[str, Any] = {
            "name": "es-test-server",
            "transport_address": f"{self.host}:9300",
            "host": self.host,
            "ip": self.host,
            "version": self.version,
            "roles": ["data", "ingest", "master"],
        }
        if metrics & {"plugins", "_all"}:
            from tests.es_server.store import OPTIONAL_MODULES

            present = OPTIONAL_MODULES if self.modules is None else sorted(self.modules)
            names = ["transport-netty4", "x-pack-core", "x-pack-security", *present]
            node["plugins"] = []
            node["modules"] = [{"name": n} for n in sorted(names)]
        return 200, {
            "_nodes": {"total": 1, "successful": 1, "failed": 0},
            "cluster_name": "logto-shipper-test",
            "nodes": {self.NODE_ID: node},
        }

    def h_health(self, r: Request) -> tuple[int, Any]:
        n = len(self.cluster.indices)
        status = (
            "green"
            if all(i.settings.get("index.number_of_replicas") == "0" for i in self.cluster.indices.values())
            else "yellow"
        )
        return 200, {
            "cluster_name": "logto-shipper-test",
            "status": status,
            "timed_out": False,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "active_primary_shards": n,
            "active_shards": n,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": 0 if status == "green" else n,
            "unassigned_primary_shards": 0,
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0 if status == "green" else 50.0,
        }

    def h_authenticate(self, r: Request) -> tuple[int, Any]:
        who = self.authenticate(r.headers, r.path) or "anonymous"
        return 200, {
            "username": who.split(":", 1)[-1],
            "roles": ["superuser"],
            "enabled": True,
            "authentication_type": "api_key" if who.startswith("apikey:") else "realm",
        }

    def h_has_privileges(self, r: Request) -> tuple[int, Any]:
        body = r.json()
        cluster = {p: True for p in body.get("cluster", [])}
        index = {}
        for entry in body.get("index", []):
            for name in entry.get("names", []):
                index[name] = {p: True for p in entry.get("privileges", [])}
        who = self.authenticate(r.headers, r.path) or "anonymous"
        return 200, {
            "username": who.split(":", 1)[-1],
            "has_all_requested": True,
            "cluster": cluster,
            "index": index,
            "application": {},
        }
