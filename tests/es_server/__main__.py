"""Run the test server standalone: ``python -m tests.es_server --port 9200``."""

from __future__ import annotations

import argparse
import time

from tests.es_server.server import EsTestServer


def main() -> None:
    ap = argparse.ArgumentParser(description="Strict in-memory Elasticsearch test server")
    ap.add_argument("--port", type=int, default=9200)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--version", default="8.15.0", help="version.number to report (8.x or 9.x)")
    ap.add_argument("--user", action="append", default=[], help="NAME:PASSWORD: require basic auth")
    args = ap.parse_args()
    users = dict(u.split(":", 1) for u in args.user)
    srv = EsTestServer(args.version, args.host, args.port, users=users).start()
    print(f"Elasticsearch test server {args.version} on {srv.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
