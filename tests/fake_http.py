"""A scripted JSON server on 127.0.0.1 for the HTTP backends' tests (vLLM and OpenAI-style endpoints)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Route = Callable[[dict], tuple[int, Any] | tuple[int, Any, dict]]
"""Takes the request's JSON body; returns (status, JSON body or text[, headers])."""


@dataclass
class FakeServer:
    url: str
    routes: dict[tuple[str, str], Route]
    requests: list[dict] = field(default_factory=list)
    """Every request: method, path, body (JSON), headers."""
    release: threading.Event = field(default_factory=threading.Event)
    """Set at shutdown: handlers that wait on it (a server that never answers) return."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, path: str) -> list[dict]:
        return [r["body"] for r in self.requests if r["path"] == path]


@contextmanager
def fake_server(routes: dict[tuple[str, str], Route]) -> Iterator[FakeServer]:
    """Serve ``routes`` (``("POST", "/v1/completions") -> fn``) in a thread; unknown paths answer 404."""
    server_state = FakeServer("", routes)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            with server_state.lock:
                server_state.requests.append(
                    {"method": method, "path": self.path, "body": body, "headers": dict(self.headers)}
                )
            route = server_state.routes.get((method, self.path))
            status, answer, *extra = route(body) if route else (404, {"error": {"message": "Not Found"}})
            data = (json.dumps(answer) if not isinstance(answer, str) else answer).encode()
            try:
                self.send_response(status)
                for key, value in (extra[0] if extra else {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def do_GET(self):
            self._handle("GET")

        def do_POST(self):
            self._handle("POST")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server_state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        server_state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
