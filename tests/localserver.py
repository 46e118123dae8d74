"""A real HTTP server on 127.0.0.1 for tests: routes from a dict, a request log, conditional GET.

Tests use this instead of mocking HTTP, so the fetch code talks to a real socket.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: bool = True  # answer If-None-Match with 304 when the body is unchanged
    last_modified: str | None = "Sat, 01 Nov 2025 10:00:00 GMT"
    delay: float = 0.0  # seconds before answering
    drip: float = 0.0  # seconds between body chunks (slow-drip server)
    handler: Callable[[BaseHTTPRequestHandler], None] | None = None  # full control


@dataclass
class LoggedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    time: float


class LocalServer:
    """Serve `routes` (path -> Route) on 127.0.0.1:<free port> in a thread."""

    def __init__(self, routes: dict[str, Route] | None = None, host: str = "127.0.0.1"):
        self.routes: dict[str, Route] = dict(routes or {})
        self.log: list[LoggedRequest] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _record(self, body: bytes = b"") -> None:
                with server._lock:
                    server.log.append(LoggedRequest(self.command, self.path, dict(self.headers.items()),
                                                    body, time.time()))

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                self._record(body)
                route = server.routes.get(self.path.split("?")[0]) or server.routes.get(self.path)
                if route and route.handler:
                    route.handler(self)
                    return
                status = route.status if route else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_GET(self):
                self._record()
                route = server.routes.get(self.path) or server.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if route.handler:
                    route.handler(self)
                    return
                if route.delay:
                    time.sleep(route.delay)
                etag = '"' + hashlib.sha1(route.body).hexdigest()[:16] + '"' if route.etag else None
                if etag and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                if etag:
                    self.send_header("ETag", etag)
                if route.last_modified:
                    self.send_header("Last-Modified", route.last_modified)
                for k, v in route.headers.items():
                    self.send_header(k, v)
                if "Content-Length" not in route.headers:
                    self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                if route.drip:
                    for i in range(0, len(route.body), 16):
                        try:
                            self.wfile.write(route.body[i:i + 16])
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(route.drip)
                else:
                    try:
                        self.wfile.write(route.body)
                    except OSError:
                        pass

        class QuietServer(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # clients hanging up early is normal here
                pass

        self.httpd = QuietServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return self.base + path

    def requests_for(self, path: str) -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self.log if r.path == path]

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
