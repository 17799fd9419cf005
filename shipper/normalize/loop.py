"""The per-record loop: normalize, serialize and frame each input of a block.

Shared by the normalizer workers and the main process (no pool, postgres records), so both
give the same answers. The hottest code of the daemon: wheel builds compile it with mypyc and add
the native path (``_native/ecs.c``), which frames most lines of a block itself and leaves the
rest to this loop (see hatch_build.py).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from shipper.detect.signals import of_body, scan
from shipper.normalize.document import Document, Rejection
from shipper.records import DAY_MS, DocRefs, Framer, is_blank

Reject = tuple[int, str, str]  # (index of the input, reason, detail)
# (block or its deflate fragment, crc32 or None, block size, documents, rejects, left, signals):
# a Segment's fields, the rejected inputs, how many lines the native path left to the Python
# normalizer, and what detections look at (``shipper.detect.signals.scan``; empty when off).
Encoded = tuple[bytes, int | None, int, DocRefs, list[Reject], int, list[Any]]
Actions = dict[int, tuple[bytes, bytes] | None]


TOO_DEEP = ("too_deep", "nested deeper than the 255 levels a document may have")


def dumps_or_reject(body: dict[str, Any]) -> bytes | tuple[str, str]:
    """A document's JSON, or ``(reason, detail)`` when it cannot be written (orjson refuses
    nesting beyond 255 levels, which JSON input may have: parsing allows 1,024)."""
    try:
        return orjson.dumps(body)
    except TypeError as exc:
        return TOO_DEEP if "Recursion" in str(exc) else ("internal_error", "normalizer failed: TypeError")


def _one(
    x: Any,
    normalize: Callable[[Any], Document | Rejection],
    frame: Framer,
    actions: Actions,
    detect: bool = False,
) -> tuple[str, int, bytes, Any] | tuple[str, str]:
    """(id, epoch ms, framed line, signal or None) of one input, or (reason, detail) of its
    rejection; the signal (``detect``) is read from the document's dict, before it is written."""
    try:
        r = normalize(x)
        if type(r) is not Document:
            return r.reason, r.detail  # type: ignore[union-attr]
        dumped = dumps_or_reject(r.body)
        if not isinstance(dumped, bytes):
            return dumped
        body = dumped
        signal = of_body(r.body, r.epoch_ms, r.id) if detect else None
    except Exception as exc:  # a normalizer bug must cost one record, not the process
        return "internal_error", f"normalizer failed: {type(exc).__name__}"
    # Framed here rather than by calling ``frame`` per document: this module is compiled, the
    # framers are not (workers get them pickled), and the action line changes once a day.
    day = r.epoch_ms // DAY_MS
    if day in actions:
        action = actions[day]
    else:
        action = actions[day] = frame.action(day)
    if action is None:
        return r.id, r.epoch_ms, body + b"\n", signal
    return r.id, r.epoch_ms, b"".join((action[0], orjson.dumps(r.id), action[1], body, b"\n")), signal


def lines_of(block: bytes) -> list[bytes]:
    """The lines of a block, each ending in a newline but perhaps the last (as the native path
    reads a block)."""
    lines = block.split(b"\n")
    if not lines[-1]:
        lines.pop()
    return lines


def encode(
    inputs: Sequence[Any] | bytes,
    normalize: Callable[[Any], Document | Rejection],
    frame: Framer,
    skip_blank: bool = False,
    native: Any = None,
    detect: bool = False,
) -> Encoded:
    """Normalize, serialize and frame each input: the per-record loop, run by workers and by
    the main process alike, so both give the same answers. ``inputs``: the records, or a block
    of lines (``lines_of``), which the native path reads without a bytes object per line.

    ``native`` (``Normalizer.native``) frames the lines it recognises in one call and says which
    it left; those are normalized here and put in their place. ``detect``: also read the
    signals of the framed block, before it is compressed (in the worker, off the main thread)."""
    rejects: list[Reject] = []
    actions: Actions = {}
    signals: list[Any] = []
    if native is not None:
        block, ids, times, sizes, left, watched = native.encode(inputs, frame.action, skip_blank)
        n_left = len(left)
        if left and isinstance(inputs, bytes):
            inputs = lines_of(inputs)
        placed: list[tuple[int, Any]] = []  # (document index, signal) of the lines left to Python
        if left:
            pieces: list[bytes] = []
            prev = added = 0
            moved = []  # where each native document went: it moves by the lines inserted before it
            for i, offset, k in left:
                r = _one(inputs[i], normalize, frame, actions, detect)
                if len(r) == 2:
                    rejects.append((i, r[0], r[1]))
                    continue
                doc_id, ms, line, signal = r
                pieces.append(block[prev:offset])
                pieces.append(line)
                prev = offset
                ids.insert(k + added, doc_id)
                times.insert(k + added, ms)
                sizes.insert(k + added, len(line))
                if signal is not None:
                    placed.append((k + added, signal))
                moved.append(k)
                added += 1
            if pieces:
                pieces.append(block[prev:])
                block = b"".join(pieces)
            watched = [j + bisect_right(moved, j) for j in watched] if detect else watched
        if detect:
            found = scan(block, ids, times, sizes, watched)
            if placed:
                found = sorted(found + placed, key=lambda x: int(x[0]))
            signals = [s for _, s in found]
    else:
        n_left = 0
        if isinstance(inputs, bytes):
            inputs = lines_of(inputs)
        parts: list[bytes] = []
        ids, times, sizes = [], [], []
        for i, x in enumerate(inputs):
            if skip_blank and is_blank(x):
                continue
            r = _one(x, normalize, frame, actions, detect)
            if len(r) == 2:
                rejects.append((i, r[0], r[1]))
                continue
            doc_id, ms, line, signal = r
            parts.append(line)
            ids.append(doc_id)
            times.append(ms)
            sizes.append(len(line))
            if signal is not None:
                signals.append(signal)
        block = b"".join(parts)
    data, crc = frame.seal(block) if ids else (b"", None)
    return data, crc, len(block), DocRefs.pack(ids, times, sizes), rejects, n_left, signals
