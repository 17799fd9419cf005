"""The obvious hand-written Python shipper: ``json`` + ``elasticsearch.helpers.streaming_bulk``.

    python -m bench.baseline FILE URL [--orjson]

Builds a small structured document per line (what the peers' "normalize" mode does) and sends
it with op_type create and _id = id, 1000 per bulk, gzip on.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from elasticsearch import Elasticsearch, helpers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("url")
    ap.add_argument("--orjson", action="store_true")
    a = ap.parse_args()
    loads = json.loads
    if a.orjson:
        import orjson

        loads = orjson.loads

    def actions() -> Any:
        with open(a.file, "rb") as fh:
            for line in fh:
                r = loads(line)
                p = r.get("payload") or {}
                ts = datetime.fromtimestamp(r["createdAt"] / 1000, UTC).isoformat()
                yield {
                    "_op_type": "create",
                    "_index": "bench",
                    "_id": r["id"],
                    "@timestamp": ts,
                    "event": {"action": r["key"], "outcome": p.get("result")},
                    "source": {"ip": p.get("ip")},
                    "user": {"id": p.get("userId")},
                    "user_agent": {"original": p.get("userAgent")},
                }

    es = Elasticsearch(a.url, http_compress=True, request_timeout=60)
    for _ in helpers.streaming_bulk(es, actions(), chunk_size=1000, max_retries=3):
        pass


if __name__ == "__main__":
    main()
