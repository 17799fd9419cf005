"""A wake-up a signal handler may set.

``threading.Event.set`` takes the event's lock: from a signal handler (which runs in the main
thread, between two bytecodes) it deadlocks whenever the main thread was itself inside
``Event.wait`` on that event, holding the lock: a SIGTERM'd daemon then never exits. ``Wake``
holds no lock: ``set`` raises a flag and writes one byte to a pipe, ``wait`` is a ``select`` on
it. Threads (inotify, the webhook receiver, the Management API fetcher) set it the same way.
"""

from __future__ import annotations

import contextlib
import os
import select


class Wake:
    """``set``/``is_set``/``clear``/``wait(timeout)`` like ``threading.Event``, signal-safe."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._flag = False

    def set(self) -> None:
        self._flag = True
        with contextlib.suppress(BlockingIOError, OSError):  # full: a byte is waiting anyway
            os.write(self._w, b"\0")

    def is_set(self) -> bool:
        return self._flag

    def clear(self) -> None:
        # Flag first: a set() racing with this leaves its byte or its flag, so no wake is lost.
        self._flag = False
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._r, 4096):
                pass

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            return True
        with contextlib.suppress(InterruptedError):  # a signal: its handler may have set us
            select.select([self._r], [], [], timeout)
        return self._flag

    def close(self) -> None:
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        self.close()
