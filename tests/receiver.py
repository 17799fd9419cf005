"""A webhook endpoint for the detections' notifications (tests and bench/detect.py)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


class Receiver:
    """Answers 503 to the first ``fail`` posts; keeps the rest in ``got`` as (headers, body),
    and their arrival times in ``at``."""

    def __init__(self, fail: int = 0, path: str = "/hook/T0KEN") -> None:
        self.fail, self.refused = fail, 0
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.at: list[float] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if outer.fail:
                    outer.fail -= 1
                    outer.refused += 1
                    self.send_response(503)
                else:
                    outer.at.append(time.time())
                    outer.got.append((dict(self.headers), body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}{path}"

    def timed(self) -> list[tuple[float, dict[str, Any]]]:
        """Each alert told, with its arrival time."""
        return [(at, orjson.loads(body)["alert"]) for at, (_, body) in zip(self.at, self.got, strict=False)]

    def alerts(self) -> list[tuple[str, str]]:
        """(rule, entity) of each alert told."""
        return [(a["rule"]["name"], a["logto_shipper"]["alert"]["entity"]) for _, a in self.timed()]

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()
