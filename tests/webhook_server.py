"""A real webhook receiver on loopback (the standard library's http.server, in a thread) for export tests.

It checks each POST's signature (``X-C360-Signature`` over ``X-C360-Timestamp`` + "." + body, HMAC-SHA256
with the shared secret, the timestamp within five minutes) and answers 401 when it does not verify. It
keeps every request it got (``requests``) and the batches it accepted by idempotency key (``batches``: a
batch sent again is accepted once). A test scripts failures: ``fail`` is a list of answers to give first
(``(503, None)``, ``(429, "1")`` with a Retry-After, ...), ``fail_after`` a number of accepted batches after
which every request gets 503, ``lose_answers`` a number of batches accepted whose answer is a 503 anyway
(as if the answer were lost on the way back).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOLERANCE = 300


@dataclass
class Received:
    """One request: its headers, its body, whether the signature verified and what was answered."""

    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Script:
    """What the receiver answers before accepting (see the module's doc)."""

    fail: list[tuple[int, str | None]] = field(default_factory=list)
    fail_after: int | None = None
    lose_answers: int = 0


class WebhookServer:
    """The receiver on 127.0.0.1 at a free port; ``url`` is where to POST."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.script = Script()
        self.requests: list[Received] = []
        self.batches: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/audience"

    def start(self) -> WebhookServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def rows(self) -> list[dict[str, Any]]:
        """The rows of the accepted batches, in batch order."""
        return [row for key in sorted(self.batches) for row in self.batches[key]["rows"]]

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        stamp = headers.get("X-C360-Timestamp", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > TOLERANCE:
            return False
        expected = "sha256=" + hmac.new(self.secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, headers.get("X-C360-Signature", ""))

    def _answer(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        with self._lock:
            verified = self.verify(headers, body)
            status, extra = 200, {}
            script = self.script
            if not verified:
                status = 401
            elif script.fail:
                code, after = script.fail.pop(0)
                status, extra = code, ({"Retry-After": after} if after is not None else {})
            elif script.fail_after is not None and len(self.batches) >= script.fail_after:
                status = 503
            else:
                key = headers.get("Idempotency-Key", "")
                if key not in self.batches:
                    self.batches[key] = json.loads(body)
                if script.lose_answers:
                    script.lose_answers -= 1
                    status = 503
            self.requests.append(Received(headers, body, verified, status))
            return status, extra

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, extra = server._answer(dict(self.headers.items()), body)
                answer = json.dumps({"status": status}).encode()
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler
