"""The file source on a manual clock: scan intervals, a rotated file's unterminated last line,
the grace period of deleted files and acknowledged positions, without waiting for any of them
(real files in a temporary folder; no watchdog, no sleep)."""

from __future__ import annotations

import os
from pathlib import Path

from shipper.clock import ManualClock
from shipper.config import FileInputConfig
from shipper.pipeline.checkpoint import CheckpointStore
from shipper.sources.file.source import FileSource


def source(tmp_path: Path, **cfg: object) -> tuple[FileSource, ManualClock]:
    clock = ManualClock()
    spec = FileInputConfig.model_validate(
        {"type": "file", "paths": [str(tmp_path / "logs" / "*.jsonl")], **cfg}
    )
    src = FileSource(spec, CheckpointStore(tmp_path / "state"), "file0", use_watchdog=False, clock=clock)
    return src, clock


def lines_of(src: FileSource) -> list[bytes]:
    out: list[bytes] = []
    for chunk in src.poll(1000):
        frames = chunk.lines() if chunk.block else chunk.frames
        out += [f.raw for f in frames]
    return out


def test_a_new_file_is_found_at_the_next_scan_on_the_clock(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.jsonl").write_bytes(b"a1\n")
    src, clock = source(tmp_path, scan_interval=5.0)
    assert lines_of(src) == [b"a1"]
    (tmp_path / "logs" / "b.jsonl").write_bytes(b"b1\n")
    clock.advance(4.9)
    assert lines_of(src) == []  # not scanned yet
    clock.advance(0.1)
    assert lines_of(src) == [b"b1"]
    src.close()


def test_a_rotated_files_unterminated_line_is_emitted_once_idle(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.jsonl").write_bytes(b"one\ntwo-without-newline")
    src, clock = source(tmp_path, idle_eof_after="10s", scan_interval=1.0)
    assert lines_of(src) == [b"one"]
    os.rename(logs / "a.jsonl", logs / "a.jsonl.1")  # rotated away: no longer matches
    clock.advance(1.0)
    assert lines_of(src) == []  # rotated, but written to moments ago
    clock.advance(9.0)
    assert lines_of(src) == [b"two-without-newline"]
    clock.advance(1.0)
    assert lines_of(src) == [] and not src.files  # then closed
    src.close()


def test_a_live_files_unterminated_line_waits_for_its_newline(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.jsonl").write_bytes(b"half")
    src, clock = source(tmp_path, idle_eof_after="10s")
    clock.advance(3600)
    assert lines_of(src) == []  # still at its path: a writer may finish the line
    with open(logs / "a.jsonl", "ab") as fh:
        fh.write(b"-done\n")
    assert lines_of(src) == [b"half-done"]
    src.close()


def test_a_deleted_file_is_kept_open_for_its_grace_period_on_the_clock(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.jsonl").write_bytes(b"x\n")
    src, clock = source(tmp_path, close_deleted_after="5m")
    assert lines_of(src) == [b"x"]
    (logs / "a.jsonl").unlink()
    src.housekeeping()
    clock.advance(299)
    src.housekeeping()
    assert len(src.files) == 1  # still readable, its data not acknowledged
    clock.advance(1)
    src.housekeeping()
    assert not src.files
    src.close()


def test_acknowledged_positions_are_staged_with_the_clocks_time(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.jsonl").write_bytes(b"1\n22\n")
    src, clock = source(tmp_path)
    chunks = src.poll(1000)
    assert len(chunks) == 1
    src.acked(chunks[0].stream, chunks[0].position)
    entry = src.store.streams[chunks[0].stream]
    assert entry["offset"] == 5 and entry["seen"] == int(clock.wall())
    src.close()
