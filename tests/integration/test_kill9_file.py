"""kill -9 drills against the real daemon: every line's document exactly once."""

from __future__ import annotations

import random
import threading
import time

from tests.integration.daemon import Daemon, write_config
from tests.integration.harness import assert_exactly_once, expected, output_ids, record

CYCLES = 20  # at least; more (up to 3x) until a kill has hit the crash window
WINDOW_HIT = "written after the last checkpoint"  # logged by the start after such a kill


class RotatingWriter(threading.Thread):
    """Writes lines continuously and rotates by rename every ``every`` lines."""

    def __init__(self, logdir, every=300, limit=None):
        super().__init__(daemon=True)
        self.logdir, self.every, self.limit = logdir, every, limit  # limit: lines in all
        self.stop = threading.Event()
        self.count = 0
        self.rotations = 0

    def run(self):
        log = self.logdir / "app.jsonl"
        fh = open(log, "ab")  # noqa: SIM115 - reopened on rotation
        rng = random.Random(5)
        while not self.stop.is_set():
            if self.limit is not None and self.count >= self.limit:
                time.sleep(0.01)
                continue
            burst = rng.randrange(1, 40)
            fh.write(b"".join(record(self.count + i) + b"\n" for i in range(burst)))
            fh.flush()
            self.count += burst
            if self.count // self.every > self.rotations:
                self.rotations += 1
                log.rename(self.logdir / f"app.jsonl.{self.rotations}")
                fh.close()
                fh = open(log, "ab")  # noqa: SIM115 - reopened on rotation
            time.sleep(0.005)
        fh.close()


def test_kill9_cycles_with_rotation_exactly_once(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    out = tmp_path / "out.ndjson"
    cfg = write_config(
        tmp_path / "shipper.toml",
        f"""
[state]
dir = "{tmp_path / "state"}"
checkpoint_interval = 1.0
[[inputs]]
type = "file"
paths = ["{logdir}/app.jsonl*"]
scan_interval = 0.1
idle_eof_after = "500ms"
[output]
type = "file"
path = "{out}"
""",
    )
    daemon = Daemon(cfg, tmp_path / "daemon.log")
    writer = RotatingWriter(logdir)
    writer.start()
    rng = random.Random(11)
    log = tmp_path / "daemon.log"
    cycles = 0
    try:
        # On a loaded machine a daemon may spend its whole slot starting up: keep going until
        # one kill has landed between writing output and checkpointing it.
        while cycles < CYCLES or (cycles < 3 * CYCLES and WINDOW_HIT not in log.read_text()):
            daemon.start().wait_started()
            time.sleep(rng.uniform(0.3, 1.0))
            daemon.kill9()
            cycles += 1
    finally:
        writer.stop.set()
        writer.join()
    assert writer.rotations >= 3
    daemon.start().wait_started()
    daemon.wait_for(lambda: len(set(output_ids(out))) >= writer.count, timeout=60)
    time.sleep(0.5)  # anything extra (a duplicate) would show up now
    assert daemon.terminate() == 0
    assert_exactly_once(output_ids(out), expected(range(writer.count)))
    # The drill must have hit the crash window at least once: output written, checkpoint not.
    assert WINDOW_HIT in log.read_text()
