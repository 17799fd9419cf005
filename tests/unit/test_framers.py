"""Framing and compression of blocks: what the workers produce, what the output stitches."""

from __future__ import annotations

import gzip as stdlib_gzip
import zlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipper.records import DocRefs
from shipper.sinks.compress import deflate, gzip, gzip_join, inflate
from shipper.sinks.elasticsearch.framing import BulkFramer
from shipper.sinks.elasticsearch.indexing import IndexNamer
from shipper.sinks.local import NdjsonFramer

blocks = st.lists(st.binary(max_size=3000), max_size=6)


@settings(max_examples=150, deadline=None)
@given(blocks, st.sampled_from([1, 2, 3, 6, 9]))
def test_stitched_fragments_are_one_gzip_member_of_the_whole(parts, level):
    sealed = [(*deflate(p, level), len(p)) for p in parts]
    body = gzip_join(sealed)
    assert stdlib_gzip.decompress(body) == b"".join(parts)
    # One member: a decoder that stops after the first member still gets everything.
    d = zlib.decompressobj(31)
    assert d.decompress(body) == b"".join(parts) and d.eof and d.unused_data == b""
    for (frag, _, _), p in zip(sealed, parts, strict=True):
        assert inflate(frag) == p  # each fragment alone (retries re-read single documents)


@given(st.binary(max_size=5000), st.integers(1, 9))
def test_gzip_round_trips(data, level):
    assert stdlib_gzip.decompress(gzip(data, level)) == data


def test_bulk_framer_writes_create_with_id_into_the_event_day():
    f = BulkFramer(IndexNamer("logto-audit", "prod"))
    line = f('id-"1', 1755763200123, b'{"a":1}')
    action, source, end = line.split(b"\n")
    assert orjson.loads(action) == {"create": {"_index": "logto-audit-prod-2025.08.21", "_id": 'id-"1'}}
    assert source == b'{"a":1}' and end == b""
    assert f.seal(line) == (line, None)  # gzip off: blocks travel plain


@pytest.mark.parametrize("framer", [NdjsonFramer(), BulkFramer(IndexNamer("p", "n"), 1)])
def test_seal_is_what_outputs_expect(framer):
    block = framer("x", 0, b"{}") * 3
    data, crc = framer.seal(block)
    if crc is None:
        assert data == block
    else:
        assert inflate(data) == block and crc == zlib.crc32(block)


@given(
    st.lists(st.tuples(st.text(max_size=40), st.integers(0, 2**62), st.integers(0, 2**32 - 1)), max_size=50)
)
def test_doc_refs_pack_and_unpack(refs):
    import pickle

    packed = DocRefs.pack([r[0] for r in refs], [r[1] for r in refs], [r[2] for r in refs])
    back = pickle.loads(pickle.dumps(packed))
    assert len(back) == len(refs) and list(back) == refs


def test_es_payload_stitches_sealed_and_unsealed_blocks():
    from shipper.records import Segment
    from shipper.sinks.elasticsearch.encode import blocks_body

    framer = BulkFramer(IndexNamer("p", "n"), 1)
    a, b = framer("1", 0, b'{"a":1}'), framer("2", 0, b'{"b":2}')
    frag, crc = framer.seal(a)
    sealed = Segment(frag, DocRefs.pack(["1"], [0], [len(a)]), len(a), crc)
    plain = Segment(b, DocRefs.pack(["2"], [0], [len(b)]), len(b), None)
    assert stdlib_gzip.decompress(blocks_body([sealed, plain], 1)) == a + b
    assert blocks_body([Segment(a, sealed.docs, len(a))], 0) == a


@pytest.mark.parametrize("framer", [NdjsonFramer(), BulkFramer(IndexNamer("p", "n"))])
def test_encode_frames_documents_as_the_framer_does(framer):
    # encode frames inline (compiled code, action lines cached per day); the framer is the reference.
    from bench.generate import lines
    from shipper.normalize import Normalizer
    from shipper.normalize.loop import encode

    normalizer = Normalizer()
    raw = [ln.rstrip(b"\n") for ln in lines(300, seed=5)]
    data, crc, size, docs, rejects, *_ = encode(raw, normalizer.line, framer)
    want = b""
    for ln in raw:
        d = normalizer.line(ln)
        want += framer(d.id, d.epoch_ms, orjson.dumps(d.body))  # type: ignore[union-attr]
    assert rejects == [] and crc is None and data == want and size == len(want)
    assert len({ms // 86_400_000 for _, ms, _ in docs}) > 1  # several days: several action lines
