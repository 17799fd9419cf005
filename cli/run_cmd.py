"""``logto-shipper run``: the daemon, or (``--once``) a batch job that always ends."""

from __future__ import annotations

import sys

import click

from cli.context import Context, pass_ctx


@click.command()
@click.option(
    "--once",
    is_flag=True,
    help="Ship what is there now, then exit: 0 all delivered, 1 some records refused "
    "(dead-lettered), 3 output or input unreachable within --timeout.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=60.0,
    help="With --once: seconds to wait for an unreachable output or input before exit 3.",
)
@pass_ctx
def run(ctx: Context, once: bool, timeout: float) -> None:
    """Run the shipper until SIGTERM/SIGINT (drain, checkpoint, exit 0). SIGHUP reloads the config."""
    from shipper.daemon import Daemon, tune_gc
    from shipper.wiring import build_runner, lock_state_dir

    cfg = ctx.config()
    if not once:
        sys.exit(Daemon(ctx.config_path, cfg).run())
    tune_gc()
    lock = lock_state_dir(cfg.state.dir)
    try:
        runner = build_runner(cfg, once=True)
        try:
            runner.sink.preflight(timeout)  # OutputError/OutputAuthError: one line, exit 3
        except BaseException:
            runner.request_stop()
            runner.drain_timeout = 0.0
            runner.shutdown()
            raise
        code = runner.run_once(timeout)
        if runner.progress is not None:
            click.echo(f"logto-shipper: {runner.progress.summary()}", err=True)
        if runner.failure:
            click.echo(f"logto-shipper: {runner.failure}", err=True)
    finally:
        lock.close()
    sys.exit(code)
