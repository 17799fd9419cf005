"""What a user who follows the README gets: the installed console script in clean venvs.

Every check runs ``logto-shipper`` from a venv that holds only the wheel and what it declares
(see conftest.py), against the project's Elasticsearch test server and a real PostgreSQL, and
looks at what a person would see: exit codes, the one-line errors, stderr, and never a secret.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.es_server import EsTestServer
from tests.integration.harness import write_lines
from tests.pg import insert

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Pw-9f83kq-Secret"  # must never appear in anything printed
API_KEY = "QWxhZGRpbjpvcGVuIHNlc2FtZQ-key"


def run(
    exe: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60, cwd: Path = ROOT
) -> Any:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LOGTO_SHIPPER_")}
    full.pop("VIRTUAL_ENV", None)
    full["PATH"] = f"{exe.parent}:/usr/bin:/bin"
    return subprocess.run(
        [str(exe), *args],
        capture_output=True,
        text=True,
        env={**full, **(env or {})},
        timeout=timeout,
        cwd=cwd,
    )


def no_secret(*outputs: str) -> None:
    for out in outputs:
        assert PASSWORD not in out and API_KEY not in out, out


def config(tmp: Path, output: str, inputs: str | None = None, extra: str = "", expired: bool = True) -> Path:
    logs = tmp / "logs"
    logs.mkdir(exist_ok=True)
    inputs = inputs or f'[[inputs]]\ntype = "file"\npaths = ["{logs}/*.jsonl"]\n'
    path = tmp / "shipper.toml"
    # the fixtures are from 2025, past the default retention: shipped anyway unless asked not to
    index = "[index]\nship_expired = true\n" if expired else ""
    path.write_text(f'[state]\ndir = "{tmp}/state"\n\n{inputs}\n{output}\n{index}{extra}')
    return path


@pytest.fixture
def es():
    srv = EsTestServer(users={"elastic": PASSWORD}).start()
    yield srv
    srv.stop()


def es_output(srv: EsTestServer, password: str = PASSWORD) -> str:
    return f'[output]\ntype = "elasticsearch"\nhosts = ["http://elastic:{password}@127.0.0.1:{srv.port}"]\n'


def log_lines(tmp: Path, n: int) -> None:
    (tmp / "logs").mkdir(exist_ok=True)
    write_lines(tmp / "logs" / "a.jsonl", range(n))


def refresh(srv: EsTestServer) -> None:
    from elasticsearch import Elasticsearch

    Elasticsearch(srv.url, basic_auth=("elastic", PASSWORD)).indices.refresh(index="logto-audit-*")


def docs_in(srv: EsTestServer) -> int:
    return sum(len(i.docs) for i in srv.cluster.indices.values() if i.name.startswith("logto-audit-default-"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- install ---------------------------------------------------------------------------------


@pytest.mark.parametrize("venv", ["plain", "postgres", "test"])
def test_version_and_help_in_every_install(installed, venv):
    exe = installed[venv]
    r = run(exe, "--version")
    assert r.returncode == 0 and "logto-shipper" in r.stdout and "normalizer:" in r.stdout, r
    r = run(exe, "run", "--help")
    assert r.returncode == 0 and "--once" in r.stdout and "LOGTO_SHIPPER_RUN_ONCE" in r.stdout


def test_readme_main_command_demo_runs(installed, tmp_path):
    """The README's first command (after its install): the demo prints the bundled sample."""
    exe = installed["plain"]
    state = tmp_path / "demo-state"
    r = run(
        exe, "--config", "deploy/examples/demo.toml", "run", "--once", env={"LOGTO_SHIPPER_STATE": str(state)}
    )
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 200
    assert "shipped 200 records, 0 rejected, 0 dead-lettered" in r.stderr
    r = run(
        exe, "--config", "deploy/examples/demo.toml", "run", "--once", env={"LOGTO_SHIPPER_STATE": str(state)}
    )
    assert r.returncode == 0 and r.stdout == ""


# -- documented environment variables ---------------------------------------------------------


def test_every_documented_env_var_works(installed, tmp_path, es):
    exe = installed["plain"]
    cfg = config(tmp_path, es_output(es))
    documented = set(re.findall(r"LOGTO_SHIPPER_[A-Z_]+[A-Z]", (ROOT / "README.md").read_text()))
    checked: set[str] = set()

    r = run(exe, "config", "check", env={"LOGTO_SHIPPER_CONFIG": str(cfg)})
    assert r.returncode == 0 and f"config OK: {cfg}" in r.stderr, r.stderr
    checked.add("LOGTO_SHIPPER_CONFIG")

    log_lines(tmp_path, 3)
    r = run(
        exe,
        "run",
        env={
            "LOGTO_SHIPPER_CONFIG": str(cfg),
            "LOGTO_SHIPPER_RUN_ONCE": "1",
            "LOGTO_SHIPPER_RUN_TIMEOUT": "5",
            "LOGTO_SHIPPER_LOG_FORMAT": "json",
            "LOGTO_SHIPPER_LOG_LEVEL": "debug",
        },
    )
    assert r.returncode == 0, r.stderr
    assert '"level":"debug"' in r.stderr and "shipped 3 records" in r.stderr
    checked |= {
        "LOGTO_SHIPPER_RUN_ONCE",
        "LOGTO_SHIPPER_RUN_TIMEOUT",
        "LOGTO_SHIPPER_LOG_FORMAT",
        "LOGTO_SHIPPER_LOG_LEVEL",
    }
    refresh(es)

    r = run(
        exe,
        "search",
        "--format",
        "json",
        env={"LOGTO_SHIPPER_CONFIG": str(cfg), "LOGTO_SHIPPER_SEARCH_SINCE": "3650d"},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("r000000") == 3, r.stdout
    r = run(
        exe,
        "search",
        "--format",
        "json",
        env={"LOGTO_SHIPPER_CONFIG": str(cfg), "LOGTO_SHIPPER_SEARCH_SINCE": "1m"},
    )
    assert r.returncode == 1, (r.stdout, r.stderr)  # the records are from 2025: outside the last minute
    checked.add("LOGTO_SHIPPER_SEARCH_SINCE")
    r = run(
        exe,
        "search",
        "--format",
        "table",
        "--since",
        "3650d",
        env={"LOGTO_SHIPPER_CONFIG": str(cfg), "LOGTO_SHIPPER_COLOR": "always", "COLUMNS": "80"},
    )
    plain = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout)
    assert r.returncode == 0 and "\x1b[" in r.stdout, r.stderr  # colour forced into a pipe
    assert plain.startswith("TIME (") and all(len(line) <= 80 for line in plain.splitlines()), plain
    checked.add("LOGTO_SHIPPER_COLOR")

    state = tmp_path / "demo"
    sample = tmp_path / "sample.jsonl"
    write_lines(sample, range(7))
    r = run(
        exe,
        "--config",
        "deploy/examples/demo.toml",
        "run",
        "--once",
        env={"LOGTO_SHIPPER_STATE": str(state), "LOGTO_SHIPPER_SAMPLE": str(sample)},
    )
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 7 and (state / "registry.json").exists(), (
        r.stderr
    )
    checked |= {"LOGTO_SHIPPER_STATE", "LOGTO_SHIPPER_SAMPLE"}
    checked.add("LOGTO_SHIPPER_PURE")  # a build switch: tests/test_packaging_and_bench.py builds with it
    assert documented <= checked, f"documented but not checked here: {sorted(documented - checked)}"
    no_secret(r.stdout, r.stderr)


def test_once_leaves_out_days_past_the_retention(installed, tmp_path, es):
    """The default retention (90d): 2025's records would land in indices ILM deletes at once, so
    they are counted and said, not shipped; today's are shipped; the option ships them all."""
    import json

    from elasticsearch import Elasticsearch

    exe = installed["plain"]
    log_lines(tmp_path, 3)  # 2025-08-21
    now = int(time.time() * 1000)
    with open(tmp_path / "logs" / "a.jsonl", "a") as fh:
        for i in range(2):
            fh.write(
                json.dumps({"id": f"now{i}", "key": "Interaction.SignIn.Submit", "createdAt": now}) + "\n"
            )
    r = run(exe, "run", "--once", "--config", str(config(tmp_path, es_output(es), expired=False)))
    assert r.returncode == 0, r.stderr
    assert "shipped 2 records" in r.stderr
    assert "3 expired (older than the retention, oldest 2025-08-21)" in r.stderr.splitlines()[-1]
    assert "ship_expired = true" in r.stderr  # the warning says how to ship them anyway
    refresh(es)
    client = Elasticsearch(es.url, basic_auth=("elastic", PASSWORD))
    assert client.count(index="logto-audit-*")["count"] == 2
    st = run(exe, "status", "--config", str(config(tmp_path, es_output(es), expired=False)))
    assert "3 events not shipped: older than the retention (oldest 2025-08-21" in st.stdout, st.stdout
    (tmp_path / "state").rename(tmp_path / "state-before")  # read everything again, with the option
    r = run(exe, "run", "--once", "--config", str(config(tmp_path, es_output(es))))
    assert r.returncode == 0 and "shipped 5 records (2 already indexed)" in r.stderr, r.stderr


# -- global options anywhere ------------------------------------------------------------------


def test_config_after_the_subcommand(installed, tmp_path):
    exe = installed["plain"]
    cfg = config(tmp_path, '[output]\ntype = "console"\n')
    log_lines(tmp_path, 4)
    r = run(exe, "run", "--config", str(cfg), "--once", "--log-level", "warning")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 4
    assert "INFO" not in r.stderr  # --log-level after the subcommand took effect


# -- run --once as a batch job ----------------------------------------------------------------


def test_once_exit_codes(installed, tmp_path, es):
    exe = installed["plain"]
    log_lines(tmp_path, 5)
    # cluster down: exit 3 within the timeout, one line saying so
    down = (
        f'[output]\ntype = "elasticsearch"\nhosts = ["http://elastic:{PASSWORD}@127.0.0.1:{free_port()}"]\n'
    )
    started = time.monotonic()
    r = run(exe, "run", "--once", "--timeout", "3", "--config", str(config(tmp_path, down)))
    assert r.returncode == 3, r.stderr
    assert time.monotonic() - started < 20
    assert "not reachable within 3 s" in r.stderr.splitlines()[-1]
    no_secret(r.stdout, r.stderr)
    # wrong password: exit 3 at once, saying the credentials were refused
    started = time.monotonic()
    r = run(exe, "run", "--once", "--config", str(config(tmp_path, es_output(es, "wrong-" + PASSWORD))))
    assert r.returncode == 3 and "authentication failed" in r.stderr.splitlines()[-1], r.stderr
    assert time.monotonic() - started < 20
    # good: exit 0 with a summary
    r = run(exe, "run", "--once", "--config", str(config(tmp_path, es_output(es))))
    assert r.returncode == 0, r.stderr
    assert "shipped 5 records, 0 rejected, 0 dead-lettered" in r.stderr
    # a rejected line: exit 1, and it is in the dead-letter file
    with open(tmp_path / "logs" / "a.jsonl", "ab") as fh:
        fh.write(b'{"not a logto record": true}\n')
    r = run(exe, "run", "--once", "--config", str(config(tmp_path, es_output(es))))
    assert r.returncode == 1, r.stderr
    assert "1 rejected" in r.stderr
    assert (tmp_path / "state" / "dead-letter" / "records.jsonl").read_text().count("\n") == 1
    no_secret(r.stdout, r.stderr)


# -- bad configuration: one line, exit 2 ---------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expect"),
    [
        (
            '[output]\ntype = "elasticsearch"\nhosts = ["127.0.0.1:9201"]\n',
            "not a URL with scheme, host and port",
        ),
        ('[output]\ntype = "elasticsearch"\nrequest_timeout = inf\n', "finite number"),
        ('[output]\ntype = "elasticsearch"\nhosts = ["http://h:99999"]\n', "port outside 1-65535"),
    ],
)
def test_bad_config_is_one_line_exit_2(installed, tmp_path, output, expect):
    exe = installed["plain"]
    cfg = config(tmp_path, output)
    for args in (["config", "check"], ["run", "--once"], ["test", "output"], ["search"]):
        r = run(exe, "--config", str(cfg), *args)
        assert r.returncode == 2, (args, r.stderr)
        assert expect in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_glob_matching_nothing_is_said(installed, tmp_path):
    exe = installed["plain"]
    inputs = f'[[inputs]]\ntype = "file"\npaths = ["{tmp_path}/nowhere/*.jsonl"]\n'
    cfg = config(tmp_path, '[output]\ntype = "console"\n', inputs)
    r = run(exe, "run", "--once", "--config", str(cfg))
    assert r.returncode == 0
    assert f"no file matches {tmp_path}/nowhere/*.jsonl (missing directory {tmp_path}/nowhere)" in r.stderr
    assert "shipped 0 records" in r.stderr


# -- credentials never printed ------------------------------------------------------------------


def test_no_credential_is_printed(installed, tmp_path, es, pg):
    exe = installed["plain"]
    key = tmp_path / "api-key"
    key.write_text(API_KEY)
    key.chmod(0o644)
    cfg = config(tmp_path, es_output(es))
    outputs = []
    for args in (["config", "check"], ["test", "output"], ["status"], ["run", "--once"]):
        r = run(exe, "--config", str(cfg), *args)
        outputs += [r.stdout, r.stderr]
    assert "basic auth over plain http" in outputs[1]
    # an API key file others can read: warned, never shown
    cfg2 = config(
        tmp_path,
        f'[output]\ntype = "elasticsearch"\nhosts = ["http://127.0.0.1:{es.port}"]\napi_key_file = "{key}"\n',
    )
    r = run(exe, "--config", str(cfg2), "config", "check")
    assert f"{key} is readable by others (mode 0644)" in r.stderr, r.stderr
    outputs += [r.stdout, r.stderr]
    # a dsn_file holding a bare password: not a connection string; its text is never echoed
    dsn = tmp_path / "dsn"
    dsn.write_text(PASSWORD)
    dsn.chmod(0o600)
    cfg3 = config(
        tmp_path, '[output]\ntype = "console"\n', f'[[inputs]]\ntype = "postgres"\ndsn_file = "{dsn}"\n'
    )
    r = run(exe, "--config", str(cfg3), "run", "--once")
    assert r.returncode == 2 and "not a valid PostgreSQL connection string" in r.stderr, r.stderr
    outputs += [r.stdout, r.stderr]
    # a DSN with a password to a database that is down: the error names the host, not the password
    dsn.write_text(f"postgresql://someone:{PASSWORD}@127.0.0.1:{free_port()}/logto")
    r = run(exe, "--config", str(cfg3), "run", "--once", "--timeout", "2")
    assert r.returncode == 3 and "unavailable" in r.stderr, r.stderr
    outputs += [r.stdout, r.stderr]
    no_secret(*outputs)


# -- the daemon under systemd's notify protocol, metrics on ---------------------------------------


def _daemon_under_notify(exe: Path, cfg: Path, tmp: Path, metrics: str, done: Any) -> list[str]:
    addr = str(tmp / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(1.0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGTO_SHIPPER_")}
    env |= {"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "2000000", "PATH": f"{exe.parent}:/usr/bin:/bin"}
    with open(tmp / "daemon.log", "wb") as log_fh:
        proc = subprocess.Popen([str(exe), "--config", str(cfg), "run"], stderr=log_fh, env=env, cwd=ROOT)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
            any("READY=1" in m for m in seen) and any("STATUS=" in m for m in seen) and done()
        ):
            try:
                seen.append(sock.recv(4096).decode())
            except TimeoutError:
                assert proc.poll() is None, (tmp / "daemon.log").read_text()
        body = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5).read().decode()
        assert "logto_shipper_checkpoint_lag{" in body, body[:2000]
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (tmp / "daemon.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    assert any("READY=1" in m for m in seen), (seen, (tmp / "daemon.log").read_text())
    log = (tmp / "daemon.log").read_text()
    assert "Traceback" not in log, log
    return seen


@pytest.mark.parametrize("venv", ["plain", "postgres"])
def test_daemon_file_input_under_systemd_notify(installed, tmp_path, es, venv):
    exe = installed[venv]
    metrics = f"127.0.0.1:{free_port()}"
    log_lines(tmp_path, 20)
    cfg = config(tmp_path, es_output(es), extra=f'[metrics]\nlisten = "{metrics}"\n')
    _daemon_under_notify(exe, cfg, tmp_path, metrics, lambda: docs_in(es) == 20)
    assert docs_in(es) == 20
    status = run(exe, "--config", str(cfg), "status")
    assert status.returncode == 0 and "input file0 0 bytes behind" in status.stdout, status.stdout
    no_secret((tmp_path / "daemon.log").read_text(), status.stdout, status.stderr)


def test_daemon_postgres_input_under_systemd_notify(installed, tmp_path, es, pg):
    _, dsn = pg
    insert(
        dsn,
        [
            (
                "default",
                f"pg{i:05d}",
                "Interaction.SignIn.Submit",
                '{"result":"Success"}',
                "2025-08-21T10:00:00Z",
            )
            for i in range(30)
        ],
    )
    exe = installed["plain"]
    metrics = f"127.0.0.1:{free_port()}"
    (tmp_path / "dsn").write_text(dsn)
    (tmp_path / "dsn").chmod(0o600)
    inputs = f'[[inputs]]\ntype = "postgres"\ndsn_file = "{tmp_path}/dsn"\n'
    cfg = config(tmp_path, es_output(es), inputs, extra=f'[metrics]\nlisten = "{metrics}"\n')
    _daemon_under_notify(exe, cfg, tmp_path, metrics, lambda: docs_in(es) == 30)
    assert docs_in(es) == 30
    status = run(exe, "--config", str(cfg), "status")
    assert status.returncode == 0 and "input pg0:default" in status.stdout, status.stdout


def test_missing_driver_is_one_line_naming_the_extra(installed, tmp_path):
    """A broken install (no psycopg): a postgres input says what to install, exit 2. Runs last:
    it removes the driver from the plain venv."""
    exe = installed["plain"]
    pip = str(exe.parent / "pip")
    subprocess.run([pip, "uninstall", "-q", "-y", "psycopg", "psycopg-binary"], check=True)
    try:
        _without_driver(exe, tmp_path)
    finally:
        subprocess.run([pip, "install", "-q", "--disable-pip-version-check", "psycopg[binary]"], check=True)


def _without_driver(exe: Path, tmp_path: Path) -> None:
    (tmp_path / "dsn").write_text("postgresql://u@127.0.0.1:1/logto")
    inputs = f'[[inputs]]\ntype = "postgres"\ndsn_file = "{tmp_path}/dsn"\n'
    cfg = config(tmp_path, '[output]\ntype = "console"\n', inputs)
    r = run(exe, "--config", str(cfg), "run", "--once")
    assert r.returncode == 2, r.stderr
    assert "pip install 'logto-shipper[postgres]'" in r.stderr and "Traceback" not in r.stderr
    # a file input still works in that venv: nothing imports the driver it does not use
    cfg = config(tmp_path, '[output]\ntype = "console"\n')
    log_lines(tmp_path, 2)
    r = run(exe, "--config", str(cfg), "run", "--once")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2, r.stderr


def test_logto_cloud_and_webhook_inputs_as_installed(installed, tmp_path, es):
    """The installed script (no extras) with a logto-api input against the fake Management API
    and a webhook input receiving signed deliveries, under sd_notify; then `run --once`."""
    import requests

    from shipper.sources.webhook import SIGNATURE_HEADER, signature
    from tests.fake_logto import FakeLogto, log_row

    fake = FakeLogto(app_secret="m2m-Secret-xq81").start()
    now = int(time.time() * 1000)
    fake.add_logs([log_row(i, now - 60_000 + i) for i in range(25)])
    (tmp_path / "m2m").write_text(fake.app_secret)
    (tmp_path / "key").write_text("whsec-Accept-77")
    for f in ("m2m", "key"):
        (tmp_path / f).chmod(0o600)
    exe, port, metrics = installed["plain"], free_port(), f"127.0.0.1:{free_port()}"
    inputs = (
        f'[[inputs]]\ntype = "logto-api"\nendpoint = "{fake.url}"\napp_id = "m2m-id"\n'
        f'app_secret_file = "{tmp_path}/m2m"\nsince = "1h"\nsafety_lag = "1s"\n\n'
        f'[[inputs]]\ntype = "webhook"\nlisten = "127.0.0.1:{port}"\nsigning_key_file = "{tmp_path}/key"\n'
    )
    cfg = config(tmp_path, es_output(es), inputs, extra=f'[metrics]\nlisten = "{metrics}"\n')
    sent: list[int] = []

    def done() -> bool:
        while len(sent) < 5:
            body = json.dumps(
                {"event": "User.Deleted", "createdAt": "2026-12-01T10:00:00.000Z", "n": len(sent)}
            )
            try:
                r = requests.post(
                    f"http://127.0.0.1:{port}/logto",
                    data=body,
                    headers={SIGNATURE_HEADER: signature(b"whsec-Accept-77", body.encode())},
                    timeout=5,
                )
            except requests.ConnectionError:
                return False  # not listening yet
            assert r.status_code == 200, r.text
            sent.append(r.status_code)
        return docs_in(es) == 30

    try:
        _daemon_under_notify(exe, cfg, tmp_path, metrics, done)
        assert docs_in(es) == 30
        status = run(exe, "--config", str(cfg), "status")
        assert status.returncode == 0 and "api0" in status.stdout and "webhook1" in status.stdout, (
            status.stdout
        )
        log = (tmp_path / "daemon.log").read_text()
        assert "listening on http://127.0.0.1" in log
        for secret in ("m2m-Secret-xq81", "whsec-Accept-77"):
            assert secret not in log + status.stdout + status.stderr
        # run --once: the background fetch is waited for, then it ends (0: all delivered)
        once = tmp_path / "once"
        once.mkdir()
        cfg2 = config(once, f'[output]\ntype = "file"\npath = "{once}/out.ndjson"\n', inputs)
        r = run(exe, "--config", str(cfg2), "run", "--once", timeout=60)
        assert r.returncode == 0, r.stderr
        assert len((once / "out.ndjson").read_text().splitlines()) == 25
    finally:
        fake.stop()


def test_detections_as_installed(installed, tmp_path, es):
    """The installed script (no extras): an attack shipped by `run --once` into Elasticsearch is
    one alert in `logto-audit-alerts-default` and one signed notification whose URL (a secret)
    is never printed; `alerts` lists it, `detect` finds it in the history, and the same attack
    shipped again from scratch tells nobody twice."""
    import hashlib
    import hmac

    from tests.integration.test_detect_es import Receiver, attack_rows

    hook = Receiver()
    try:
        (tmp_path / "logs").mkdir()
        attack_rows(tmp_path / "logs" / "a.jsonl", 14)
        (tmp_path / "hook-url").write_text(hook.url + "\n")
        (tmp_path / "hook-secret").write_text("sig-Secret-4411\n")
        for f in ("hook-url", "hook-secret"):
            (tmp_path / f).chmod(0o600)
        extra = (
            f'[[detect.notify]]\ntype = "webhook"\nurl_file = "{tmp_path}/hook-url"\n'
            f'secret_file = "{tmp_path}/hook-secret"\n'
        )
        cfg = config(tmp_path, es_output(es), extra=extra)
        r = run(exe := installed["plain"], "--config", str(cfg), "run", "--once")
        assert r.returncode == 0, r.stderr
        assert "alert brute_force_user: user.id victim1" in r.stderr
        assert "T0KEN" not in r.stdout + r.stderr  # the hook URL's token
        deadline = time.monotonic() + 10
        while not hook.got and time.monotonic() < deadline:
            time.sleep(0.1)
        ((headers, body),) = hook.got
        want = hmac.new(b"sig-Secret-4411", body, hashlib.sha256).hexdigest()
        assert headers["x-logto-shipper-signature-sha-256"] == want
        since = "2025-08-01T00:00:00Z"
        refresh(es)  # searchable at the next refresh (5 s): not waited for here
        r = run(exe, "--config", str(cfg), "alerts", "--since", since, "--format", "json")
        assert r.returncode == 0, r.stderr
        (alert,) = json.loads(r.stdout)
        assert alert["rule"]["name"] == "brute_force_user" and alert["logto_shipper"]["alert"]["count"] == 14
        r = run(exe, "--config", str(cfg), "detect", "--since", since, "--format", "ndjson")
        assert r.returncode == 0 and json.loads(r.stdout)["event"]["id"] == alert["event"]["id"], r.stderr
        # shipped again from scratch: the alert is a replay (409 in the index), nobody told twice
        import shutil

        shutil.rmtree(tmp_path / "state")
        r = run(exe, "--config", str(cfg), "run", "--once")
        assert r.returncode == 0, r.stderr
        time.sleep(1.0)
        assert len(hook.got) == 1
        no_secret(r.stdout, r.stderr)
    finally:
        hook.close()


# -- the compiled build answers like pure Python ---------------------------------------------------

CHECK = """
import json, sys
import shipper.normalize.loop as loop, shipper.normalize.document as doc
assert loop.__file__.endswith(".so") and doc.__file__.endswith(".so"), (loop.__file__, doc.__file__)
from shipper.normalize import COMPILED, NATIVE, describe
assert COMPILED and NATIVE, describe()  # what --version and the daemon's first log line report
import shipper.normalize._ecs
from shipper.sinks.elasticsearch.indexing import IndexNamer
from shipper.normalize import Normalizer
from shipper.sinks.elasticsearch.framing import BulkFramer
lines = [bytes.fromhex(x) for x in json.load(sys.stdin)]
n = Normalizer()
assert n.native is not None
framer = BulkFramer(IndexNamer("a", "b"))
data, crc, size, docs, rejects, left, _ = loop.encode(lines, n.line, framer, skip_blank=True, native=n.native)
assert left == len(rejects) + sum(b'"payload":"' in x for x in lines), left  # + JSON-string payloads
print(json.dumps([data.hex(), crc, size, [list(d) for d in docs], [list(r) for r in rejects]]))
"""


def test_compiled_normalizer_gives_the_same_bytes(installed, tmp_path):
    """The installed wheel (no extras) has the native path and the mypyc-compiled normalizer,
    and answers like pure Python (this checkout): the same framed bytes for generated records
    and broken lines, and the daemon (file -> normalizer workers -> console) prints the same."""
    import sys

    from bench.generate import lines as generated_lines
    from shipper.normalize import Normalizer
    from shipper.normalize.loop import encode
    from shipper.sinks.elasticsearch.framing import BulkFramer
    from shipper.sinks.elasticsearch.indexing import IndexNamer

    exe = installed["plain"]
    lines = [ln.rstrip(b"\n") for ln in generated_lines(400, seed=3)]
    lines += [b"", b"{oops", b"\xff", b'{"id":"x","key":"K","createdAt":"\xc2\xb2"}', b"[]"]
    out = subprocess.run(
        [str(exe.parent / "python"), "-P", "-c", CHECK],
        input=json.dumps([x.hex() for x in lines]),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    data, crc, size, docs, rejects, left, _ = encode(
        lines, Normalizer(native=None).line, BulkFramer(IndexNamer("a", "b")), skip_blank=True
    )
    want = [data.hex(), crc, size, [list(d) for d in docs], [list(r) for r in rejects]]
    assert json.loads(out) == want and left == 0

    (tmp_path / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    runs = []
    for name, cmd in (("compiled", [str(exe)]), ("pure", [sys.executable, "-P", "-m", "cli"])):
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(
            f'[state]\ndir = "{tmp_path / ("state-" + name)}"\n[[inputs]]\ntype = "file"\n'
            f'paths = ["{tmp_path / "in.jsonl"}"]\n[output]\ntype = "console"\n[pipeline]\nworkers = 2\n'
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)} if name == "pure" else None
        r = subprocess.run(
            [*cmd, "--config", str(cfg), "run", "--once"],
            capture_output=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert r.returncode == 1, r.stderr  # the deliberately bad lines: rejected, dead-lettered
        runs.append(r.stdout)
        version = subprocess.run(
            [*cmd, "--version"], capture_output=True, text=True, env=env, cwd=tmp_path, check=True
        ).stdout
        assert ("native JSON path" in version) == (name == "compiled"), version
    assert runs[0] == runs[1] and runs[0].count(b"\n") == len(docs)
