"""The ``webhook`` input: real signatures, refusals, the spool, exactly once, kill -9 after 200."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import orjson
import pytest
import requests

from shipper.metrics import METRICS
from shipper.sources.webhook import SIGNATURE_HEADER, delivery_id, signature
from tests.integration.daemon import Daemon, write_config
from tests.integration.harness import Pipeline, assert_exactly_once

KEY = "whsec-test-signing-key-do-not-log"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def delivery(i: int, event: str = "PostSignIn", **extra: Any) -> bytes:
    """A body as Logto's ``triggerInteractionHooks`` sends it (JSON.stringify: one line)."""
    body = {
        "event": event,
        "interactionEvent": "SignIn",
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "sessionId": f"sess{i}",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
        "userId": f"u{i}",
        "userIp": "::ffff:198.51.100.7",
        "user": {"id": f"u{i}", "username": f"user{i}", "primaryEmail": f"user{i}@example.com", "name": None},
        "application": {"id": "app-web", "type": "SPA", "name": "Web", "description": None},
        "hookId": "hook1",
        "n": i,
        **({"data": {"id": f"target{i}", "username": f"victim{i}"}} if event.startswith("User.") else {}),
        **extra,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def post(url: str, body: bytes, key: str | None = KEY, **headers: str) -> requests.Response:
    h = {"Content-Type": "application/json", "user-agent": "Logto (https://logto.io/)", **headers}
    if key is not None:
        h[SIGNATURE_HEADER] = signature(key.encode(), body)
    return requests.post(url, data=body, headers=h, timeout=10)


def webhook_input(tmp_path, port: int, **kw: Any) -> dict[str, Any]:
    (tmp_path / "signing-key").write_text(KEY + "\n")
    (tmp_path / "signing-key").chmod(0o600)
    return {
        "type": "webhook",
        "listen": f"127.0.0.1:{port}",
        "signing_key_file": str(tmp_path / "signing-key"),
        **kw,
    }


@pytest.fixture
def hooked(tmp_path):
    port = free_port()
    p = Pipeline(tmp_path, inputs=[webhook_input(tmp_path, port, max_body_bytes=4096)]).start()
    url = f"http://127.0.0.1:{port}/logto"
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            p.runner.step()  # type: ignore[union-attr]
            time.sleep(0.01)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    yield p, url
    stop.set()
    t.join()
    if p.runner is not None:
        p.stop()


def wait(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_signed_delivery_is_stored_then_shipped_as_ecs(hooked):
    p, url = hooked
    body = delivery(1)
    r = post(url, body)
    assert r.status_code == 200 and r.json()["ok"] is True
    wait(lambda: len(p.ids()) == 1)
    (doc,) = [orjson.loads(x) for x in p.out.read_bytes().splitlines()]
    assert doc["event"]["id"] == delivery_id(body)
    assert doc["event"]["action"] == "PostSignIn"
    assert doc["event"]["category"] == ["authentication", "session"] and doc["event"]["type"] == ["start"]
    assert doc["event"]["outcome"] == "success" and doc["event"]["dataset"] == "logto.webhook"
    assert doc["user"] == {"id": "u1", "name": "user1"}  # the name from the delivery itself
    assert doc["related"]["user"] == ["u1", "user1"]
    assert doc["source"]["ip"] == "198.51.100.7"
    assert doc["logto"]["application_name"] == "Web" and doc["logto"]["session_id"] == "sess1"
    assert doc["logto"]["family"] == "webhook" and doc["logto"]["payload"]["n"] == 1


def test_refusals_store_nothing_and_are_counted(hooked, tmp_path):
    p, url = hooked
    before = METRICS.snapshot()
    body = delivery(2)
    assert post(url, body, key=None).status_code == 401  # missing signature
    assert post(url, body, key="another-key").status_code == 401  # wrong signature
    tampered = body.replace(b'"u2"', b'"u3"', 1)
    r = requests.post(
        url, data=tampered, headers={SIGNATURE_HEADER: signature(KEY.encode(), body)}, timeout=5
    )
    assert r.status_code == 401  # a body changed after signing
    assert post(url.replace("/logto", "/other"), body).status_code == 404
    assert requests.get(url, timeout=5).status_code == 405
    assert post(url, delivery(3, pad="x" * 5000)).status_code == 413  # over max_body_bytes 4096
    assert post(url, b"not json {").status_code == 400
    assert post(url, b"[1, 2]").status_code == 400
    after = METRICS.snapshot()

    def d(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    assert d("webhook_rejected_signature_total") == 3
    assert d("webhook_rejected_too_large_total") == 1
    assert d("webhook_rejected_invalid_total") == 2
    assert d("webhook_deliveries_total") == 0
    time.sleep(0.3)
    assert p.ids() == []
    spool = tmp_path / "state" / "webhook" / "webhook0"
    assert sum(f.stat().st_size for f in spool.glob("*.jsonl")) == 0  # nothing stored
    dead = [
        orjson.loads(x)
        for x in (tmp_path / "state" / "dead-letter" / "webhook.jsonl").read_bytes().splitlines()
    ]
    assert [x["raw"] for x in dead] == ["not json {", "[1, 2]"]  # kept with their bytes


def test_disk_full_answers_503_and_leaves_no_partial_line(hooked, tmp_path, monkeypatch):
    import shipper.sources.spool as spool_mod

    p, url = hooked
    assert post(url, delivery(10)).status_code == 200
    real = spool_mod.write_all

    def full(fd: int, data: bytes) -> None:
        real(fd, data[:7])  # a part reached the disk, then ENOSPC
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool_mod, "write_all", full)
    assert post(url, delivery(11)).status_code == 503
    monkeypatch.setattr(spool_mod, "write_all", real)
    assert post(url, delivery(12)).status_code == 200
    wait(lambda: len(p.ids()) == 2)
    assert sorted(json.loads(x)["logto"]["payload"]["n"] for x in p.out.read_text().splitlines()) == [10, 12]
    assert p.dead_letters() == []  # the failed append was undone, no torn line follows


def test_every_delivery_acknowledged_survives_kill9_and_a_replay_is_indexed_once(tmp_path, es_target):
    es = es_target.client()
    port = free_port()
    inp = webhook_input(tmp_path, port)
    cfg = write_config(
        tmp_path / "shipper.toml",
        f"""
[state]
dir = "{tmp_path / "state"}"
checkpoint_interval = 0.2
[[inputs]]
type = "webhook"
listen = "{inp["listen"]}"
signing_key_file = "{inp["signing_key_file"]}"
[output]
type = "elasticsearch"
hosts = ["{es_target.url}"]
batch_max_wait = 0.2
[index]
prefix = "{es_target.prefix}"
replicas = 0
""",
    )
    url = f"http://127.0.0.1:{port}/logto"
    daemon = Daemon(cfg, tmp_path / "daemon.log")
    acked: list[bytes] = []
    for round_ in range(3):
        daemon.start().wait_started()
        for i in range(60):
            body = delivery(round_ * 1000 + i, "User.Deleted" if i % 3 == 0 else "PostSignIn")
            if post(url, body).status_code == 200:
                acked.append(body)
        daemon.kill9()  # right after the last 200: some are only in the spool
    assert len(acked) == 180
    daemon.start().wait_started()
    assert post(url, acked[0]).status_code == 200  # Logto (or a proxy) sent one again
    pattern = f"{es_target.prefix}-default-*"

    def count() -> int:
        es.indices.refresh(index=pattern, allow_no_indices=True)
        r = es.options(ignore_status=503).count(index=pattern, allow_no_indices=True)
        return r["count"] if r.meta.status == 200 else -1

    daemon.wait_for(lambda: count() >= 180, timeout=60)
    time.sleep(0.5)
    assert daemon.terminate() == 0
    assert count() == 180
    r = es.search(index=pattern, size=500, _source=["event.id"])
    assert_exactly_once([h["_id"] for h in r["hits"]["hits"]], [delivery_id(b) for b in acked])
    r = es.search(index=pattern, size=0, query={"term": {"event.action": "User.Deleted"}})
    assert r["hits"]["total"]["value"] == 60
    # The admin trail next to sign-ins: `search --user` finds whom a User.* event was about.
    from click.testing import CliRunner

    from cli.main import cli

    r = CliRunner().invoke(
        cli, ["--config", str(cfg), "search", "--user", "victim1003", "--since", "1h", "--format", "ndjson"]
    )
    assert r.exit_code == 0, r.output
    (hit,) = [json.loads(x) for x in r.stdout.splitlines()]
    assert hit["event"]["action"] == "User.Deleted" and hit["user"]["target"]["id"] == "target1003"
    text = (tmp_path / "daemon.log").read_text()
    assert KEY not in text
    assert "listening on http://127.0.0.1" in text


def test_tls_receiver_with_its_own_certificate(tmp_path):
    import shutil
    import subprocess

    assert shutil.which("openssl"), "openssl is part of every Debian install"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    inp = webhook_input(tmp_path, port, tls_cert_file=str(cert), tls_key_file=str(key))
    p = Pipeline(tmp_path, inputs=[inp]).start()
    try:
        url = f"https://127.0.0.1:{port}/logto"
        body = delivery(5)
        sig = {SIGNATURE_HEADER: signature(KEY.encode(), body)}
        assert requests.post(url, data=body, headers=sig, verify=str(cert), timeout=10).status_code == 200
        with pytest.raises(
            requests.exceptions.SSLError
        ):  # a client verifying against the system CAs refuses a self-signed one
            requests.post(url, data=body, headers=sig, verify=True, timeout=10)
        p.pump(lambda: len(p.ids()) == 1, timeout=10)
    finally:
        p.stop()
