"""Fast local servers for the benchmarks, each in its own process (so it never takes the measured
process's GIL): a feed server and a webhook receiver, both plain asyncio HTTP/1.1 with keep-alive.

Feed server: ``/feed/<i>.xml`` for ``i`` in ``range(feeds)``, ``items`` RSS items each (~2,500
characters of text), an ETag per feed version and 304 on a matching If-None-Match. Control
requests (``POST``): ``/_ctl/add?feed=I&token=T`` puts a new item whose text carries ``T`` at the
head of feed ``I``; ``/_ctl/rotate`` replaces every feed's items with fresh ones. ``GET
/_ctl/log`` answers ``{"requests": n, "served": {token: epoch seconds}}``: when the first 200
carrying each token was written to the socket (the start of the processing the latency
benchmark measures).

Receiver: answers every POST ``200`` at once and records its arrival time and whether its
Standard Webhooks signature verifies; ``GET /_log`` answers ``{"count": n, "verified": n,
"arrivals": {token: epoch seconds}}`` for tokens found in the bodies.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import multiprocessing
import random
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOKEN = re.compile(rb"LAT[0-9a-f]{12}")
_SYL = [
    "ka",
    "ro",
    "mi",
    "ten",
    "sa",
    "lu",
    "vor",
    "en",
    "di",
    "pa",
    "sto",
    "gan",
    "re",
    "li",
    "ob",
]
# A few per cent of items are about sanctions, so the rule pack alerts as it would in real life.
_TOPICAL = (
    "The government imposed sanctions and an asset freeze on the regime's ministers. ",
    "The leader ordered troops to combat readiness near the border with the neighbour. ",
    "Gas transit through the pipeline was halted after the ministry cut supplies. ",
)


class _Content:
    """Deterministic synthetic feeds: items are drawn from a pool of sentences."""

    def __init__(self, feeds: int, items: int, seed: int) -> None:
        self.rng = random.Random(seed)
        # Each item is its own random word sequence: news articles share words, not sentences,
        # and a shared sentence pool would make every pair a near-duplicate candidate.
        self.words = [
            "".join(self.rng.choice(_SYL) for _ in range(self.rng.randint(2, 4)))
            for _ in range(20000)
        ]
        self.items_per_feed = items
        self.serial = 0
        self.feeds: list[list[bytes]] = [[self.item(i) for _ in range(items)] for i in range(feeds)]
        self.version = [0] * feeds
        self.bodies: list[bytes] = [self.render(i) for i in range(feeds)]

    def item(self, feed: int, token: str = "") -> bytes:
        self.serial += 1
        n = self.serial
        words = self.rng.choices(self.words, k=400)
        for j in range(0, 400, 14):
            words[j] = words[j].capitalize()
            words[j - 1] += "."
        text = " ".join(words)[:2400]
        if self.rng.random() < 0.03:
            text = self.rng.choice(_TOPICAL) + text
        if token:
            text = f"The government imposed sanctions and an asset freeze ({token}). " + text
        title = " ".join(self.rng.sample(self.words, 8)).capitalize()
        if token:
            title = f"Sanctions {token}"
        day = 1 + n % 28
        return (
            f'<item><guid isPermaLink="false">urn:bench:{n}</guid><title>{title}</title>'
            f"<link>https://news{feed % 50}.example/a/{n}</link>"
            f"<description>{text}</description>"
            f"<pubDate>Sun, {day:02d} Nov 2026 12:00:00 GMT</pubDate></item>"
        ).encode()

    def render(self, feed: int) -> bytes:
        return (
            b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            b"<title>Bench wire %d</title><link>https://news.example/</link>"
            b"<description>bench</description>"
            % feed
            + b"".join(self.feeds[feed])
            + b"</channel></rss>"
        )

    def add(self, feed: int, token: str) -> None:
        self.feeds[feed] = [self.item(feed, token), *self.feeds[feed][:-1]]
        self.version[feed] += 1
        self.bodies[feed] = self.render(feed)

    def rotate(self) -> None:
        for i in range(len(self.feeds)):
            self.feeds[i] = [self.item(i) for _ in range(self.items_per_feed)]
            self.version[i] += 1
            self.bodies[i] = self.render(i)


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(n) if n else b""
    return method, target, headers, body


def _response(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}.get(status, "OK")
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (
        f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body
    )


def _feed_main(conn: Connection, feeds: int, items: int, seed: int) -> None:
    content = _Content(feeds, items, seed)
    tokens: dict[int, list[str]] = {}  # feed -> tokens not yet served
    served: dict[str, float] = {}
    counter = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (req := await _read_request(reader)) is not None:
            _, target, headers, _ = req
            parts = urlsplit(target)
            path = parts.path
            if path.startswith("/feed/"):
                counter[0] += 1
                i = int(path[6:].split(".", 1)[0])
                etag = f'"{i}-{content.version[i]}"'
                if headers.get("if-none-match") == etag:
                    writer.write(_response(304, headers={"ETag": etag}))
                else:
                    writer.write(
                        _response(
                            200,
                            content.bodies[i],
                            {"ETag": etag, "Content-Type": "application/rss+xml"},
                        )
                    )
                    await writer.drain()
                    now = time.time()
                    for t in tokens.pop(i, []):
                        served.setdefault(t, now)
                    continue
            elif path == "/_ctl/add":
                q = parse_qs(parts.query)
                i, token = int(q["feed"][0]), q["token"][0]
                content.add(i, token)
                tokens.setdefault(i, []).append(token)
                writer.write(_response(200, b"ok"))
            elif path == "/_ctl/rotate":
                content.rotate()
                writer.write(_response(200, b"ok"))
            elif path == "/_ctl/log":
                body = json.dumps({"requests": counter[0], "served": served}).encode()
                writer.write(_response(200, body, {"Content-Type": "application/json"}))
            else:
                writer.write(_response(404, b"no"))
            await writer.drain()
        writer.close()

    asyncio.run(_serve(handle, conn))


def _receiver_main(conn: Connection) -> None:
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    arrivals: dict[str, float] = {}
    counts = {"count": 0, "verified": 0}

    def verify(headers: dict[str, str], body: bytes) -> bool:
        msg = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + body
        sig = base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()
        return any(s == f"v1,{sig}" for s in headers.get("webhook-signature", "").split())

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (req := await _read_request(reader)) is not None:
            method, _, headers, body = req
            if method == "POST":
                now = time.time()
                counts["count"] += 1
                writer.write(_response(200, b"ok"))
                if "webhook-signature" in headers and verify(headers, body):
                    counts["verified"] += 1
                for m in TOKEN.findall(body):
                    arrivals.setdefault(m.decode(), now)
            else:
                out = json.dumps(counts | {"arrivals": arrivals}).encode()
                writer.write(_response(200, out, {"Content-Type": "application/json"}))
            await writer.drain()
        writer.close()

    asyncio.run(_serve(handle, conn))


async def _serve(handler: Any, conn: Connection) -> None:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, backlog=1024)
    conn.send(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


@dataclass(frozen=True, slots=True, kw_only=True)
class Local:
    """A running server process and its base URL."""

    base: str
    process: Any

    def get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(self.base + path, timeout=30) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data

    def post(self, path: str) -> None:
        req = urllib.request.Request(self.base + path, data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=120) as r:
            r.read()


@contextmanager
def _process(target: Any, args: tuple[Any, ...]) -> Iterator[Local]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    try:
        deadline = time.monotonic() + 120
        while not parent.poll(0.1):
            if not proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("benchmark server did not start")
        port = parent.recv()
        yield Local(base=f"http://127.0.0.1:{port}", process=proc)
    finally:
        proc.terminate()
        proc.join(10)


@contextmanager
def feed_server(feeds: int = 1000, items: int = 30, seed: int = 1) -> Iterator[Local]:
    """Serve ``feeds`` feeds of ``items`` items at ``<base>/feed/<i>.xml``."""
    with _process(_feed_main, (feeds, items, seed)) as local:
        yield local


@contextmanager
def receiver() -> Iterator[Local]:
    """A webhook receiver answering 200 at once at ``<base>/hook``."""
    with _process(_receiver_main, ()) as local:
        yield local


@contextmanager
def running_daemon(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``monitor run`` on ``config`` in a subprocess (its logs to ``log``), stopped on exit."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(config)],
            cwd=Path(__file__).resolve().parents[1],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            proc.wait(30)


def feed_urls(server: Local, feeds: int) -> list[str]:
    return [f"{server.base}/feed/{i}.xml" for i in range(feeds)]


def write_config(
    path: Any,
    *,
    store: str,
    urls: list[str],
    hook: str | None,
    model: str,
    rules: str,
    interval: str = "15m",
    extra: str = "",
) -> None:
    """A monitor.toml for the benchmarks (webhook channel ``hook`` when ``hook`` is given)."""
    channel = (
        f'[[channels]]\nname = "hook"\ntype = "webhook"\nurl = "{hook}"\nsecret = "{SECRET}"\n\n'
        '[routes]\ndefault = ["hook"]\n\n'
        if hook
        else ""
    )
    feeds = "".join(
        f'[[feeds]]\nname = "f{i}"\nurl = "{u}"\ninterval = "{interval}"\n\n'
        for i, u in enumerate(urls)
    )
    path.write_text(
        f'[storage]\nurl = "{store}"\n\n[rules]\npaths = ["{rules}"]\nwatch = false\n\n'
        f'[classifier]\nmodel = "{model}"\n\n[admin]\nlisten = "127.0.0.1:0"\n\n'
        f"{extra}\n{channel}{feeds}"
    )
