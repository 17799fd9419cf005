"""The daemon as a service: sd_notify, signals, reload, lock, metrics, logs without secrets."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT
from tests.integration.daemon import Daemon, write_config
from tests.integration.harness import assert_exactly_once, expected, output_ids, write_lines


def file_config(tmp_path, paths, out, extra="", more_inputs=()):
    inputs = "".join(
        f"""
[[inputs]]
type = "file"
paths = {orjson.dumps(p).decode()}
scan_interval = 0.1
"""
        for p in (paths, *more_inputs)
    )
    return write_config(
        tmp_path / "shipper.toml",
        f"""
[state]
dir = "{tmp_path / "state"}"
checkpoint_interval = 0.1
{extra}
{inputs}
[output]
type = "file"
path = "{out}"
""",
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("abstract", [False, True])
def test_sd_notify_ready_status_watchdog_stopping(tmp_path, abstract):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"logto-shipper-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        addr = "@" + name
    else:
        addr = str(tmp_path / "notify.sock")
        sock.bind(addr)
    sock.settimeout(10)
    (tmp_path / "logs").mkdir()
    write_lines(tmp_path / "logs" / "a.jsonl", range(5))
    cfg = file_config(tmp_path, [str(tmp_path / "logs" / "*.jsonl")], tmp_path / "out.ndjson")
    d = Daemon(cfg, tmp_path / "d.log", env={"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "200000"}).start()
    seen: list[str] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (
        any("READY=1" in m for m in seen)
        and sum("WATCHDOG=1" in m for m in seen) >= 3
        and any("STATUS=" in m for m in seen)
    ):
        seen.append(sock.recv(4096).decode())
    assert any("READY=1" in m for m in seen), seen
    assert sum("WATCHDOG=1" in m for m in seen) >= 3
    assert any(m.startswith("STATUS=") or "\nSTATUS=" in m for m in seen)
    assert d.terminate() == 0
    rest = []
    try:
        while True:
            rest.append(sock.recv(4096).decode())
    except TimeoutError:
        pass
    assert any("STOPPING=1" in m for m in rest)
    sock.close()


def test_sighup_applies_new_inputs_without_loss_or_repeat(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    out = tmp_path / "out.ndjson"
    cfg = file_config(tmp_path, [str(a / "*.jsonl")], out)
    d = Daemon(cfg, tmp_path / "d.log").start()
    write_lines(a / "x.jsonl", range(100))
    write_lines(b / "y.jsonl", range(100, 150))  # not configured yet
    d.wait_for(lambda: len(output_ids(out)) >= 100)
    file_config(tmp_path, [str(a / "*.jsonl")], out, more_inputs=[[str(b / "*.jsonl")]])
    d.proc.send_signal(signal.SIGHUP)
    write_lines(a / "x.jsonl", range(150, 200))
    d.wait_for(lambda: len(output_ids(out)) >= 200)
    time.sleep(0.5)
    assert d.terminate() == 0
    assert_exactly_once(output_ids(out), expected(range(200)))
    assert "configuration reloaded: 2 input(s)" in (tmp_path / "d.log").read_text()


def test_sighup_with_invalid_config_keeps_running(tmp_path):
    (tmp_path / "logs").mkdir()
    out = tmp_path / "out.ndjson"
    cfg = file_config(tmp_path, [str(tmp_path / "logs" / "*.jsonl")], out)
    d = Daemon(cfg, tmp_path / "d.log").start()
    write_lines(tmp_path / "logs" / "a.jsonl", range(10))
    d.wait_for(lambda: len(output_ids(out)) >= 10)
    good = cfg.read_text()
    cfg.write_text(good.replace("paths =", "pathz =", 1))
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for(lambda: "reload rejected" in (tmp_path / "d.log").read_text())
    write_lines(tmp_path / "logs" / "a.jsonl", range(10, 20))
    d.wait_for(lambda: len(output_ids(out)) >= 20)
    assert d.terminate() == 0
    text = (tmp_path / "d.log").read_text()
    assert "inputs[0].pathz: unknown key (did you mean 'paths'?)" in text
    assert_exactly_once(output_ids(out), expected(range(20)))


def test_sigterm_during_burst_loses_nothing(tmp_path):
    (tmp_path / "logs").mkdir()
    out = tmp_path / "out.ndjson"
    cfg = file_config(tmp_path, [str(tmp_path / "logs" / "*.jsonl")], out)
    d = Daemon(cfg, tmp_path / "d.log").start()
    d.wait_for(lambda: "shipping started" in (tmp_path / "d.log").read_text())
    write_lines(tmp_path / "logs" / "a.jsonl", range(20000))
    time.sleep(0.3)
    assert d.terminate() == 0  # drained and checkpointed mid-burst
    d.start()
    d.wait_for(lambda: (tmp_path / "d.log").read_text().count("shipping started") == 2)
    d.wait_for(lambda: len(output_ids(out)) >= 20000)
    time.sleep(0.3)
    assert d.terminate() == 0
    assert_exactly_once(output_ids(out), expected(range(20000)))


def test_second_instance_refused(tmp_path):
    (tmp_path / "logs").mkdir()
    cfg = file_config(tmp_path, [str(tmp_path / "logs" / "*.jsonl")], tmp_path / "out.ndjson")
    d = Daemon(cfg, tmp_path / "d.log").start()
    time.sleep(1.0)
    r = subprocess.run(
        [sys.executable, "-m", "cli", "--config", str(cfg), "run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1
    assert f"another logto-shipper (pid {d.proc.pid}) is using state dir" in r.stderr
    assert d.terminate() == 0


def test_metrics_endpoint_parses(tmp_path):
    (tmp_path / "logs").mkdir()
    out = tmp_path / "out.ndjson"
    port = free_port()
    cfg = file_config(
        tmp_path, [str(tmp_path / "logs" / "*.jsonl")], out, f'[metrics]\nlisten = "127.0.0.1:{port}"'
    )
    d = Daemon(cfg, tmp_path / "d.log").start()
    write_lines(tmp_path / "logs" / "a.jsonl", range(30))
    (tmp_path / "logs" / "bad.jsonl").write_bytes(b"{nope\n")
    d.wait_for(lambda: len(output_ids(out)) >= 30)
    time.sleep(0.3)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    value = {f.name: f.samples[0].value for f in fams.values() if f.samples}
    assert value["logto_shipper_lines_read"] >= 31
    assert value["logto_shipper_records_rejected"] == 1
    assert value["logto_shipper_open_files"] == 2
    assert "logto_shipper_bulk_latency_seconds" in fams
    lag = [s for s in fams["logto_shipper_checkpoint_lag"].samples]
    assert lag and lag[0].labels["unit"] == "bytes" and lag[0].value == 0
    assert d.terminate() == 0


def test_no_secret_in_any_log_line(tmp_path, es_target):
    srv = es_target.need_server()
    srv.api_keys = {"kid": "S3CRET-KEY-VALUE"}
    (tmp_path / "logs").mkdir()
    (tmp_path / "key").write_text("a2lkOlMzQ1JFVC1LRVktVkFMVUU=")  # kid:S3CRET-KEY-VALUE
    write_lines(tmp_path / "logs" / "a.jsonl", range(20))
    cfg = write_config(
        tmp_path / "shipper.toml",
        f"""
[state]
dir = "{tmp_path / "state"}"
[[inputs]]
type = "file"
paths = ["{tmp_path / "logs"}/*.jsonl"]
[[inputs]]
type = "postgres"
dsn = "postgresql://shipper:PG-PASSWORD-123@127.0.0.1:1/logto"
[output]
type = "elasticsearch"
hosts = ["{es_target.url}"]
api_key_file = "{tmp_path / "key"}"
batch_max_wait = 0.1
drain_timeout = 2
[index]
prefix = "{es_target.prefix}"
ship_expired = true  # the fixtures are from 2025
replicas = 0
""",
    )
    d = Daemon(cfg, tmp_path / "d.log").start("--log-level", "debug", "--log-format", "json")
    es = es_target.client(api_key=("kid", "S3CRET-KEY-VALUE"))

    def count():
        es.indices.refresh(index=f"{es_target.prefix}-*", allow_no_indices=True)
        r = es.options(ignore_status=503).count(index=f"{es_target.prefix}-default-*", allow_no_indices=True)
        return r["count"] if r.meta.status == 200 else -1  # 503: a new index's primary is starting

    d.wait_for(lambda: count() >= 20)
    srv.api_keys = {"kid": "rotated"}  # now every request fails authentication
    write_lines(tmp_path / "logs" / "a.jsonl", range(20, 30))
    time.sleep(1.5)
    assert d.terminate(timeout=90) in (0, 1)
    text = (tmp_path / "d.log").read_text()
    assert "postgres unavailable" in text  # the DSN's error was logged...
    for secret in ("S3CRET-KEY-VALUE", "a2lkOlMzQ1JFVC1LRVktVkFMVUU=", "PG-PASSWORD-123"):
        assert secret not in text  # ...but never a secret
    for line in text.splitlines():
        orjson.loads(line)  # every line is JSON with --log-format json


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_unit_passes_systemd_analyze(tmp_path):
    from click.testing import CliRunner

    from cli.main import cli

    exe = shutil.which("logto-shipper") or sys.executable
    r = CliRunner().invoke(
        cli, ["install-service", "--root", str(tmp_path), "--exec", exe, "--log-dir", str(tmp_path)]
    )
    assert r.exit_code == 0, r.output
    unit = tmp_path / "etc/systemd/system/logto-shipper.service"
    text = unit.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "@EXEC@" not in text
    assert oct((tmp_path / "var/lib/logto-shipper").stat().st_mode & 0o777) == "0o700"
    v = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert v.returncode == 0, v.stderr


def test_install_service_dry_run_changes_nothing(tmp_path):
    from click.testing import CliRunner

    from cli.main import cli

    r = CliRunner().invoke(cli, ["install-service", "--root", str(tmp_path), "--dry-run"])
    assert r.exit_code == 0 and "[Service]" in r.output
    assert not os.listdir(tmp_path)
