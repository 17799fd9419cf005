from __future__ import annotations

from pathlib import Path

import pytest

from shipper.configfile import load_config, parse_config, redacted
from shipper.errors import ConfigError
from shipper.timespec import parse_duration

MIN = {"inputs": [{"type": "file", "paths": ["/var/log/logto/*.jsonl"]}]}


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "shipper.toml"
    p.write_text(text)
    return p


def test_documented_example_loads(tmp_path):
    key = tmp_path / "key"
    key.write_text("c2VjcmV0OmtleQ==\n")
    cfg = load_config(
        write(
            tmp_path,
            f'''
[state]
dir = "/var/lib/logto-shipper"
[[inputs]]
type = "file"
paths = ["/var/log/logto/*.jsonl"]
[output]
type = "elasticsearch"
hosts = ["http://localhost:9200"]
api_key_file = "{key}"
[index]
prefix = "logto-audit"
namespace = "default"
retention = "90d"
''',
        )
    )
    assert cfg.output.type == "elasticsearch"
    assert cfg.output.api_key.get_secret_value() == "c2VjcmV0OmtleQ=="
    assert cfg.index.retention == "90d"
    assert cfg.output.verify_certs is True  # TLS verification on by default


def test_env_substitution_and_defaults():
    cfg = parse_config(
        {
            "state": {"dir": "${STATE:-/tmp/s}"},
            "inputs": [{"type": "file", "paths": ["${LOGDIR}/*.jsonl", "$${literal}"]}],
        },
        "t.toml",
        env={"LOGDIR": "/data"},
    )
    assert str(cfg.state.dir) == "/tmp/s"
    assert cfg.inputs[0].paths == ["/data/*.jsonl", "${literal}"]


def test_missing_env_var_names_key():
    with pytest.raises(ConfigError, match=r"t.toml: output.api_key: environment variable ES_KEY is not set"):
        parse_config({**MIN, "output": {"type": "elasticsearch", "api_key": "${ES_KEY}"}}, "t.toml", env={})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"inputs": [{"type": "file"}]}, r"inputs\[0\].paths: Field required"),
        ({"inputs": []}, r"inputs: List should have at least 1 item"),
        ({"inputs": [{"type": "ftp", "paths": ["x"]}]}, r"inputs\[0\]: Input tag 'ftp'"),
        (
            {**MIN, "output": {"type": "elasticsearch", "api_keyfile": "x"}},
            r"output.api_keyfile: unknown key \(did you mean 'api_key_file'\?\)",
        ),
        (
            {**MIN, "output": {"type": "elasticsearch", "host": "http://es:9200"}},
            r"output.host: unknown key \(did you mean 'hosts'\?\)",
        ),
        (
            {"inputs": [{"type": "webhook", "signing_key": "k", "listen_on": "x"}]},
            r"inputs\[0\].listen_on: unknown key \(did you mean 'listen'\?\)",
        ),
        ({**MIN, "index": {"zzz": 1}}, r"index.zzz: unknown key$"),
        ({**MIN, "index": {"retention": "ninety days"}}, r"index.retention: .*invalid duration"),
        ({**MIN, "index": {"prefix": "Logto Audit"}}, r"index.prefix: String should match"),
        (
            {**MIN, "output": {"type": "elasticsearch", "api_key": "k", "username": "u"}},
            r"either api_key",
        ),
    ],
)
def test_precise_errors(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data, "t.toml", env={})


def test_invalid_toml_names_file_and_line(tmp_path):
    with pytest.raises(ConfigError, match=r"shipper.toml: invalid TOML: .*line 2"):
        load_config(write(tmp_path, "[state]\ndir = \n"))


def test_unreadable_secret_file(tmp_path):
    with pytest.raises(ConfigError, match=r"output.password_file: cannot read"):
        parse_config(
            {
                **MIN,
                "output": {
                    "type": "elasticsearch",
                    "username": "u",
                    "password_file": str(tmp_path / "nope"),
                },
            },
            "t",
            env={},
        )


def test_secret_inline_and_file_conflict(tmp_path):
    f = tmp_path / "k"
    f.write_text("x")
    with pytest.raises(ConfigError, match="set either api_key or api_key_file"):
        parse_config(
            {**MIN, "output": {"type": "elasticsearch", "api_key": "a", "api_key_file": str(f)}},
            "t",
            env={},
        )


def test_redacted_hides_secrets():
    cfg = parse_config(
        {**MIN, "output": {"type": "elasticsearch", "username": "u", "password": "hunter2"}},
        "t",
        env={},
    )
    assert "hunter2" not in repr(redacted(cfg))
    assert "hunter2" not in repr(cfg)
    assert redacted(cfg)["output"]["password"] == "**********"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 7776000), ("24h", 86400), ("15m", 900), ("30s", 30), ("500ms", 0.5)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_mask_rules_from_config_extend_defaults():
    cfg = parse_config({**MIN, "mask": {"extra_contain": ["ssn"]}}, "t", env={})
    rules = cfg.mask.rules()
    assert rules.is_secret("user_ssn") and rules.is_secret("password")
