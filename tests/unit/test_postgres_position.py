"""The postgres input's checkpoint position: what a restart resumes from."""

from __future__ import annotations

from shipper.sources.postgres import SEEN_CAP, START, _Tenant


def test_position_keeps_the_newest_seen_ids_in_order_and_reads_back():
    t = _Tenant("default", None, START)
    n = SEEN_CAP * 3 + 7  # a busy table's overlap window holds more ids than the checkpoint keeps
    t.epoch = float(n)
    t.remember([(f"id{i}", None, float(i), "{}") for i in range(n)], overlap=1e9)
    pos = t.position()
    assert [x[0] for x in pos["seen"]] == [f"id{i}" for i in range(n - SEEN_CAP, n)]
    assert [x[1] for x in pos["seen"]] == [float(i) for i in range(n - SEEN_CAP, n)]
    back = _Tenant("default", pos, START)
    assert list(back.seen) == [f"id{i}" for i in range(n - SEEN_CAP, n)] and back.epoch == float(n)


def test_remember_forgets_what_falls_behind_the_overlap_window():
    t = _Tenant("default", None, START)
    t.epoch = 100.0
    t.remember(
        [("old", None, 10.0, "{}"), ("edge", None, 40.0, "{}"), ("new", None, 99.0, "{}")], overlap=60.0
    )
    t.remember([("late", None, 50.0, "{}"), ("timeless", None, None, "{}")], overlap=60.0)
    assert list(t.seen) == ["edge", "new", "late"]  # 10 < 100 - 60; no time: not kept
