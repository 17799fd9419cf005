"""The postgres input against a real PostgreSQL server with Logto's logs table."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from click.testing import CliRunner

from cli.main import cli
from tests.integration.harness import Pipeline
from tests.integration.test_es_delivery import all_ids, wait_count
from tests.pg import NAME_TABLES, insert

BASE = datetime(2025, 8, 20, tzinfo=UTC)


def rows(
    n,
    tenant="default",
    start=0,
    base=BASE,
    step=timedelta(seconds=1),
    key="Interaction.SignIn.Submit",
):
    return [
        (
            tenant,
            f"{tenant[:3]}{start + i:08d}",
            key,
            json.dumps(
                {
                    "result": "Success",
                    "userId": f"u{i % 7}",
                    "ip": "10.0.0.1",
                    "params": {"refresh_token": "secret-rt"},
                }
            ),
            base + step * (start + i),
        )
        for i in range(n)
    ]


def pg_pipeline(tmp_path, target, dsn, **inp):
    spec = {
        "type": "postgres",
        "dsn": dsn,
        "poll_interval": 0.05,
        "batch_size": 500,
        "overlap": "1h",
        **inp,
    }
    output = {
        "type": "elasticsearch",
        "hosts": [target.url],
        "batch_max_docs": 500,
        "retry_initial_backoff": 0.02,
        "retry_max_backoff": 0.2,
    }
    return Pipeline(tmp_path, inputs=[spec], output=output, index={"prefix": target.prefix, "replicas": 0})


def test_backfill_then_live_inserts_then_restart(tmp_path, es_target, pg):
    _srv, dsn = pg
    es = es_target.client()
    insert(dsn, rows(3000))
    p = pg_pipeline(tmp_path, es_target, dsn).start()
    pattern = f"{es_target.prefix}-default-*"
    wait_count(es, pattern, 3000, p, timeout=60)
    insert(dsn, rows(50, start=3000))
    wait_count(es, pattern, 3050, p)
    assert p.stop() == 0
    insert(dsn, rows(25, start=3050))
    p.start()
    wait_count(es, pattern, 3075, p)
    ids = all_ids(es, pattern)
    assert len(ids) == len(set(ids)) == 3075
    doc = es.search(index=pattern, size=1)["hits"]["hits"][0]["_source"]
    assert doc["logto"]["payload"]["params"]["refresh_token"] == "******"
    assert doc["organization"]["id"] == "default"
    # the checkpoint follows the acknowledgements to the last row
    p.pump(until=lambda: p.runner.store.streams["pg0:default"]["position"]["id"] == "def00003074")
    assert p.stop() == 0


def test_late_commit_inside_overlap_window_is_not_missed(tmp_path, es_target, pg):
    _srv, dsn = pg
    es = es_target.client()
    now = datetime.now(UTC)
    p = pg_pipeline(tmp_path, es_target, dsn).start()
    late = psycopg.connect(dsn)  # a transaction that commits late with an earlier created_at
    late.execute(
        "insert into logs (tenant_id, id, key, payload, created_at) values (%s, %s, %s, %s, %s)",
        (
            "default",
            "late0001",
            "RevokeToken",
            '{"result": "Success"}',
            now - timedelta(seconds=30),
        ),
    )
    insert(dsn, rows(10, base=now - timedelta(seconds=10)))
    pattern = f"{es_target.prefix}-default-*"
    wait_count(es, pattern, 10, p)
    late.commit()
    late.close()
    wait_count(es, pattern, 11, p)
    assert "late0001" in all_ids(es, pattern)
    assert p.stop() == 0


def test_ids_of_any_spelling_are_shipped_once_by_the_overlap_and_ahead_reads(tmp_path, pg):
    """The ids already shipped travel to the database as one JSON parameter: ids with quotes,
    commas, backslashes, braces or non-ASCII are matched exactly (none shipped twice, none
    taken for another), in the overlap window and among the rows dated ahead of the clock."""
    from shipper.config import PostgresInputConfig
    from shipper.pipeline.checkpoint import CheckpointStore
    from shipper.sources.postgres import PostgresSource

    _srv, dsn = pg
    odd = ['q"1', "c,2", "b\\3", "{4}", "ü5", "n 6", "NULL", "a"]
    now = datetime.now(UTC)
    insert(
        dsn, [("default", i, "RevokeToken", "{}", now - timedelta(seconds=60 - n)) for n, i in enumerate(odd)]
    )
    insert(dsn, [("default", "f" + i, "RevokeToken", "{}", now + timedelta(days=1)) for i in odd[:3]])
    cfg = PostgresInputConfig(type="postgres", dsn=dsn, overlap="1h")
    src = PostgresSource(cfg, CheckpointStore(tmp_path / "s"))

    def ids():
        src._next_poll = 0.0
        return sorted(json.loads(f.raw)["id"] for c in src.poll(1000) for f in c.lines())

    assert ids() == sorted(odd + ["f" + i for i in odd[:3]])
    assert ids() == []  # caught up: the overlap re-read and the ahead read find nothing new
    # Committed late, behind the cursor, with an id that is a prefix of others: only it.
    insert(dsn, [("default", "q", "RevokeToken", "{}", now - timedelta(seconds=59, milliseconds=500))])
    assert ids() == ["q"]
    assert ids() == []
    src.close()


def test_an_id_no_row_can_have_does_not_break_the_ids_parameter():
    """A lone surrogate (only a damaged checkpoint holds one) cannot be JSON, nor a row's id:
    it is left out of the parameter instead of failing every poll."""
    from shipper.sources.pgsql import id_list

    assert json.loads(id_list(["a", "\ud800", 'q"1', "ü"])) == ["a", 'q"1', "ü"]
    assert json.loads(id_list(iter(["x"]))) == ["x"]


def test_database_down_then_back(tmp_path, es_target, pg, caplog):
    caplog.set_level(logging.INFO)
    srv, dsn = pg
    es = es_target.client()
    insert(dsn, rows(100))
    p = pg_pipeline(tmp_path, es_target, dsn).start()
    pattern = f"{es_target.prefix}-default-*"
    wait_count(es, pattern, 100, p)
    insert(dsn, rows(100, start=100))
    srv.block(dsn, True)
    p.pump(min_time=1.0, until=lambda: True)  # no crash while the database refuses us
    assert "postgres unavailable" in caplog.text
    srv.block(dsn, False)
    wait_count(es, pattern, 200, p, timeout=40)
    assert "connected again" in caplog.text
    assert p.stop() == 0


def test_only_configured_tenants(tmp_path, es_target, pg):
    _srv, dsn = pg
    es = es_target.client()
    insert(dsn, rows(5, "default") + rows(4, "admin") + rows(3, "other"))
    p = pg_pipeline(tmp_path, es_target, dsn, tenants=["default", "admin"]).start()
    pattern = f"{es_target.prefix}-default-*"
    wait_count(es, pattern, 9, p)
    p.pump(min_time=0.5, until=lambda: True)
    es.indices.refresh(index=pattern)
    r = es.search(index=pattern, size=0, aggs={"t": {"terms": {"field": "organization.id"}}})
    assert {b["key"]: b["doc_count"] for b in r["aggregations"]["t"]["buckets"]} == {
        "default": 5,
        "admin": 4,
    }
    assert p.stop() == 0


def test_missing_created_at_index_is_warned(tmp_path, es_target, pg, caplog):
    _srv, dsn = pg
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("drop index logs__created_at_id")
    insert(dsn, rows(3))
    p = pg_pipeline(tmp_path, es_target, dsn).start()
    wait_count(es_target.client(), f"{es_target.prefix}-default-*", 3, p)
    assert "sequential scan" in caplog.text
    assert p.stop() == 0


def test_prune_deletes_only_verified_rows(tmp_path, es_target, pg):
    _srv, dsn = pg
    es = es_target.client()
    old = datetime.now(UTC) - timedelta(days=40)
    insert(dsn, rows(100, base=old))
    p = pg_pipeline(tmp_path, es_target, dsn).start()
    pattern = f"{es_target.prefix}-default-*"
    wait_count(es, pattern, 100, p)
    p.stop()
    insert(dsn, rows(20, start=100, base=old))  # old, but never shipped
    insert(dsn, rows(5, start=200, base=datetime.now(UTC) - timedelta(days=1)))  # recent
    cfg = tmp_path / "prune.toml"
    cfg.write_text(f"""
[state]
dir = "{tmp_path / "state2"}"
[[inputs]]
type = "postgres"
dsn = "{dsn}"
[output]
type = "elasticsearch"
hosts = ["{es_target.url}"]
[index]
prefix = "{es_target.prefix}"
ship_expired = true  # the fixtures are from 2025
""")
    r = CliRunner().invoke(
        cli,
        [
            "--config",
            str(cfg),
            "prune",
            "--older-than",
            "30d",
            "--dry-run",
            "--batch-size",
            "30",
            "--format",
            "json",
        ],
    )
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert (rep["candidates"], rep["verified"], rep["deleted"], rep["not_indexed"]) == (
        120,
        100,
        0,
        20,
    )
    with psycopg.connect(dsn) as c:
        assert c.execute("select count(*) from logs").fetchone()[0] == 125
    r = CliRunner().invoke(cli, ["--config", str(cfg), "prune", "--older-than", "30d", "--batch-size", "30"])
    assert r.exit_code == 0, r.output
    assert "deleted: 100" in r.stdout and "kept (not indexed yet): 20" in r.stdout
    with psycopg.connect(dsn) as c:
        left = {row[0] for row in c.execute("select id from logs")}
    assert len(left) == 25 and "def00000100" in left and "def00000000" not in left


def test_prune_unreachable_cluster_deletes_nothing(tmp_path, pg):
    _srv, dsn = pg
    insert(dsn, rows(10, base=datetime.now(UTC) - timedelta(days=40)))
    cfg = tmp_path / "p.toml"
    cfg.write_text(
        f"[[inputs]]\ntype='postgres'\ndsn='{dsn}'\n[output]\ntype='elasticsearch'\nhosts=['http://127.0.0.1:9']\n"
    )
    r = CliRunner().invoke(cli, ["--config", str(cfg), "prune", "--older-than", "30d"])
    assert r.exit_code == 3
    with psycopg.connect(dsn) as c:
        assert c.execute("select count(*) from logs").fetchone()[0] == 10


def test_row_level_security_limits_what_the_role_sees(tmp_path, es_target, pg):
    """Logto enforces tenants with RLS: a role allowed only `default` ships only `default`."""
    import uuid

    srv, dsn = pg
    role = f"shipper_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("alter table logs enable row level security")
        c.execute("alter table logs force row level security")
        c.execute(f"create role {role} login")
        c.execute(f"grant select on logs to {role}")
        c.execute(f"create policy tenant_only on logs for select to {role} using (tenant_id = 'default')")
    try:
        insert(dsn, rows(6, "default") + rows(4, "admin"))
        role_dsn = dsn.replace("postgres@", f"{role}@", 1)
        p = pg_pipeline(tmp_path, es_target, role_dsn, tenants=["default", "admin"]).start()
        pattern = f"{es_target.prefix}-default-*"
        es = es_target.client()
        wait_count(es, pattern, 6, p)
        p.pump(min_time=0.5, until=lambda: True)
        es.indices.refresh(index=pattern)
        assert es.count(index=pattern)["count"] == 6
        assert p.stop() == 0
    finally:
        with psycopg.connect(srv.admin_dsn, autocommit=True) as c:
            c.execute("select pg_terminate_backend(pid) from pg_stat_activity where usename = %s", (role,))
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("drop policy tenant_only on logs")
            c.execute(f"revoke all on logs from {role}")
        with psycopg.connect(srv.admin_dsn, autocommit=True) as c:
            c.execute(f"drop role {role}")


def test_read_ahead_pages_keep_every_row_once_in_order(tmp_path, pg):
    """A backfill reads the next pages (each after the one before) while this one ships; pages
    asked for with another budget, other tenants' reads in between and a connection lost
    mid-read change nothing."""
    from shipper.config import PostgresInputConfig
    from shipper.metrics import METRICS
    from shipper.pipeline.checkpoint import CheckpointStore
    from shipper.sources.postgres import PostgresSource

    _srv, dsn = pg
    insert(dsn, rows(60, "t1") + rows(45, "t2"))
    cfg = PostgresInputConfig(type="postgres", dsn=dsn, tenants=["t1", "t2"], batch_size=7, overlap="1h")
    src = PostgresSource(cfg, CheckpointStore(tmp_path / "state"))
    before = METRICS.get("postgres_pages_read_ahead_total")
    got: dict[str, list[str]] = {"t1": [], "t2": []}
    budgets = iter([100, 100, 3, 100, 10, 100] + [100] * 40)
    for i in range(40):
        if i == 5:  # the connection goes away with a page read ahead on it
            assert src._ahead  # pages read ahead on it
            src._failed(psycopg.OperationalError("connection lost"))
            src._next_try = 0.0
        for chunk in src.poll(next(budgets)):
            for f in chunk.lines():
                got[chunk.stream.split(":")[1]].append(json.loads(f.raw)["id"])
    src.close()
    assert got["t1"] == [f"t1{i:08d}" for i in range(60)]
    assert got["t2"] == [f"t2{i:08d}" for i in range(45)]
    assert METRICS.get("postgres_pages_read_ahead_total") - before >= 5  # one tenant at a time
    assert src._reader is None and not src._ahead


def test_a_backfill_reads_its_pages_ahead_each_after_the_last(tmp_path, pg):
    """With a steady budget every page after the first is one read ahead (two at a time), and
    the rows come once each, in order."""
    from shipper.config import PostgresInputConfig
    from shipper.metrics import METRICS
    from shipper.pipeline.checkpoint import CheckpointStore
    from shipper.sources.postgres import AHEAD_PAGES, PostgresSource

    _srv, dsn = pg
    insert(dsn, rows(70, "t3"))
    cfg = PostgresInputConfig(type="postgres", dsn=dsn, tenants=["t3"], batch_size=7, overlap="1h")
    src = PostgresSource(cfg, CheckpointStore(tmp_path / "state"))
    before = METRICS.get("postgres_pages_read_ahead_total")
    got, depth = [], 0
    for _ in range(11):  # 10 full pages, then the empty one that says it has caught up
        for chunk in src.poll(100):
            got += [json.loads(f.raw)["id"] for f in chunk.lines()]
        depth = max(depth, len(src._ahead))
    src.close()
    assert got == [f"t3{i:08d}" for i in range(70)]
    assert depth == AHEAD_PAGES and METRICS.get("postgres_pages_read_ahead_total") - before == 10


def test_the_keyset_cursor_read_from_a_line_is_the_rows_exact_time(tmp_path, pg):
    """The keyset read returns no cursor column: the cursor is the last line's created_at. It
    must be the row's time to the microsecond (ties, whole seconds, the last microsecond of a
    day, the first of 1970), or pages would skip or repeat rows."""
    from shipper.config import PostgresInputConfig
    from shipper.pipeline.checkpoint import CheckpointStore
    from shipper.sources.postgres import PostgresSource

    _srv, dsn = pg
    times = [
        datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        BASE,
        BASE,  # a tie: id breaks it
        BASE + timedelta(microseconds=1),
        BASE + timedelta(seconds=1, microseconds=10),
        BASE + timedelta(seconds=1, microseconds=10),
        BASE + timedelta(hours=23, minutes=59, seconds=59, microseconds=999_999),
        BASE + timedelta(days=1),
    ]
    table = [(t, f"t5{i:08d}", k, p, times[i]) for i, (t, _, k, p, _) in enumerate(rows(len(times), "t5"))]
    insert(dsn, table)
    cfg = PostgresInputConfig(type="postgres", dsn=dsn, tenants=["t5"], batch_size=3, overlap="1h")
    src = PostgresSource(cfg, CheckpointStore(tmp_path / "state"))
    got: list[str] = []
    with psycopg.connect(dsn, autocommit=True, options="-c TimeZone=UTC") as c:
        for _ in range(5):
            for chunk in src.poll(3):
                got += [json.loads(f.raw)["id"] for f in chunk.lines()]
            t = src.tenants[0]
            row = c.execute(
                "SELECT created_at::text, extract(epoch FROM created_at)::float8 FROM logs WHERE id = %s",
                [t.id],
            ).fetchone()
            assert row is not None and (t.ts, t.epoch) == (row[0], pytest.approx(row[1], abs=1e-6))
    src.close()
    assert got == [f"t5{i:08d}" for i in range(len(times))]


def test_a_read_ahead_that_fails_drops_the_chain_and_loses_nothing(tmp_path, pg):
    """The database fails a page being read ahead: that poll reports it (unavailable, retried),
    the pages chained on it are dropped, and once it answers again every row comes once, in
    order."""
    from shipper.config import PostgresInputConfig
    from shipper.pipeline.checkpoint import CheckpointStore
    from shipper.sources.postgres import PostgresSource

    _srv, dsn = pg
    insert(dsn, rows(40, "t4"))
    cfg = PostgresInputConfig(type="postgres", dsn=dsn, tenants=["t4"], batch_size=5, overlap="1h")
    src = PostgresSource(cfg, CheckpointStore(tmp_path / "state"))
    real, calls = src._after, [0]

    def flaky(conn, key):
        calls[0] += 1
        if calls[0] == 3:  # the second page read ahead
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return real(conn, key)

    src._after = flaky
    got, failed = [], False
    for _ in range(40):
        src._next_try = 0.0
        for chunk in src.poll(100):
            got += [json.loads(f.raw)["id"] for f in chunk.lines()]
        failed = failed or bool(src.unavailable)
    src.close()
    assert failed and calls[0] > 3
    assert got == [f"t4{i:08d}" for i in range(40)]


def test_names_are_read_with_the_rows_where_the_role_may(tmp_path, pg, caplog):
    """With Logto's name tables readable, each line carries its names (``_names``), read with
    the row; ids of other types, unknown ids and a role without the privilege get none."""
    from shipper.config import PostgresInputConfig
    from shipper.normalize import Normalizer
    from shipper.pipeline.checkpoint import CheckpointStore
    from shipper.sources.postgres import PostgresSource
    from tests.pg import NAME_TABLES

    _srv, dsn = pg
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(NAME_TABLES)
        c.execute(
            "insert into applications (tenant_id, id, name, type) values ('default', 'app-web', 'Web \"1\"', 'SPA')"
        )
        c.execute(
            "insert into users (tenant_id, id, username, name, primary_email) values "
            "('default', 'u1', '', 'Alice A', 'a@example.com'), ('other', 'u2', 'bob', null, null)"
        )
    payloads = [
        {"applicationId": "app-web", "userId": "u1"},
        {"applicationId": 7, "userId": "u2"},  # not a string; u2 is another tenant's
        {"userId": "nobody"},
    ]
    insert(
        dsn,
        [
            ("default", f"n{i}", "Interaction.SignIn.Submit", json.dumps(p), BASE)
            for i, p in enumerate(payloads)
        ],
    )

    def documents(names, email, conn_dsn=dsn):
        cfg = PostgresInputConfig(type="postgres", dsn=conn_dsn, overlap="1h")
        src = PostgresSource(
            cfg, CheckpointStore(tmp_path / f"s{names}{email}{conn_dsn[-3:]}"), names=names, email=email
        )
        (chunk,) = src.poll(100)
        src.close()
        return chunk.named, [Normalizer().line(f.raw).body for f in chunk.lines()]

    named, docs = documents(True, False)
    assert named
    assert docs[0]["logto"]["application_name"] == 'Web "1"' and docs[0]["logto"]["application_type"] == "SPA"
    assert docs[0]["user"] == {"id": "u1", "name": "Alice A"}  # no username: the display name; no email
    assert "application_name" not in docs[1]["logto"] and "name" not in docs[1]["user"]
    assert docs[2]["user"] == {"id": "nobody"}
    assert documents(True, True)[1][0]["user"]["email"] == "a@example.com"
    named, docs = documents(False, False)
    assert not named and "application_name" not in docs[0]["logto"] and "name" not in docs[0]["user"]
    role = f"reader_{uuid.uuid4().hex[:8]}"  # roles are the cluster's: a name of this test's own
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f"create role {role} login; grant select on logs to {role}")
    assert "postgres@" in dsn
    named, docs = documents(True, False, dsn.replace("postgres@", f"{role}@", 1))
    assert not named and "application_name" not in docs[0]["logto"] and len(docs) == 3
    assert f"role {role} cannot read Logto's applications and users tables" in caplog.text


def test_every_read_carries_the_names_its_ids_have_when_it_is_read(tmp_path, pg):
    """The page, the late rows of the overlap window and the rows dated after the database's
    clock each carry their names, looked up when they are read: a rename shows in the next
    read."""
    from shipper.config import PostgresInputConfig
    from shipper.normalize import Normalizer
    from shipper.pipeline.checkpoint import CheckpointStore
    from shipper.sources.postgres import PostgresSource

    _srv, dsn = pg
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(NAME_TABLES)
        c.execute(
            "insert into applications (tenant_id, id, name, type) values ('default', 'app-1', 'Shop', 'SPA')"
        )
        c.execute("insert into users (tenant_id, id, username) values ('default', 'u1', 'alice')")

    def row(i, at):
        return (
            "default",
            f"r{i}",
            "Interaction.SignIn.Submit",
            json.dumps({"applicationId": "app-1", "userId": "u1"}),
            at,
        )

    insert(dsn, [row(i, BASE + timedelta(seconds=i)) for i in range(50)])
    cfg = PostgresInputConfig(type="postgres", dsn=dsn, overlap="1h", batch_size=100)
    src = PostgresSource(cfg, CheckpointStore(tmp_path / "s"), names=True)

    def read():
        out = []
        for chunk in src.poll(1000):
            assert chunk.named
            out += [Normalizer().line(f.raw).body for f in chunk.lines()]
        return out

    docs = read()
    assert len(docs) == 50
    assert {(d["logto"]["application_name"], d["user"]["name"]) for d in docs} == {("Shop", "alice")}
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("update applications set name = 'Shop 2' where id = 'app-1'")
    # Committed late (inside the overlap window, behind the cursor), and dated ahead of the clock.
    insert(
        dsn,
        [
            row(100, BASE + timedelta(seconds=10, milliseconds=500)),
            row(101, datetime.now(UTC) + timedelta(days=2)),
        ],
    )
    src._next_poll = 0.0
    docs = read()
    src.close()
    assert sorted(d["event"]["id"] for d in docs) == ["r100", "r101"]
    assert {d["logto"]["application_name"] for d in docs} == {"Shop 2"}


def test_the_ids_shipped_are_looked_up_by_hash_also_when_the_statements_are_planned_generically(pg):
    # psycopg prepares a statement at its 6th run and the server plans it generically from its
    # 11th: `NOT (id = ANY(%(seen)s))` was then a linear search of the array for each row of the
    # overlap window (30,000 ids, 100 rows/s and overlap 5m: 10 s a poll, past statement_timeout).
    from shipper.sources.pgsql import Statements

    _srv, dsn = pg
    params = {
        "late": ["tenant", "ts", "id", "seen", "overlap", "limit"],
        "outside": ["tenant", "ahead", "limit"],
    }
    types = {"late": "text, text, text, text, text, int", "outside": "text, text, int"}
    args = {
        "late": "'default', '2025-08-20 00:00:00+00', 'x', '[\"a\", \"b\"]', '300 seconds', 1000",
        "outside": "'default', '[\"a\", \"b\"]', 1000",
    }
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(NAME_TABLES)
        c.execute("SET plan_cache_mode = force_generic_plan")
        for i, st in enumerate((Statements.build(), Statements.build(names=True))):
            for name, names in params.items():
                sql = getattr(st, name)
                for n, p in enumerate(names, 1):
                    sql = sql.replace(f"%({p})s", f"${n}")
                c.execute(f"PREPARE {name}{i} ({types[name]}) AS {sql}")
                plan = "\n".join(r[0] for r in c.execute(f"EXPLAIN EXECUTE {name}{i} ({args[name]})"))
                assert "hashed SubPlan" in plan, plan
