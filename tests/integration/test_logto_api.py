"""The ``logto-api`` input against a fake Logto Management API (tests/fake_logto.py)."""

from __future__ import annotations

import logging
import random
import time

import pytest

from shipper.metrics import METRICS
from tests.fake_logto import FakeLogto, log_row
from tests.integration.daemon import Daemon, write_config
from tests.integration.harness import Pipeline, assert_exactly_once


@pytest.fixture
def fake():
    f = FakeLogto().start()
    yield f
    f.stop()


def api_input(fake: FakeLogto, tmp_path, **kw):
    (tmp_path / "m2m-secret").write_text(fake.app_secret + "\n")
    (tmp_path / "m2m-secret").chmod(0o600)
    return {
        "type": "logto-api",
        "endpoint": fake.url,
        "app_id": fake.app_id,
        "app_secret_file": str(tmp_path / "m2m-secret"),
        "poll_interval": 0.5,
        "safety_lag": "1s",
        **kw,
    }


def now_ms() -> int:
    return int(time.time() * 1000)


def rows_over(n: int, span_ms: int, tag: str = "api", end_ago_ms: int = 5000) -> list[dict]:
    """``n`` rows spread over ``span_ms`` ending ``end_ago_ms`` ago, several per millisecond at
    places (windows split inside a millisecond's rows would lose some)."""
    end = now_ms() - end_ago_ms
    return [log_row(i, end - span_ms + (i * span_ms) // n // 3 * 3, tag=tag) for i in range(n)]


def created(p: Pipeline) -> list[str]:
    import orjson

    return [orjson.loads(x)["@timestamp"] for x in p.out.read_bytes().splitlines()]


def test_windows_page_in_order_and_rows_written_while_paging_are_not_lost(tmp_path, fake):
    rows = rows_over(2500, 3_600_000)
    fake.add_logs(rows)
    fake.add_logs(
        [log_row(9000 + i, rows[0]["createdAt"], "TriggerHook.PostSignIn", "hook") for i in range(3)]
    )
    inserted: list[str] = []

    def write_meanwhile(q):  # rows Logto writes while a window is paged: dated now
        if len(inserted) < 30:
            r = log_row(len(inserted), now_ms(), tag="new")
            inserted.append(r["id"])
            fake.add_logs([r])

    fake.on_logs = write_meanwhile
    p = Pipeline(tmp_path, inputs=[api_input(fake, tmp_path, since="2h")]).start()
    want = [r["id"] for r in rows]
    p.pump(lambda: len(p.ids()) >= len(want) + 30, timeout=60)
    p.pump(timeout=2.0)  # nothing more arrives
    assert p.stop() == 0
    assert_exactly_once(p.ids(), want + inserted)  # never TriggerHook rows: the API hides them
    stamps = created(p)
    assert stamps == sorted(stamps)  # oldest first, window after window
    pages = [r for r in fake.requests if r.startswith("GET /api/logs")]
    assert all("page_size=100" in r for r in pages)
    import re

    most = max(int(re.search(r"[?&]page=(\d+)", r).group(1)) for r in pages)
    assert 3 <= most <= 11  # windows of at most ~1,000 rows (halved), paged to their end
    assert fake.token_requests <= 2  # one for the whole backfill, one for the names cache


def test_restart_resumes_from_the_acknowledged_window(tmp_path, fake):
    rows = rows_over(1800, 600_000)
    fake.add_logs(rows[:1200])
    p = Pipeline(tmp_path, inputs=[api_input(fake, tmp_path, since="1h")]).start()
    p.pump(lambda: len(p.ids()) >= 1200, timeout=30)
    assert p.stop() == 0
    before = len(fake.requests)
    # Dated before the checkpoint (written with an old time after it was passed): outside every
    # later window, as the README says; rows dated after it are found.
    fake.add_logs(rows[1200:])
    fresh = [log_row(5000 + i, now_ms() + i, tag="fresh") for i in range(50)]
    fake.add_logs(fresh)
    p2 = Pipeline(tmp_path, inputs=[api_input(fake, tmp_path, since="1h")]).start()
    p2.pump(lambda: len(p2.ids()) >= 1250, timeout=30)
    p2.pump(timeout=1.5)
    assert p2.stop() == 0
    got = p2.ids()
    assert_exactly_once(got, [r["id"] for r in rows[:1200]] + [r["id"] for r in fresh])
    after = [r for r in fake.requests[before:] if r.startswith("GET /api/logs")]
    assert len(after) < 20  # resumed at the checkpoint, not from `since`


def test_token_expiry_mid_window_and_429_with_retry_after(tmp_path, fake, caplog):
    caplog.set_level(logging.WARNING)
    fake.add_logs(rows_over(900, 120_000))
    calls = {"n": 0}

    def faults(q):
        calls["n"] += 1
        if calls["n"] == 4:
            fake.expire_tokens()  # Logto revoked/expired the token between two pages
        if calls["n"] == 6:
            fake.fail(2, 429, "1")

    fake.on_logs = faults
    t0 = time.monotonic()
    p = Pipeline(tmp_path, inputs=[api_input(fake, tmp_path, since="1h")]).start()
    p.pump(lambda: len(p.ids()) >= 900, timeout=60)
    took = time.monotonic() - t0
    assert p.stop() == 0
    assert_exactly_once(p.ids(), [f"api{i:07d}" for i in range(900)])
    assert fake.token_requests in (2, 3)  # one refresh after the 401 (+ the names cache's own)
    assert took >= 1.0  # Retry-After: 1 was honoured
    assert "HTTP 429" in caplog.text and fake.app_secret not in caplog.text


def test_wrong_secret_is_one_line_and_run_once_exits_3(tmp_path, fake):
    from click.testing import CliRunner

    from cli.main import cli

    fake.add_logs(rows_over(10, 1000))
    inp = api_input(fake, tmp_path)
    (tmp_path / "m2m-secret").write_text("wrong-secret-do-not-log\n")
    cfg = write_config(
        tmp_path / "shipper.toml",
        f"""
[state]
dir = "{tmp_path / "state"}"
[[inputs]]
type = "logto-api"
endpoint = "{inp["endpoint"]}"
app_id = "m2m-id"
app_secret_file = "{inp["app_secret_file"]}"
[output]
type = "file"
path = "{tmp_path / "out.ndjson"}"
""",
    )
    r = CliRunner().invoke(cli, ["--config", str(cfg), "run", "--once", "--timeout", "1"])
    assert r.exit_code == 3, r.output
    assert "token endpoint answered HTTP 401 (invalid_client)" in r.output
    assert "wrong-secret-do-not-log" not in r.output


def test_retention_horizon_warning(tmp_path, fake, caplog):
    from shipper.pipeline.checkpoint import CheckpointStore
    from shipper.sources.logto_api import LogtoApiSource

    caplog.set_level(logging.WARNING)
    fake.add_logs([log_row(1, now_ms() - (14 * 86400 - 600) * 1000)])  # expires in 10 min
    fake.fail(1000, 503, None)  # and the API is down
    from datetime import UTC, datetime, timedelta

    from shipper.config import LogtoApiInputConfig

    soon = (datetime.now(UTC) - timedelta(days=14, seconds=-600)).isoformat()
    cfg = LogtoApiInputConfig.model_validate(
        {**api_input(fake, tmp_path, since=soon), "app_secret": fake.app_secret}
    )
    src = LogtoApiSource(cfg, CheckpointStore(tmp_path), "api0", start=False)
    (lag,) = src.lag()
    assert "rows older than the tenant's retention (14d) expire in" in lag.note
    assert 0 < METRICS.get("logto_api_retention_margin_seconds") < 3600
    assert "expire in" in caplog.text
    # Past the horizon already: said as such.
    src2 = LogtoApiSource(
        cfg.model_copy(update={"since": "15d"}), CheckpointStore(tmp_path), "api1", start=False
    )
    assert "expire before they are shipped" in src2.lag()[0].note
    assert METRICS.get("logto_api_retention_margin_seconds") < 0
    # Caught up: no note.
    src3 = LogtoApiSource(
        cfg.model_copy(update={"since": "1h"}), CheckpointStore(tmp_path), "api2", start=False
    )
    assert src3.lag()[0].note == ""
    for s in (src, src2, src3):
        s.close()


def test_window_halving_keeps_every_row_of_a_crowded_millisecond(tmp_path, fake):
    """1,500 rows in one millisecond: a window cannot be split inside it; it is paged whole."""
    t = now_ms() - 10_000
    fake.add_logs([log_row(i, t, tag="same") for i in range(1500)])
    fake.add_logs([log_row(i, t - 1 - i, tag="before") for i in range(300)])
    p = Pipeline(tmp_path, inputs=[api_input(fake, tmp_path, since="1h")]).start()
    p.pump(lambda: len(p.ids()) >= 1800, timeout=60)
    p.pump(timeout=1.5)
    assert p.stop() == 0
    assert_exactly_once(
        p.ids(), [f"same{i:07d}" for i in range(1500)] + [f"before{i:07d}" for i in range(300)]
    )


def test_backfill_30000_across_kill9_exactly_once_in_the_cluster(tmp_path, fake, es_target):
    rows = rows_over(30_000, 10 * 86_400_000)
    fake.add_logs(rows)
    es = es_target.client()
    inp = api_input(fake, tmp_path)
    cfg = write_config(
        tmp_path / "shipper.toml",
        f"""
[state]
dir = "{tmp_path / "state"}"
checkpoint_interval = 0.2
[[inputs]]
type = "logto-api"
endpoint = "{inp["endpoint"]}"
app_id = "m2m-id"
app_secret_file = "{inp["app_secret_file"]}"
since = "14d"
poll_interval = 0.5
safety_lag = "1s"
[output]
type = "elasticsearch"
hosts = ["{es_target.url}"]
batch_max_docs = 500
batch_max_wait = 0.2
[index]
prefix = "{es_target.prefix}"
replicas = 0
""",
    )
    pattern = f"{es_target.prefix}-default-*"

    def count() -> int:
        es.indices.refresh(index=pattern, allow_no_indices=True)
        r = es.options(ignore_status=503).count(index=pattern, allow_no_indices=True)
        return r["count"] if r.meta.status == 200 else -1

    daemon = Daemon(cfg, tmp_path / "daemon.log")
    rng = random.Random(7)
    for _ in range(3):
        daemon.start().wait_started()
        time.sleep(rng.uniform(0.5, 1.5))
        daemon.kill9()
    daemon.start().wait_started()
    daemon.wait_for(lambda: count() >= 30_000, timeout=180)
    assert daemon.terminate() == 0
    assert count() == 30_000  # a window read again after kill -9 is answered 409 per id
    got: set[str] = set()
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
    assert got == {row["id"] for row in rows}
    assert fake.app_secret not in (tmp_path / "daemon.log").read_text()


def test_a_slow_api_never_holds_up_the_other_inputs(tmp_path, fake):
    from tests.integration.harness import write_lines

    fake.add_logs(rows_over(300, 60_000))
    fake.delay = 3.0  # every page takes 3 s
    p = Pipeline(
        tmp_path,
        inputs=[
            {"type": "file", "paths": [str(tmp_path / "logs" / "*.jsonl")], "scan_interval": 0.05},
            api_input(fake, tmp_path, since="1h"),
        ],
    ).start()
    write_lines(tmp_path / "logs" / "a.jsonl", range(200))
    t0 = time.monotonic()
    p.pump(lambda: len(p.ids()) >= 200, timeout=20)
    assert time.monotonic() - t0 < 2.5  # the file's lines did not wait for a page
    assert not any(i.startswith("api") for i in p.ids())
    fake.delay = 0.0
    p.pump(lambda: len(p.ids()) >= 500, timeout=30)
    assert p.stop() == 0
