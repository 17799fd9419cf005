"""A real Elasticsearch node for the tests, from Maven Central.

``python -m tests.real_es start [--version 8.19.21|9.5.4]`` fetches Elastic's
``org.elasticsearch.distribution.integ-test-zip:elasticsearch`` (a real Elasticsearch without a
bundled JDK and without ILM, data streams, ingest, mapper-extras or painless) with ``mvn``,
caches it outside the repository, and starts one node on 127.0.0.1 with security on: a
generated ``elastic`` password and an API key, a 512 MiB heap, run as the unprivileged user
``logto-es`` when started as root (Elasticsearch refuses root). It prints, on stdout::

    SHIPPER_TEST_ES_URL=http://127.0.0.1:PORT
    SHIPPER_TEST_ES_USERNAME=elastic
    SHIPPER_TEST_ES_PASSWORD=...
    SHIPPER_TEST_ES_API_KEY=...
    SHIPPER_TEST_ES_VERSION=8.19.21

``python -m tests.real_es stop [--version V]`` stops it (all nodes without ``--version``);
``env`` prints those lines again. The JDK is the oldest under /usr/lib/jvm (or
``$SHIPPER_REAL_ES_JAVA_HOME``) that the version supports: 17+ for 8.19, 21+ for 9.x.

The cache is ``$SHIPPER_REAL_ES_HOME``, else ``/var/cache/logto-shipper/real-es`` as root
(the unprivileged user must read it, and /root is private), else
``~/.cache/logto-shipper/real-es``.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
# Newest served on Maven Central on 2026-12-02 (9.5.5/9.5.6: "Could not find artifact").
DEFAULT_VERSIONS = {"8": "8.19.21", "9": "9.5.4"}
MIN_JAVA = {"8": 17, "9": 21}
ES_USER = "logto-es"
HEAP = "512m"
READER = "shipper_reader"
READER_ROLE = """
logto_reader:
  cluster: [monitor]
  indices:
    - names: ["*"]
      privileges: [read, view_index_metadata]
"""


def home() -> Path:
    env = os.environ.get("SHIPPER_REAL_ES_HOME")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/logto-shipper/real-es")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "logto-shipper" / "real-es"


def resolve_version(spec: str) -> str:
    return DEFAULT_VERSIONS.get(spec, spec)


@dataclass
class Node:
    version: str
    url: str
    username: str
    password: str
    api_key: str
    pid: int
    java_home: str
    reader_password: str

    def env_lines(self) -> list[str]:
        return [
            f"SHIPPER_TEST_ES_URL={self.url}",
            f"SHIPPER_TEST_ES_USERNAME={self.username}",
            f"SHIPPER_TEST_ES_PASSWORD={self.password}",
            f"SHIPPER_TEST_ES_API_KEY={self.api_key}",
            f"SHIPPER_TEST_ES_VERSION={self.version}",
            f"SHIPPER_TEST_ES_READER_USERNAME={READER}",
            f"SHIPPER_TEST_ES_READER_PASSWORD={self.reader_password}",
        ]


def _say(msg: str) -> None:
    print(f"real_es: {msg}", file=sys.stderr, flush=True)


def _java_major(java_home: Path) -> int | None:
    try:
        text = (java_home / "release").read_text()
    except OSError:
        return None
    m = re.search(r'^JAVA_VERSION="(\d+)', text, re.M)
    return int(m.group(1)) if m else None


def find_java(version: str) -> Path:
    env = os.environ.get("SHIPPER_REAL_ES_JAVA_HOME")
    if env:
        return Path(env)
    need = MIN_JAVA[version.split(".")[0]]
    found = []
    for candidate in Path("/usr/lib/jvm").glob("*"):
        major = _java_major(candidate)
        if major is not None and major >= need and (candidate / "bin" / "java").exists():
            found.append((major, candidate.is_symlink(), str(candidate)))
    if not found:
        raise SystemExit(f"real_es: Elasticsearch {version} needs a JDK >= {need} under /usr/lib/jvm")
    return Path(sorted(found)[0][2])


def fetch(version: str) -> Path:
    """The unpacked distribution, downloaded with mvn once."""
    dist = home() / "dist" / f"elasticsearch-{version}"
    if (dist / "bin" / "elasticsearch").exists():
        return dist
    downloads = home() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archive = downloads / f"elasticsearch-{version}.zip"
    if not archive.exists():
        _say(f"fetching {ARTIFACT.format(version=version)} with mvn")
        cmd = ["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={ARTIFACT.format(version=version)}"]
        cmd.append(f"-DoutputDirectory={downloads}")
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not archive.exists():
            tail = [ln for ln in done.stdout.splitlines() if "ERROR" in ln][:1]
            raise SystemExit(f"real_es: {' '.join(cmd)} failed: {' '.join(tail) or done.returncode}")
    tmp = dist.with_name(dist.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = tmp / Path(info.filename).relative_to(f"elasticsearch-{version}")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(target, mode or 0o644)
    tmp.rename(dist)
    return dist


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _user() -> tuple[int, int] | None:
    """(uid, gid) to run as: None when not root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(ES_USER)
    except KeyError:
        cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ES_USER]
        subprocess.run(cmd, check=True)
        entry = pwd.getpwnam(ES_USER)
    return entry.pw_uid, entry.pw_gid


def _chown_tree(path: Path, ids: tuple[int, int] | None) -> None:
    if ids is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, *ids)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), *ids)


def _request(url: str, auth: str, method: str = "GET", body: Any = None, timeout: float = 5) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", auth)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def run_dir(version: str) -> Path:
    return home() / "run" / version


def _settings(run: Path, http_port: int, transport_port: int) -> str:
    return "\n".join(
        [
            "cluster.name: logto-shipper-tests",
            "node.name: node-1",
            "discovery.type: single-node",
            "network.host: 127.0.0.1",
            f"http.port: {http_port}",
            f"transport.port: {transport_port}",
            f"path.data: {run / 'data'}",
            f"path.logs: {run / 'logs'}",
            "xpack.security.enabled: true",
            "xpack.security.http.ssl.enabled: false",
            "xpack.security.authc.api_key.enabled: true",
            # CI disks are small and shared: never turn indices read-only for disk watermarks.
            "cluster.routing.allocation.disk.threshold_enabled: false",
            # The tests clean up their own prefix with a wildcard delete.
            "action.destructive_requires_name: false",
            "",
        ]
    )


def start(version: str, timeout: float = 180) -> Node:
    existing = read_node(version)
    if existing is not None and _alive(existing):
        return existing
    dist = fetch(version)
    java = find_java(version)
    run = run_dir(version)
    shutil.rmtree(run, ignore_errors=True)
    conf = run / "config"
    shutil.copytree(dist / "config", conf)
    (run / "data").mkdir()
    (run / "logs").mkdir()
    (run / "tmp").mkdir()
    http_port, transport_port = _free_port(), _free_port()
    (conf / "elasticsearch.yml").write_text(_settings(run, http_port, transport_port))
    (conf / "jvm.options.d").mkdir(exist_ok=True)
    (conf / "jvm.options.d" / "heap.options").write_text(f"-Xms{HEAP}\n-Xmx{HEAP}\n")
    ids = _user()
    os.chmod(home(), 0o755)
    for parent in (home() / "run", home() / "dist", run):
        os.chmod(parent, 0o755)
    _chown_tree(run, ids)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ES_JAVA_HOME": str(java),
        "ES_PATH_CONF": str(conf),
        "ES_TMPDIR": str(run / "tmp"),
        "HOME": str(run),
    }
    kw: dict[str, Any] = {"env": env, "cwd": str(run)}
    if ids is not None:
        kw.update(user=ids[0], group=ids[1], extra_groups=[])
    password = secrets.token_urlsafe(18)
    # A file-realm user with read-only rights, for the privilege checks (roles.yml, users).
    with open(conf / "roles.yml", "a") as roles:
        roles.write(READER_ROLE)
    reader_password = secrets.token_urlsafe(18)
    users = [str(dist / "bin" / "elasticsearch-users"), "useradd", READER]
    users += ["-p", reader_password, "-r", "logto_reader"]
    subprocess.run(users, check=True, capture_output=True, **kw)
    keystore = [str(dist / "bin" / "elasticsearch-keystore")]
    subprocess.run([*keystore, "create"], check=True, capture_output=True, **kw)
    subprocess.run(
        [*keystore, "add", "-x", "-f", "bootstrap.password"],
        input=password.encode(),
        check=True,
        capture_output=True,
        **kw,
    )
    pidfile = run / "es.pid"
    _say(f"starting Elasticsearch {version} on 127.0.0.1:{http_port} (JDK {java})")
    out = open(run / "logs" / "stdout.log", "wb")  # noqa: SIM115 - the node keeps it
    proc = subprocess.Popen(
        [str(dist / "bin" / "elasticsearch"), "-p", str(pidfile)],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        **kw,
    )
    url = f"http://127.0.0.1:{http_port}"
    auth = "Basic " + base64.b64encode(f"elastic:{password}".encode()).decode()
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            log = (run / "logs" / "stdout.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"real_es: Elasticsearch {version} exited {proc.returncode}:\n{log}")
        try:
            health = _request(f"{url}/_cluster/health?wait_for_status=yellow&timeout=5s", auth)
            if health.get("status") in ("green", "yellow"):
                break
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            proc.terminate()
            raise SystemExit(f"real_es: Elasticsearch {version} not ready after {timeout:.0f} s")
        time.sleep(1)
    api_key = ""
    try:
        key = _request(f"{url}/_security/api_key", auth, "POST", {"name": "logto-shipper-tests"})
        api_key = key["encoded"]
    except urllib.error.HTTPError as exc:
        # The integ-test zip lacks analysis-common, which the .security index's mapping needs
        # ("Unknown filter type [pattern_capture] for [email]"): no API keys, no native users.
        reason = json.loads(exc.read() or b"{}").get("error", {}).get("reason", exc.reason)
        _say(f"no API key on this distribution: {exc.code} {reason}")
    node = Node(version, url, "elastic", password, api_key, proc.pid, str(java), reader_password)
    state = run / "node.json"
    state.write_text(json.dumps(asdict(node)))
    os.chmod(state, 0o600)
    return node


def read_node(version: str) -> Node | None:
    try:
        return Node(**json.loads((run_dir(version) / "node.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _alive(node: Node) -> bool:
    try:
        os.kill(node.pid, 0)
    except OSError:
        return False
    return True


def stop(version: str, timeout: float = 60) -> bool:
    node = read_node(version)
    if node is None:
        return False
    if _alive(node):
        os.killpg(node.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(node) and time.monotonic() < deadline:
            time.sleep(0.5)
        if _alive(node):
            os.killpg(node.pid, signal.SIGKILL)
    shutil.rmtree(run_dir(version), ignore_errors=True)
    return True


def running_versions() -> list[str]:
    runs = home() / "run"
    return sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []
