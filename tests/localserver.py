"""A small threaded HTTP server on 127.0.0.1:0 for connector tests (no network needed).

Tests register *routes*: a path mapped to a :class:`Route` (static reply) or to a callable
``handler(request) -> Route``. Route options cover the hostile cases the connectors must
survive: status codes and headers, a delay before the reply, a body trickled in small pieces,
a connection reset, a connection closed unannounced after the reply, gzip-compressed bodies
(and bombs), redirect chains.

    with LocalServer() as srv:
        srv.route("/feed.xml", Route(body=b"<rss/>", headers={"Content-Type": "application/rss+xml"}))
        srv.route("/r", redirect("/feed.xml"))
        client.get(srv.url("/r"))
        assert srv.connections == 1 and srv.requests[0].path == "/r"

``host`` can be another loopback address (e.g. ``"127.0.0.2"``, routable on Linux) to stand
in for a second, distinct destination. Every accepted TCP connection is counted in
``connections``; every parsed request is recorded in ``requests`` (path + lower-cased headers).
Unknown paths answer 404.
"""

from __future__ import annotations

import gzip
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before sending anything
    trickle: tuple[int, float] | None = None  # (bytes per piece, seconds between pieces), forever-ish
    reset: bool = False  # close the socket with RST instead of answering
    content_length: bool = True  # send Content-Length (False: close-delimited body)
    hang_up: bool = False  # close the connection after answering, unannounced (as a keep-alive timeout does)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names


Handler = Callable[[Request], Route]


def redirect(location: str, status: int = 302) -> Route:
    return Route(status=status, headers={"Location": location})


def gzipped(body: bytes, **kw: Any) -> Route:
    headers = {"Content-Encoding": "gzip", **kw.pop("headers", {})}
    return Route(body=gzip.compress(body), headers=headers, **kw)


def gzip_bomb(decoded_size: int, **kw: Any) -> Route:
    """A gzip body that inflates to ``decoded_size`` zero bytes (built in streaming, ~1000:1)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    parts, left = [], decoded_size
    while left > 0:
        n = min(left, len(block))
        parts.append(comp.compress(block[:n]))
        left -= n
    parts.append(comp.flush())
    headers = {"Content-Encoding": "gzip", "Content-Type": "text/html", **kw.pop("headers", {})}
    return Route(body=b"".join(parts), headers=headers, **kw)


class LocalServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route | Handler] = {}
        self.requests: list[Request] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._server = _Server((host, 0), _make_handler(self))
        self._server.owner = self
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- lifecycle
    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuration
    def route(self, path: str, route: Route | Handler) -> None:
        self.routes[path] = route

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    def _count_connection(self) -> None:
        with self._lock:
            self.connections += 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: LocalServer

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner._count_connection()
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:  # clients hang up on purpose
        pass


def _make_handler(owner: LocalServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body leave in separate writes: without this, on a kept-alive connection the
        # body waits for the client's delayed ACK of the headers (~40 ms a response), which
        # production servers avoid and a test server must not add
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            req = Request("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
            with owner._lock:
                owner.requests.append(req)
            spec = owner.routes.get(self.path.split("?", 1)[0]) or owner.routes.get(self.path)
            route = spec(req) if callable(spec) else (spec or Route(status=404, body=b"not found"))
            if route.delay:
                time.sleep(route.delay)
            if route.reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            self.send_response(route.status)
            for k, v in route.headers.items():
                self.send_header(k, v)
            if route.trickle is None and route.content_length:
                self.send_header("Content-Length", str(len(route.body)))
            if route.trickle is not None or not route.content_length:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            try:
                if route.trickle is None:
                    self.wfile.write(route.body)
                    if route.hang_up:
                        self.close_connection = True
                    return
                size, pause = route.trickle
                body = route.body or b"x" * 10_000_000
                for i in range(0, len(body), size):
                    self.wfile.write(body[i : i + size])
                    self.wfile.flush()
                    time.sleep(pause)
            except OSError:
                self.close_connection = True

    return _Handler
