"""The native path (shipper/normalize/_native) gives the Python normalizer's bytes, or leaves the line.

Compiled here once per test session (wheels carry it; the editable install the suite runs does
not). Every test compares against the Python normalizer: the native path may leave a line to it
(``None``), but whatever it answers must be byte for byte what Python + orjson would have written.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.machinery
import importlib.util
import string
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.generate import lines as generated_lines
from shipper.enrich import Enricher
from shipper.normalize import DEFAULT_RULES, Document, Normalizer
from shipper.normalize.fields import AUDIT, NATIVE_DECODE, Field, Kind, ShapeError, native_rows
from shipper.normalize.loop import encode, lines_of
from shipper.sinks.elasticsearch.framing import BulkFramer
from shipper.sinks.elasticsearch.indexing import IndexNamer
from shipper.sinks.local import NdjsonFramer

ROOT = Path(__file__).resolve().parents[2]
NATIVE_DIR = ROOT / "shipper" / "normalize" / "_native"


def _load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_native_build", NATIVE_DIR / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def native(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The extension module, built once for all xdist workers (keyed by the sources' hash)."""
    build = _load_build()
    digest = hashlib.sha256(
        b"".join(p.read_bytes() for p in [*build.SOURCES, *build.HEADERS, NATIVE_DIR / "build.py"])
    )
    out = tmp_path_factory.getbasetemp().parent / f"native-{digest.hexdigest()[:16]}"
    out.mkdir(exist_ok=True)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = list(out.glob("shipper/normalize/_ecs*"))
        path = built[0] if built else build.build(out)
    loader = importlib.machinery.ExtensionFileLoader("shipper.normalize._ecs", str(path))
    spec = importlib.util.spec_from_loader("shipper.normalize._ecs", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def python_answer(n: Normalizer, raw: bytes) -> tuple[str, int, bytes] | None:
    d = n.line(raw)
    return (d.id, d.epoch_ms, orjson.dumps(d.body)) if isinstance(d, Document) else None


def assert_agrees(n: Normalizer, raw: bytes) -> bool:
    """True when the native path answered (and then it must equal Python's answer)."""
    got = n.native.line(raw)
    if got is None:
        return False
    assert got == python_answer(n, raw), raw
    return True


FRAMERS = [BulkFramer(IndexNamer("logs-logto.audit", "default")), NdjsonFramer()]


def both(lines: list[bytes], n: Normalizer, frame: Any, skip_blank: bool = True) -> tuple[Any, Any]:
    plain = Normalizer(n.masker.rules, n.max_line_bytes, native=None)
    return (
        encode(lines, n.line, frame, skip_blank=skip_blank, native=n.native),
        encode(lines, plain.line, frame, skip_blank=skip_blank),
    )


def test_generated_records_native_and_identical(native):
    n = Normalizer(native=native)
    answered = 0
    for raw in generated_lines(3000, seed=11):
        raw = raw.rstrip(b"\n")
        ok = assert_agrees(n, raw)
        answered += ok
        # Both shapes (epoch ms or ISO-8601, errors included) never need Python, unless the
        # payload is a JSON string.
        assert ok or b'"payload":"' in raw, raw
    assert answered > 2500


def test_names_the_enricher_adds_take_the_native_path(native):
    """Enriched lines are not left to Python: the names are a member of the record, mapped by
    the table, so both paths write them in the same place."""
    e = Enricher([], static_apps={})
    n = Normalizer(native=native)
    written = 0
    for raw in generated_lines(500, seed=5):
        ids = e.read_ids(raw.rstrip(b"\n"))
        assert ids is not None
        tenant, app, user = ids
        if app:
            e.apps.put((tenant, app), ('Web \u00e9 "app"', "SPA"))
        if user:
            e.users.put((tenant, user), ("alice", "a@example.com"))
        line = e.annotate(raw.rstrip(b"\n"))
        if b'"payload":"' in line:
            continue  # a JSON-string payload is Python's anyway
        assert assert_agrees(n, line), line
        body = orjson.loads(n.native.line(line)[2])
        # (a TriggerHook row teaches the names its delivery carried: the cache has those then)
        if app:
            assert (body["logto"]["application_name"], body["logto"].get("application_type")) == e.apps.get(
                (tenant, app)
            )[0]
        if user:
            assert body["user"]["name"] == e.users.get((tenant, user))[0][0] and "email" not in body["user"]
        written += body.get("logto", {}).get("application_name") == 'Web \u00e9 "app"'
    assert written > 100


@pytest.mark.parametrize("frame", FRAMERS, ids=["bulk", "ndjson"])
def test_encode_puts_left_lines_in_place(native, frame):
    lines = [ln.rstrip(b"\n") for ln in generated_lines(300, seed=5)]
    string_payloads = sum(b'"payload":"' in ln for ln in lines)
    lines[10:10] = [b"", b"  \t", b"{oops", b"\xff\xfe", b"[1]", b'{"id":"a","key":"K","createdAt":true}']
    lines.append(b'{"id":"z","key":"K","createdAt":1700000000000,"payload":{"ip":"1.2.3.4","f":1.5}}')
    lines.append(b'{"id":"y","key":"K","createdAt":1700000000000,"payload":{"a":1,"a":2}}')
    lines.append(b'{"id":"x","key":"K","createdAt":"2025-01-01T00:00:00Z"}')
    lines.append(b'{"id":"w","key":"K","createdAt":1800000000000}')  # another day: another index
    got, want = both(lines, Normalizer(native=native), frame)
    assert got[0] == want[0] and got[1:3] == want[1:3]
    assert list(got[3]) == list(want[3]) and got[4] == want[4]
    assert [r[0] for r in got[4]] == [12, 13, 14, 15]  # indexes of the rejected inputs
    assert (got[5], want[5]) == (len(got[4]) + 2 + string_payloads, 0)  # + the float and the duplicate key


@pytest.mark.parametrize("frame", FRAMERS, ids=["bulk", "ndjson"])
@pytest.mark.parametrize("skip_blank", [True, False])
def test_a_block_of_lines_encodes_as_its_lines_on_both_paths(native, frame, skip_blank):
    """A worker hands ``encode`` its request as one block; the native path reads its lines in
    place and the Python path splits it: both answer as for the list of lines, with the last
    line newline-terminated or not, and blank lines where any line may be."""
    lines = [ln.rstrip(b"\n") for ln in generated_lines(200, seed=8)]
    lines[5:5] = [b"", b"  \t", b"{oops", b"\xff\xfe", b"[1]", b'{"id":"a","key":"K","createdAt":true}']
    lines += [b'{"id":"z","key":"K","createdAt":1700000000000,"payload":{"f":1.5}}', b"\r"]
    n = Normalizer(native=native)
    plain = Normalizer(n.masker.rules, n.max_line_bytes, native=None)
    want = encode(lines, plain.line, frame, skip_blank, detect=True)
    native_want = encode(lines, n.line, frame, skip_blank, native=n.native, detect=True)
    assert want[4] and want[6] and native_want[5]  # rejections, signals, lines left to Python
    drop_left = lambda e: e[:5] + e[6:]  # noqa: E731 (how many lines Python took differs by path)
    assert drop_left(native_want) == drop_left(want)
    for block in (b"\n".join(lines) + b"\n", b"\n".join(lines)):
        assert encode(block, n.line, frame, skip_blank, native=n.native, detect=True) == native_want
        assert encode(block, plain.line, frame, skip_blank, detect=True) == want
    for block in (b"", b"\n"):  # no line; one blank line
        got = encode(block, n.line, frame, skip_blank, native=n.native)
        assert drop_left(got) == drop_left(encode(lines_of(block), plain.line, frame, skip_blank))


def test_encode_without_skip_blank_rejects_blank_lines_like_python(native):
    got, want = both(
        [b"", b'{"id":"a","key":"K","createdAt":1}'], Normalizer(native=native), FRAMERS[0], False
    )
    assert got[0] == want[0] and got[4] == want[4] == [(0, "invalid_json", "line is not valid JSON")]


def test_blank_means_the_same_to_both_paths(native):
    """``records.is_blank`` (bytes.isspace) is what the native path skips too."""
    lines = [bytes([c, c]) for c in range(256)] + [b"", b" \t\r\x0b\x0c"]
    got, want = both(lines, Normalizer(native=native), FRAMERS[1])
    assert got[4] == want[4] and len(want[4]) == 256 - 6  # the rest rejected, by both, in order


def test_every_ascii_character_at_every_alignment_is_escaped_like_orjson(native):
    n = Normalizer(native=native)
    for c in map(chr, range(0x80)):
        for at in range(10):
            text = "a" * at + c + "b" * 9 + c
            raw = orjson.dumps({"id": text, "key": "K", "createdAt": 1, "payload": {"userId": text, text: 1}})
            # a key with \0 must be escaped for the flattened mapping: Python's part
            assert assert_agrees(n, raw) is (c != "\0")


def test_custom_mask_rules_reach_the_native_path(native):
    rules = DEFAULT_RULES.extended(contain=["ssn"], params_keys=["state"])
    n = Normalizer(rules, native=native)
    raw = orjson.dumps(
        {
            "id": "1",
            "key": "ExchangeTokenBy.AuthorizationCode",
            "createdAt": 1,
            "payload": {"user_SSN": "123", "params": {"state": "s", "code": "c"}, "state": "kept"},
        }
    )
    assert assert_agrees(n, raw)
    body = orjson.loads(n.native.line(raw)[2])
    assert body["logto"]["payload"] == {
        "user_SSN": "******",
        "params": {"state": "******", "code": "******"},
        "state": "kept",
    }


def test_long_lines_deep_nesting_and_limits(native):
    n = Normalizer(max_line_bytes=1 << 20, native=native)
    big = {
        "id": "b",
        "key": "K",
        "createdAt": 5,
        "payload": {"blob": "x" * 400_000, "list": list(range(5000))},
    }
    assert assert_agrees(n, orjson.dumps(big))  # beyond yyjson's arena: its malloc path
    line = b'{"id":"d","key":"K","createdAt":5,"payload":{"deep":' + b"[" * 300 + b"]" * 300 + b"}}"
    assert n.native.line(line) is None and isinstance(n.line(line), Document)  # Python decides
    assert (
        encode([line], n.line, FRAMERS[1], native=n.native)[4][0][1] == "too_deep"
    )  # orjson writes 255 levels at most
    deeper = b'{"id":"d","key":"K","createdAt":5,"x":' + b"[" * 2000 + b"]" * 2000 + b"}"
    assert n.native.line(deeper) is None and not isinstance(n.line(deeper), Document)
    small = Normalizer(max_line_bytes=100, native=native)
    assert small.native.line(orjson.dumps(big)) is None


def test_callback_failure_costs_the_line_not_the_block(native):
    class Broken(Normalizer):
        def _event_json(self, key: str, outcome: str) -> tuple[bytes, bytes]:
            raise RuntimeError("boom")

    n = Broken(native=native)
    ok = b'{"id":"a","key":"K","createdAt":1}'
    _, _, _, docs, rejects, left, _ = encode([ok, ok], n.line, FRAMERS[0], native=n.native)
    assert left == 2
    assert rejects == [] and len(list(docs)) == 2  # left to Python, which does not use the callback


def test_a_call_made_while_the_path_is_busy_is_left_to_python(native):
    """A callback runs Python code, so another thread may call in meanwhile: it must not share
    the buffers in use, and gets "Python decides" for every line."""
    n = Normalizer(native=native)
    raw = b'{"id":"a","key":"K","createdAt":1,"payload":{"first":1}}'
    seen: list[Any] = []

    def verdict(key: str, in_params: bool) -> int:
        if not seen:
            seen.append(fast.line(raw))
            seen.append(fast.encode([raw, b"", raw], FRAMERS[1].action, True))
        return n.masker._verdict(key, in_params)

    fast = native.Fast(verdict, n._event_json, lambda a, b: None, 1 << 20, native_rows(), NATIVE_DECODE)
    assert fast.line(raw) == python_answer(n, raw)
    assert seen[0] is None
    block, ids, times, sizes, left, watched = seen[1]
    assert (block, ids, times, sizes, watched) == (b"", [], [], [], []) and [i for i, _, _ in left] == [0, 2]
    assert fast.line(raw) == python_answer(n, raw)  # and it is itself again


def test_a_new_row_reaches_both_paths_alike(native):
    """Adding a Logto field is one row: both normalizers follow it, in the same place."""
    at = next(i for i, r in enumerate(AUDIT) if r.path == "logto.payload")
    rows = (*AUDIT[:at], Field("logto.organization_id", Kind.STR, ("payload.organizationId",)), *AUDIT[at:])
    n = Normalizer(native=native, fields=rows)
    raw = b'{"id":"o","key":"K","createdAt":1,"payload":{"organizationId":"org1","hookId":"h"}}'
    assert assert_agrees(n, raw)
    logto = orjson.loads(n.native.line(raw)[2])["logto"]
    assert list(logto) == ["family", "hook_id", "organization_id", "payload"]
    assert logto["organization_id"] == "org1"
    assert "organization_id" not in Normalizer(native=native).line(raw).body["logto"]  # type: ignore[union-attr]


def test_the_native_path_refuses_a_table_it_cannot_follow(native):
    n = Normalizer(native=None)
    args = (n.masker._verdict, n._event_json, lambda a, b: None, 1 << 20)
    good = native_rows()
    with pytest.raises(ValueError, match="kind 13 is not known"):
        native.Fast(*args, ((13, False, (b'"x"',), (), (), -1),), NATIVE_DECODE)
    with pytest.raises(ValueError, match="has no path"):
        native.Fast(*args, ((0, False, (), (), (), -1),), NATIVE_DECODE)
    with pytest.raises(ValueError, match="do not fit kind 5"):
        native.Fast(*args, ((5, False, (b'"g"',), ((b"a",),), (), -1),), NATIVE_DECODE)
    with pytest.raises(ValueError, match="at most 96 rows"):
        native.Fast(*args, good * 3, NATIVE_DECODE)
    with pytest.raises(ShapeError, match="INT is not known to the native path"):
        native_rows((Field("http.response.status_code", Kind.INT, ("payload.status",)),))
    assert native.Fast(*args, good, NATIVE_DECODE).line(b'{"id":"a","key":"K","createdAt":1}') is not None


# -- property test: hypothesis-made records, duplicate keys and all ---------------------------

KEYS = [
    "password",
    "client_secret",
    "refresh_token",
    "Token",
    "code",
    "code_verifier",
    "params",
    "state",
    "x-api-key",
    "TO\u212aEN",
    "secretive",
    "ok",
    "name",
    "version",
    "error",
    "userId",
    "ip",
    "a",
    "b",
    "\u00e9t\u00e9",
    "authorization",
    "cookie",
    "Params",
]
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
STRS = st.one_of(
    TEXT, st.sampled_from(["", " ", "Success", "Error", "{", ' {"a":1}', "\u00a0{}", "\x1f", '"\\'])
)


class Obj(list):  # pairs, so duplicate keys can be written
    pass


def mostly(
    usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], tenths: int = 9
) -> st.SearchStrategy[Any]:
    """``usual`` nine times in ten (``st.one_of`` flattens, so repeating a branch does not weigh it)."""
    return st.integers(0, 9).flatmap(lambda r: usual if r < tenths else rare)


def scalars() -> st.SearchStrategy[Any]:
    usual = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), STRS)
    # Floats and integers beyond 64 bits are left to Python: rarer, so most records are answered.
    rare = st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False, allow_infinity=False)
    )
    return mostly(usual, rare)


def values(depth: int = 3) -> st.SearchStrategy[Any]:
    if depth == 0:
        return scalars()
    inner = values(depth - 1)
    return st.one_of(
        scalars(),
        st.lists(inner, max_size=3),
        st.lists(st.tuples(st.one_of(st.sampled_from(KEYS), TEXT), inner), max_size=4).map(Obj),
    )


def dump(v: Any) -> bytes:
    if isinstance(v, Obj):
        return b"{" + b",".join(orjson.dumps(k) + b":" + dump(x) for k, x in v) + b"}"
    if isinstance(v, list):
        return b"[" + b",".join(dump(x) for x in v) + b"]"
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v).encode()  # beyond 64 bits too
    return orjson.dumps(v)


IPS = st.sampled_from(
    [
        "1.2.3.4",
        " 10.0.0.1 ",
        "::ffff:1.2.3.4",
        "::FFFF:1.2.3.4",
        "2001:DB8::1",
        "::ffff:0:1.2.3.4",
        "01.2.3.4",
        "1.2.3",
        "::",
        "x",
        "1.2.3.4\x00",
        "\u00a01.2.3.4",
        "fe80::1%eth0",
        "0000:0000:0000:0000:0000:ffff:7f00:1",
    ]
)
OFFSETS = [timezone(timedelta(minutes=m)) for m in (-1439, -330, 60, 345, 1439)]
ISO = st.builds(
    lambda dt, spec, sep: dt.isoformat(sep=sep, timespec=spec).replace(
        "+00:00", "Z" if spec == "seconds" else "+00:00"
    ),
    st.datetimes(
        datetime(1969, 12, 31), datetime(9999, 12, 31), timezones=st.sampled_from([None, UTC, *OFFSETS])
    ),
    st.sampled_from(["auto", "seconds", "milliseconds", "microseconds", "minutes"]),
    st.sampled_from(["T", " ", "t"]),
)
TIMES = mostly(
    st.one_of(
        st.integers(0, 253402300799999),
        st.sampled_from([" 1700000000000 ", "1700000000000"]),
        ISO,
        ISO.map(lambda t: t[:23] + t[26:] if len(t) > 26 and t[19] == "." else t),  # milliseconds
        ISO.map(lambda t: t[:21] + t[26:] if len(t) > 26 and t[19] == "." else t),  # one digit
    ),
    st.one_of(
        st.integers(min_value=-5, max_value=253402300799999 + 5),
        st.sampled_from(
            [
                "\u00b2",
                "",
                "2025-08-20T00:00:00.5+00:00",
                "2025-02-29T00:00:00",
                "2025-08-20T24:00:00",
                "2025-08-20T00:00:00.1234567",
                "2025-08-20T00:00:00+0100",
                "0001-01-01T00:00:00+23:59",
                "2025-08-20T00:00:60",
                "2025-13-01T00:00:00",
                True,
                None,
            ]
        ),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
)
ERRORS = st.one_of(
    values(2),
    st.sampled_from(
        [
            '{"code":"x","message":"m","name":"E","stack":"s"}',
            '  {"message":{"a":[1]}} ',
            "{no",
            '{"a":1,"a":2}',
            '{"message":1.5}',
            "\u00a0{}",
        ]
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "message": values(1),
            "code": st.one_of(STRS, st.integers(), st.booleans()),
            "name": STRS,
            "stack": STRS,
        },
    ).map(lambda d: Obj(d.items())),
)
UA = st.fixed_dictionaries(
    {},
    optional={
        "ua": STRS,
        "browser": st.one_of(
            values(1),
            st.fixed_dictionaries({}, optional={"name": STRS, "version": STRS}).map(lambda d: Obj(d.items())),
        ),
        "os": st.fixed_dictionaries({}, optional={"name": STRS, "version": STRS}).map(
            lambda d: Obj(d.items())
        ),
        "device": st.one_of(st.none(), st.fixed_dictionaries({"model": STRS}).map(lambda d: Obj(d.items()))),
    },
).map(lambda d: Obj(d.items()))
COORD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-200, 200),
    STRS,
    st.sampled_from(["52.52", " 13.4 ", "1_0", "nan", "inf", "-91"]),
)
CTX = st.fixed_dictionaries(
    {}, optional={"country": STRS, "city": STRS, "latitude": COORD, "longitude": COORD}
).map(lambda d: Obj(d.items()))
# Every payload member the audit table reads (fields.py), so a new row is exercised here without
# an edit; members with inner structure get strategies of their own.
SHAPED = {
    "result": st.one_of(STRS, values(0)),
    "ip": st.one_of(IPS, values(0)),
    "hookId": values(0),
    "userAgentParsed": st.one_of(UA, values(1)),
    "signInContext": st.one_of(CTX, values(1)),
    "error": ERRORS,
}
READ = {s.split(".")[1] for row in AUDIT for s in row.sources if s.startswith("payload.")}
assert set(SHAPED) <= READ
PAYLOAD_FIELDS = {k: SHAPED.get(k, st.one_of(STRS, values(0))) for k in sorted(READ)} | {
    "params": values(2),
    "extra": values(3),
}
PAYLOAD = st.fixed_dictionaries({}, optional=PAYLOAD_FIELDS).flatmap(
    lambda d: st.permutations(list(d.items())).map(Obj)
)


@st.composite
def records(draw: st.DrawFn) -> bytes:
    fields: list[tuple[str, Any]] = []
    ids = st.text(string.ascii_letters + '"\\\u00e9', min_size=1, max_size=8)
    fields.append(("id", draw(mostly(ids, values(0)))))
    keys = st.sampled_from(
        [
            "Interaction.SignIn.Submit",
            "ExchangeTokenBy.RefreshToken",
            "TriggerHook.PostRegister",
            "Unknown",
            "Custom.\u00e9",
        ]
    )
    fields.append(("key", draw(mostly(keys, st.one_of(st.just(""), values(0))))))
    fields.append((draw(st.sampled_from(["createdAt", "created_at"])), draw(TIMES)))
    if draw(st.booleans()):
        fields.append((draw(st.sampled_from(["tenantId", "tenant_id"])), draw(st.one_of(STRS, values(0)))))
    payload = draw(mostly(PAYLOAD, st.one_of(st.none(), values(1)), 8))
    if payload is not None or draw(st.booleans()):
        fields.append(("payload", payload))
    if draw(st.integers(0, 19)) == 0:  # a duplicated top-level key
        fields.append(draw(st.sampled_from(fields)))
    return dump(Obj(draw(st.permutations(fields))))


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw=records())
def test_native_answers_exactly_like_python(native, raw):
    assert_agrees(_NORMALIZERS.setdefault("n", Normalizer(native=native)), raw)


_NORMALIZERS: dict[str, Normalizer] = {}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raws=st.lists(records(), max_size=12), newline=st.booleans())
def test_any_block_encodes_as_its_lines(native, raws, newline):
    n = _NORMALIZERS.setdefault("n", Normalizer(native=native))
    lines = [r for r in raws if b"\n" not in r]
    block = b"\n".join(lines) + (b"\n" if newline and lines else b"")
    assert encode(block, n.line, FRAMERS[0], True, native=n.native) == encode(
        lines, n.line, FRAMERS[0], True, native=n.native
    )


def test_the_runner_counts_lines_left_to_python(native, tmp_path):
    from shipper.metrics import METRICS
    from tests.integration.harness import Pipeline, output_ids, record

    p = Pipeline(tmp_path, workers=0).start()
    assert p.runner is not None
    p.runner.normalizer = Normalizer(native=native)
    before = METRICS.get("records_left_to_python_total")
    float_line = b'{"id":"f","key":"K","createdAt":1755763200000,"payload":{"lat":1.5}}'
    (p.logs / "a.jsonl").write_bytes(b"\n".join([record(1), float_line, b"{bad", record(2)]) + b"\n")
    try:
        p.pump(lambda: len(output_ids(p.out)) >= 3)
    finally:
        p.stop()
    assert output_ids(p.out) == ["r0000001", "f", "r0000002"]
    assert METRICS.get("records_left_to_python_total") - before == 2  # the float and the bad line


def test_payloads_flattened_refuses_are_left_to_python_and_framed_alike(native):
    """Deeper than 20 keys, a \\0 or an over-long key: the native path leaves the line to the
    Python normalizer (which reshapes it); a block mixing them frames exactly as Python does."""
    n = Normalizer(native=native)
    deep: object = "leaf"
    for i in range(21):
        deep = {f"k{i}": deep}
    shallow: object = "leaf"
    for i in range(20):
        shallow = {f"k{i}": shallow}
    cases = [{"d": deep}, {"a\0b": 1}, {"k" * 1001: 1}, {"arr": [[[[shallow]]]]}]
    lines = [
        orjson.dumps({"id": f"x{i}", "key": "K", "createdAt": 1, "payload": p}) for i, p in enumerate(cases)
    ]
    assert [assert_agrees(n, raw) for raw in lines] == [False, False, False, False]
    # 20 keys exactly fit: the native path answers, like Python
    ok = orjson.dumps({"id": "y", "key": "K", "createdAt": 1, "payload": shallow})
    assert assert_agrees(n, ok)
    for frame in FRAMERS:
        got, want = both([*lines, ok, *lines], n, frame)
        assert got[:5] == want[:5] and got[5] == 8


def test_webhook_deliveries_are_left_to_python_and_framed_alike(native):
    """``origin: webhook`` records (the webhook input's spool) are mapped by Python only."""
    from shipper.sources.webhook import record_line

    n = Normalizer(native=native)
    bodies = [
        {
            "event": "PostSignIn",
            "createdAt": "2026-12-01T10:00:00.000Z",
            "userId": "u1",
            "userIp": "10.0.0.1",
        },
        {
            "event": "User.Deleted",
            "createdAt": "2026-12-01T10:00:01.000Z",
            "data": {"id": "u2"},
            "status": 204,
        },
    ]
    lines = [record_line(orjson.dumps(b), b) for b in bodies]
    assert [assert_agrees(n, raw) for raw in lines] == [False, False]
    row = orjson.dumps({"id": "r", "key": "Interaction.SignIn.Submit", "createdAt": 1, "payload": {}})
    for frame in FRAMERS:
        got, want = both([lines[0], row, lines[1]], n, frame)
        assert got[:5] == want[:5] and got[5] == 2


@pytest.mark.parametrize("frame", FRAMERS, ids=["bulk", "ndjson"])
def test_detections_read_the_same_signals_from_both_paths(native, frame):
    """The signals come from the framed block, so the native path's documents and Python's give
    the same ones (and the block's bytes are the same as without detection)."""
    lines = [raw.rstrip(b"\n") for raw in generated_lines(3000, seed=3)]
    n = Normalizer(native=native)
    plain = Normalizer(native=None)
    fast = encode(lines, n.line, frame, skip_blank=True, native=n.native, detect=True)
    slow = encode(lines, plain.line, frame, skip_blank=True, detect=True)
    assert fast[6] == slow[6] and len(fast[6]) > 100
    assert fast[:3] == encode(lines, n.line, frame, skip_blank=True, native=n.native)[:3]
