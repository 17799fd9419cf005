"""Windows' distinct counts, kept as events come and go, against a count over the window."""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from shipper.detect.windows import Windows

KEYS = st.sampled_from(["a", "b", "c", "d"])
VALUES = st.sampled_from(["u1", "u2", "u3", "u4", "u5"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), KEYS, st.integers(0, 40), VALUES),
        st.tuples(st.just("replace"), KEYS, st.integers(0, 40), VALUES),
        st.tuples(st.just("only"), KEYS, st.integers(0, 40), VALUES),
        st.tuples(st.just("recent"), KEYS, st.integers(0, 40), VALUES),
        st.tuples(st.just("clear"), KEYS, st.just(0), VALUES),
        st.tuples(st.just("restore"), KEYS, st.just(0), VALUES),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_distinct_counts_match_the_window(ops: list[tuple[str, str, int, str]]) -> None:
    w = Windows(span_ms=10, max_keys=3, distinct=True)
    now = 0
    for i, (op, key, step, value) in enumerate(ops):
        now += step
        if op == "add":
            w.add(key, now, value, f"e{i}")
        elif op in ("replace", "only"):
            w.replace(key, now, value, f"e{i}", only=op == "only")
        elif op == "recent":
            w.recent(key, now)
        elif op == "clear":
            w.clear(key)
        else:
            again = Windows(span_ms=10, max_keys=3, distinct=True)
            again.restore(w.snapshot())
            w = again
        for k in "abcd":  # what the window holds now, trimmed or not, is what is counted
            assert w.distinct(k) == len({v for _, v, _ in w._keys.get(k, ())})
    assert len(w) <= 3


def test_an_evicted_key_forgets_its_values() -> None:
    w = Windows(span_ms=1000, max_keys=1, distinct=True)
    w.add("ip1", 0, "alice", "e1")
    w.add("ip2", 1, "bob", "e2")  # ip1 evicted
    assert (w.distinct("ip1"), w.distinct("ip2"), w.evicted) == (0, 1, 1)
    w.add("ip1", 2, "carol", "e3")
    assert w.distinct("ip1") == 1


LONG_OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "add", "add", "replace", "recent"]),
        st.sampled_from("ab"),
        st.integers(0, 3),
        VALUES,
    ),
    max_size=300,
)


@settings(max_examples=200, deadline=None)
@given(LONG_OPS)
def test_windows_hold_what_a_plain_list_would_small_or_large(ops: list[tuple[str, str, int, str]]) -> None:
    """A key's events move from a list to a deque as they grow past SMALL (and back on a
    restore): what is held, returned and counted is the same as a plain model's."""
    from shipper.detect.windows import SMALL

    span = 60  # steps of 0-3 ms: up to ~120 events per key, well past SMALL
    w = Windows(span_ms=span, max_keys=10, distinct=True)
    model: dict[str, list[tuple[int, str, str]]] = {"a": [], "b": []}
    now = 0
    for i, (op, key, step, value) in enumerate(ops):
        now += step
        events = model[key]
        if op == "replace":
            events[:] = [e for e in events if e[1] != value]
        if op in ("add", "replace"):
            events.append((now, value, f"e{i}"))
        events[:] = [e for e in events if e[0] > now - span]
        got = (
            {"add": w.add, "replace": w.replace}[op](key, now, value, f"e{i}")
            if op != "recent"
            else w.recent(key, now)
        )
        assert list(got) == events
        assert w.distinct(key) == len({v for _, v, _ in events})
        if i % 50 == 49:
            again = Windows(span_ms=span, max_keys=10, distinct=True)
            again.restore(w.snapshot())
            w = again
    for key, events in model.items():
        held = w._keys.get(key, [])
        assert list(held) == events or (not events and key not in w._keys)
        assert len(held) <= SMALL or isinstance(held, deque)


def test_a_busy_key_becomes_a_deque_and_trims_the_same() -> None:
    from shipper.detect.windows import SMALL

    w = Windows(span_ms=1000, max_keys=10, distinct=True)
    for i in range(SMALL + 10):
        w.add("ip", i, f"u{i % 3}", f"e{i}")
    assert isinstance(w._keys["ip"], deque) and isinstance(w.add("other", 0, "u", "x"), list)
    held = w.recent("ip", 1000 + SMALL)  # all but the newest 9 are older than the window
    assert [e for _, _, e in held] == [f"e{i}" for i in range(SMALL + 1, SMALL + 10)]
    assert w.distinct("ip") == 3


@settings(max_examples=300, deadline=None)
@given(OPS, st.lists(st.booleans(), min_size=80, max_size=80))
def test_expiring_keys_no_later_event_can_count_changes_nothing(
    ops: list[tuple[str, str, int, str]], expire_at: list[bool]
) -> None:
    """Events in time order: windows that drop the keys ``expire`` says are out of reach answer
    every later call exactly as windows that keep them."""
    kept, expired = (Windows(span_ms=10, max_keys=100, distinct=True) for _ in range(2))
    now = 0
    for i, (op, key, step, value) in enumerate(ops):
        now += step
        if expire_at[i]:
            expired.expire(now)
        for w, out in ((kept, []), (expired, [])):
            if op == "add":
                out.append(list(w.add(key, now, value, f"e{i}")))
            elif op in ("replace", "only"):
                out.append(list(w.replace(key, now, value, f"e{i}", only=op == "only")))
            elif op == "recent":
                out.append(list(w.recent(key, now)))
            elif op == "clear":
                w.clear(key)
            if op in ("add", "replace", "only", "recent"):  # the counts as of an event's time
                out.append(w.distinct(key))
            if w is kept:
                want = out
            else:
                assert out == want
    assert len(expired) <= len(kept)


def test_expire_drops_the_keys_out_of_reach_least_recently_added_first() -> None:
    w = Windows(span_ms=10, max_keys=100, distinct=True)
    w.add("a", 0, "x", "e1")
    w.add("b", 5, "x", "e2")
    w.add("c", 30, "x", "e3")
    assert w.expire(9) == 0  # "a" at 0 is still in the window of an event at 9
    assert w.expire(10) == 1 and len(w) == 2  # an event at 10 would trim it: gone
    assert w.expire(29) == 1 and len(w) == 1  # "b"; then "c", in its window, stops the scan
    assert w.expire(100) == 1 and len(w) == 0 and w.distinct("c") == 0
