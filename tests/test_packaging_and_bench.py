"""The wheel carries mappings/, ilm/ and deploy/; the benchmark harness runs on a small input."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from tests.conftest import ROOT


def test_wheel_contains_data_files(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(tmp_path.glob("logto_shipper-*.whl"))
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

    main(["--records", "2000", "--runs", "1", "--out", str(tmp_path)])
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

    main(["--records", "2000", "--runs", "1", "--out", str(tmp_path), "--only", "outage", "--outage-mb", "2"])
    report = capsys.readouterr().out
    m = re.search(r"([\d,]+) of ([\d,]+) records arrived", report)
    assert m and m.group(1) == m.group(2) and int(m.group(2).replace(",", "")) > 1000
    assert re.search(r"peak RSS (\d+) MB during the outage", report)
