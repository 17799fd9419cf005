from __future__ import annotations

import json
import subprocess
import sys

import orjson
from click.testing import CliRunner

from cli.main import cli
from tests.conftest import ROOT

GOOD = orjson.dumps(
    {
        "tenantId": "default",
        "id": "a",
        "key": "RevokeToken",
        "createdAt": 1755763200000,
        "payload": {"result": "Success", "params": {"refresh_token": "rt-secret"}},
    }
)


def test_stdin_good_lines_exit_0():
    r = CliRunner().invoke(cli, ["normalize", "-"], input=GOOD + b"\n" + GOOD.replace(b'"a"', b'"b"') + b"\n")
    assert r.exit_code == 0, r.output
    docs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["event"]["id"] for d in docs] == ["a", "b"]
    assert "rt-secret" not in r.stdout


def test_bad_lines_reported_with_line_numbers_and_exit_1(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_bytes(GOOD + b"\n{bad\n\xff\xfe\n" + GOOD.replace(b'"a"', b'"c"'))  # last line unterminated
    r = CliRunner().invoke(cli, ["normalize", str(f)])
    assert r.exit_code == 1
    assert [json.loads(x)["event"]["id"] for x in r.stdout.splitlines()] == ["a", "c"]
    errs = [json.loads(x) for x in r.stderr.splitlines()]
    assert [(e["line"], e["reason"]) for e in errs] == [(2, "invalid_json"), (3, "invalid_utf8")]
    assert errs[0]["raw"] == "{bad"
    assert errs[1]["raw_base64"] == "//4="


def test_long_lines_rejected():
    r = CliRunner().invoke(cli, ["normalize", "--max-line-bytes", "50", "-"], input=GOOD + b"\n")
    assert r.exit_code == 1
    assert json.loads(r.stderr)["reason"] == "line_too_long"


def test_usage_error_exit_2():
    r = CliRunner().invoke(cli, ["normalize", "/does/not/exist"])
    assert r.exit_code == 2


def test_config_error_exit_2(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("[[inputs]]\ntype='file'\n")
    r = CliRunner().invoke(cli, ["--config", str(bad), "config", "check"])
    assert r.exit_code == 2
    assert "inputs[0].paths: Field required" in r.stderr


def test_config_check_redacts(tmp_path):
    c = tmp_path / "c.toml"
    c.write_text("[[inputs]]\ntype='file'\npaths=['x']\n[output]\ntype='elasticsearch'\napi_key='${K}'\n")
    r = CliRunner().invoke(cli, ["--config", str(c), "config", "check"], env={"K": "topsecret"})
    assert r.exit_code == 0, r.output
    assert "topsecret" not in r.output and "**********" in r.stdout


def test_help_everywhere():
    for args in (
        ["--help"],
        ["normalize", "--help"],
        ["config", "check", "--help"],
        ["run", "--help"],
    ):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0 and "Usage:" in r.output


def test_console_script_on_sample():
    r = subprocess.run(
        [sys.executable, "-m", "cli", "normalize", str(ROOT / "tests/data/sample.jsonl")],
        capture_output=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 200


def test_version_says_which_normalizer_runs():
    # The test suite runs the editable (pure-Python) install; the compiled wheel is checked in
    # tests/acceptance/test_installed.py (test_compiled_normalizer_gives_the_same_bytes).
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0
    assert r.output.strip().endswith("(normalizer: pure Python)"), r.output
