"""Windows' distinct counts, kept as events come and go, against a count over the window."""

from __future__ import annotations

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
