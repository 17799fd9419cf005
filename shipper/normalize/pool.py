"""Normalize on every core: worker processes fed in order, answered in order.

The normalizer is pure CPU-bound Python, so threads would share one core (the GIL). Workers are
plain ``python -m shipper.normalize.worker`` processes rather than ``multiprocessing`` children:
spawn/forkserver would re-import the CLI entry point (elasticsearch client, click, ...) in each
child, and fork is unsafe once the daemon's threads run. ``multiprocessing.connection`` still
does the message framing.

Order: requests go round-robin and each worker answers its own in order, so the oldest ticket
is always the next answer of its worker. A worker that dies is restarted and its unanswered
requests are sent again; a request that has killed a worker twice is normalized in-process
(it still gets an answer, and the same one: both paths run ``encode``).

Workers run only while there is a backlog: they start when a request of ``start_lines`` lines or
more arrives (smaller ones, a quiet log's trickle, are normalized in-process at once: no start-up
delay, no idle processes), and stop once they have had nothing to do for ``idle_stop`` seconds.
An idle daemon is then one process (the README's footprint numbers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import pickle
import subprocess
import sys
import weakref
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from shipper.clock import SYSTEM, Clock
from shipper.metrics import METRICS
from shipper.normalize.document import Normalizer
from shipper.normalize.loop import Encoded, encode
from shipper.normalize.mask import MaskRules
from shipper.records import Framer

log = logging.getLogger(__name__)
PIPE_SIZE = 1 << 20  # fewer wake-ups per ~1 MB request (Linux caps it at pipe-max-size)
MAX_ATTEMPTS = 2  # per request
MAX_FAILURES = 5  # restarts in a row without one answer: give up on workers


def default_workers() -> int:
    """One per CPU the process may use, none on a single CPU (the main thread is enough)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if n < 2 else min(n, 8)


@dataclass(eq=False)
class Ticket:
    worker: int
    payload: bytes
    count: int  # lines in the request
    attempts: int = 1
    result: Encoded | None = None


@dataclass(eq=False)
class _Worker:
    proc: subprocess.Popen[bytes]
    tx: Connection
    rx: Connection
    outstanding: deque[Ticket] = field(default_factory=deque)


def _grow(fd: int) -> None:
    # An unprivileged process over pipe-max-size keeps the default: slower, still right.
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


class NormalizerPool:
    """``submit`` lines, then ``ready``/``result`` answers in submission order."""

    def __init__(
        self,
        workers: int,
        rules: MaskRules,
        max_line_bytes: int,
        frame: Framer,
        command: list[str] | None = None,
        start_lines: int = 256,
        idle_stop: float = 60.0,
        clock: Clock = SYSTEM,
        detect: bool = False,
    ) -> None:
        """``detect``: answers carry the signals detections read (``encode``)."""
        # -P: never import from the daemon's working directory (a stray ``shipper/`` there
        # would be run instead of the installed, possibly compiled, package).
        self._command = command or [sys.executable, "-P", "-m", "shipper.normalize.worker"]
        # The rules go as plain fields: a mypyc-compiled frozen dataclass does not unpickle.
        fields = {f.name: getattr(rules, f.name) for f in dataclasses.fields(rules)}
        self._init = pickle.dumps((fields, max_line_bytes, frame, detect))
        self._detect = detect
        self._frame = frame
        self._fallback = Normalizer(rules, max_line_bytes)
        self._size = workers
        self._failures = 0  # restarts since the last answer
        self.broken = False  # workers kept dying: everything is normalized in-process now
        self.start_lines = start_lines
        self.idle_stop = idle_stop
        self._clock = clock
        self._busy_at = clock.monotonic()  # when a request last went to the workers
        self._workers: list[_Worker] = []  # started with the first backlog (``_ensure``)
        # Also when a runner is dropped without shutdown (a crash in tests, an exception at start).
        self._finalizer = weakref.finalize(self, _close_all, self._workers)
        self._tickets: deque[Ticket] = deque()
        self._next = 0
        self.pending_lines = 0

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._tickets)

    @property
    def running(self) -> int:
        """Worker processes running now."""
        return len(self._workers)

    def _ensure(self) -> None:
        if not self._workers:
            self._workers.extend(self._start() for _ in range(self._size))
            METRICS.set("normalizer_workers_running", len(self._workers))
            log.info("backlog: %d normalizer workers started", len(self._workers))

    def stop_idle(self) -> bool:
        """Stop the workers when they have had nothing to do for ``idle_stop`` s; True if so."""
        if not self._workers or any(w.outstanding for w in self._workers):
            return False
        if self._clock.monotonic() - self._busy_at < self.idle_stop:
            return False
        _close_all(self._workers)
        METRICS.set("normalizer_workers_running", 0)
        log.info("idle for %.0f s: normalizer workers stopped", self.idle_stop)
        return True

    def _start(self) -> _Worker:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        for fd in (to_child_w, from_child_w):
            _grow(fd)
        try:
            proc = subprocess.Popen(
                [*self._command, str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                close_fds=True,
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        w = _Worker(proc, Connection(to_child_w, readable=False), Connection(from_child_r, writable=False))
        with contextlib.suppress(OSError):  # died at once: seen when its first answer is awaited
            w.tx.send_bytes(self._init)
        return w

    def submit(self, lines: list[bytes]) -> Ticket:
        return self.submit_block(b"".join([x + b"\n" for x in lines]), len(lines))

    def submit_block(self, block: bytes, count: int) -> Ticket:
        """``count`` newline-terminated lines; blank ones are skipped, rejects index the lines."""
        i = self._next
        self._next = (i + 1) % self._size
        t = Ticket(i, block, count)
        self._tickets.append(t)
        self.pending_lines += t.count
        if self.broken or (not self._workers and count < self.start_lines):
            self._in_process(t)  # broken, or a trickle: not worth a process
        else:
            self._ensure()
            self._busy_at = self._clock.monotonic()
            self._send(t)
        return t

    def _in_process(self, t: Ticket) -> None:
        lines = t.payload.split(b"\n")[:-1]
        fallback = self._fallback
        t.result = encode(lines, fallback.line, self._frame, True, fallback.native, self._detect)

    def _send(self, t: Ticket) -> None:
        w = self._workers[t.worker]
        w.outstanding.append(t)
        # A dead worker is noticed (and the request re-sent) when its answer is awaited.
        with contextlib.suppress(OSError):
            w.tx.send_bytes(t.payload)

    def ready(self) -> bool:
        """True when the oldest request is answered (``result`` will not block)."""
        if not self._tickets:
            return False
        t = self._tickets[0]
        if t.result is not None:
            return True
        try:
            return self._workers[t.worker].rx.poll(0)
        except OSError:
            return True  # broken: ``result`` restarts the worker

    def result(self) -> Encoded:
        """The oldest request's answer, waiting for it if needed."""
        t = self._tickets[0]
        while t.result is None:
            w = self._workers[t.worker]
            try:
                t.result = pickle.loads(w.rx.recv_bytes())
                w.outstanding.popleft()
                self._failures = 0
            except (EOFError, OSError):
                self._restart(t.worker)
        self._tickets.popleft()
        self.pending_lines -= t.count
        return t.result

    def _restart(self, index: int) -> None:
        old = self._workers[index]
        code = old.proc.poll()
        log.error("normalizer worker %d (pid %d) died (exit %s); restarting it", index, old.proc.pid, code)
        METRICS.inc("worker_restarts_total")
        _close_worker(old)
        self._failures += 1
        if self._failures >= MAX_FAILURES:
            # Not one request's fault: workers cannot run here (broken interpreter, limits, ...).
            log.error("normalizer workers keep dying; normalizing in the main process from now on")
            METRICS.set("workers_broken", 1)
            self.broken = True
            for w in self._workers:
                if w is not old:
                    _close_worker(w)
            self._workers.clear()
            for t in self._tickets:
                if t.result is None:
                    self._in_process(t)
            return
        new = self._start()
        self._workers[index] = new
        for t in old.outstanding:
            t.attempts += 1
            if t.attempts > MAX_ATTEMPTS:
                log.error("a request of %d lines crashed workers twice; normalizing it in-process", t.count)
                self._in_process(t)
            else:
                self._send(t)

    def close(self) -> None:
        """Stop the workers (closing their input is their signal to exit)."""
        self._finalizer()
        self._tickets.clear()
        self.pending_lines = 0


def _close_worker(w: _Worker) -> None:
    for c in (w.tx, w.rx):
        c.close()
    try:
        w.proc.wait(5)
    except subprocess.TimeoutExpired:
        w.proc.kill()
        w.proc.wait()


def _close_all(workers: list[_Worker]) -> None:
    for w in workers:
        _close_worker(w)
    workers.clear()
