"""A real HTTP server on 127.0.0.1 with programmable routes, for fetch and pipeline tests.

    with serve() as server:
        server.route("/feed.xml", Route(body=RSS, etag='"v1"'))
        url = server.url("/feed.xml")
        ...
        assert server.requests_for("/feed.xml")[-1].headers["if-none-match"] == '"v1"'

Routes can answer with any status and headers, gzip the body, honour conditional GET (ETag /
Last-Modified -> 304), trickle the body one byte every ``trickle`` seconds, reset the connection
(TCP RST), or stream a huge body (plain or a gzip bomb) generated on the fly. Every request is
logged. The server runs in daemon threads and stops when the context exits.
"""

from __future__ import annotations

import gzip as gziplib
import socket
import struct
import threading
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_ZEROS = b"\0" * (1024 * 1024)


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    gzip: bool = False  # send the body gzip-compressed with Content-Encoding: gzip
    etag: str | None = None  # answer 304 when If-None-Match equals it
    last_modified: str | None = None  # answer 304 when If-Modified-Since equals it
    trickle: float = 0.0  # seconds between single body bytes
    reset: str | None = None  # "before-headers" | "mid-body": TCP RST at that point
    stream_bytes: int = 0  # a generated body of this many bytes instead of ``body``
    gzip_bomb: int = 0  # a generated gzip body inflating to this many zero bytes
    content_length: bool = True  # False: chunked transfer encoding
    location: str | None = None  # Location header (for 3xx)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names


class FeedServer:
    def __init__(self, httpd: ThreadingHTTPServer) -> None:
        self._httpd = httpd
        self._routes: dict[str, Route] = {}
        self._log: list[Request] = []
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def route(self, path: str, route: Route) -> str:
        """Install (or replace) the answer for ``path``; return its full URL."""
        with self._lock:
            self._routes[path] = route
        return self.url(path)

    def get_route(self, path: str) -> Route | None:
        with self._lock:
            return self._routes.get(path)

    def record(self, request: Request) -> None:
        with self._lock:
            self._log.append(request)

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._log)

    def requests_for(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in separate writes: avoid 40 ms stalls
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet in tests
        pass

    def do_GET(self) -> None:
        feeds = self.server.feeds
        path = self.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        feeds.record(Request(method="GET", path=self.path, headers=headers))
        route = feeds.get_route(path) or feeds.get_route(self.path)
        if route is None:
            self._simple(404, b"not found")
            return
        if route.reset == "before-headers":
            self._reset()
            return
        if self._not_modified(route, headers):
            self.send_response(304)
            self._validators(route)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response_only(route.status)
        if not any(name.lower() == "date" for name in route.headers):
            self.send_header("Date", self.date_time_string())
        for name, value in route.headers.items():
            self.send_header(name, value)
        if route.location:
            self.send_header("Location", route.location)
        self._validators(route)
        if route.stream_bytes or route.gzip_bomb:
            self._stream(route)
            return
        body = gziplib.compress(route.body) if route.gzip else route.body
        if route.gzip:
            self.send_header("Content-Encoding", "gzip")
        if route.reset == "mid-body":
            self.send_header("Content-Length", str(len(body) + 1000))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self._reset()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if route.trickle:
            for i in range(len(body)):
                if feeds.stopping.wait(route.trickle):
                    return
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
        else:
            self.wfile.write(body)

    def _not_modified(self, route: Route, headers: Mapping[str, str]) -> bool:
        if route.etag and headers.get("if-none-match") == route.etag:
            return True
        return bool(route.last_modified and headers.get("if-modified-since") == route.last_modified)

    def _validators(self, route: Route) -> None:
        if route.etag:
            self.send_header("ETag", route.etag)
        if route.last_modified:
            self.send_header("Last-Modified", route.last_modified)

    def _stream(self, route: Route) -> None:
        if route.gzip_bomb:
            self.send_header("Content-Encoding", "gzip")
        if route.content_length and route.stream_bytes:
            self.send_header("Content-Length", str(route.stream_bytes))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunked = not (route.content_length and route.stream_bytes)
        try:
            for piece in _generate(route):
                if self.server.feeds.stopping.is_set():
                    return
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                else:
                    self.wfile.write(piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client gave up, which is what the tests expect of it

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout turns close() into a TCP RST.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _simple(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _generate(route: Route) -> Iterator[bytes]:
    if route.gzip_bomb:
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
        left = route.gzip_bomb
        while left > 0:
            n = min(left, len(_ZEROS))
            left -= n
            out = packer.compress(_ZEROS[:n])
            if out:
                yield out
        yield packer.flush()
        return
    block = b"<rss>" + b"x" * (64 * 1024 - 5)
    left = route.stream_bytes
    while left > 0:
        piece = block[: min(left, len(block))]
        left -= len(piece)
        yield piece


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    feeds: FeedServer

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up early are part of the tests, not errors


@contextmanager
def serve() -> Iterator[FeedServer]:
    """Run a FeedServer on 127.0.0.1 (a free port) for the duration of the block."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    feeds = FeedServer(httpd)
    httpd.feeds = feeds
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield feeds
    finally:
        feeds.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
