"""A fake PAN verification provider on 127.0.0.1 (threaded http.server): scripted replies, every request kept."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = -1  # a scripted status: answer nothing until the client has given up


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Provider:
    """The fake provider: scripted replies (then ``default``), and every request it received."""

    script: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=lambda: Reply(200, {"status": "valid"}))
    received: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> Reply:
        with self.lock:
            return self.script.pop(0) if self.script else self.default


@contextmanager
def serve_provider() -> Iterator[tuple[Provider, str]]:
    """Run a fake provider; yields its state and its verification URL."""
    state = Provider()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((self.path, dict(self.headers.items()), json.loads(body)))
            reply = state.next()
            if reply.status == HANG:
                state.release.wait(10)
                return
            raw = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body or {}).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:  # where a followed redirect would land
            state.received.append((self.path, dict(self.headers.items()), None))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that timed out and left

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/v1/pan/verify"
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
