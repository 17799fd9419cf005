"""A normalizer process: lines in, framed documents and rejections out (``NormalizerPool``).

Started as ``python -m shipper.normalize.worker READ_FD WRITE_FD``; imports only what
normalizing needs, so each worker costs ~20 MB. Requests are newline-terminated lines; each reply is
a pickled ``Encoded``: the documents framed for the output in one block, where each one is,
and the lines rejected. A reader thread takes requests off the pipe as they come,
so the parent can queue the next request while this one is being answered (no pipe deadlock).
"""

from __future__ import annotations

import contextlib
import gc
import pickle
import queue
import sys
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import orjson

from shipper.normalize.document import Document, Normalizer, Rejection
from shipper.sinks.base import DocRefs, Framer

Reject = tuple[int, str, str]  # (index of the input, reason, detail)
# (block or its deflate fragment, crc32 or None, block size, documents, rejects): a Segment's
# fields, and the rejected inputs.
Encoded = tuple[bytes, int | None, int, DocRefs, list[Reject]]


def encode(
    inputs: Sequence[Any],
    normalize: Callable[[Any], Document | Rejection],
    frame: Framer,
    enrich: Callable[[dict[str, Any]], None] | None = None,
    skip_blank: bool = False,
) -> Encoded:
    """Normalize, serialize and frame each input: the per-record loop, run by workers and by
    the main process alike, so both give the same answers."""
    parts: list[bytes] = []
    ids: list[str] = []
    times: list[int] = []
    sizes: list[int] = []
    rejects: list[Reject] = []
    dumps = orjson.dumps
    for i, x in enumerate(inputs):
        if skip_blank and (not x or x.isspace()):
            continue  # blank lines are no records (and no rejects either)
        try:
            r = normalize(x)
        except Exception as exc:  # a normalizer bug must cost one record, not the process
            rejects.append((i, "internal_error", f"normalizer failed: {type(exc).__name__}"))
            continue
        if type(r) is Document:
            if enrich is not None:
                enrich(r.body)
            b = frame(r.id, r.epoch_ms, dumps(r.body))
            parts.append(b)
            ids.append(r.id)
            times.append(r.epoch_ms)
            sizes.append(len(b))
        else:
            rejects.append((i, r.reason, r.detail))  # type: ignore[union-attr]
    block = b"".join(parts)
    data, crc = frame.seal(block) if parts else (b"", None)
    return data, crc, len(block), DocRefs.pack(ids, times, sizes), rejects


def _read_requests(conn: Connection, q: queue.SimpleQueue[bytes | None]) -> None:
    try:
        while True:
            q.put(conn.recv_bytes())
    except (EOFError, OSError):
        q.put(None)  # the parent went away or closed the pipe: finish


def serve(rfd: int, wfd: int) -> None:
    rx, tx = Connection(rfd, writable=False), Connection(wfd, readable=False)
    rules, max_line_bytes, frame = pickle.loads(rx.recv_bytes())
    normalizer = Normalizer(rules, max_line_bytes)
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)  # see shipper.daemon.tune_gc
    requests: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    threading.Thread(target=_read_requests, args=(rx, requests), daemon=True).start()
    while (req := requests.get()) is not None:
        lines = req.split(b"\n")[:-1]  # every line arrives newline-terminated
        tx.send_bytes(
            pickle.dumps(
                encode(lines, normalizer.line, frame, skip_blank=True), protocol=pickle.HIGHEST_PROTOCOL
            )
        )


def main(argv: list[str]) -> Any:
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        serve(int(argv[1]), int(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
