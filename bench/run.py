"""One command, one invocation: every shipper on the same input against the same local sink.

    python -m bench.run [--records 1000000] [--runs 3] [--peers] [--write-results]

Measures (median of --runs, with min-max): the raw limit (read + parse + serialize, no network),
the sink's own capacity, the hand-written Python baseline (json and orjson), logto-shipper as
``pip install .`` builds it (normalizer compiled; built by bench.compiled) and as this checkout
runs it (pure Python), and, with --peers, rsyslog and syslog-ng via ../shared/bench/peers (when
installed).
Every shipper is timed the same way: from process start to the last document at the sink;
CPU is user+system of the process and all its descendants (normalizer workers included);
memory is the sum of their peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = ROOT.parent / "shared" / "bench" / "peers"
TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def generate(path: Path, n: int) -> None:
    """``n`` records into ``path``, whole or not at all (written aside, then renamed: a run
    stopped while generating left a short file that the next runs took as the input)."""
    from bench.generate import records

    part = path.with_name(path.name + ".part")
    with open(part, "wb") as fh:
        buf = []
        for i, r in enumerate(records(n, seed=42)):
            if "created_at" in r:  # the peers read the Management API shape only
                r = {
                    "tenantId": r["tenant_id"],
                    "id": r["id"],
                    "key": r["key"],
                    "payload": r["payload"] if isinstance(r["payload"], dict) else orjson.loads(r["payload"]),
                    "createdAt": int(datetime.fromisoformat(r["created_at"]).timestamp() * 1000),
                }
            buf.append(orjson.dumps(r) + b"\n")
            if len(buf) >= 10000:
                fh.write(b"".join(buf))
                buf.clear()
            del i
        fh.write(b"".join(buf))
    os.replace(part, path)


class Sink:
    def __init__(self, options: list[str] | None = None) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.sink", "--port", str(self.port), *(options or [])], cwd=ROOT
        )
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(100):
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.05)

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/_stats_sink", timeout=5) as resp:
            return dict(json.loads(resp.read()))

    def reset(self) -> None:
        req = urllib.request.Request(self.url + "/_sink_reset", method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def _stat(pid: int) -> tuple[int, float]:
    """(parent pid, CPU seconds incl. waited-for children) of one process."""
    with open(f"/proc/{pid}/stat") as f:
        st = f.read()
    fields = st[st.rindex(")") + 2 :].split()
    return int(fields[1]), sum(int(x) for x in fields[11:15]) / TCK


def _hwm_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def tree_cpu_rss(pid: int) -> tuple[float, float]:
    """CPU seconds and peak RSS (MB) of a process and all its descendants (worker processes
    included while they run). RSS is the sum of each process's peak: an upper bound, since
    pages shared between them are counted once per process."""
    tree, frontier = [pid], [pid]
    while frontier:  # /proc/PID/task/TID/children: no scan of every process on the machine
        p = frontier.pop()
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = [int(k) for k in f.read().split()]
                tree += kids
                frontier += kids
        except OSError:
            continue
    cpu = rss = 0.0
    for p in tree:
        try:
            cpu += _stat(p)[1]
            rss += _hwm_mb(p)
        except (OSError, ValueError, IndexError):
            continue
    return cpu, rss


def measure(
    sink: Sink, cmd: list[str], expect: int, timeout: float = 900, env: dict[str, str] | None = None
) -> dict[str, Any]:
    sink.reset()
    t0 = time.time()
    p = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})}
    )
    cpu = rss = 0.0
    status = "ok"
    polls = 0
    while True:
        time.sleep(0.05)
        st = sink.stats()
        polls += 1
        if p.poll() is None and (polls % 10 == 0 or st["docs"] >= expect):
            cpu, rss = tree_cpu_rss(p.pid)  # every 0.5 s: the measuring must not cost much CPU
        if st["docs"] >= expect:
            break
        if p.poll() is not None:
            status = f"exited rc={p.returncode} with {st['docs']} docs" if st["docs"] < expect else "ok"
            break
        if time.time() - t0 > timeout:
            status = "timeout"
            break
    if p.poll() is None:
        cpu, rss = tree_cpu_rss(p.pid)
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    st = sink.stats()
    elapsed = (st["t_last"] or time.time()) - t0
    return {
        "status": status,
        "docs": st["docs"],
        "elapsed_s": elapsed,
        "eps": st["docs"] / elapsed if elapsed else 0,
        "cpu_s_per_1M": cpu / max(1, st["docs"]) * 1e6,
        "rss_mb": rss,
    }


def raw_limit(path: Path) -> dict[str, Any]:
    """Read + parse + serialize every line in-process: what any Python shipper pays at least."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            orjson.dumps(orjson.loads(line))
            n += 1
    el = time.perf_counter() - t0
    return {
        "status": "ok",
        "docs": n,
        "elapsed_s": el,
        "eps": n / el,
        "cpu_s_per_1M": (time.process_time() - c0) / n * 1e6,
        "rss_mb": 0.0,
    }


def sink_capacity(sink: Sink, n: int) -> dict[str, Any]:
    """Pre-built 1000-document bulk bodies posted back to back: the sink's own ceiling."""
    import http.client

    doc = b'{"create":{"_index":"x","_id":"0123456789012345678901"}}\n' + b'{"a":"' + b"x" * 500 + b'"}\n'
    body = doc * 1000
    conn = http.client.HTTPConnection("127.0.0.1", sink.port)
    sink.reset()
    t0 = time.perf_counter()
    for _ in range(max(1, n // 1000)):
        conn.request("POST", "/_bulk", body=body, headers={"Content-Type": "application/x-ndjson"})
        conn.getresponse().read()
    el = time.perf_counter() - t0
    conn.close()
    docs = sink.stats()["docs"]
    return {
        "status": "ok",
        "docs": docs,
        "elapsed_s": el,
        "eps": docs / el,
        "cpu_s_per_1M": 0.0,
        "rss_mb": 0.0,
    }


def shipper_config(work: Path, path: Path, url: str) -> Path:
    cfg = work / "shipper.toml"
    cfg.write_text(f"""
[state]
dir = "{work / "state"}"
[[inputs]]
type = "file"
paths = ["{path}"]
[output]
type = "elasticsearch"
hosts = ["{url}"]
setup_on_start = false
gzip = true
[index]
ship_expired = true  # the generated records are from 2025, past the default retention
""")
    return cfg


SHIPPER = "logto-shipper run (normalize + mask + gzip + create/_id), as `pip install .` builds it"
SHIPPER_PURE = "logto-shipper run, pure-Python normalizer (editable install or LOGTO_SHIPPER_PURE=1)"


def compiled_label(exe: str) -> str:
    """SHIPPER, saying what the installed build's normalizer runs (``--version``): the native path,
    mypyc-compiled modules, or pure Python where compiling failed (e.g. no C compiler)."""
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    parts = [name for key, name in (("native", "native path"), ("mypyc", "mypyc")) if key in out]
    return f"{SHIPPER} ({' + '.join(parts) or 'pure Python: compiling failed'})"


def outage_memory(sink: Sink, exe: str, out: Path, backlog: int) -> dict[str, Any]:
    """Output down (every ``_bulk`` answered 503) while ``backlog`` bytes are appended to the input;
    peak RSS of the shipper's processes sampled throughout; then the output comes back and every
    line must arrive."""
    src = out / f"outage-{backlog >> 20}mb.jsonl"
    if not src.exists():
        print(f"generating {backlog >> 20} MB of records -> {src}", file=sys.stderr)
        n, per = 0, 843
        while True:  # generate in steps until big enough (record sizes vary with the mix)
            n = max(n * 2, backlog // per + 1000)
            generate(src, n)
            if src.stat().st_size >= backlog:
                break
    with open(src, "rb") as fh:
        lines = sum(1 for _ in fh)
    sink.reset()
    urllib.request.urlopen(urllib.request.Request(sink.url + "/_sink_down", method="POST"), timeout=5).read()
    samples: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "backlog.jsonl"
        log_path.touch()
        cfg = shipper_config(Path(tmp), log_path, sink.url)
        p = subprocess.Popen(
            [exe, "--config", str(cfg), "--log-level", "warning", "run"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        t0 = time.time()
        try:
            with open(src, "rb") as fin, open(log_path, "ab") as fout:
                while block := fin.read(8 << 20):  # ~8 MB at a time, as a busy Logto would
                    fout.write(block)
                    fout.flush()
                    samples.append(tree_cpu_rss(p.pid)[1])
                    time.sleep(0.05)
            for _ in range(40):  # the backlog is all there; the output is still down
                time.sleep(0.1)
                samples.append(tree_cpu_rss(p.pid)[1])
            during = max(samples)
            written = time.time() - t0
            urllib.request.urlopen(
                urllib.request.Request(sink.url + "/_sink_up", method="POST"), timeout=5
            ).read()
            t1 = time.time()
            while sink.stats()["docs"] < lines and time.time() - t1 < 900:
                time.sleep(0.2)
                samples.append(tree_cpu_rss(p.pid)[1])
            drained = time.time() - t1
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(120)
    return {
        "backlog_mb": src.stat().st_size / (1 << 20),
        "lines": lines,
        "delivered": sink.stats()["docs"],
        "outage_s": written,
        "rss_during_mb": during,
        "rss_peak_mb": max(samples),
        "drain_s": drained,
    }


def outage_report(o: dict[str, Any], normal: float | None) -> str:
    ratio = f"{o['rss_peak_mb'] / normal:.2f}x" if normal else "n/a (no normal run in this invocation)"
    return (
        f"Output down while a {o['backlog_mb']:,.0f} MB backlog ({o['lines']:,} records) was written over "
        f"{o['outage_s']:.0f} s: peak RSS {o['rss_during_mb']:.0f} MB during the outage, "
        f"{o['rss_peak_mb']:.0f} MB including the catch-up; {ratio} the normal run's peak. "
        f"After the output came back, {o['delivered']:,} of {o['lines']:,} records arrived in "
        f"{o['drain_s']:.0f} s."
    )


def peers(path: Path, runs: int) -> list[dict[str, Any]]:
    script = PEERS / "run-peers.sh"
    out = subprocess.run(
        ["bash", str(script), str(path), str(runs), "normalize"], capture_output=True, text=True, timeout=7200
    )
    rows = []
    for line in out.stdout.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def summarize(label: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    eps = [r["eps"] for r in runs]
    return {
        "label": label,
        "runs": len(runs),
        "eps": statistics.median(eps),
        "eps_min": min(eps),
        "eps_max": max(eps),
        "cpu_s_per_1M": statistics.median(r["cpu_s_per_1M"] for r in runs),
        "rss_mb": max(r["rss_mb"] for r in runs),
        "status": ",".join(sorted({r["status"] for r in runs})),
    }


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model)
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} CPUs ({model}), {system}, Python {platform.python_version()}"


def table(rows: list[dict[str, Any]], ref: dict[str, dict[str, Any]]) -> str:
    head = (
        "| tool | events/s (median, min-max) | CPU-s per 1M | peak RSS MB | "
        + " | ".join(f"vs {k}" for k in ref)
        + " |"
    )
    sep = "|" + "---|" * (4 + len(ref))
    lines = [head, sep]
    for r in rows:
        ratios = " | ".join(
            f"{r['eps'] / v['eps']:.2f}x eps, {r['cpu_s_per_1M'] / v['cpu_s_per_1M']:.2f}x cpu"
            if v["cpu_s_per_1M"]
            else f"{r['eps'] / v['eps']:.2f}x eps"
            for v in ref.values()
        )
        lines.append(
            f"| {r['label']} | {r['eps']:,.0f} ({r['eps_min']:,.0f}-{r['eps_max']:,.0f}) | "
            f"{r['cpu_s_per_1M']:.1f} | {r['rss_mb']:.0f} | {ratios} |"
        )
    return "\n".join(lines)


def postgres_report(pg: dict[str, Any], file_cpu: float | None) -> str:
    """The postgres backfill rows (bench.postgres), with their CPU against the file path's."""
    lines = [
        "| postgres backfill | rows/s | `\\copy` read limit rows/s | vs the read limit "
        "| shipper CPU-s per 1M | vs the file path's | database CPU-s per 1M |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in pg["runs"]:
        cpu = run["shipper_cpu_s_per_million"]
        vs_file = f"{cpu / file_cpu:.2f}x" if file_cpu else "n/a"
        lines.append(
            f"| {pg['rows']:,} Logto-shaped rows, {run['label']} (median of {run['runs']}) "
            f"| {run['shipper_rows_per_s']:,.0f} "
            f"| {pg['copy_rows_per_s']:,.0f} | {run['ratio']:.2f}x | {cpu:.1f} | {vs_file} "
            f"| {run['database_cpu_s_per_million']:.1f} |"
        )
    return "\n".join(lines)


def latency_report(runs: dict[str, dict[str, Any]]) -> str:
    """Event -> ``_bulk`` request latency per input and setting (bench.latency)."""
    lines = [
        "| latency: a quiet input, event -> bulk request | p50 s | p90 s | p99 s | max s | idle CPU-s/min "
        "(shipper + database) |",
        "|---|---|---|---|---|---|",
    ]
    for name, q in runs.items():
        cost = q.get("idle_cpu_s_per_min")
        idle = f"{cost['shipper']} + {cost['database']}" if cost else ""
        cells = " | ".join(f"{q[k]:.3f}" for k in ("p50", "p90", "p99", "max"))
        lines.append(f"| {name} | {cells} | {idle} |")
    return "\n".join(lines)


def footprint_report(fp: dict[str, Any]) -> str:
    return (
        f"Idle footprint (bench.footprint: a file input with nothing to read, after start-up): "
        f"{fp['processes']} process(es), RSS {fp['rss_total_mb']} MB (PSS {fp['pss_total_mb']} MB), "
        f"{fp['idle_cpu_percent']}% CPU."
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="logto-shipper benchmark")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--peers", action="store_true", help="also run rsyslog/syslog-ng from ../shared/bench/peers"
    )
    ap.add_argument("--write-results", action="store_true", help="write bench/RESULTS.md")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument(
        "--only",
        choices=["shipper", "outage"],
        help="just logto-shipper (quick iterations), or just the outage-memory run; no RESULTS.md",
    )
    ap.add_argument(
        "--pure-only",
        action="store_true",
        help="only the pure-Python run of this checkout, not the build `pip install .` makes "
        "(python -m bench.compiled; ~1 min to build)",
    )
    ap.add_argument(
        "--postgres-rows",
        type=int,
        default=0,
        help="also the postgres backfill of this many rows vs. the \\copy read limit (bench.postgres)",
    )
    ap.add_argument(
        "--latency", action="store_true", help="also event -> bulk latency, file and postgres (bench.latency)"
    )
    ap.add_argument("--footprint", action="store_true", help="also the idle footprint (bench.footprint)")
    ap.add_argument(
        "--outage-mb",
        type=int,
        default=0,
        help="also measure memory while the output is down and this much backlog builds up (1024 = 1 GB)",
    )
    a = ap.parse_args(argv)
    if a.only and a.write_results:
        ap.error("--only measures a part; RESULTS.md is written from full runs")
    if a.peers and not (PEERS / "run-peers.sh").exists():
        ap.error(f"--peers: no peers harness at {PEERS}")
    if a.peers and not Path("/usr/sbin/rsyslogd").exists():
        # Said, not skipped: a RESULTS.md without the peers' rows lost its reference silently.
        ap.error(f"--peers: rsyslog and syslog-ng are not installed here (run bash {PEERS / 'setup.sh'})")
    a.out.mkdir(parents=True, exist_ok=True)
    data = a.out / f"records-{a.records}.jsonl"
    if not data.exists():
        print(f"generating {a.records} records -> {data}", file=sys.stderr)
        generate(data, a.records)
    size = data.stat().st_size
    exe = shutil.which("logto-shipper") or str(Path(sys.executable).parent / "logto-shipper")
    main_exe = exe  # what the default rows and the outage run measure: the build `pip install .` makes
    if not a.pure_only:
        from bench.compiled import build

        main_exe = str(build(a.out / "compiled-venv"))
    sink = Sink()
    results: list[dict[str, Any]] = []
    outage: dict[str, Any] | None = None
    try:
        if not a.only:
            results.append(
                summarize(
                    "sink capacity (pre-built bulks)", [sink_capacity(sink, a.records) for _ in range(a.runs)]
                )
            )
            results.append(
                summarize(
                    "raw limit: read+parse+serialize, no network", [raw_limit(data) for _ in range(a.runs)]
                )
            )
            for label, extra in (
                ("python baseline: json + streaming_bulk", []),
                ("python baseline: orjson + streaming_bulk", ["--orjson"]),
            ):
                runs = [
                    measure(
                        sink, [sys.executable, "-m", "bench.baseline", str(data), sink.url, *extra], a.records
                    )
                    for _ in range(a.runs)
                ]
                results.append(summarize(label, runs))
        if a.only != "outage":
            builds = [(SHIPPER_PURE, exe)]
            if main_exe != exe:
                builds.insert(0, (compiled_label(main_exe), main_exe))
            for label, bexe in builds:
                runs = []
                for _ in range(a.runs):
                    with tempfile.TemporaryDirectory() as tmp:
                        cfg = shipper_config(Path(tmp), data, sink.url)
                        cmd = [bexe, "--config", str(cfg), "--log-level", "warning", "run"]
                        runs.append(measure(sink, cmd, a.records))
                results.append(summarize(label, runs))
        if a.outage_mb or a.only == "outage":
            outage = outage_memory(sink, main_exe, a.out, (a.outage_mb or 1024) << 20)
    finally:
        sink.close()
    if a.peers and not a.only:
        by: dict[str, list[dict[str, Any]]] = {}
        for r in peers(data, a.runs):
            name = r["label"].split(" run=")[0]
            by.setdefault(name, []).append(
                {
                    "status": r.get("status", "ok"),
                    "eps": r.get("eps") or 0,
                    "cpu_s_per_1M": r.get("cpu_s_per_1M") or 0,
                    "rss_mb": 0.0,
                }
            )
        results += [summarize(k, v) for k, v in by.items()]
    ref = {
        r["label"].split(":")[0].split(" (")[0]: r
        for r in results
        if r["label"].startswith(("python baseline: orjson", "rsyslog", "syslog-ng"))
    }
    report = table(results, ref) if results else ""
    if outage is not None:
        normal = next((r["rss_mb"] for r in results if r["label"].startswith(SHIPPER)), None)
        report += "\n\n" + outage_report(outage, normal)
    if a.postgres_rows and not a.only:
        from bench import postgres

        pg = postgres.main(
            ["--rows", str(a.postgres_rows), "--runs", str(a.runs), "--exe", main_exe, "--without-names"]
        )
        file_cpu = next((r["cpu_s_per_1M"] for r in results if r["label"].startswith(SHIPPER)), None)
        report += "\n\n" + postgres_report(pg, file_cpu)
    if a.latency and not a.only:
        from bench import latency

        runs = latency.main(["--exe", main_exe]) | latency.main(["--input", "postgres", "--exe", main_exe])
        report += "\n\n" + latency_report(runs)
    if a.footprint and not a.only:
        from bench import footprint

        report += "\n\n" + footprint_report(footprint.main(["--exe", main_exe]))
    print(report)
    if a.write_results:
        cmd = "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])
        (HERE / "RESULTS.md").write_text(
            f"# Benchmark results\n\nGenerated by `{cmd}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.\n\n"
            f"Machine: {machine()}.\n\nInput: {a.records:,} generated Logto records, "
            f"{size / a.records:.0f} bytes each on average, one file; every tool ships it into the same "
            f"local `_bulk` sink (`bench/sink.py`, or the peers' own sink from ../shared/bench/peers for "
            f"rsyslog/syslog-ng). Medians of {a.runs} runs; ratios are events/s and CPU-seconds per million "
            f"relative to each reference, in this same invocation.\n\n"
            f"{report}\n\nPeak RSS is the sum over a tool's processes (logto-shipper's normalizer workers "
            f"included); it is not measured for the peers (their harness does not report it).\n"
        )


if __name__ == "__main__":
    main()
