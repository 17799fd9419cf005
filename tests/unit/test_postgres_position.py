"""The postgres input's checkpoint position: what a restart resumes from."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shipper.sources.pgsql import cursor_of
from shipper.sources.postgres import SEEN_CAP, START, _epoch, _Tenant


def row(row_id: str, epoch: float) -> tuple[str, str]:
    """A keyset row: its id and a line shaped as the keyset read builds it."""
    created = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return row_id, f'{{"tenant_id":"t","id":"{row_id}","key":"k","created_at":"{created}","payload":{{}}}}'


def test_position_keeps_the_newest_seen_ids_in_order_and_reads_back():
    t = _Tenant("default", None, START)
    n = SEEN_CAP * 3 + 7  # a busy table's overlap window holds more ids than the checkpoint keeps
    t.epoch = float(n)
    t.remember([(f"id{i}", "{}", None, float(i)) for i in range(n)], [], overlap=1e9)
    pos = t.position()
    assert [x[0] for x in pos["seen"]] == [f"id{i}" for i in range(n - SEEN_CAP, n)]
    assert [x[1] for x in pos["seen"]] == [float(i) for i in range(n - SEEN_CAP, n)]
    back = _Tenant("default", pos, START)
    assert list(back.seen) == [f"id{i}" for i in range(n - SEEN_CAP, n)] and back.epoch == float(n)
    assert back.position() == pos


def test_the_newest_ids_span_runs_and_a_checkpoint_restores_them_as_runs():
    t = _Tenant("default", None, START)
    t.epoch = 10.0
    t.remember([], [row(f"a{i}", 10.0) for i in range(SEEN_CAP - 2)], overlap=60.0)
    t.epoch = 11.0
    t.remember([("late", "{}", None, 5.0)], [row(f"b{i}", 10.5 + i / 4) for i in range(3)], overlap=60.0)
    pos = json.loads(json.dumps(t.position()))  # as the registry holds it after a restart
    assert pos["seen"][:2] == [["a2", 10.0], ["a3", 10.0]] and len(pos["seen"]) == SEEN_CAP
    assert pos["seen"][-5:] == [["a4997", 10.0], ["late", 5.0], ["b0", 11.0], ["b1", 11.0], ["b2", 11.0]]
    back = _Tenant("default", pos, START)
    assert len(back.seen._runs) == 3 and list(back.seen) == [x[0] for x in pos["seen"]]
    back.seen.forget_before(9.0)  # the late run (5) waits behind the newer run in front of it
    assert len(list(back.seen)) == SEEN_CAP
    back.seen.forget_before(10.5)
    assert list(back.seen) == ["b0", "b1", "b2"]


def test_remember_forgets_what_falls_behind_the_overlap_window():
    t = _Tenant("default", None, START)
    t.epoch = 100.0
    t.remember(
        [("old", "{}", None, 10.0), ("edge", "{}", None, 40.0), ("new", "{}", None, 99.0)], [], overlap=60.0
    )
    t.remember([("late", "{}", None, 50.0), ("timeless", "{}", None, None)], [], overlap=60.0)
    assert list(t.seen) == ["edge", "new", "late"]  # 10 < 100 - 60; no time: not kept


def test_a_pages_ids_are_kept_with_the_cursors_time_until_it_falls_behind_the_window():
    t = _Tenant("default", None, START)
    t.epoch = 100.0
    t.remember([("late", "{}", None, 90.0)], [row("a", 99.0), row("b", 100.0)], overlap=60.0)
    assert t.seen.newest(5) == [("late", 90.0), ("a", 100.0), ("b", 100.0)]  # late rows first, as read
    t.epoch = 155.0
    t.remember([], [row("c", 155.0)], overlap=60.0)
    assert list(t.seen) == ["a", "b", "c"]  # 90 < 155 - 60 <= 100
    t.epoch = 161.0
    t.remember([], [], overlap=60.0)
    assert list(t.seen) == ["c"]


@pytest.mark.parametrize(
    ("cursor", "epoch"),
    [
        ("2025-08-20 00:00:00+00", 1755648000.0),
        ("2025-08-20 00:00:00.259+00", 1755648000.259),
        ("1970-01-01 00:00:00.000001+00", 1e-06),
        ("2026-12-08 23:59:59.999999+00", 1796774399.999999),
    ],
)
def test_the_keyset_cursor_is_read_back_from_the_line_the_database_built(cursor, epoch):
    # Members before it whose text holds the member's name, quotes and backslashes (JSON
    # escapes them, as the database's to_json does), and a payload member of that name.
    key = 'Sign\\In","created_at":"1999-01-01 00:00:00'
    head = {"tenant_id": "t", "id": 'x\\"y', "key": key, "created_at": cursor[:-3]}
    line = json.dumps(head, separators=(",", ":"))[:-1] + ',"payload":{"created_at":"2000-01-01"}}'
    assert cursor_of(line) == cursor
    assert _epoch(cursor) == pytest.approx(epoch, abs=1e-6)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 50, 1000])
def test_only_a_pages_rows_inside_the_overlap_window_are_kept(n):
    """A sparse table's page spans more than the window: only its newest rows are kept (found
    by a binary search over their times, ties included), with the cursor's time."""
    page = [row(f"r{i}", 1000.0 + 10 * (i // 2)) for i in range(n)]  # two rows a time: ties
    t = _Tenant("default", None, START)
    t.epoch = 1000.0 + 10 * ((n - 1) // 2) if n else 500.0
    t.remember([], page, overlap=90.0)
    inside = [r[0] for r in page if _epoch(cursor_of(r[1])) >= t.epoch - 90.0]
    assert list(t.seen) == inside and {e for _, e in t.seen.newest(SEEN_CAP)} <= {t.epoch}
    assert len(inside) == min(n, 20)  # times at the window's edge (90 s behind) kept, 100 s not
