"""Idle footprint: memory and CPU of the daemon's whole process tree with nothing to ship.

    python -m bench.footprint [--exe logto-shipper] [--workers auto] [--idle 10]

The daemon follows an empty file into a local ``_bulk`` sink; after it settled, every process of
its tree (normalizer workers included) is read from /proc: RSS (what ``ps`` shows; pages shared
between the processes counted in each), PSS (shared pages divided among them: what the tree
really holds) and the CPU seconds spent over ``--idle`` seconds.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.run import Sink, _stat


def tree(pid: int) -> list[int]:
    out, frontier = [pid], [pid]
    while frontier:
        p = frontier.pop()
        try:
            for tid in Path(f"/proc/{p}/task").iterdir():
                kids = [int(k) for k in (tid / "children").read_text().split()]
                out += kids
                frontier += kids
        except OSError:
            continue
    return out


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of one process, MB."""
    rss = pss = 0.0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("Pss:"):
            pss = int(line.split()[1]) / 1024
    return rss, pss


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument(
        "--exe", default=shutil.which("logto-shipper") or str(Path(sys.executable).parent / "logto-shipper")
    )
    ap.add_argument("--workers", default="auto")
    ap.add_argument("--idle", type=float, default=10.0)
    a = ap.parse_args(argv)
    sink = Sink()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            (work / "audit.jsonl").touch()
            workers = '"auto"' if a.workers == "auto" else str(int(a.workers))
            cfg = work / "shipper.toml"
            cfg.write_text(
                f'[state]\ndir = "{work / "state"}"\n'
                f'[[inputs]]\ntype = "file"\npaths = ["{work / "audit.jsonl"}"]\n'
                f'[output]\ntype = "elasticsearch"\nhosts = ["{sink.url}"]\nsetup_on_start = false\n'
                f"[pipeline]\nworkers = {workers}\n"
            )
            proc = subprocess.Popen(
                [a.exe, "run", "--config", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                time.sleep(5.0)  # started, settled
                pids = tree(proc.pid)
                cpu0 = sum(_stat(p)[1] for p in pids)
                time.sleep(a.idle)
                pids = tree(proc.pid)
                cpu1 = sum(_stat(p)[1] for p in pids)
                mem = [memory_mb(p) for p in pids]
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    finally:
        sink.close()
    out = {
        "processes": len(pids),
        "rss_mb": [round(r, 1) for r, _ in mem],
        "rss_total_mb": round(sum(r for r, _ in mem), 1),
        "pss_total_mb": round(sum(p for _, p in mem), 1),
        "idle_cpu_percent": round(100 * (cpu1 - cpu0) / a.idle, 2),
    }
    print(
        f"{out['processes']} processes, RSS {' + '.join(map(str, out['rss_mb']))} = {out['rss_total_mb']} MB,"
        " "
        f"PSS {out['pss_total_mb']} MB, CPU {out['idle_cpu_percent']}% over {a.idle:g} s idle"
    )
    return out


if __name__ == "__main__":
    main()
