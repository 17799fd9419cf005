"""Nothing real stops shipping: a full state filesystem, a broken registry, restarts with a
file output. The real daemon (``python -m cli``) in subprocesses, as systemd runs it."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipper.configfile import parse_config
from shipper.pipeline.checkpoint import CheckpointStore
from shipper.sources.file import FileSource
from tests.conftest import ROOT
from tests.integration.daemon import Daemon
from tests.integration.harness import output_ids, write_lines
from tests.pg import insert


def once(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "--config", str(cfg), "run", "--once", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def file_to_file(tmp: Path, state: Path, extra: str = "") -> Path:
    (tmp / "logs").mkdir(exist_ok=True)
    cfg = tmp / "c.toml"
    cfg.write_text(
        f'[state]\ndir = "{state}"\ncheckpoint_interval = 0.1\n[[inputs]]\ntype = "file"\n'
        f'paths = ["{tmp}/logs/*.jsonl"]\nscan_interval = 0.1\n'
        f'[output]\ntype = "file"\npath = "{tmp}/out.ndjson"\n[pipeline]\nworkers = 0\n{extra}'
    )
    return cfg


# -- a full state filesystem ---------------------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path):
    """A 512 KiB tmpfs (mounting needs root; without it, the injected-fault test below runs)."""
    mnt = tmp_path / "state"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root (test_full_disk_injected covers the same paths)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path) -> Path:
    filler = mnt / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_full_state_fs_pauses_then_resumes(tmp_path, tiny_fs):
    cfg = file_to_file(tmp_path, tiny_fs)
    write_lines(tmp_path / "logs" / "a.jsonl", range(300))
    with open(tmp_path / "logs" / "a.jsonl", "ab") as fh:  # rejects: they need the dead-letter file
        fh.write(b'{"broken": "record"}\n' + b'{"id": "big", "x": "' + b"y" * 200_000 + b'"}\n')
    write_lines(tmp_path / "logs" / "a.jsonl", range(300, 400))
    filler = _fill(tiny_fs)
    d = Daemon(cfg, tmp_path / "d.log").start()
    try:
        d.wait_for(lambda: len(output_ids(tmp_path / "out.ndjson")) == 400, timeout=30)
        time.sleep(1.0)
        assert d.proc is not None and d.proc.poll() is None  # still running on a full disk
        log = (tmp_path / "d.log").read_text()
        assert "No space left on device" in log and "Traceback" not in log, log[-3000:]
        assert log.count("cannot write dead letters") == 1  # once a minute, not per attempt
        filler.unlink()  # space returns
        d.wait_for(lambda: (tiny_fs / "registry.json").exists(), timeout=20)
        d.wait_for(lambda: (tiny_fs / "dead-letter" / "records.jsonl").exists(), timeout=20)
        assert d.terminate() == 0
    finally:
        if d.proc and d.proc.poll() is None:
            d.proc.kill()
    dead = [orjson.loads(x) for x in (tiny_fs / "dead-letter" / "records.jsonl").read_bytes().splitlines()]
    assert sorted(x["reason"] for x in dead) == ["missing_id", "missing_key"]
    assert any(x["length"] > 200_000 for x in dead)
    # Restart: nothing again, nothing lost.
    r = once(cfg)
    assert r.returncode == 0, r.stderr
    ids = output_ids(tmp_path / "out.ndjson")
    assert len(ids) == len(set(ids)) == 400


def test_full_disk_injected(tmp_path, monkeypatch):
    """The same, in-process, with ``os.write`` failing ENOSPC in the state writers."""
    import shipper.deadletter as dl_mod
    import shipper.pipeline.checkpoint as ck_mod
    from shipper.fsio import write_all
    from tests.integration.harness import Pipeline

    class FullDisk:
        full = True

    def state_write(fd, data):
        if FullDisk.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        write_all(fd, data)

    monkeypatch.setattr(dl_mod, "write_all", state_write)  # the state writers; the output works
    monkeypatch.setattr(ck_mod, "write_all", state_write)
    p = Pipeline(tmp_path, workers=0).start()
    write_lines(p.logs / "a.jsonl", range(50))
    with open(p.logs / "a.jsonl", "ab") as fh:
        fh.write(b"not json\n")
    write_lines(p.logs / "a.jsonl", range(50, 60))
    p.pump_until_count(60)
    assert p.runner is not None and p.runner.deadletter.pending == 1
    assert not (p.state / "registry.json").exists()  # held: dead letters are not durable yet
    FullDisk.full = False
    p.pump(until=lambda: (p.state / "registry.json").exists() and p.runner.deadletter.pending == 0)
    assert p.stop() == 0
    assert [d["reason"] for d in p.dead_letters()] == ["invalid_json"]
    assert len(p.ids()) == 60


# -- the registry is an input too ----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
registry_like = st.fixed_dictionaries(
    {"version": st.sampled_from([1, 1, 2, "1", None])},
    optional={
        "streams": st.dictionaries(
            st.sampled_from(["file0:1:2:x", "pg0:default", "x"]),
            st.fixed_dictionaries(
                {},
                optional={
                    k: json_values
                    for k in ("path", "dev", "ino", "fp", "fp_len", "offset", "seen", "position")
                },
            )
            | json_values,
            max_size=3,
        )
        | json_values,
        "outputs": st.dictionaries(st.just("sink"), json_values, max_size=1) | json_values,
    },
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(json_values, registry_like))
def test_any_registry_never_crashes_the_sources(tmp_path, data):
    state = tmp_path / uuid.uuid4().hex
    state.mkdir()
    (state / "registry.json").write_text(json.dumps(data))  # big ints and NaN too
    store = CheckpointStore(state)
    (tmp_path / "a.jsonl").write_bytes(b'{"id":"a"}\n')
    cfg = parse_config(
        {"inputs": [{"type": "file", "paths": [str(tmp_path / "*.jsonl")]}], "state": {"dir": str(state)}},
        "t",
    )
    src = FileSource(cfg.inputs[0], store, "file0", use_watchdog=False)  # type: ignore[arg-type]
    src.poll(100)
    src.lag()
    src.close()
    from shipper.sources.postgres import PostgresSource

    pg_cfg = parse_config({"inputs": [{"type": "postgres", "dsn": "postgresql://u@127.0.0.1:1/x"}]}, "t")
    PostgresSource(pg_cfg.inputs[0], store, "pg0").lag()  # type: ignore[arg-type]
    if store.corrupt:
        assert not (state / "registry.json").exists()
        assert list(state.glob("registry.json.corrupt-*"))


@pytest.mark.parametrize(
    "bad",
    [
        b"null",
        b"123",
        b'"x"',
        b"[1,2,3]",
        b'{"version":1,"streams":{"f":{"offset":"abc"}}}',
        b'{"version":1,"streams":{"f":{"offset":-100}}}',
        b"{trunc",
    ],
)
def test_bad_registry_moved_aside_and_file_output_not_duplicated(tmp_path, bad):
    cfg = file_to_file(tmp_path, tmp_path / "state")
    write_lines(tmp_path / "logs" / "a.jsonl", range(100))
    assert once(cfg).returncode == 0
    (tmp_path / "state" / "registry.json").write_bytes(bad)
    write_lines(tmp_path / "logs" / "a.jsonl", range(100, 110))
    r = once(cfg)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "is unusable" in r.stderr
    ids = output_ids(tmp_path / "out.ndjson")
    assert len(ids) == len(set(ids)) == 110, Counter(ids).most_common(3)


# -- postgres with a file output: clean restarts ---------------------------------------------------


def test_postgres_to_file_restarts_ship_each_row_once(tmp_path, pg):
    _, dsn = pg
    insert(dsn, [("default", f"r{i:03d}", "K", "{}", f"2026-01-01T00:00:{i:02d}Z") for i in range(50)])
    (tmp_path / "dsn").write_text(dsn)
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[state]\ndir = "{tmp_path}/state"\n[[inputs]]\ntype = "postgres"\ndsn_file = "{tmp_path}/dsn"\n'
        f'overlap = "1h"\n[output]\ntype = "file"\npath = "{tmp_path}/out.ndjson"\n'
    )
    for _ in range(4):
        r = once(cfg)
        assert r.returncode == 0, r.stderr
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("insert into logs values ('default', 'late', 'K', '{}', '2026-01-01T00:00:30Z')")
    assert once(cfg).returncode == 0
    ids = output_ids(tmp_path / "out.ndjson")
    assert len(ids) == len(set(ids)) == 51
