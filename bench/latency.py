"""Latency of a quiet input: from an event appended to the log to its ``_bulk`` request.

    python -m bench.latency [--events 200] [--interval 0.05] [--exe logto-shipper]

One invocation measures both batching modes on the same machine: ``flush_when_idle = true``
(the default: a batch leaves as soon as the input has nothing more to read) and ``false`` (it
waits for ``batch_max_wait``, 1 s), with events appended one at a time at random intervals
around ``--interval``. The sink (``bench/sink.py --arrivals``) notes when each ``_id`` arrives;
what is printed is the distribution of arrival - append, per mode, and the ratio of the p99s.
Searchable also waits for the index refresh (README: "How soon is an event searchable").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.run import Sink


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


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


def measure(
    exe: str, sink: Sink, work: Path, flush_when_idle: bool, events: int, interval: float
) -> list[float]:
    """Latencies (s) of ``events`` appended one by one to a file the shipper follows."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "audit.jsonl"
    log.touch()
    cfg = work / "shipper.toml"
    cfg.write_text(
        f'[state]\ndir = "{work / "state"}"\n'
        f'[[inputs]]\ntype = "file"\npaths = ["{log}"]\n'
        f'[output]\ntype = "elasticsearch"\nhosts = ["{sink.url}"]\nsetup_on_start = false\n'
        f"flush_when_idle = {'true' if flush_when_idle else 'false'}\n"
        # default [pipeline] workers: a trickle is normalized in-process, no worker started
    )
    logfile = open(work / "shipper.log", "wb")  # noqa: SIM115 (closed in finally)
    proc = subprocess.Popen([exe, "run", "--config", str(cfg)], stdout=logfile, stderr=subprocess.STDOUT)
    try:
        time.sleep(2.0)  # started, file opened
        written: dict[str, float] = {}
        rng = random.Random(7)
        with open(log, "ab", buffering=0) as fh:
            for i in range(events):
                line = event(i)
                fh.write(line)
                written[f"lat-{i:06d}"] = time.time()
                time.sleep(rng.uniform(0.5, 1.5) * interval)
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
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            log_path = work / "shipper.log"
            raise SystemExit(
                f"the shipper did not stop within 60 s of SIGTERM; its log: {log_path}"
            ) from None
        finally:
            logfile.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.05, help="mean seconds between appended events")
    ap.add_argument(
        "--exe", default=shutil.which("logto-shipper") or str(Path(sys.executable).parent / "logto-shipper")
    )
    a = ap.parse_args(argv)
    sink = Sink(["--arrivals"])
    out: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for mode in (True, False):
                lat = measure(a.exe, sink, Path(tmp) / str(mode), mode, a.events, a.interval)
                out[f"flush_when_idle={str(mode).lower()}"] = {
                    "p50": percentile(lat, 0.5),
                    "p90": percentile(lat, 0.9),
                    "p99": percentile(lat, 0.99),
                    "max": max(lat),
                }
    finally:
        sink.close()
    print(f"events: {a.events} per mode, one every ~{a.interval:g} s (file input -> local _bulk sink)")
    for mode, q in out.items():
        print(f"{mode:<24} " + "  ".join(f"{k} {q[k]:.3f} s" for k in ("p50", "p90", "p99", "max")))
    ratio = out["flush_when_idle=true"]["p99"] / out["flush_when_idle=false"]["p99"]
    print(f"p99 ratio (idle flush / wait for batch_max_wait): {ratio:.2f}x")
    return out


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
