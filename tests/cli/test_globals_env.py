"""Every environment variable ``--help`` names works; global options work after the command;
the README states the naming rule the CLI follows."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


def _commands(group: click.Group, path: list[str]) -> list[tuple[list[str], click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        out.append(([*path, name], cmd))
        if isinstance(cmd, click.Group):
            out += _commands(cmd, [*path, name])
    return out


ALL = _commands(cli, [])


def _help(path: list[str]) -> str:
    return " ".join(CliRunner().invoke(cli, [*path, "--help"]).output.split())


def _expected_name(path: list[str], opt: click.Option) -> str:
    flag = next(o for o in opt.opts if o.startswith("--")).lstrip("-")
    return "_".join(["LOGTO_SHIPPER", *path, flag]).upper().replace("-", "_")


@pytest.mark.parametrize(("path", "cmd"), ALL, ids=[" ".join(p) for p, _ in ALL])
def test_each_env_var_in_help_follows_the_rule_and_is_read(path, cmd, monkeypatch):
    text = _help(path)
    named = set(re.findall(r"env var: (LOGTO_SHIPPER_[A-Z_]+)", text))
    options = [o for o in cmd.params if isinstance(o, click.Option) and not o.hidden]
    with_env = {o.envvar: o for o in options if o.envvar}
    assert named == set(with_env), (named, set(with_env))
    # every visible option of the command reads one (the global ones only on the group)
    globals_ = {"config_path", "log_level", "log_format", "color"}
    assert {o.name for o in options if not o.envvar} <= globals_ | {"help"}
    parent = cli.make_context("logto-shipper", [], resilient_parsing=True)
    ctx = click.Context(cmd, parent=parent, info_name=path[-1])
    for env, opt in with_env.items():
        assert env == _expected_name(path, opt)
        monkeypatch.setenv(env, "value-from-env")
        assert opt.resolve_envvar_value(ctx) == "value-from-env", env
        monkeypatch.delenv(env)


def test_env_values_reach_the_command(monkeypatch):
    """End to end through parsing: a flag, a number, a choice and a repeatable option."""
    monkeypatch.setenv("LOGTO_SHIPPER_RUN_ONCE", "1")
    monkeypatch.setenv("LOGTO_SHIPPER_RUN_TIMEOUT", "2.5")
    parent = cli.make_context("logto-shipper", [], resilient_parsing=True)
    ctx = cli.commands["run"].make_context("run", [], parent=parent)
    assert ctx.params["once"] is True and ctx.params["timeout"] == 2.5
    monkeypatch.setenv("LOGTO_SHIPPER_SEARCH_SINCE", "30d")
    monkeypatch.setenv("LOGTO_SHIPPER_SEARCH_RESULT", "failure")
    monkeypatch.setenv("LOGTO_SHIPPER_SEARCH_EVENT", "Interaction.SignIn.Submit")
    ctx = cli.commands["search"].make_context("search", [], parent=parent)
    assert ctx.params["result"] == "failure" and ctx.params["since"] == "now-30d"
    assert list(ctx.params["events"]) == ["Interaction.SignIn.Submit"]


def test_global_env_vars(monkeypatch, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n[[inputs]]\ntype = "file"\npaths = ["{tmp_path}/*.x"]\n')
    monkeypatch.setenv("LOGTO_SHIPPER_CONFIG", str(cfg))
    r = CliRunner().invoke(cli, ["config", "check"])
    assert r.exit_code == 0 and f"config OK: {cfg}" in r.output


def test_global_options_after_the_command(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path}"\n[[inputs]]\ntype = "file"\npaths = ["{tmp_path}/*.x"]\n')
    r = CliRunner().invoke(cli, ["--config", "/nonexistent", "config", "check", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["config", "check", "--config", "/nonexistent"])
    assert r.exit_code == 2 and "/nonexistent: cannot read config" in r.output


def test_readme_states_the_rule_and_names_real_variables():
    readme = (ROOT / "README.md").read_text()
    assert "LOGTO_SHIPPER_<COMMAND>_<OPTION>" in readme
    known = {o.envvar for _, c in ALL for o in c.params if isinstance(o, click.Option) and o.envvar}
    known |= {o.envvar for o in cli.params if isinstance(o, click.Option) and o.envvar}
    # Variables read elsewhere: the demo config's ${...} and the build switch.
    known |= {"LOGTO_SHIPPER_STATE", "LOGTO_SHIPPER_SAMPLE", "LOGTO_SHIPPER_PURE"}
    documented = set(re.findall(r"LOGTO_SHIPPER_[A-Z_]*[A-Z]", readme)) - {"LOGTO_SHIPPER_"}
    assert documented <= known, sorted(documented - known)
