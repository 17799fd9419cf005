"""Durable writes, one implementation for the checkpoint, dead letters and the file output."""

from __future__ import annotations

import os


def write_all(fd: int, data: bytes | bytearray) -> None:
    """Every byte of ``data`` to ``fd``, then fsync (``os.write`` may write part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)
