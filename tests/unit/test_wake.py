"""``Wake``: what the runner waits on, set by threads and by signal handlers.

A SIGTERM'd daemon once never exited: the handler called ``threading.Event.set`` while the main
thread, interrupted inside ``Event.wait`` on the same event, held its lock. ``Wake`` takes none.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

from shipper.wake import Wake


def test_set_clear_wait_like_an_event():
    w = Wake()
    assert not w.is_set() and not w.wait(0.01)
    w.set()
    w.set()  # twice: still one state
    assert w.is_set() and w.wait(0)
    w.clear()
    assert not w.is_set() and not w.wait(0.01)  # the bytes of both sets were drained


def test_a_thread_wakes_a_waiter_at_once():
    w = Wake()
    threading.Timer(0.05, w.set).start()
    t = time.monotonic()
    assert w.wait(5)
    assert time.monotonic() - t < 2


def test_a_signal_handler_wakes_the_main_thread_waiting():
    w = Wake()
    old = signal.signal(signal.SIGALRM, lambda *_: w.set())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        assert w.wait(5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_signals_landing_anywhere_in_wait_and_clear_never_deadlock():
    """Thousands of timer signals setting the runner's events while the main thread waits on and
    clears them (where threading.Event deadlocked): in a child, bounded by a timeout."""
    script = textwrap.dedent(
        """
        import random, signal
        from shipper.wake import Wake
        stop, wake = Wake(), Wake()
        def handler(*_):
            stop.set()
            wake.set()
        signal.signal(signal.SIGALRM, handler)
        rng = random.Random(1)
        for _ in range(3000):
            signal.setitimer(signal.ITIMER_REAL, rng.uniform(0, 0.0005))
            wake.wait(0.0005)
            wake.clear()
            stop.clear()
        signal.setitimer(signal.ITIMER_REAL, 0)
        print("done")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "done", out.stderr
