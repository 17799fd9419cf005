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
from multiprocessing.connection import Connection
from typing import Any

from shipper.normalize.document import Normalizer
from shipper.normalize.loop import encode
from shipper.normalize.mask import MaskRules


def _read_requests(conn: Connection, q: queue.SimpleQueue[bytes | None]) -> None:
    try:
        while True:
            q.put(conn.recv_bytes())
    except (EOFError, OSError):
        q.put(None)  # the parent went away or closed the pipe: finish


def serve(rfd: int, wfd: int) -> None:
    rx, tx = Connection(rfd, writable=False), Connection(wfd, readable=False)
    fields, max_line_bytes, frame, detect = pickle.loads(rx.recv_bytes())
    normalizer = Normalizer(MaskRules(**fields), max_line_bytes)
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)  # see shipper.daemon.tune_gc
    requests: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    threading.Thread(target=_read_requests, args=(rx, requests), daemon=True).start()
    while (req := requests.get()) is not None:
        tx.send_bytes(  # the request: lines, each newline-terminated (read in place, not split)
            pickle.dumps(
                encode(req, normalizer.line, frame, True, normalizer.native, detect),
                protocol=pickle.HIGHEST_PROTOCOL,
            )
        )


def main(argv: list[str]) -> Any:
    # EOFError: the parent died before sending the configuration (killed while starting).
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt, EOFError):
        serve(int(argv[1]), int(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
