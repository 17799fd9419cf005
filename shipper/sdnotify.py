"""systemd's notify protocol (sd_notify(3)): datagrams to ``$NOTIFY_SOCKET``.

Small enough to implement here rather than depend on a stale package: the socket is a path or,
when it starts with ``@``, an abstract socket. Without ``NOTIFY_SOCKET`` every call is a no-op.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time


class Notifier:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if addr.startswith("@"):
            self.address = "\0" + addr[1:]
        elif addr.startswith("/"):
            self.address = addr
        usec = int(env.get("WATCHDOG_USEC", "0") or 0)
        pid = env.get("WATCHDOG_PID")
        if pid and pid != str(os.getpid()):
            usec = 0  # the watchdog is meant for another process
        # Ping at half the interval, as sd_watchdog_enabled(3) recommends.
        self.watchdog_interval = usec / 2e6 if usec else 0.0
        self._last_ping = 0.0
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> None:
        if self.address is None:
            return
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        # systemd gone or its socket full: never a reason to stop shipping.
        with contextlib.suppress(OSError):
            self._sock.sendto("\n".join(fields).encode(), self.address)

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def watchdog(self) -> None:
        """Ping if due. Called from the main loop, so a hung loop stops the pings."""
        if not self.watchdog_interval:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval:
            self._last_ping = now
            self.send("WATCHDOG=1")
