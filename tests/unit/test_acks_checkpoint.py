from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from shipper.pipeline.acks import AckTracker
from shipper.pipeline.checkpoint import CheckpointStore


@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=30), st.randoms())
def test_out_of_order_acks_advance_only_contiguous_prefix(streams, rnd):
    """Model: batch i carries stream s_i up to position i+1; completions in random order."""
    t = AckTracker()
    for seq, s in enumerate(streams):
        t.register(seq, {s: seq + 1})
    order = list(range(len(streams)))
    rnd.shuffle(order)
    done: set[int] = set()
    safe: dict[str, int] = {}
    for seq in order:
        advanced = t.complete(seq)
        done.add(seq)
        for s, pos in advanced.items():
            assert pos > safe.get(s, 0)  # never goes backwards
            safe[s] = pos
        for s in set(streams):
            mine = [i for i, x in enumerate(streams) if x == s]
            prefix = 0
            for i in mine:
                if i not in done:
                    break
                prefix = i + 1
            assert safe.get(s, 0) == prefix  # exactly the contiguous completed prefix
    assert t.in_flight == 0 and not t.pending_streams()


def test_multi_stream_batch():
    t = AckTracker()
    t.register(0, {"a": 10, "b": 5})
    t.register(1, {"a": 20})
    assert t.complete(1) == {}
    assert t.complete(0) == {"a": 20, "b": 5}


def test_checkpoint_roundtrip_and_throttle(tmp_path):
    s = CheckpointStore(tmp_path, interval=3600)
    s.stage("x", offset=5)
    assert s.flush() is True  # first write is never throttled
    s.stage("x", offset=6)
    assert s.flush() is False  # within the interval
    assert s.flush(force=True) is True
    assert CheckpointStore(tmp_path).streams == {"x": {"offset": 6}}
    assert not (tmp_path / "registry.json.tmp").exists()


def test_corrupt_registry_is_moved_aside_not_fatal(tmp_path, caplog):
    (tmp_path / "registry.json").write_bytes(b'{"version":1,"streams":')
    s = CheckpointStore(tmp_path)
    assert s.corrupt and s.streams == {}
    assert list(tmp_path.glob("registry.json.corrupt-*"))
    assert "unusable" in caplog.text


def test_unknown_version_is_reported(tmp_path, caplog):
    (tmp_path / "registry.json").write_bytes(orjson.dumps({"version": 99}))
    assert CheckpointStore(tmp_path).corrupt
    assert "unusable" in caplog.text and "version" in caplog.text


def test_offline_lag_reads_every_stream_kind_through_the_registry_models(tmp_path):
    """``status`` without a daemon: the lag each checkpoint implies, current registry format."""
    import os
    from datetime import UTC, datetime

    from shipper.pipeline.checkpoint import offline_lag, read_registry

    log = tmp_path / "a.jsonl"
    log.write_bytes(b"x" * 1000)
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC).timestamp()
    registry = {
        "version": 1,
        "streams": {
            "file:1": {"path": str(log), "ino": os.stat(log).st_ino, "offset": 400},
            "file:2": {"path": str(tmp_path / "gone.jsonl"), "ino": 1, "offset": 0},
            "pg:default": {"position": {"ts": "2026-12-03T11:00:00+00:00", "id": "x"}},
            "pg:old": {"position": ["2026-12-03T11:30:00+00:00", "y"]},
            "api:t": {"position": {"from": int((now - 90) * 1000), "edge": []}},
            "spool:w": {"position": {"segment": 3, "offset": 10}},
        },
    }
    (tmp_path / "registry.json").write_bytes(orjson.dumps(registry))
    reg = read_registry(tmp_path)
    assert reg is not None
    lags = {lag.source: (lag.unit, round(lag.value)) for lag in offline_lag(reg, now)}
    assert lags == {
        str(log): ("bytes", 600),
        "pg:default": ("seconds", 3600),
        "pg:old": ("seconds", 1800),
        "api:t": ("seconds", 90),
    }
    (tmp_path / "registry.json").write_bytes(b"{torn")
    assert read_registry(tmp_path) is None and (tmp_path / "registry.json").exists()  # left in place
