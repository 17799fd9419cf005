"""The per-record loop: normalize, serialize and frame each input of a block.

Shared by the normalizer workers and the main process (no pool, postgres records), so both
give the same answers. The hottest code of the daemon; an optional build compiles it with mypyc
(see pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from shipper.indexing import DAY_MS
from shipper.normalize.document import Document, Rejection
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
    # Framed here rather than by calling ``frame`` per document: this module is compiled, the
    # framers are not (workers get them pickled), and the action line changes once a day.
    actions: dict[int, tuple[bytes, bytes] | None] = {}
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
            day = r.epoch_ms // DAY_MS
            if day in actions:
                action = actions[day]
            else:
                action = actions[day] = frame.action(day)
            if action is None:
                b = dumps(r.body) + b"\n"
            else:
                b = b"".join((action[0], dumps(r.id), action[1], dumps(r.body), b"\n"))
            parts.append(b)
            ids.append(r.id)
            times.append(r.epoch_ms)
            sizes.append(len(b))
        else:
            rejects.append((i, r.reason, r.detail))  # type: ignore[union-attr]
    block = b"".join(parts)
    data, crc = frame.seal(block) if parts else (b"", None)
    return data, crc, len(block), DocRefs.pack(ids, times, sizes), rejects
