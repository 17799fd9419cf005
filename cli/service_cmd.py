"""``logto-shipper install-service``: the systemd unit, user and directories."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import click

from shipper.resources import data_dir


def render_unit(exec_path: str, user: str, log_dir: str | None, log_group: str) -> str:
    """The unit; without ``log_dir`` (no file input: Logto itself writes no log files) the
    log directory's read access and group are left out."""
    text = (data_dir("deploy") / "systemd" / "logto-shipper.service").read_text()
    if log_dir is None:
        text = "".join(
            ln for ln in text.splitlines(True) if "@LOG_DIR@" not in ln and "@LOG_GROUP@" not in ln
        )
    return (
        text.replace("@EXEC@", exec_path)
        .replace("@USER@", user)
        .replace("@LOG_DIR@", log_dir or "")
        .replace("@LOG_GROUP@", log_group)
    )


@click.command("install-service")
@click.option("--user", default="logto-shipper", show_default=True, help="System user to run as.")
@click.option(
    "--log-dir",
    default=None,
    help="Only for a file input: the directory of the JSON-lines files it reads (the service may read "
    "it, and joins its group). Logto itself writes no log files: its audit log is in PostgreSQL.",
)
@click.option(
    "--exec", "exec_path", default=None, help="Path of the logto-shipper executable [default: this one]."
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/"),
    show_default=True,
    help="Install under this root (packaging, tests); users are not created unless it is /.",
)
@click.option("--dry-run", is_flag=True, help="Print what would be done.")
def install_service(user: str, log_dir: str | None, exec_path: str | None, root: Path, dry_run: bool) -> None:
    """Install the systemd unit, create the service user and its directories."""
    exe = exec_path or shutil.which("logto-shipper") or str(Path(sys.argv[0]).resolve())
    try:
        log_group = grp.getgrgid(os.stat(log_dir).st_gid).gr_name if log_dir else user
    except (OSError, KeyError):
        log_group = user
    unit = render_unit(exe, user, log_dir, log_group)
    real = root == Path("/")
    steps: list[tuple[str, list[str]]] = []
    try:
        pwd.getpwnam(user)
        have_user = True
    except KeyError:
        have_user = False
    if real and not have_user:
        steps.append(
            (
                f"create system user {user}",
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
            )
        )
    unit_path = root / "etc/systemd/system/logto-shipper.service"
    conf_dir = root / "etc/logto-shipper"
    state_dir = root / "var/lib/logto-shipper"
    for label, _ in steps:
        click.echo(f"- {label}")
    click.echo(f"- write {unit_path}")
    click.echo(f"- create {conf_dir} (0750) with an example shipper.toml if none exists")
    click.echo(f"- create {state_dir} (0700)")
    if dry_run:
        click.echo(unit)
        return
    for _, cmd in steps:
        subprocess.run(cmd, check=True)
    unit_path.parent.mkdir(parents=True, exist_ok=True)
    unit_path.write_text(unit)
    conf_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    example = conf_dir / "shipper.toml"
    if not example.exists():
        example.write_text((data_dir("deploy") / "examples" / "shipper.toml").read_text())
        example.chmod(0o640)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if real:
        shutil.chown(conf_dir, "root", user)
        shutil.chown(example, "root", user)
        shutil.chown(state_dir, user, user)
    click.echo("done. Next:")
    click.echo(f"  edit {example} (and put the API key in /etc/logto-shipper/es-api-key, mode 0640)")
    click.echo(f"  sudo -u {user} logto-shipper --config {example} test output")
    click.echo("  systemctl daemon-reload && systemctl enable --now logto-shipper")
    click.echo("  journalctl -u logto-shipper -f        # logs;  systemctl reload logto-shipper  # SIGHUP")
