"""The ``webhook`` input: a receiver for Logto's signed webhook deliveries.

The only trace Logto leaves of Management API operations (``User.Deleted``,
``Role.Scopes.Updated``, ...) and of its own security signals (``Identifier.Lockout``,
``Message.RateLimited``, ``Grant.LimitExceeded``). Facts (Logto's ``libraries/hook``,
``utils/sign.ts``): ``POST`` of a JSON body, header ``logto-signature-sha-256`` = hex
HMAC-SHA256 of the body with the hook's signing key; a delivery is sent once (its client does
not retry POST), so **an acknowledged delivery must never be lost**:

- the signature is checked in constant time over the raw bytes; missing or wrong -> 401,
  counted, nothing stored; other paths 404, other methods 405, a body over
  ``max_body_bytes`` 413 (not read), a body that is not a JSON object 400 (kept in
  ``dead-letter/webhook.jsonl`` with its bytes);
- 200 is sent only after the delivery is in the spool (``<state>/webhook/<input>/``,
  fsynced); a full disk answers 503, so the sender's log shows the failure;
- the spool is read like any input and checkpointed after acknowledgement; the document's
  ``_id`` is a hash of the body, so the same delivery received twice is indexed once.

A spooled line is the record the normalizer takes: ``{"id", "key": <event>, "createdAt",
"origin": "webhook", "payload": <the body>}``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from shipper.config import WebhookInputConfig
from shipper.deadletter import DeadLetterFile, entry
from shipper.logs import Throttle
from shipper.metrics import METRICS
from shipper.pipeline.checkpoint import CheckpointStore
from shipper.sources import Chunk, Lag
from shipper.sources.spool import Spool, SpoolReader
from shipper.wake import Wake

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "logto-signature-sha-256"
ORIGIN = "webhook"
READ_TIMEOUT = 10.0  # seconds a client may take to send its request
REBIND_EVERY = 10.0


def delivery_id(body: bytes) -> str:
    """The document id of a delivery: the same body, the same id (a repeat is indexed once)."""
    return "wh-" + hashlib.sha256(body).hexdigest()[:40]


def signature(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def record_line(body: bytes, obj: dict[str, Any]) -> bytes:
    """The spooled record for a delivery: its body spliced in unchanged where it is one line."""
    event = obj.get("event")
    head = orjson.dumps(
        {
            "id": delivery_id(body),
            "key": event if isinstance(event, str) and event else "Unknown",
            "createdAt": obj.get("createdAt"),
            "origin": ORIGIN,
        }
    )
    payload = body.strip() if b"\n" not in body and b"\r" not in body else orjson.dumps(obj)
    return head[:-1] + b',"payload":' + payload + b"}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = READ_TIMEOUT  # slow clients cannot hold a thread forever
    protocol_version = "HTTP/1.1"
    server_version = "logto-shipper"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # outcomes are counted and logged by the receiver, not per request

    def _reply(self, status: int, message: str, extra: dict[str, str] | None = None) -> None:
        body = orjson.dumps({"ok": status == 200, "message": message})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _wrong_method(self) -> None:
        self.close_connection = True
        if urlsplit(self.path).path != self.server.receiver.cfg.path:
            self._reply(404, "not found")
        else:
            self._reply(405, "use POST", {"Allow": "POST"})

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = _wrong_method

    def do_POST(self) -> None:
        status, message = self.server.receiver.handle(self)
        self._reply(status, message)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    receiver: WebhookReceiver


class WebhookReceiver:
    """The HTTP side: verifies, spools, answers. Runs on its own threads."""

    def __init__(self, cfg: WebhookInputConfig, spool: Spool, deadletter: DeadLetterFile, name: str) -> None:
        self.cfg, self.spool, self.deadletter, self.name = cfg, spool, deadletter, name
        self._key = cfg.signing_key.get_secret_value().encode() if cfg.signing_key else None
        self.dl_lock = threading.Lock()
        self._warn = Throttle(60.0)
        self.on_spooled: Any = None  # called after each spooled delivery (wakes the pipeline)

    def handle(self, req: _Handler) -> tuple[int, str]:
        if urlsplit(req.path).path != self.cfg.path:
            req.close_connection = True
            return 404, "not found"
        length = req.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            req.close_connection = True
            return 411, "Content-Length required"
        n = int(length)
        if n > self.cfg.max_body_bytes:
            req.close_connection = True  # the body is not read
            METRICS.inc("webhook_rejected_too_large_total")
            self._refused(
                "too_large", f"a body of {n} bytes is over max_body_bytes {self.cfg.max_body_bytes}"
            )
            return 413, f"body over {self.cfg.max_body_bytes} bytes"
        try:
            body = req.rfile.read(n)
        except OSError:
            req.close_connection = True
            return 408, "body not received in time"
        if len(body) < n:
            req.close_connection = True
            return 400, "body shorter than Content-Length"
        if self._key is not None:
            given = (req.headers.get(SIGNATURE_HEADER) or "").strip().lower()
            if not given or not hmac.compare_digest(signature(self._key, body), given):
                METRICS.inc("webhook_rejected_signature_total")
                self._refused("signature", ("no" if not given else "a wrong") + f" {SIGNATURE_HEADER} header")
                return 401, "missing or wrong signature"
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            METRICS.inc("webhook_rejected_invalid_total")
            with self.dl_lock:
                self.deadletter.write(
                    [entry(self.name, None, "invalid_json", "webhook body is not a JSON object", body)]
                )
            self._refused("invalid", "a body that is not a JSON object (kept in dead-letter/webhook.jsonl)")
            return 400, "body is not a JSON object"
        try:
            self.spool.append(record_line(body, obj))
        except OSError as exc:
            METRICS.inc("webhook_spool_errors_total")
            if self._warn.due("spool"):
                log.error(
                    "webhook: cannot write the spool %s (%s); answering 503%s",
                    self.spool.dir,
                    exc.strerror or exc,
                    self._warn.suppressed("spool"),
                )
            return 503, "cannot store the delivery now"
        METRICS.inc("webhook_deliveries_total")
        if self.on_spooled is not None:
            self.on_spooled()
        return 200, "stored"

    def _refused(self, kind: str, why: str) -> None:
        if self._warn.due(kind):
            log.warning("webhook %s: refused %s%s", self.name, why, self._warn.suppressed(kind))


class WebhookSource:
    """Source over the spool, with the receiver listening (``receive``; not for ``run --once``)."""

    def __init__(
        self,
        cfg: WebhookInputConfig,
        store: CheckpointStore,
        state_dir: Path,
        prefix: str = "webhook",
        wake: Wake | None = None,
        receive: bool = True,
    ) -> None:
        self.cfg, self.store, self.stream = cfg, store, prefix
        self.name = f"webhook:{cfg.listen}{cfg.path}"
        self.wake = wake or Wake()
        pos = store.streams.get(prefix, {}).get("position") or {}
        segment, offset = int(pos.get("segment", 0)), int(pos.get("offset", 0))
        self.spool = Spool(state_dir / "webhook" / prefix, after_segment=segment)
        if segment == 0:  # nothing checkpointed yet: from the oldest segment there is
            segment, offset = (self.spool.segments() or [self.spool.current])[0], 0
        self.reader = SpoolReader(self.spool, segment, offset, cfg.max_line_bytes)
        self.deadletter = DeadLetterFile(state_dir / "dead-letter" / "webhook.jsonl")
        self.receiver = WebhookReceiver(cfg, self.spool, self.deadletter, self.name)
        self.receiver.on_spooled = self.wake.set
        self.unavailable = ""
        self._server: _Server | None = None
        self._next_bind = 0.0
        self._warn = Throttle(60.0)
        if receive:
            self._listen()

    def _listen(self) -> None:
        host, _, port = self.cfg.listen.rpartition(":")
        self._next_bind = time.monotonic() + REBIND_EVERY
        try:
            server = _Server((host.strip("[]"), int(port)), _Handler, bind_and_activate=True)
        except OSError as exc:
            self.unavailable = f"cannot listen on {self.cfg.listen}: {exc.strerror or exc}"
            if self._warn.due("bind"):
                log.error("webhook: %s; retrying every %.0f s", self.unavailable, REBIND_EVERY)
            return
        if self.cfg.tls_cert_file is not None and self.cfg.tls_key_file is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                ctx.load_cert_chain(self.cfg.tls_cert_file, self.cfg.tls_key_file)
            except (OSError, ssl.SSLError) as exc:
                server.server_close()
                self.unavailable = f"cannot load tls_cert_file/tls_key_file: {exc}"
                log.error("webhook: %s", self.unavailable)
                return
            # The handshake happens on the request's thread, not in accept(): a slow client
            # cannot stall the listener.
            server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        server.receiver = self.receiver
        self._server = server
        self.unavailable = ""
        threading.Thread(target=server.serve_forever, name=f"{self.stream}-http", daemon=True).start()
        scheme = "https" if self.cfg.tls_cert_file else "http"
        log.info("webhook: listening on %s://%s%s", scheme, self.cfg.listen, self.cfg.path)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1]) if self._server is not None else 0

    # -- Source protocol -----------------------------------------------------------------

    def poll(self, max_records: int) -> list[Chunk]:
        frames = self.reader.read(max_records)
        if not frames:
            return []
        position = {"segment": self.reader.segment, "offset": self.reader.offset}
        return [Chunk(self.stream, self.name, frames, position=position, offsets=False)]

    def acked(self, stream: str, position: Any) -> None:
        self.store.stage(stream, position=position, seen=int(time.time()))
        self.spool.remove_before(int(position["segment"]))

    def housekeeping(self) -> None:
        if self.deadletter.pending:
            with self.receiver.dl_lock:
                self.deadletter.retry()
        if self.unavailable and self._server is None and time.monotonic() >= self._next_bind:
            self._listen()

    def lag(self) -> list[Lag]:
        pos = self.store.streams.get(self.stream, {}).get("position") or {}
        behind = self.reader.bytes_after(int(pos.get("segment", 0)), int(pos.get("offset", 0)))
        return [Lag(self.stream, "bytes", float(behind), unavailable=self.unavailable)]

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.spool.close()
        self.deadletter.close()
