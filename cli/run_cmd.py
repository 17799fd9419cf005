"""``logto-shipper run``: the daemon."""

from __future__ import annotations

import sys

import click

from cli.main import Context, pass_ctx


@click.command()
@click.option("--once", is_flag=True, help="Ship what is there now, then exit (backfill/demo).")
@pass_ctx
def run(ctx: Context, once: bool) -> None:
    """Run the shipper until SIGTERM/SIGINT (drain, checkpoint, exit 0). SIGHUP reloads the config."""
    from shipper.app import build_runner, lock_state_dir
    from shipper.daemon import Daemon, tune_gc

    cfg = ctx.config()
    if once:
        tune_gc()
        lock = lock_state_dir(cfg.state.dir)
        code = build_runner(cfg).run_once()
        lock.close()
        sys.exit(code)
    sys.exit(Daemon(ctx.config_path, cfg).run())
