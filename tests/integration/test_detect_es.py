"""Detections end to end: a file of Logto rows with an attack in it, shipped into Elasticsearch
(the test server, or SHIPPER_TEST_ES_URL), the alert indexed in ``<prefix>-alerts-default`` and
told to a signed webhook, once, also when everything is shipped again from scratch."""

from __future__ import annotations

import hashlib
import hmac
import shutil
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from shipper.metrics import METRICS
from tests.integration.harness import Pipeline, write_lines
from tests.receiver import Receiver

SECRET = "hook-secret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail=2)
    yield r
    r.close()


def attack_rows(path, n: int = 14) -> None:
    with open(path, "ab") as fh:
        for i in range(n):
            payload = {
                "result": "Error",
                "ip": "203.0.113.66",
                "userId": "victim1",
                "error": {"code": "session.invalid_credentials", "message": "Invalid credentials."},
            }
            row = {
                "tenantId": "default",
                "id": f"att{i:04d}",
                "key": "Interaction.SignIn.Identifier.Password.Submit",
                "createdAt": 1755763200000 + i * 1000,
                "payload": payload,
            }
            fh.write(orjson.dumps(row) + b"\n")


def alerts(es: Any, prefix: str) -> list[dict[str, Any]]:
    es503 = es.options(ignore_status=(404, 503))
    es503.indices.refresh(index=f"{prefix}-alerts-default", ignore_unavailable=True, allow_no_indices=True)
    r = es503.search(
        index=f"{prefix}-alerts-default", size=10, ignore_unavailable=True, allow_no_indices=True
    )
    return [h for h in r["hits"]["hits"]] if r.meta.status == 200 else []


def test_an_attack_is_one_alert_indexed_and_told_once_even_when_shipped_twice(tmp_path, es_target, receiver):
    def pipeline() -> Pipeline:
        return Pipeline(
            tmp_path,
            output={"type": "elasticsearch", "hosts": [es_target.url], "drain_timeout": 5},
            index={"prefix": es_target.prefix, "replicas": 0},
            detect={"notify": [{"type": "webhook", "url": receiver.url, "secret": SECRET}]},
        )

    (tmp_path / "logs").mkdir()
    write_lines(tmp_path / "logs" / "a.jsonl", range(300))
    attack_rows(tmp_path / "logs" / "a.jsonl")
    es = es_target.client()
    p = pipeline().start()
    p.pump(lambda: len(alerts(es, es_target.prefix)) == 1 and len(receiver.got) == 1, timeout=30)
    assert p.stop() == 0
    (hit,) = alerts(es, es_target.prefix)
    doc = hit["_source"]
    assert hit["_index"] == f"{es_target.prefix}-alerts-default-2025.08.21"
    assert doc["event"]["kind"] == "alert" and doc["rule"]["name"] == "brute_force_user"
    assert doc["user"]["id"] == "victim1" and doc["related"]["ip"] == ["203.0.113.66"]
    assert doc["event"]["start"] == "2025-08-21T08:00:00.000Z"
    assert doc["logto_shipper"]["alert"]["event_ids"][:2] == ["att0000", "att0001"]
    # The count grew to 14 after the alert fired: the document was updated at shutdown.
    assert doc["logto_shipper"]["alert"]["count"] == 14 and doc["event"]["end"] == "2025-08-21T08:00:13.000Z"
    headers, body = receiver.got[0]
    assert receiver.refused == 2  # retried with backoff until the endpoint took it
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-logto-shipper-signature-sha-256"] == sig
    told = orjson.loads(body)
    assert (
        told["text"].startswith("logto-shipper alert: brute_force_user")
        and told["alert"]["event"]["id"] == hit["_id"]
    )

    # Everything shipped again from scratch (state lost): no second alert, nothing told twice.
    shutil.rmtree(tmp_path / "state")
    replayed = METRICS.get("alerts_replayed_total")
    p = pipeline().start()
    p.pump(lambda: METRICS.get("alerts_replayed_total") > replayed, timeout=30)
    assert p.stop() == 0
    time.sleep(0.2)
    assert len(alerts(es, es_target.prefix)) == 1 and len(receiver.got) == 1


def test_setup_installs_the_alerts_template(tmp_path, es_target):
    from shipper.config import IndexConfig
    from shipper.sinks.elasticsearch.setup import apply, plan

    idx = IndexConfig(prefix=es_target.prefix, replicas=0)
    es = es_target.client()
    apply(es, plan(es, idx))
    t = es.indices.get_index_template(name=f"{es_target.prefix}-alerts-default")
    body = t["index_templates"][0]["index_template"]
    assert body["index_patterns"] == [f"{es_target.prefix}-alerts-default-*"]
    assert body["composed_of"] == [f"{es_target.prefix}-settings"]  # the lifecycle: the audit log's retention
