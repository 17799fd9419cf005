"""The postgres input against hostile rows: any created_at, any depth, any size, restarts and
late commits. Invariant (shipper/sources/postgres.py): every row id is either in the output
once or dead-lettered once, never both, and the rows after an odd one keep flowing."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.harness import Pipeline
from tests.pg import NAME_TABLES

TIMES = [
    "now() - interval '2 minutes'",
    "now() - interval '1 second'",
    "now() + interval '1 hour'",  # clock skew / hand-written
    "now() + interval '3 seconds'",  # becomes "now" during the run
    "'infinity'",
    "'-infinity'",
    "'0001-01-01 00:00:00+00'",
    "'1969-12-31 23:59:59+00'",
    "'9999-12-31 23:59:59+00'",
    "'0044-03-15 00:00:00+00 BC'",
    "NULL",
]


def nested(depth: int) -> str:
    return '{"result":"Success","d":' + "[" * depth + "1" + "]" * depth + "}"


payloads = st.one_of(
    st.just('{"result":"Success","ip":"10.0.0.1","applicationId":"app-web","userId":"u-alice"}'),
    st.just('{"applicationId":7,"userId":["u-alice"]}'),  # ids of other types: no names
    st.integers(0, 2000).map(nested),
    # any text jsonb can hold (it refuses \u0000)
    st.text(st.characters(blacklist_characters="\x00"), max_size=40).map(
        lambda t: json.dumps({"result": "Error", "error": t})
    ),
    st.just(json.dumps({"params": {"password": "pw", "x": "\u00e9\u4e2d\U0001f600"}})),
)
row = st.tuples(st.sampled_from(TIMES), payloads)
# A run: batches of rows; after each, the pipeline runs a while and maybe restarts.
plan = st.lists(st.tuples(st.lists(row, min_size=1, max_size=6), st.booleans()), min_size=1, max_size=4)


def _pipeline(tmp: Path, dsn: str) -> Pipeline:
    spec = {"type": "postgres", "dsn": dsn, "poll_interval": 0.02, "batch_size": 3, "overlap": "1h"}
    return Pipeline(tmp, inputs=[spec], workers=0).start()


def _settle(p: Pipeline) -> None:
    p.pump(min_time=0.3, until=lambda: True, timeout=5)


def _outcome(p: Pipeline) -> tuple[Counter[str], Counter[str]]:
    shipped = Counter(p.ids())
    dead: Counter[str] = Counter()
    for d in p.dead_letters():
        raw = d.get("raw", "")
        try:
            dead[orjson.loads(raw)["id"]] += 1
        except (orjson.JSONDecodeError, KeyError, TypeError):
            dead[raw[raw.index('"id":"') + 6 :].split('"', 1)[0]] += 1  # a line cut at max_row_bytes
    return shipped, dead


@pytest.fixture(params=[False, True], ids=["ids-only", "names-read-with-rows"])
def hostile_db(pg, request):
    _srv, dsn = pg
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("alter table logs alter column created_at drop not null")
        if request.param:  # Logto's name tables: the rows are read joined with them
            c.execute(NAME_TABLES)
            c.execute(
                "insert into applications (tenant_id, id, name, type) values ('default', 'app-web', 'Web', 'SPA')"
            )
            c.execute("insert into users (tenant_id, id, username) values ('default', 'u-alice', 'alice')")
    return dsn


@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan)
def test_every_row_shipped_or_dead_lettered_once(hostile_db, plan):
    dsn = hostile_db
    tmp = Path(tempfile.mkdtemp(prefix="pg-hostile-"))
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("truncate logs")
    n = 0
    late = psycopg.connect(dsn)  # a transaction that commits after the cursor passed its time
    try:
        late.execute(
            "insert into logs (tenant_id, id, key, payload, created_at) "
            "values ('default', 'late0', 'Interaction.SignIn.Submit', '{}', now() - interval '30 seconds')"
        )
        p = _pipeline(tmp, dsn)
        for i, (batch, restart) in enumerate(plan):
            with psycopg.connect(dsn, autocommit=True) as c:
                for when, payload in batch:
                    c.execute(
                        "insert into logs (tenant_id, id, key, payload, created_at) "
                        f"values ('default', %s, 'Interaction.SignIn.Submit', %s::jsonb, {when})",
                        (f"r{n:05d}", payload),
                    )
                    n += 1
            _settle(p)
            if i == 0:
                late.commit()
            if restart:
                assert p.stop() == 0
                p = _pipeline(tmp, dsn)
        late.commit()
        # After "now() + 3 seconds" rows come due, and after a restart, nothing changes.
        _settle(p)
        assert p.stop() == 0
        p = _pipeline(tmp, dsn)
        _settle(p)
        shipped, dead = _outcome(p)
        assert p.stop() == 0
        want = {f"r{i:05d}" for i in range(n)} | {"late0"}
        assert not [k for k, v in shipped.items() if v > 1], shipped
        assert not [k for k, v in dead.items() if v > 1], dead
        assert not set(shipped) & set(dead)
        assert set(shipped) | set(dead) == want, sorted(want - set(shipped) - set(dead))
        # Rows with no usable time are dead-lettered with their reason, the rest indexed.
        for d in p.dead_letters():
            assert d["reason"] in {
                "invalid_time",
                "missing_time",
                "invalid_json",
                "line_too_long",
                "too_deep",
            }, d
    finally:
        late.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_future_row_does_not_hold_back_the_rows_after_it(hostile_db, tmp_path):
    dsn = hostile_db
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "insert into logs values ('default', 'future', 'K', '{}', now() + interval '1 hour'), "
            "('default', 'inf', 'K', '{}', 'infinity')"
        )
        for i in range(100):
            c.execute(
                f"insert into logs values ('default', 'n{i:03d}', 'K', '{{}}', now() - interval '{100 - i} seconds')"
            )
    p = _pipeline(tmp_path, dsn)
    p.pump(until=lambda: len(p.ids()) == 101, timeout=10)
    assert p.stop() == 0
    p = _pipeline(tmp_path, dsn)  # after a restart: nothing again, nothing lost
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("insert into logs values ('default', 'after', 'K', '{}', now())")
    p.pump(until=lambda: "after" in p.ids(), timeout=10)
    assert p.stop() == 0
    ids = p.ids()
    assert len(ids) == len(set(ids)) == 102 and "future" in ids
    assert [d["reason"] for d in p.dead_letters()] == ["invalid_time"]  # 'infinity'


def test_deep_and_huge_rows_are_dead_lettered_with_their_bytes(hostile_db, tmp_path):
    dsn = hostile_db
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("insert into logs values ('default', 'deep', 'K', %s::jsonb, now())", (nested(2000),))
        c.execute(
            "insert into logs values ('default', 'big', 'K', %s::jsonb, now())",
            (json.dumps({"x": "y" * (9 << 20)}),),
        )
        c.execute("insert into logs values ('default', 'ok', 'K', '{}', now())")
    p = _pipeline(tmp_path, dsn)
    p.pump(until=lambda: "ok" in p.ids() and len(p.dead_letters()) == 2, timeout=15)
    assert p.stop() == 0
    dead = {d["detail"][:20]: d for d in p.dead_letters()}
    reasons = sorted(d["reason"] for d in dead.values())
    assert reasons == ["line_too_long", "too_deep"], reasons  # orjson parses 1,024 levels at most
    big = next(d for d in dead.values() if d["reason"] == "line_too_long")
    assert big["length"] > 9 << 20 and big["offset"] is None
    deep = next(d for d in dead.values() if d["reason"] != "line_too_long")
    assert deep["raw"].count("[") == 2000  # the raw bytes, whole
