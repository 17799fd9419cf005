"""Postgres backfill against the read limit: a Logto-shaped ``logs`` table shipped to a local sink.

    python -m bench.postgres [--rows 200000] [--runs 1] [--exe logto-shipper] [--keep | --dsn DSN]

In one invocation, on a cluster of its own (started as the test suite starts one: tests/pg.py)
and the same rows: the read limit (``psql \\copy`` of the rows, in the shipper's order, to
/dev/null), then ``logto-shipper run --once`` with the postgres input into ``bench/sink.py``.
Printed: rows/s of both and their ratio, CPU-seconds per million rows of the shipper's process
tree and of the database's backends during the backfill; with ``--runs N``, each the median of N
runs (the settings taking turns, so that a slow spell of a shared machine hits them alike).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.generate import lines
from bench.run import Sink, _stat, tree_cpu_rss
from tests.pg import NAME_TABLES

ORDER = (
    "SELECT id, key, payload::text, created_at FROM logs WHERE tenant_id = 'default' ORDER BY created_at, id"
)


def load(dsn: str, rows: int) -> None:
    """``rows`` generated records as table rows (payload as jsonb, created_at as timestamptz),
    and Logto's ``applications`` and ``users`` rows for their ids (the names the shipper adds)."""
    import psycopg

    apps: set[str] = set()
    users: set[str] = set()
    with psycopg.connect(dsn, autocommit=True) as c, c.cursor() as cur:
        with cur.copy("COPY logs (tenant_id, id, key, payload, created_at) FROM STDIN") as cp:
            for raw in lines(rows, seed=3):
                rec = json.loads(raw)
                p = json.loads(rec["payload"]) if isinstance(rec["payload"], str) else rec["payload"]
                apps.add(p.get("applicationId") or "")
                users.add(p.get("userId") or "")
                payload = rec["payload"] if isinstance(rec["payload"], str) else json.dumps(rec["payload"])
                created = rec.get("createdAt", rec.get("created_at"))
                if isinstance(created, int):
                    created = datetime.fromtimestamp(created / 1000, UTC).isoformat()
                cp.write_row(("default", rec["id"][:21], rec["key"], payload, created))
        cur.execute(NAME_TABLES)
        with cur.copy("COPY applications (tenant_id, id, name, type) FROM STDIN") as cp:
            for i, a in enumerate(sorted(apps - {""})):
                cp.write_row(("default", a, f"App {i}", "SPA"))
        with cur.copy("COPY users (tenant_id, id, username, primary_email) FROM STDIN") as cp:
            for i, u in enumerate(sorted(users - {""})):
                cp.write_row(("default", u, f"user{i}", f"user{i}@example.com"))
        cur.execute("analyze logs")


def postmaster_cpu(dsn: str) -> float:
    """CPU seconds the postmaster's exited children (the backends that served us) have used."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute("select pg_backend_pid()").fetchone()
        assert row is not None
        # While connected: the backend exits with the connection (reading it after raced).
        return _stat(_stat(int(row[0]))[0])[1]


def read_limit(psql: str, dsn: str) -> float:
    """Seconds for ``\\copy`` of the rows, in order, to /dev/null."""
    t = time.perf_counter()
    subprocess.run([psql, dsn, "-qc", f"\\copy ({ORDER}) to '/dev/null'"], check=True)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=1, help="runs of each setting; medians are reported")
    ap.add_argument(
        "--exe", default=shutil.which("logto-shipper") or str(Path(sys.executable).parent / "logto-shipper")
    )
    ap.add_argument("--extra", default="", help="config text appended (e.g. '[enrich]\\nenabled = false')")
    ap.add_argument("--input-extra", default="", help="postgres input settings (e.g. 'batch_size = 5000')")
    ap.add_argument("--wrap", nargs="*", default=[], help="a command the shipper runs under (a profiler)")
    ap.add_argument(
        "--without-names", action="store_true", help="a second run with names off ([enrich] enabled = false)"
    )
    ap.add_argument("--keep", action="store_true", help="leave the cluster up, print its DSN (for --dsn)")
    ap.add_argument("--dsn", help="a database loaded already (an earlier run's, --keep): no cluster, no load")
    a = ap.parse_args(argv)
    from tests.pg import PgServer

    server = None if a.dsn else PgServer().start()
    sink = Sink()
    try:
        dsn = a.dsn if server is None else server.database()
        if server is not None:
            load(dsn, a.rows)
        psql = shutil.which("psql") or next(Path("/usr/lib/postgresql").glob("*/bin/psql")).as_posix()
        copy_s = min(read_limit(psql, dsn) for _ in range(2))
        settings = {"with names": a.extra}
        if a.without_names:  # like for like with the file path, which reads no names
            settings["without names"] = a.extra + "\n[enrich]\nenabled = false"
        measured: dict[str, list[tuple[float, float, float]]] = {label: [] for label in settings}
        for _ in range(a.runs):
            for label, extra in settings.items():
                measured[label].append(ship(a, dsn, sink, extra))
    finally:
        sink.close()
        if server is not None and a.keep:
            print(f"kept: --dsn {dsn} (pg_ctl -D {server._datadir} stop)", file=sys.stderr)
        elif server is not None:
            server.stop()
    out: dict[str, Any] = {"rows": a.rows, "copy_rows_per_s": a.rows / copy_s}
    for label, got in measured.items():
        ship_s, cpu, db_cpu = (statistics.median(m[i] for m in got) for i in range(3))
        run = {
            "shipper_rows_per_s": a.rows / ship_s,
            "ratio": copy_s / ship_s,
            "shipper_cpu_s_per_million": cpu / a.rows * 1e6,
            "database_cpu_s_per_million": db_cpu / a.rows * 1e6,
            "runs": len(got),
        }
        out["runs"] = [*out.get("runs", []), {"label": label, **run}]
        print(
            f"{a.rows:,} Logto-shaped rows, {label} (median of {len(got)}): "
            f"\\copy {out['copy_rows_per_s']:,.0f} rows/s; "
            f"logto-shipper {run['shipper_rows_per_s']:,.0f} rows/s ({run['ratio']:.2f}x the read limit), "
            f"{run['shipper_cpu_s_per_million']:.1f} CPU-s per million (process tree; startup included), "
            f"database {run['database_cpu_s_per_million']:.1f} CPU-s per million, all delivered"
        )
    return out


def ship(a: argparse.Namespace, dsn: str, sink: Sink, extra: str) -> tuple[float, float, float]:
    """``logto-shipper run --once`` over the table: (seconds, its tree's CPU-s, the database's)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        input_extra = a.input_extra.replace("\\n", "\n")
        (work / "shipper.toml").write_text(
            f'[state]\ndir = "{work / "state"}"\n'
            f'[[inputs]]\ntype = "postgres"\ndsn = "{dsn}"\n{input_extra}\n'
            f'[output]\ntype = "elasticsearch"\nhosts = ["{sink.url}"]\nsetup_on_start = false\n'
            "[index]\nship_expired = true\n" + extra.replace("\\n", "\n")
        )
        sink.reset()
        db0 = postmaster_cpu(dsn)
        t = time.perf_counter()
        proc = subprocess.Popen(
            [*a.wrap, a.exe, "run", "--once", "--config", str(work / "shipper.toml")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cpu = 0.0
        while proc.poll() is None:
            cpu = max(cpu, tree_cpu_rss(proc.pid)[0])
            time.sleep(0.2)
        ship_s = time.perf_counter() - t
        db_cpu = postmaster_cpu(dsn) - db0  # the shipper's backends, reaped by the postmaster
        got = sink.stats()["docs"]
    if proc.returncode != 0 or got != a.rows:
        raise SystemExit(f"logto-shipper exited {proc.returncode} with {got:,} of {a.rows:,} rows delivered")
    return ship_s, cpu, db_cpu


if __name__ == "__main__":
    main()
