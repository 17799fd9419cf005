"""kill -9 drills with the elasticsearch output: the cluster ends with every record exactly once."""

from __future__ import annotations

import random
import time

from tests.integration.daemon import Daemon, write_config
from tests.integration.harness import expected
from tests.integration.test_kill9_file import CYCLES, RotatingWriter


def test_kill9_cycles_exactly_once_in_cluster_and_clean_sigterm(tmp_path, es_target):
    es = es_target.client()
    if es_target.server is not None:
        es_target.server.api_keys = {"kid": "ksecret-do-not-log"}
        es = es_target.client(api_key=("kid", "ksecret-do-not-log"))
    logdir = tmp_path / "logs"
    logdir.mkdir()
    (tmp_path / "key").write_text("a2lkOmtzZWNyZXQtZG8tbm90LWxvZw==\n")  # kid:ksecret-do-not-log
    auth = f'api_key_file = "{tmp_path / "key"}"' if es_target.server is not None else ""
    cfg = write_config(
        tmp_path / "shipper.toml",
        f"""
[state]
dir = "{tmp_path / "state"}"
checkpoint_interval = 0.2
[[inputs]]
type = "file"
paths = ["{logdir}/app.jsonl*"]
scan_interval = 0.1
[output]
type = "elasticsearch"
hosts = ["{es_target.url}"]
{auth}
batch_max_docs = 300
batch_max_wait = 0.2
retry_initial_backoff = 0.05
retry_max_backoff = 0.5
[index]
prefix = "{es_target.prefix}"
ship_expired = true  # the fixtures are from 2025
replicas = 0
""",
    )
    log = tmp_path / "daemon.log"
    daemon = Daemon(cfg, log)
    # Bounded: the drill's length depends on the machine's startup time, the backlog must not.
    writer = RotatingWriter(logdir, every=500, limit=30_000)
    writer.start()
    rng = random.Random(3)
    try:
        for _ in range(CYCLES):
            daemon.start().wait_started()
            time.sleep(rng.uniform(0.4, 1.2))
            daemon.kill9()
    finally:
        writer.stop.set()
        writer.join()
    pattern = f"{es_target.prefix}-default-*"

    def count() -> int:
        es.indices.refresh(index=pattern, allow_no_indices=True)
        r = es.options(ignore_status=503).count(index=pattern, allow_no_indices=True)
        return r["count"] if r.meta.status == 200 else -1  # 503: a new index's primary is starting

    daemon.start().wait_started()  # a SIGTERM during imports would just kill it
    daemon.wait_for(lambda: count() >= writer.count, timeout=120)
    assert daemon.terminate() == 0  # SIGTERM: drained, checkpointed, exit 0
    assert count() == writer.count  # no duplicates: a replay is answered 409
    got = set()
    r = es.search(index=pattern, size=5000, sort=["event.id"], _source=False)
    while r["hits"]["hits"]:
        got |= {h["_id"] for h in r["hits"]["hits"]}
        r = es.search(
            index=pattern,
            size=5000,
            sort=["event.id"],
            _source=False,
            search_after=r["hits"]["hits"][-1]["sort"],
        )
    assert got == set(expected(range(writer.count)))
    text = log.read_text()
    assert "shipping stopped cleanly" in text
    for secret in ("ksecret-do-not-log", "a2lkOmtzZWNyZXQtZG8tbm90LWxvZw=="):
        assert secret not in text
