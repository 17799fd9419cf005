"""Latency of a quiet input: from an event written to its ``_bulk`` request.

    python -m bench.latency [--events 200] [--interval 0.05] [--exe logto-shipper]
    python -m bench.latency --input postgres [--poll 1.0 0.25]

One invocation measures both batching modes on the same machine: ``flush_when_idle = true``
(the default: a batch leaves as soon as the input has nothing more to read) and ``false`` (it
waits for ``batch_max_wait``, 1 s), with events appended one at a time at random intervals
around ``--interval``. The sink (``bench/sink.py --arrivals``) notes when each ``_id`` arrives;
what is printed is the distribution of arrival - append, per mode, and the ratio of the p99s.
Searchable also waits for the index refresh (README: "How soon an event is searchable").

``--input postgres`` inserts the events into a Logto-shaped ``logs`` table instead (a cluster of
its own, started as the test suite starts one: tests/pg.py) and measures, per ``--poll``
interval, the latency and what polling costs while nothing happens: CPU seconds per minute of
the shipper and of the database's backends over ``--idle`` seconds.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from bench.run import Sink, _stat, tree_cpu_rss


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def quantiles(lat: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(lat, 0.5),
        "p90": percentile(lat, 0.9),
        "p99": percentile(lat, 0.99),
        "max": max(lat),
    }


def event(i: int) -> bytes:
    now_ms = int(time.time() * 1000)
    rec = {
        "id": f"lat-{i:06d}",
        "key": "Interaction.SignIn.Submit",
        "createdAt": now_ms,
        "payload": {"result": "Success"},
    }
    return json.dumps(rec).encode() + b"\n"


def arrivals(sink: Sink) -> dict[str, float]:
    with urllib.request.urlopen(sink.url + "/_sink_arrivals", timeout=5) as resp:
        return dict(json.loads(resp.read()))


def start(exe: str, work: Path, config: str) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    """The shipper running ``config`` in ``work`` (its log in work/shipper.log)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "shipper.toml").write_text(f'[state]\ndir = "{work / "state"}"\n' + config)
    log = open(work / "shipper.log", "wb")  # noqa: SIM115 (closed by stop)
    cmd = [exe, "run", "--config", str(work / "shipper.toml")]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log


def stop(proc: subprocess.Popen[bytes], log: IO[bytes], work: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise SystemExit(
            f"the shipper did not stop within 60 s of SIGTERM; its log: {work / 'shipper.log'}"
        ) from None
    finally:
        log.close()


def latencies(sink: Sink, written: dict[str, float]) -> list[float]:
    """Arrival - write of every event, once all arrived (30 s at most)."""
    deadline = time.time() + 30
    got: dict[str, float] = {}
    while time.time() < deadline:
        got = arrivals(sink)
        if all(k in got for k in written):
            break
        time.sleep(0.2)
    missing = [k for k in written if k not in got]
    if missing:
        raise SystemExit(f"{len(missing)} events never arrived (first: {missing[0]})")
    return [got[k] - t for k, t in written.items()]


def output(sink: Sink, flush_when_idle: bool = True) -> str:
    return (
        f'[output]\ntype = "elasticsearch"\nhosts = ["{sink.url}"]\nsetup_on_start = false\n'
        f"flush_when_idle = {'true' if flush_when_idle else 'false'}\n"
    )


def file_input(
    exe: str, sink: Sink, work: Path, flush_when_idle: bool, events: int, interval: float
) -> list[float]:
    """Latencies (s) of ``events`` appended one by one to a file the shipper follows (default
    workers: a trickle is normalized in-process, no worker started)."""
    log = work.parent / f"{work.name}.jsonl"
    log.write_bytes(b"")
    proc, out = start(
        exe, work, f'[[inputs]]\ntype = "file"\npaths = ["{log}"]\n' + output(sink, flush_when_idle)
    )
    try:
        time.sleep(2.0)  # started, file opened
        written: dict[str, float] = {}
        rng = random.Random(7)
        with open(log, "ab", buffering=0) as fh:
            for i in range(events):
                fh.write(event(i))
                written[f"lat-{i:06d}"] = time.time()
                time.sleep(rng.uniform(0.5, 1.5) * interval)
        return latencies(sink, written)
    finally:
        stop(proc, out, work)


def backend_cpu(dsn: str) -> float:
    """CPU seconds of the database's backends serving this database (from /proc)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute("select pid from pg_stat_activity where datname = current_database()").fetchall()
    total = 0.0
    for (pid,) in rows:
        try:
            total += _stat(pid)[1]
        except OSError:
            continue
    return total


def postgres_input(
    exe: str, sink: Sink, work: Path, polls: list[float], events: int, interval: float, idle: float
) -> dict[str, Any]:
    """Per poll interval: the idle cost of polling, then the latency of rows inserted one by one."""
    import psycopg

    from tests.pg import PgServer

    server = PgServer().start()
    out: dict[str, Any] = {}
    try:
        dsn = server.database()
        for poll in polls:
            spec = f'[[inputs]]\ntype = "postgres"\ndsn = "{dsn}"\npoll_interval = {poll}\n'
            proc, log = start(exe, work / f"poll-{poll:g}", spec + output(sink))
            try:
                time.sleep(3.0)
                db0, ship0 = backend_cpu(dsn), tree_cpu_rss(proc.pid)[0]
                time.sleep(idle)
                db_idle, ship_idle = backend_cpu(dsn) - db0, tree_cpu_rss(proc.pid)[0] - ship0
                written: dict[str, float] = {}
                rng = random.Random(7)
                with psycopg.connect(dsn, autocommit=True) as c:
                    for i in range(events):
                        doc_id = f"p{poll:g}-{i:05d}"
                        c.execute(
                            "insert into logs (tenant_id, id, key, payload) values ('default', %s, %s, %s)",
                            (doc_id, "Interaction.SignIn.Submit", '{"result": "Success"}'),
                        )
                        written[doc_id] = time.time()
                        time.sleep(rng.uniform(0.5, 1.5) * interval)
                lat = latencies(sink, written)
            finally:
                stop(proc, log, work)
            out[f"postgres poll_interval={poll:g}"] = {
                **quantiles(lat),
                "idle_cpu_s_per_min": {
                    "shipper": round(60 * ship_idle / idle, 3),
                    "database": round(60 * db_idle / idle, 3),
                },
            }
    finally:
        server.stop()
    return out


def show(name: str, q: dict[str, Any]) -> None:
    lat = "  ".join(f"{k} {q[k]:.3f} s" for k in ("p50", "p90", "p99", "max"))
    cost = q.get("idle_cpu_s_per_min")
    extra = f"  idle CPU s/min: shipper {cost['shipper']}, database {cost['database']}" if cost else ""
    print(f"{name:<28} {lat}{extra}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--input", choices=["file", "postgres"], default="file")
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.05, help="mean seconds between events")
    ap.add_argument("--poll", type=float, nargs="+", default=[1.0, 0.25], help="postgres poll intervals")
    ap.add_argument("--idle", type=float, default=20.0, help="postgres: seconds of idle polling measured")
    ap.add_argument(
        "--exe", default=shutil.which("logto-shipper") or str(Path(sys.executable).parent / "logto-shipper")
    )
    a = ap.parse_args(argv)
    sink = Sink(["--arrivals"])
    out: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if a.input == "postgres":
                out = postgres_input(a.exe, sink, Path(tmp), a.poll, a.events, a.interval, a.idle)
            else:
                for mode in (True, False):
                    lat = file_input(a.exe, sink, Path(tmp) / str(mode), mode, a.events, a.interval)
                    out[f"flush_when_idle={str(mode).lower()}"] = quantiles(lat)
    finally:
        sink.close()
    print(f"events: {a.events} per run, one every ~{a.interval:g} s ({a.input} input -> local _bulk sink)")
    for name, q in out.items():
        show(name, q)
    if a.input == "file":
        ratio = out["flush_when_idle=true"]["p99"] / out["flush_when_idle=false"]["p99"]
        print(f"p99 ratio (idle flush / wait for batch_max_wait): {ratio:.2f}x")
    return out


if __name__ == "__main__":
    main()
