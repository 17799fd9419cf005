from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from shipper.sources.lines import LineSplitter, frames_of


def test_lines_across_chunks_with_offsets():
    s = LineSplitter(100)
    frames = s.feed(b"ab\ncd") + s.feed(b"ef\n\n")
    assert [(f.raw, f.start, f.end) for f in frames] == [
        (b"ab", 0, 3),
        (b"cdef", 3, 8),
        (b"", 8, 9),
    ]
    assert s.flush() is None


def test_unterminated_tail_only_on_flush():
    s = LineSplitter(100, offset=10)
    assert s.feed(b"xyz") == []
    assert s.pending == 3
    f = s.flush()
    assert (f.raw, f.start, f.end) == (b"xyz", 10, 13)


def test_over_long_line_is_capped_and_reported():
    s = LineSplitter(4)
    frames = s.feed(b"0123456789") + s.feed(b"abc\nok\n")
    assert frames[0].raw == b"0123" and frames[0].length == 13 and frames[0].too_long
    assert (frames[0].start, frames[0].end) == (0, 14)
    assert frames[1].raw == b"ok" and not frames[1].too_long
    assert s.pending == 0


@given(
    st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=20),
    st.lists(st.integers(min_value=1, max_value=17), min_size=1, max_size=10),
    st.integers(min_value=1, max_value=40),
)
def test_any_chunking_gives_same_lines(lines, cuts, max_bytes):
    data = b"".join(line + b"\n" for line in lines)
    s = LineSplitter(max_bytes)
    frames = []
    pos, i = 0, 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        frames += s.feed(data[pos : pos + step])
        pos += step
        i += 1
    assert [f.raw for f in frames] == [line[:max_bytes] for line in lines]
    assert [f.length for f in frames] == [len(line) for line in lines]
    assert frames[-1].end == len(data) if frames else True
    for a, b in itertools.pairwise(frames):
        assert a.end == b.start


def _frames_via_blocks(s: LineSplitter, reads: list[bytes]) -> list[tuple[bytes, int, int, int]]:
    """What the file source does: a block when it can, frames when it cannot."""
    out = []
    for data in reads:
        got = s.feed_block(data)
        frames = s.feed(data) if got is None else frames_of(*got)
        out += [(f.raw, f.start, f.end, f.length) for f in frames]
    last = s.flush()
    return out + ([(last.raw, last.start, last.end, last.length)] if last else [])


@given(
    st.binary(max_size=400).map(lambda b: b.replace(b"\x00", b"\n")),
    st.lists(st.integers(1, 80), min_size=1, max_size=30),
    st.integers(4, 40),
    st.integers(0, 1000),
)
def test_blocks_give_the_same_lines_as_frames(data, cuts, max_bytes, offset):
    reads, pos = [], 0
    for c in itertools.cycle(cuts):
        if pos >= len(data):
            break
        reads.append(data[pos : pos + c])
        pos += c
    ref = LineSplitter(max_bytes, offset)
    want = [(f.raw, f.start, f.end, f.length) for d in reads for f in ref.feed(d)]
    last = ref.flush()
    want += [(last.raw, last.start, last.end, last.length)] if last else []
    assert _frames_via_blocks(LineSplitter(max_bytes, offset), reads) == want


def test_block_refused_when_a_line_is_over_long_and_nothing_consumed():
    s = LineSplitter(4)
    assert s.feed_block(b"ok\n0123456789\nab") is None
    assert s.pending == 0 and s.offset == 0  # untouched: the caller feeds the same data
    frames = s.feed(b"ok\n0123456789\nab")
    assert [f.too_long for f in frames] == [False, True]
    assert s.feed_block(b"c\nde\n") == (b"abc\nde\n", 14)
