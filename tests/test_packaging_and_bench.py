"""The wheel carries mappings/, ilm/ and deploy/; the benchmark harness runs on a small input."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(
    "env",
    [{"LOGTO_SHIPPER_PURE": "1"}, {"CC": "false"}],  # asked for pure Python; compiling fails (no cc)
    ids=["pure-asked", "compile-fails"],
)
def test_wheel_contains_data_files_and_falls_back_to_pure_python(tmp_path, env):
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(tmp_path.glob("logto_shipper-*.whl"))
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    if "CC" in env:  # the build says why it is pure Python
        assert "compiling the normalizer failed" in r.stdout + r.stderr
        assert "compiling the native normalizer path failed" in r.stdout + r.stderr
    names = set(zipfile.ZipFile(wheel).namelist())
    for need in (
        "shipper/_data/mappings/component-mappings.json",
        "shipper/_data/mappings/index-template.json",
        "shipper/_data/ilm/policy.json",
        "shipper/_data/deploy/kibana/logto-auth.ndjson",
        "shipper/_data/deploy/systemd/logto-shipper.service",
        "shipper/_data/sample.jsonl",
        "cli/main.py",
        "shipper/normalize/document.py",
    ):
        assert need in names, need
    assert not any(n.startswith("tests/") for n in names)
    assert not any(n.endswith(".so") for n in names)
    assert not list((ROOT / "shipper").rglob("*.so")), "a build left extension modules in the tree"


def test_resources_resolve_from_an_installed_layout(tmp_path, monkeypatch):
    import shipper.resources as res

    fake = tmp_path / "shipper"
    (fake / "_data" / "ilm").mkdir(parents=True)
    (fake / "_data" / "ilm" / "policy.json").write_text("{}")
    monkeypatch.setattr(res, "_PKG", fake)
    assert res.data_dir("ilm") == fake / "_data" / "ilm"


def test_normalize_bench_runs_small():
    from bench.normalize import main

    out = main(["--records", "3000", "--runs", "1"])
    assert out["baseline"] > 0 and out["normalize"] > 0


def test_bench_harness_runs_small(tmp_path, capsys):
    from bench.run import main

    main(["--records", "2000", "--runs", "1", "--out", str(tmp_path), "--pure-only"])
    report = capsys.readouterr().out
    for label in (
        "sink capacity",
        "raw limit",
        "python baseline: json",
        "python baseline: orjson",
        "logto-shipper run",
    ):
        assert label in report
    assert "exited" not in report and "timeout" not in report


def test_bench_outage_mode_runs_small(tmp_path, capsys):
    # The output answers 503 while a (here 2 MB) backlog is written; then every record arrives.
    import re

    from bench.run import main

    main(
        [
            "--records",
            "2000",
            "--runs",
            "1",
            "--out",
            str(tmp_path),
            "--only",
            "outage",
            "--outage-mb",
            "2",
            "--pure-only",
        ]
    )
    report = capsys.readouterr().out
    m = re.search(r"([\d,]+) of ([\d,]+) records arrived", report)
    assert m and m.group(1) == m.group(2) and int(m.group(2).replace(",", "")) > 1000
    assert re.search(r"peak RSS (\d+) MB during the outage", report)


def test_bench_peers_asked_for_but_missing_is_an_error(tmp_path, monkeypatch, capsys):
    """--peers without the peers harness stops with a message (it used to leave the peers'
    rows out of RESULTS.md without a word)."""
    import pytest

    import bench.run

    monkeypatch.setattr(bench.run, "PEERS", tmp_path / "no-peers")
    with pytest.raises(SystemExit) as exc:
        bench.run.main(["--records", "10", "--peers", "--out", str(tmp_path)])
    assert exc.value.code == 2 and "no peers harness" in capsys.readouterr().err
