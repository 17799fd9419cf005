"""A fast local ``_bulk`` endpoint that answers like Elasticsearch, for benchmarks.

asyncio protocol, HTTP/1.1 keep-alive, Content-Length and chunked bodies, gzip. Answers
``GET /`` (8.15.0 info, ``X-Elastic-Product``), ``POST /_bulk`` (one item per action, status
201), anything else ``{"acknowledged":true}``; ``GET /_stats_sink`` reports documents received
``POST /_sink_reset`` zeroes the counters, ``POST /_sink_down`` / ``/_sink_up`` start and end an
outage (``_bulk`` answered 503 meanwhile). With ``--arrivals``, ``GET /_sink_arrivals`` says
when each document's ``_id`` arrived (the latency benchmark; off otherwise: it costs a parse).

    python -m bench.sink --port 19200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from typing import Any

from isal import igzip

INFO = json.dumps(
    {
        "name": "bench-sink",
        "cluster_name": "bench-sink",
        "cluster_uuid": "bench",
        "version": {"number": "8.15.0", "build_flavor": "default"},
        "tagline": "You Know, for Search",
    }
).encode()
STATS: dict[str, Any] = {"docs": 0, "bulk_requests": 0, "bytes": 0, "t_first": None, "t_last": None}
ARRIVALS: dict[str, float] | None = None  # --arrivals: _id -> time.time() of its request
DOWN = {"on": False}  # POST /_sink_down: every _bulk answered 503 (an outage), /_sink_up ends it
UNAVAILABLE = (
    b'{"error":{"root_cause":[{"type":"cluster_block_exception","reason":"blocked"}],'
    b'"type":"cluster_block_exception","reason":"blocked"},"status":503}'
)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def bulk_response(body: bytes) -> bytes:
    # Counted with C-level scans, not a Python loop per line: the sink must cost far less than
    # what it measures. Every action has a source line except ``delete``.
    lines = body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
    deletes = body.count(b'\n{"delete"') + body.startswith(b'{"delete"')
    n = (lines + deletes) // 2
    op = body[2 : body.index(b'"', 2)] if n else b"index"
    now = time.time()
    STATS["docs"] += n
    STATS["bulk_requests"] += 1
    STATS["bytes"] += len(body)
    STATS["t_first"] = STATS["t_first"] or now
    STATS["t_last"] = now
    if ARRIVALS is not None:
        for line in body.split(b"\n")[0::2]:
            if line:
                ARRIVALS[json.loads(line)[op.decode()]["_id"]] = now
    item = b'{"' + op + b'":{"status":201}}'
    return b'{"took":1,"errors":false,"items":[' + b",".join([item] * n) + b"]}"


class Http(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.t = transport
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            method, path, _ = head[0].split(" ", 2)
            hdr = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:] if ":" in h)}
            pos = end + 4
            if hdr.get("transfer-encoding", "").lower() == "chunked":
                body = bytearray()
                while True:
                    nl = self.buf.find(b"\r\n", pos)
                    if nl < 0:
                        return
                    size = int(self.buf[pos:nl].split(b";")[0], 16)
                    if len(self.buf) < nl + 2 + size + 2:
                        return
                    body += self.buf[nl + 2 : nl + 2 + size]
                    pos = nl + 2 + size + 2
                    if size == 0:
                        break
            else:
                n = int(hdr.get("content-length", "0"))
                if len(self.buf) < pos + n:
                    return
                body = self.buf[pos : pos + n]
                pos += n
            del self.buf[:pos]
            raw = bytes(body)
            if hdr.get("content-encoding", "").lower() == "gzip" and raw:
                raw = igzip.decompress(raw)  # ISA-L: ~3x cheaper than zlib for the sink
            self.respond(method, path.split("?", 1)[0], raw)

    def respond(self, method: str, path: str, body: bytes) -> None:
        ctype = b"application/json"
        status = b"200 OK"
        if path.endswith("/_bulk") and DOWN["on"]:
            status, out = b"503 Service Unavailable", UNAVAILABLE
        elif path.endswith("/_bulk"):
            out = bulk_response(body)
        elif path in ("/_sink_down", "/_sink_up"):
            DOWN["on"] = path == "/_sink_down"
            out = b"{}"
        elif path == "/_sink_arrivals":
            out = json.dumps(ARRIVALS or {}).encode()
        elif path == "/_stats_sink":
            out = json.dumps({**STATS, "cpu": cpu()}).encode()
        elif path == "/_sink_reset":
            STATS.update(docs=0, bulk_requests=0, bytes=0, t_first=None, t_last=None)
            out = b"{}"
        elif path == "/":
            out = INFO
        else:
            out = b'{"acknowledged":true}'
        head = (
            b"HTTP/1.1 "
            + status
            + b"\r\nX-Elastic-Product: Elasticsearch\r\nContent-Type: "
            + ctype
            + b"\r\nContent-Length: "
            + str(len(out)).encode()
            + b"\r\n\r\n"
        )
        self.t.write(head if method == "HEAD" else head + out)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, host, port, reuse_address=True, backlog=128)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=19200)
    ap.add_argument("--arrivals", action="store_true", help="record when each _id arrives")
    a = ap.parse_args()
    if a.arrivals:
        global ARRIVALS
        ARRIVALS = {}
    asyncio.run(serve(a.host, a.port))


if __name__ == "__main__":
    main()
