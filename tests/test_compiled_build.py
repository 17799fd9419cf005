"""The wheel ``pip install .`` builds has the native path and the mypyc-compiled normalizer, and
answers like pure Python."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.generate import lines as generated_lines
from shipper.normalize import Normalizer
from shipper.normalize.loop import encode
from shipper.sinks.elasticsearch.framing import BulkFramer
from shipper.sinks.elasticsearch.indexing import IndexNamer

ROOT = Path(__file__).resolve().parent.parent
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


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler here")
def test_compiled_normalizer_gives_the_same_bytes(tmp_path):
    from bench.compiled import wheel

    whl = wheel(tmp_path / "wheels")
    assert "-cp3" in whl.name and not whl.name.endswith("-none-any.whl"), whl.name  # a compiled wheel
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(whl)],
        check=True,
    )
    lines = [ln.rstrip(b"\n") for ln in generated_lines(400, seed=3)]
    lines += [b"", b"{oops", b"\xff", b'{"id":"x","key":"K","createdAt":"\xc2\xb2"}', b"[]"]
    out = subprocess.run(
        [sys.executable, "-P", "-c", CHECK],
        input=json.dumps([x.hex() for x in lines]),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(target)},
        cwd=tmp_path,
        check=True,
    ).stdout
    data, crc, size, docs, rejects, left, _ = encode(
        lines, Normalizer().line, BulkFramer(IndexNamer("a", "b")), skip_blank=True
    )
    want = [data.hex(), crc, size, [list(d) for d in docs], [list(r) for r in rejects]]
    assert json.loads(out) == want and left == 0  # (no native path in the checkout)

    # The daemon end to end (file -> normalizer workers -> console): same lines as pure Python.
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    cfg = tmp_path / "shipper.toml"
    cfg.write_text(
        f'[state]\ndir = "{tmp_path / "state-%s"}"\n[[inputs]]\ntype = "file"\n'
        f'paths = ["{tmp_path / "in.jsonl"}"]\n[output]\ntype = "console"\n[pipeline]\nworkers = 2\n'
    )
    runs = []
    for name, pythonpath in (("compiled", str(target)), ("pure", str(ROOT))):
        cfg.write_text(cfg.read_text().replace("state-%s", f"state-{name}"))
        r = subprocess.run(
            [sys.executable, "-P", "-m", "cli", "--config", str(cfg), "run", "--once"],
            capture_output=True,
            env={**os.environ, "PYTHONPATH": pythonpath},
            cwd=tmp_path,
            timeout=120,
        )
        assert r.returncode == 1, r.stderr  # the deliberately bad lines: rejected, dead-lettered
        runs.append(r.stdout)
        version = subprocess.run(
            [sys.executable, "-P", "-m", "cli", "--version"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": pythonpath},
            cwd=tmp_path,
            check=True,
        ).stdout
        assert ("native JSON path" in version) == (name == "compiled"), version
        cfg.write_text(cfg.read_text().replace(f"state-{name}", "state-%s"))
    assert runs[0] == runs[1] and runs[0].count(b"\n") == len(docs)
