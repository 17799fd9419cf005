"""Every search command end to end against a known data set on the test server."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from cli.main import cli
from shipper.normalize import Normalizer
from shipper.sinks.elasticsearch.indexing import IndexNamer

NOW = datetime.now(UTC)


def rec(i, key, result, user, app, ip, minutes_ago, **extra):
    payload = {
        "result": result,
        "userId": user,
        "applicationId": app,
        "ip": ip,
        "userAgent": "UA/1",
        **extra,
    }
    ts = NOW - timedelta(minutes=minutes_ago)
    return {
        "tenantId": "default",
        "id": f"log{i:05d}",
        "key": key,
        "createdAt": int(ts.timestamp() * 1000),
        "payload": payload,
    }


DATA = (
    [rec(i, "Interaction.SignIn.Submit", "Error", "alice", "web", "203.0.113.9", 10 + i) for i in range(30)]
    + [
        rec(100 + i, "Interaction.SignIn.Submit", "Success", "bob", "ios", "10.0.0.5", 5 + i)
        for i in range(5)
    ]
    + [
        rec(
            200 + i,
            "ExchangeTokenBy.RefreshToken",
            "Success",
            "bob",
            "ios",
            "::ffff:10.0.1.7",
            60 * 30 + i,
            params={"grant_type": "refresh_token", "refresh_token": "rt-secret"},
        )
        for i in range(3)
    ]
    + [rec(300, "RevokeToken", "Success", "carol", "web", "2001:db8::1", 60 * 24 * 10)]  # 10 days ago
)


@pytest.fixture
def loaded(tmp_path, es_target):
    es = es_target.client()
    namer = IndexNamer(es_target.prefix, "default")
    n = Normalizer()
    ops = []
    for r in DATA:
        d = n.record(r)
        ops += [{"create": {"_index": namer(d.epoch_ms), "_id": d.id}}, d.body]
    from shipper.config import IndexConfig
    from shipper.sinks.elasticsearch import setup as es_setup

    es_setup.setup(es, IndexConfig(prefix=es_target.prefix, replicas=0))
    es.bulk(operations=ops, refresh=True)
    cfg = tmp_path / "shipper.toml"
    cfg.write_text(f"""
[state]
dir = "{tmp_path / "state"}"
[[inputs]]
type = "file"
paths = ["{tmp_path}/*.jsonl"]
[output]
type = "elasticsearch"
hosts = ["{es_target.url}"]
[index]
prefix = "{es_target.prefix}"
ship_expired = true  # the fixtures are from 2025
""")
    return cfg


def run(cfg, *args):
    return CliRunner().invoke(cli, ["--config", str(cfg), *args])


def ids(r):
    return [json.loads(x)["event"]["id"] for x in r.stdout.splitlines()]


def test_search_filters(loaded):
    r = run(loaded, "search", "--user", "alice", "--result", "failure", "--format", "ndjson")
    assert r.exit_code == 0, r.output
    assert len(ids(r)) == 30 and "30 of 30 hits" in r.stderr
    r = run(
        loaded,
        "search",
        "--event",
        "Interaction.SignIn.*",
        "--result",
        "success",
        "--format",
        "ndjson",
    )
    assert sorted(ids(r)) == [f"log{100 + i:05d}" for i in range(5)]
    r = run(loaded, "search", "--event", "token", "--format", "ndjson")  # a family
    assert len(ids(r)) == 3
    r = run(loaded, "search", "--ip", "10.0.0.0/16", "--format", "ndjson")
    assert len(ids(r)) == 8  # 10.0.0.5 x5 and the mapped ::ffff:10.0.1.7 x3
    r = run(loaded, "search", "--ip", "::ffff:10.0.1.7", "--format", "ndjson")
    assert len(ids(r)) == 3
    r = run(loaded, "search", "--app", "ios", "--since", "1h", "--format", "ndjson")
    assert len(ids(r)) == 5


def test_default_range_is_seven_days_and_since_widens_it(loaded):
    assert "log00300" not in ids(run(loaded, "search", "--limit", "100", "--format", "ndjson"))
    assert "log00300" in ids(run(loaded, "search", "--limit", "100", "--since", "30d", "--format", "ndjson"))


def test_sort_limit_and_paging_beyond_one_page(loaded, monkeypatch):
    import shipper.tools.search as s

    real = s.search
    monkeypatch.setattr(s, "search", lambda *a, **kw: real(*a, **{**kw, "page_size": 7}))
    r = run(loaded, "search", "--limit", "25", "--sort", "oldest", "--format", "ndjson")
    got = ids(r)
    assert len(got) == 25 and len(set(got)) == 25
    times = [json.loads(x)["@timestamp"] for x in r.stdout.splitlines()]
    assert times == sorted(times)
    r = run(loaded, "search", "--limit", "1000", "--format", "ndjson")
    assert len(set(ids(r))) == 38


def test_formats(loaded):
    r = run(loaded, "search", "--user", "bob", "--format", "json")
    assert len(json.loads(r.stdout)) == 8
    r = run(loaded, "search", "--user", "bob", "--format", "csv", "--limit", "2")
    lines = r.stdout.splitlines()
    assert lines[0] == "time,event,result,user,application,ip,id" and len(lines) == 3
    r = CliRunner(env={"COLUMNS": "160"}).invoke(
        cli, ["--config", str(loaded), "search", "--user", "bob", "--format", "table", "--utc"]
    )
    assert r.stdout.splitlines()[0].split()[:4] == ["TIME", "(UTC)", "EVENT", "RESULT"]
    assert "✓ success" in r.stdout and "\x1b[" not in r.stdout  # no colour codes off a TTY
    assert "rt-secret" not in r.stdout


def test_no_hits_exit_1_and_usage_errors_exit_2(loaded):
    r = run(loaded, "search", "--user", "nobody")
    assert r.exit_code == 1 and "0 of 0 hits" in r.stderr
    assert run(loaded, "search", "--ip", "not-an-ip").exit_code == 2
    assert run(loaded, "search", "--since", "yesterday").exit_code == 2
    assert run(loaded, "search", "--result", "maybe").exit_code == 2


def test_user_view(loaded):
    r = run(loaded, "user", "bob", "--format", "ndjson")
    assert r.exit_code == 0 and len(ids(r)) == 8


def test_show(loaded):
    r = run(loaded, "show", "log00200")
    assert r.exit_code == 0, r.output
    assert "ExchangeTokenBy.RefreshToken" in r.stdout and "Payload:" in r.stdout
    assert '"refresh_token": "******"' in r.stdout and "rt-secret" not in r.stdout
    assert json.loads(run(loaded, "show", "log00200", "--format", "json").stdout)["event"]["id"] == "log00200"
    assert run(loaded, "show", "nope").exit_code == 1


def test_top(loaded):
    r = run(loaded, "top", "ips", "--result", "failure", "--since", "1h", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == [{"ips": "203.0.113.9", "count": 30}]
    r = run(loaded, "top", "users", "--format", "json")
    assert [(x["users"], x["count"]) for x in json.loads(r.stdout)] == [("alice", 30), ("bob", 8)]
    r = run(loaded, "top", "events", "--by", "hour", "--format", "json", "--since", "1d")
    rows = json.loads(r.stdout)
    assert (
        rows[0]["events"] == "Interaction.SignIn.Submit"
        and sum(h["count"] for h in rows[0]["histogram"]) == 35
    )
    r = run(loaded, "top", "apps", "--by", "hour", "--format", "table")
    assert "histogram" in r.stdout.splitlines()[0].lower()
    assert run(loaded, "top", "countries").exit_code == 1  # no geo in this data set


def test_top_over_max_buckets_is_one_line_naming_what_fits(loaded, es_target, monkeypatch):
    """search.max_buckets lowered (as a cluster may have it): the refusal becomes one line with
    the --size that fits the span, exit 2; the suggested size then works."""
    es = es_target.client()
    if es_target.server is not None:
        import tests.es_server.buckets as q

        monkeypatch.setattr(q, "MAX_BUCKETS", 5)
    else:
        es.cluster.put_settings(persistent={"search.max_buckets": 5})
    try:
        args = ["top", "events", "--by", "hour", "--since", "30d", "--format", "json"]
        r = run(loaded, *args, "--size", "1000")
        assert r.exit_code == 2, r.output
        line = r.stderr.strip().splitlines()[-1]
        # the events span 10 days: 240 or 241 hourly buckets, by where the hours begin
        assert re.search(r"up to 24[12],000 buckets \(1000 values x 24[01] hours\)", line), line
        assert "search.max_buckets (5): use --size 1 or less" in line and "--by day" in line
        assert run(loaded, *args, "--size", "1").exit_code == 0
    finally:
        if es_target.server is None:
            es.cluster.put_settings(persistent={"search.max_buckets": None})


def test_tail_prints_new_events_once(loaded, es_target):
    r = run(
        loaded,
        "tail",
        "--interval",
        "0.2",
        "--max-polls",
        "2",
        "--format",
        "ndjson",
        "--since",
        "2h",
    )
    assert r.exit_code == 0 and len(set(ids(r))) == len(ids(r)) == 35


def test_status(loaded, es_target):
    r = run(loaded, "status", "--format", "json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert sum(i["docs"] for i in rep["indices"]) == 39 and rep["ilm"] == es_target.ilm
    assert rep["cluster"]["version"].split(".")[0] in ("8", "9")
    if es_target.ilm:
        assert rep["retention"] == "90d"
        assert all(i["phase"] in ("hot", "delete") for i in rep["indices"])
        assert "retention: 90d" in run(loaded, "status").stdout
    else:
        assert rep["retention"] is None and all(i["phase"] is None for i in rep["indices"])
        assert "retention: ILM not available on this cluster" in run(loaded, "status").stdout


def test_unreachable_cluster_exit_3(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "[[inputs]]\ntype='file'\npaths=['x']\n[output]\ntype='elasticsearch'\nhosts=['http://127.0.0.1:9']\n"
    )
    for args in (["search"], ["show", "x"], ["top", "ips"], ["status"], ["user", "u"]):
        r = run(cfg, *args)
        assert r.exit_code == 3, (args, r.output)
        assert "cannot connect" in r.stderr and "Traceback" not in r.output
