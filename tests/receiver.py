"""A real Standard Webhooks receiver on 127.0.0.1 for tests (reusable by any test module).

It verifies EVERY request with ``standardwebhooks.Webhook(secret).verify(body, headers)`` and
records what arrived; its answers are programmed as a queue of :class:`Reply` (status, headers,
body, a delay, or dropping the connection without an answer), then ``default``.

    with WebhookReceiver(["whsec_..."]) as rx:
        rx.program(Reply(status=503), Reply(status=429, headers={"Retry-After": "7"}))
        ...  # POST to rx.url
        first, second = rx.wait_for(2)
        assert first.verified and first.id == second.id

Secrets are given as standardwebhooks takes them: ``"whsec_<base64>"`` (or bare base64) strings,
or ``bytes`` for a raw key.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from standardwebhooks import Webhook


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """One programmed answer."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering; cut short when the receiver stops
    close: bool = False  # read the request, then drop the connection without answering
    stall: float = 0.0  # seconds between the head of the answer and its body


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """One request as it arrived, with the verdict of the verification."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    verified: bool  # at least one of the receiver's secrets verified it
    verified_by: tuple[int, ...]  # indexes of the secrets that verified it
    error: str | None  # why verification failed with the first secret, if it did
    client_port: int  # the sender's port: requests on one kept-alive connection share it

    @property
    def id(self) -> str | None:
        return self.headers.get("webhook-id")

    @property
    def timestamp(self) -> int | None:
        value = self.headers.get("webhook-timestamp")
        return int(value) if value and value.isdigit() else None

    @property
    def signatures(self) -> list[str]:
        return self.headers.get("webhook-signature", "").split()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: WebhookReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout test) leaves a broken pipe behind: expected, not noise.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        rx = self.server.receiver
        reply = rx._record(
            self.command, self.path, dict(self.headers.items()), body, self.client_address[1]
        )
        if reply.delay:
            rx._release.wait(reply.delay)
        if reply.close:
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(reply.body)))
        self.end_headers()
        if reply.stall:
            self.wfile.flush()
            rx._release.wait(reply.stall)
        self.wfile.write(reply.body)

    do_PUT = do_GET = do_POST


class WebhookReceiver:
    """A threaded HTTP server; start with ``with`` or :meth:`start`, stop with :meth:`stop`."""

    def __init__(self, secrets: Sequence[str | bytes], *, default: Reply | None = None) -> None:
        self._hooks = [Webhook(s) for s in secrets]
        self.default = default or Reply()
        self._queue: deque[Reply] = deque()
        self._received: list[Received] = []
        self._cond = threading.Condition()
        self._release = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def received(self) -> list[Received]:
        with self._cond:
            return list(self._received)

    def program(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order, then with ``default``."""
        with self._cond:
            self._queue.extend(replies)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Block until ``count`` requests arrived (AssertionError after ``timeout`` seconds)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._received) >= count, timeout):
                raise AssertionError(f"expected {count} requests, got {len(self._received)}")
            return list(self._received)

    def _record(
        self, method: str, path: str, headers: dict[str, str], body: bytes, port: int
    ) -> Reply:
        lower = {k.lower(): v for k, v in headers.items()}
        ok: list[int] = []
        error: str | None = None
        for i, hook in enumerate(self._hooks):
            try:
                hook.verify(body, lower)
                ok.append(i)
            except Exception as exc:  # any failure is a failed verification, recorded as such
                if error is None:
                    error = f"{type(exc).__name__}: {exc}"
        got = Received(
            method=method,
            path=path,
            headers=lower,
            body=body,
            verified=bool(ok),
            verified_by=tuple(ok),
            error=None if ok else error,
            client_port=port,
        )
        with self._cond:
            self._received.append(got)
            reply = self._queue.popleft() if self._queue else self.default
            self._cond.notify_all()
        return reply

    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
