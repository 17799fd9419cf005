"""``logto-shipper normalize``: records in, the exact documents we would index out."""

from __future__ import annotations

import sys
from typing import BinaryIO

import click
import orjson

from cli.context import EXIT_PROBLEMS, Context, pass_ctx
from shipper.deadletter import entry
from shipper.normalize import Normalizer, Rejection
from shipper.normalize.loop import dumps_or_reject
from shipper.records import is_blank, too_long
from shipper.sources.lines import LineSplitter

CHUNK = 1 << 16


def _run(stream: BinaryIO, name: str, normalizer: Normalizer, out: BinaryIO, err: BinaryIO) -> int:
    """Normalize one stream; returns the number of rejected lines."""
    splitter = LineSplitter(normalizer.max_line_bytes)
    rejected = 0
    lineno = 0

    def handle(frames: list) -> None:  # type: ignore[type-arg]
        nonlocal rejected, lineno
        docs = []
        for f in frames:
            lineno += 1
            if is_blank(f.raw) and not f.too_long:
                continue
            result = (
                Rejection(*too_long(f.length, normalizer.max_line_bytes), f.raw)
                if f.too_long
                else normalizer.line(f.raw)
            )
            data = result if isinstance(result, Rejection) else dumps_or_reject(result.body)
            if isinstance(data, bytes):
                docs.append(data)
                continue
            reason, detail = (data.reason, data.detail) if isinstance(data, Rejection) else data
            rejected += 1
            e = entry(name, f.start, reason, detail, f.raw, f.length)
            err.write(orjson.dumps({"line": lineno, **e}) + b"\n")
        if docs:
            out.write(b"\n".join(docs) + b"\n")

    while chunk := stream.read(CHUNK):
        handle(splitter.feed(chunk))
    last = splitter.flush()
    if last is not None:
        handle([last])
    return rejected


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--max-line-bytes", type=click.IntRange(min=1), default=1 << 20, help="Reject longer lines.")
@pass_ctx
def normalize(ctx: Context, paths: tuple[str, ...], max_line_bytes: int) -> None:
    """Print the document each record (JSON line) would be indexed as.

    Reads PATHS or stdin ('-'). Rejected lines are reported on stderr as JSON with line
    number, reason and raw line; the exit status is then 1.
    """
    cfg = ctx.config_if_present()
    rules = cfg.mask.rules() if cfg else None
    normalizer = Normalizer(rules, max_line_bytes) if rules else Normalizer(max_line_bytes=max_line_bytes)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    rejected = 0
    for path in paths or ("-",):
        if path == "-":
            rejected += _run(sys.stdin.buffer, "<stdin>", normalizer, out, err)
        else:
            with open(path, "rb") as fh:
                rejected += _run(fh, path, normalizer, out, err)
    out.flush()
    if rejected:
        err.flush()
        sys.exit(EXIT_PROBLEMS)
