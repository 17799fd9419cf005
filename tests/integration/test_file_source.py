"""The file input end to end (in-process): rotation, truncation, restarts, bad lines."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time

import pytest

from shipper.metrics import METRICS
from tests.integration.harness import (
    Pipeline,
    assert_exactly_once,
    expected,
    record,
    same_inode_recreate,
    write_lines,
)


@pytest.mark.parametrize("workers", [0, 2])
def test_rename_rotation_while_writing(tmp_path, workers):
    p = Pipeline(tmp_path, paths=[str(tmp_path / "logs" / "app.jsonl")], workers=workers).start()
    log = p.logs / "app.jsonl"
    n = 0
    for rot in range(5):
        with open(log, "ab") as writer:
            for _ in range(300):
                writer.write(record(n) + b"\n")
                n += 1
                if n % 100 == 0:
                    writer.flush()
                    p.runner.step()
            log.rename(p.logs / f"app.jsonl.{rot}")
            # The writer still holds the renamed file: late lines must be shipped too.
            writer.write(record(n) + b"\n")
            n += 1
        p.runner.step()
    p.pump_until_count(n)
    assert_exactly_once(p.ids(), expected(range(n)))
    assert p.stop() == 0


def test_copytruncate(tmp_path):
    p = Pipeline(tmp_path).start()
    log = p.logs / "app.jsonl"
    write_lines(log, range(100))
    p.pump_until_count(100)
    shutil.copy(log, p.logs / "app.jsonl.1")  # not matched by *.jsonl
    os.truncate(log, 0)
    write_lines(log, range(100, 130))
    p.pump_until_count(130)
    assert_exactly_once(p.ids(), expected(range(130)))


def test_truncated_and_regrown_past_offset_is_detected_by_fingerprint(tmp_path):
    p = Pipeline(tmp_path).start()
    log = p.logs / "app.jsonl"
    write_lines(log, range(10))
    p.pump_until_count(10)
    os.truncate(log, 0)
    write_lines(log, range(100, 200), tag="n")  # larger than before: size never looks smaller
    p.pump_until_count(110)
    assert_exactly_once(p.ids(), expected(range(10)) + expected(range(100, 200), "n"))


def test_delete_and_recreate_same_name_while_running(tmp_path):
    p = Pipeline(tmp_path, close_deleted_after="100ms").start()
    log = p.logs / "app.jsonl"
    write_lines(log, range(50))
    p.pump_until_count(50)
    log.unlink()
    p.pump(min_time=0.4, until=lambda: not p.runner.sources[0].files)  # deleted file closed
    write_lines(log, range(50, 80), mode="wb")
    p.pump_until_count(80)
    assert_exactly_once(p.ids(), expected(range(80)))


def test_inode_reuse_after_restart_is_a_new_file(tmp_path):
    p = Pipeline(tmp_path).start()
    log = p.logs / "app.jsonl"
    write_lines(log, range(50))
    p.pump_until_count(50)
    p.stop()
    data = b"".join(record(i, "z") + b"\n" for i in range(60))
    same_inode_recreate(log, data)  # same inode on most filesystems; new content either way
    p.start().pump_until_count(110)
    assert_exactly_once(p.ids(), expected(range(50)) + expected(range(60), "z"))


def test_glob_picks_up_new_file(tmp_path):
    p = Pipeline(tmp_path).start()
    write_lines(p.logs / "a.jsonl", range(10))
    p.pump_until_count(10)
    write_lines(p.logs / "b.jsonl", range(10, 25))
    (p.logs / "ignored.txt").write_bytes(record(999) + b"\n")
    p.pump_until_count(25)
    p.pump(min_time=0.2, until=lambda: True)
    assert_exactly_once(p.ids(), expected(range(25)))


def test_partial_final_line_waits_until_completed(tmp_path):
    p = Pipeline(tmp_path).start()
    log = p.logs / "app.jsonl"
    line = record(1)
    log.write_bytes(record(0) + b"\n" + line[:20])
    p.pump(min_time=0.5, until=lambda: len(p.ids()) >= 1)
    p.pump(min_time=0.5, until=lambda: True)
    assert p.ids() == expected(range(1))
    with open(log, "ab") as fh:
        fh.write(line[20:] + b"\n")
    p.pump_until_count(2)
    assert p.ids() == expected(range(2))
    assert p.dead_letters() == []


def test_partial_line_of_rotated_idle_file_is_emitted(tmp_path):
    p = Pipeline(tmp_path, paths=[str(tmp_path / "logs" / "app.jsonl")]).start()
    log = p.logs / "app.jsonl"
    log.write_bytes(record(0) + b"\n" + record(1))  # no final newline
    p.pump_until_count(1)
    log.rename(p.logs / "app.jsonl.1")
    p.pump_until_count(2)
    assert_exactly_once(p.ids(), expected(range(2)))


def test_normalizer_worker_killed_mid_stream_nothing_lost_or_repeated(tmp_path):
    # Fault injection: SIGKILL a worker while it holds requests; the pool restarts it and sends
    # them again, and the output still has every line exactly once.
    p = Pipeline(tmp_path).start()
    pool = p.runner.pool
    assert pool is not None and pool.size == 2
    log = p.logs / "app.jsonl"
    before = METRICS.get("worker_restarts_total")
    n = 0
    for round_ in range(3):
        write_lines(log, range(n, n + 2000))
        n += 2000
        p.runner.step()  # requests now sit with the workers
        victim = pool._workers[round_ % 2].proc
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        p.pump_until_count(n, timeout=20)
    assert_exactly_once(p.ids(), expected(range(n)))
    assert METRICS.get("worker_restarts_total") - before == 3
    assert p.stop() == 0


def test_restart_resumes_without_repeats(tmp_path):
    p = Pipeline(tmp_path).start()
    log = p.logs / "app.jsonl"
    write_lines(log, range(100))
    p.pump_until_count(100)
    assert p.stop() == 0
    write_lines(log, range(100, 150))
    p.start().pump_until_count(150)
    p.pump(min_time=0.3, until=lambda: True)
    assert_exactly_once(p.ids(), expected(range(150)))


def test_start_at_end_skips_existing_lines_only_at_first_start(tmp_path):
    p = Pipeline(tmp_path, start_at="end")
    log = p.logs / "app.jsonl"
    write_lines(log, range(20))
    with open(log, "ab") as fh:
        fh.write(record(20)[:10])  # a partial line: start after the last complete one
    p.start()
    p.pump(min_time=0.3, until=lambda: True)
    assert p.ids() == []
    with open(log, "ab") as fh:
        fh.write(record(20)[10:] + b"\n")
    write_lines(p.logs / "new.jsonl", range(21, 25))  # files appearing later: from the start
    p.pump_until_count(5)
    assert_exactly_once(p.ids(), expected(range(20, 25)))


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_and_long_lines_dead_lettered_and_reading_continues(tmp_path, workers):
    p = Pipeline(tmp_path, max_line_bytes=1024, workers=workers).start()
    log = p.logs / "app.jsonl"
    long_line = b'{"id":"' + b"x" * 5000 + b'"}'
    log.write_bytes(record(0) + b"\n{oops\n" + long_line + b"\n\xff\xfe\n" + record(1) + b"\n")
    p.pump_until_count(2)
    p.pump(until=lambda: len(p.dead_letters()) == 3)
    assert_exactly_once(p.ids(), expected(range(2)))
    dl = p.dead_letters()
    assert [d["reason"] for d in dl] == ["invalid_json", "line_too_long", "invalid_utf8"]
    first = len(record(0)) + 1
    assert dl[0]["offset"] == first and dl[0]["raw"] == "{oops"
    assert dl[1]["length"] == len(long_line) and len(dl[1]["raw"]) == 1024
    assert dl[2]["raw_base64"] == "//4="
    assert all(d["source"] == str(log) for d in dl)


def test_output_file_cut_back_to_checkpoint_after_crash(tmp_path):
    p = Pipeline(tmp_path).start()
    log = p.logs / "app.jsonl"
    write_lines(log, range(30))
    p.pump_until_count(30)
    p.stop()
    # A crash after the output was written but before the checkpoint: simulate the extra output.
    with open(p.out, "ab") as fh:
        fh.write(b'{"event":{"id":"ghost"}}\n')
    p.start().pump(min_time=0.3, until=lambda: True)
    assert_exactly_once(p.ids(), expected(range(30)))


class NeverDelivers:
    """An output that accepts one batch and never finishes it (an output that is down)."""

    max_in_flight = 1

    def submit(self, batch):
        pass

    def completed(self, timeout=0.0):
        return []

    def committed(self):
        return None

    def close(self):
        pass


@pytest.mark.parametrize("workers", [0, 2])
def test_shutdown_with_the_output_down_ends_within_drain_timeout(tmp_path, workers):
    # SIGTERM during an outage: stop within drain_timeout, checkpoint nothing undelivered, and
    # ship it all after the restart.
    p = Pipeline(tmp_path, workers=workers).start()
    out = p.runner.sink
    p.runner.sink = NeverDelivers()
    p.runner.sink.framer = out.framer  # type: ignore[attr-defined]
    log = p.logs / "app.jsonl"
    write_lines(log, range(5000))
    p.pump(min_time=0.5, until=lambda: True)
    p.runner.drain_timeout = 0.5
    started = time.monotonic()
    assert p.stop() == 1
    assert time.monotonic() - started < 3
    out.close()
    p.start().pump_until_count(5000, timeout=20)
    assert_exactly_once(p.ids(), expected(range(5000)))


def test_deleted_file_closed_after_grace_even_if_unshipped(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    p = Pipeline(tmp_path, close_deleted_after="200ms").start()
    p.runner.sink = NeverDelivers()
    log = p.logs / "app.jsonl"
    write_lines(log, range(3000))
    p.pump(min_time=0.2, until=lambda: p.runner.acks.in_flight == 1)
    fd_count = len(os.listdir("/proc/self/fd"))
    before = METRICS.get("file_deleted_unshipped_bytes_total")
    log.unlink()
    src = p.runner.sources[0]
    p.pump(min_time=0.3, until=lambda: not src.files, timeout=5)
    assert len(os.listdir("/proc/self/fd")) < fd_count
    assert METRICS.get("file_deleted_unshipped_bytes_total") - before > 0
    assert "bytes not shipped (grace period expired)" in caplog.text


def test_registry_forgets_files_gone_long_ago(tmp_path):
    p = Pipeline(tmp_path)
    p.cfg = p.cfg.model_copy(update={"state": p.cfg.state.model_copy(update={"forget_after": "1s"})})
    p.start()
    write_lines(p.logs / "a.jsonl", range(3))
    p.pump_until_count(3)
    (p.logs / "a.jsonl").rename(p.tmp / "moved-away.jsonl")
    src = p.runner.sources[0]
    p.pump(min_time=0.5, until=lambda: not src.files)
    for e in src.store.streams.values():
        e["seen"] = 0  # pretend it has been gone for a long time
    p.pump(min_time=0.2, until=lambda: not [s for s in src.store.streams if s.startswith("file0:")])
