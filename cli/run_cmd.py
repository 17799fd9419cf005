"""``logto-shipper run``: the daemon."""

from __future__ import annotations

import signal
import sys
import types

import click

from cli.main import Context, pass_ctx
from shipper.app import build_runner, lock_state_dir


@click.command()
@click.option("--once", is_flag=True, help="Ship what is there now, then exit (backfill/demo).")
@pass_ctx
def run(ctx: Context, once: bool) -> None:
    """Run the shipper until SIGTERM/SIGINT: drain, checkpoint, exit 0."""
    cfg = ctx.config()
    lock = lock_state_dir(cfg.state.dir)
    runner = build_runner(cfg)

    def on_signal(signum: int, frame: types.FrameType | None) -> None:
        runner.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = runner.run_once() if once else runner.run()
    lock.close()
    sys.exit(code)
