"""A normalizer process: lines in, serialized documents or rejections out (``NormalizerPool``).

Started as ``python -m shipper.normalize.worker READ_FD WRITE_FD``; imports only what
normalizing needs, so each worker costs ~20 MB. Requests are newline-terminated lines; each reply is
a pickled list with one entry per line: ``(id, epoch_ms, json_bytes)`` for a document,
``(reason, detail)`` for a rejection. A reader thread takes requests off the pipe as they come,
so the parent can queue the next request while this one is being answered (no pipe deadlock).
"""

from __future__ import annotations

import contextlib
import gc
import pickle
import queue
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import orjson

from shipper.normalize.document import Document, Normalizer

Result = tuple[str, int, bytes] | tuple[str, str]


def normalize_lines(
    normalizer: Normalizer, lines: list[bytes], enrich: Callable[[dict[str, Any]], None] | None = None
) -> list[Result]:
    """The per-line loop of workers and of the main process alike, so both give the same answers."""
    out: list[Result] = []
    line = normalizer.line
    dumps = orjson.dumps
    for raw in lines:
        try:
            r = line(raw)
        except Exception as exc:  # a normalizer bug must cost one line, not the process
            out.append(("internal_error", f"normalizer failed: {type(exc).__name__}"))
            continue
        if type(r) is Document:
            if enrich is not None:
                enrich(r.body)
            out.append((r.id, r.epoch_ms, dumps(r.body)))
        else:
            out.append((r.reason, r.detail))  # type: ignore[union-attr]
    return out


def _read_requests(conn: Connection, q: queue.SimpleQueue[bytes | None]) -> None:
    try:
        while True:
            q.put(conn.recv_bytes())
    except (EOFError, OSError):
        q.put(None)  # the parent went away or closed the pipe: finish


def serve(rfd: int, wfd: int) -> None:
    rx, tx = Connection(rfd, writable=False), Connection(wfd, readable=False)
    rules, max_line_bytes = pickle.loads(rx.recv_bytes())
    normalizer = Normalizer(rules, max_line_bytes)
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)  # see shipper.daemon.tune_gc
    requests: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    threading.Thread(target=_read_requests, args=(rx, requests), daemon=True).start()
    while (req := requests.get()) is not None:
        lines = req.split(b"\n")[:-1]  # every line arrives newline-terminated
        tx.send_bytes(pickle.dumps(normalize_lines(normalizer, lines), protocol=pickle.HIGHEST_PROTOCOL))


def main(argv: list[str]) -> Any:
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        serve(int(argv[1]), int(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
