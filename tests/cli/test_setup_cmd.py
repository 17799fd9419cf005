"""setup / retention / test output against the test server (or SHIPPER_TEST_ES_URL)."""

from __future__ import annotations

from click.testing import CliRunner

from cli.main import cli


def config(tmp_path, target, extra=""):
    key = tmp_path / "api-key"
    key.write_text("a2lkOmtzZWNyZXQ=\n")  # base64("kid:ksecret")
    p = tmp_path / "shipper.toml"
    p.write_text(f"""
[state]
dir = "{tmp_path / "state"}"
[[inputs]]
type = "file"
paths = ["{tmp_path}/*.jsonl"]
[output]
type = "elasticsearch"
hosts = ["{target.url}"]
{extra}
[index]
prefix = "{target.prefix}"
replicas = 0
""")
    return p


def run(cfg, *args):
    return CliRunner().invoke(cli, ["--config", str(cfg), *args])


def test_setup_dry_run_then_apply_then_noop(tmp_path, es_target):
    cfg = config(tmp_path, es_target)
    n = 6 if es_target.ilm else 5  # without ILM the policy is one "unavailable" line
    r = run(cfg, "setup", "--dry-run")
    assert r.exit_code == 0, r.output
    assert r.stdout.count("create") == n and '"phases"' not in r.stdout  # one line each
    assert f"dry run: {n} would change, nothing was changed (--verbose shows the bodies)" in r.stderr
    r = run(cfg, "setup", "--dry-run", "--verbose")
    assert r.exit_code == 0 and ('"phases"' in r.stdout) == es_target.ilm
    assert es_target.ilm or ("unavailable ilm_policy" in r.stdout and "ILM not available" in r.stdout)
    es = es_target.client()
    assert not es.indices.exists_index_template(name=f"{es_target.prefix}-default")
    r = run(cfg, "setup")
    assert r.exit_code == 0 and f"{n} changed" in r.stderr
    r = run(cfg, "setup")
    assert r.exit_code == 0 and f"0 changed, {n} already up to date" in r.stderr
    assert r.stdout.count("unchanged") == n


def test_retention_show_and_set(tmp_path, es_target):
    es_target.need_ilm()
    cfg = config(tmp_path, es_target)
    assert run(cfg, "retention", "show").exit_code == 1  # no policy yet
    run(cfg, "setup")
    r = run(cfg, "retention", "show")
    assert r.exit_code == 0 and "deleted 90d after their day" in r.stdout
    r = run(cfg, "retention", "set", "30d")
    assert r.exit_code == 0 and "set [index] retention" in r.stderr
    assert "deleted 30d" in run(cfg, "retention", "show").stdout
    assert run(cfg, "retention", "set", "thirty").exit_code == 2
    # setup knows the retention it was told to set, and says what it puts back
    r = run(cfg, "setup", "--dry-run")
    assert "retention 30d set by 'logto-shipper retention set' on" in r.stdout, r.output
    assert "the config's 90d replaces it" in r.stdout and "changed by hand" not in r.stdout
    assert 'phases.delete.min_age: "30d" -> "90d"' in r.stdout
    # under a day: asked first; no answer (stdin closed) changes nothing
    r = CliRunner().invoke(cli, ["--config", str(cfg), "retention", "set", "12h"], input="")
    assert r.exit_code == 1 and "Set it [y/N]" in r.output and "Aborted" in r.output
    assert "deleted 30d" in run(cfg, "retention", "show").stdout
    r = CliRunner().invoke(cli, ["--config", str(cfg), "retention", "set", "12h"], input="y\n")
    assert r.exit_code == 0 and "deleted 12h" in run(cfg, "retention", "show").stdout
    assert run(cfg, "retention", "set", "0d", "--yes").exit_code == 0
    # a policy edited by hand is still called that
    es = es_target.client()
    body = es.ilm.get_lifecycle(name=f"{es_target.prefix}-policy")[f"{es_target.prefix}-policy"]["policy"]
    body["phases"]["delete"]["min_age"] = "5d"
    es.ilm.put_lifecycle(name=f"{es_target.prefix}-policy", policy=body)
    assert "changed by hand?" in run(cfg, "setup", "--dry-run").stdout


def test_test_output_ok_and_auth_failure(tmp_path, es_target):
    srv = es_target.need_server()
    srv.api_keys = {"kid": "ksecret"}
    cfg = config(tmp_path, es_target, f'api_key_file = "{tmp_path / "api-key"}"')
    r = run(cfg, "test", "output")
    assert r.exit_code == 0, r.output
    assert "Elasticsearch 8.15.0" in r.stdout and "verdict: OK" in r.stdout
    (tmp_path / "api-key").write_text("a2lkOndyb25n\n")  # kid:wrong
    r = run(cfg, "test", "output")
    assert r.exit_code == 3 and "authentication failed" in r.stderr
    assert "a2lkOndyb25n" not in r.output and "wrong" not in r.output
    assert srv.requests[-1].headers["authorization"].startswith("ApiKey ")


def test_unreachable_cluster_exit_3(tmp_path):
    class Down:
        url, prefix = "http://127.0.0.1:9", "x"

    r = run(config(tmp_path, Down), "setup")
    assert r.exit_code == 3 and "cannot connect" in r.stderr and "Traceback" not in r.output


def test_setup_needs_elasticsearch_output(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[[inputs]]\ntype='file'\npaths=['x']\n[output]\ntype='console'\n")
    r = run(p, "setup")
    assert r.exit_code == 2 and "needs 'elasticsearch'" in r.stderr


def test_test_output_names_missing_privileges_on_a_real_node(tmp_path, es_target):
    """The read-only file-realm user tests/real_es creates (monitor; read, view_index_metadata)
    lacks what setup and shipping need: each is named MISSING, exit 3; the superuser passes."""
    import os
    from types import SimpleNamespace

    import pytest

    if es_target.server is not None:
        pytest.skip("the test server grants every privilege it is asked about (its README)")
    user, password = (
        os.environ.get("SHIPPER_TEST_ES_READER_USERNAME"),
        os.environ.get("SHIPPER_TEST_ES_READER_PASSWORD"),
    )
    if not user or not password:
        pytest.skip("no read-only user given (python -m tests.real_es prints SHIPPER_TEST_ES_READER_*)")
    (tmp_path / "pw").write_text(password + "\n")
    (tmp_path / "pw").chmod(0o600)
    reader = SimpleNamespace(url=es_target.base_url, prefix=es_target.prefix)
    r = run(
        config(tmp_path, reader, f'username = "{user}"\npassword_file = "{tmp_path / "pw"}"'),
        "test",
        "output",
    )
    assert r.exit_code == 3, r.output
    lines = {
        " ".join(line.split()[:3]): line.split()[-1] for line in r.stdout.splitlines() if "privilege" in line
    }
    assert lines["cluster privilege monitor"] == "yes" and lines["index privilege read"] == "yes"
    assert lines["cluster privilege manage_index_templates"] == "MISSING"
    assert lines["index privilege create_doc"] == "MISSING"
    assert "verdict: missing privileges" in r.stdout and password not in r.output
    r = run(config(tmp_path, es_target), "test", "output")
    assert r.exit_code == 0 and "verdict: OK" in r.stdout, r.output
