"""Basic auth from a password file, the environment's proxy, and slow answers (timeouts)."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from cli.main import cli


def config(tmp_path, url, extra):
    p = tmp_path / "s.toml"
    p.write_text(
        f"[[inputs]]\ntype='file'\npaths=['x']\n[output]\ntype='elasticsearch'\nhosts=['{url}']\n{extra}\n"
    )
    return p


def test_basic_auth_from_password_file(tmp_path, es_target):
    srv = es_target.need_server()
    srv.users = {"shipper": "pw-from-file"}
    (tmp_path / "pw").write_text("pw-from-file\n")
    cfg = config(tmp_path, es_target.url, f"username='shipper'\npassword_file='{tmp_path / 'pw'}'")
    r = CliRunner().invoke(cli, ["--config", str(cfg), "test", "output"])
    assert r.exit_code == 0, r.output
    assert srv.requests[-1].headers["authorization"].startswith("Basic ")
    assert "pw-from-file" not in r.output


@pytest.fixture
def proxy():
    """A minimal forwarding HTTP proxy that records what went through it."""
    seen: list[str] = []

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def forward(self):
            url = urlsplit(self.path)  # absolute-form request target: proof it came as a proxy request
            seen.append(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "host")}
            conn.request(
                self.command,
                url.path + (f"?{url.query}" if url.query else ""),
                body=body or None,
                headers=headers,
            )
            resp = conn.getresponse()
            data = resp.read()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = forward

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    srv.shutdown()
    srv.server_close()


def test_proxy_from_environment_is_honoured(tmp_path, es_target, proxy, monkeypatch):
    url, seen = proxy
    target = es_target.url
    monkeypatch.setenv("http_proxy", url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    r = CliRunner().invoke(cli, ["--config", str(config(tmp_path, target, "")), "test", "output"])
    assert r.exit_code == 0, r.output
    assert any(p.startswith(es_target.base_url) for p in seen)  # the request went through the proxy
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    seen.clear()
    r = CliRunner().invoke(cli, ["--config", str(config(tmp_path, target, "")), "test", "output"])
    assert r.exit_code == 0 and not seen  # no_proxy bypasses it


def test_slow_cluster_times_out_with_one_line(tmp_path, es_target):
    srv = es_target.need_server()
    srv.faults.delay = 2.0
    cfg = config(tmp_path, es_target.url, "request_timeout=0.5")
    r = CliRunner().invoke(cli, ["--config", str(cfg), "status"])
    assert r.exit_code == 3 and "timed out" in r.stderr and "Traceback" not in r.output
