"""``alerts`` and ``detect`` against the test server (or SHIPPER_TEST_ES_URL): an attack shipped
by the daemon is listed by ``alerts``; ``detect`` finds the same alert in the history, and a
threshold tried on the past changes what it finds."""

from __future__ import annotations

import orjson
from click.testing import CliRunner

from cli.main import cli
from tests.integration.harness import write_lines
from tests.integration.test_detect_es import attack_rows

SINCE = "2025-08-01T00:00:00Z"  # the rows are from 2025-08-21


def shipped(tmp_path, target):
    (tmp_path / "logs").mkdir()
    write_lines(tmp_path / "logs" / "a.jsonl", range(200))
    attack_rows(tmp_path / "logs" / "a.jsonl", 25)
    cfg = tmp_path / "shipper.toml"
    cfg.write_text(f"""
[state]
dir = "{tmp_path / "state"}"
[pipeline]
workers = 0
[[inputs]]
type = "file"
paths = ["{tmp_path}/logs/*.jsonl"]
[output]
type = "elasticsearch"
hosts = ["{target.url}"]
[index]
prefix = "{target.prefix}"
replicas = 0
ship_expired = true
""")
    r = CliRunner().invoke(cli, ["--config", str(cfg), "run", "--once"])
    assert r.exit_code == 0, r.output
    es = target.client()
    es.indices.refresh(index=f"{target.prefix}-*")
    return cfg


def run(cfg, *args):
    return CliRunner().invoke(cli, ["--config", str(cfg), *args])


def test_alerts_and_detect_agree_on_the_history(tmp_path, es_target):
    cfg = shipped(tmp_path, es_target)
    r = run(cfg, "alerts", "--since", SINCE, "--format", "json")
    assert r.exit_code == 0, r.output
    (alert,) = orjson.loads(r.stdout)
    assert alert["rule"]["name"] == "brute_force_user" and alert["logto_shipper"]["alert"]["count"] == 25
    assert r.stderr.strip().endswith("\n1 alerts") or r.stderr.strip() == "1 alerts"
    assert run(cfg, "alerts", "--since", SINCE, "--rule", "lockout").exit_code == 1  # none of that rule
    assert run(cfg, "alerts", "--since", "1h").exit_code == 1  # none in the last hour

    r = run(cfg, "detect", "--since", SINCE, "--format", "json")
    assert r.exit_code == 0, r.output
    (found,) = orjson.loads(r.stdout)
    assert found["event"]["id"] == alert["event"]["id"]  # the same alert: same rule, entity, event
    assert found["logto_shipper"]["alert"]["count"] == 25
    assert "25 failed sign-in steps" in r.stderr and "1 alerts from 11 rules" in r.stderr

    r = run(cfg, "detect", "--since", SINCE, "--rule", "brute_force_user", "--threshold", "30")
    assert r.exit_code == 1 and "0 alerts from 1 rules" in r.stderr
    r = run(
        cfg,
        "detect",
        "--since",
        SINCE,
        "--rule",
        "brute_force_user",
        "--threshold",
        "20",
        "--format",
        "ndjson",
    )
    assert r.exit_code == 0 and orjson.loads(r.stdout)["logto_shipper"]["alert"]["threshold"] == 20


def test_detect_usage_errors(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[[inputs]]\ntype = "file"\npaths = ["/x"]\n[output]\ntype = "elasticsearch"\nhosts = ["http://127.0.0.1:1"]\n'
    )
    r = run(cfg, "detect", "--threshold", "5")
    assert r.exit_code == 2 and "exactly one --rule" in r.output
    r = run(cfg, "detect", "--rule", "nope")
    assert r.exit_code == 2
    r = run(cfg, "alerts")
    assert r.exit_code == 3 and "alerts:" in r.output  # unreachable: one line, exit 3
