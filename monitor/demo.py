"""``monitor demo``: a first run that needs nothing but this package, and no internet.

It serves the bundled sample feeds (``monitor/demo_data/*.xml``) and a webhook receiver from
127.0.0.1, writes a throw-away configuration (SQLite in a temporary folder, the default rule
pack, the builtin classifier), and runs the real daemon on it: the same Daemon, Pipeline, store
and signed webhook channel as production. The receiver verifies each Standard Webhooks signature
with the standard library and prints every alert as it arrives. It succeeds (exit 0) once alerts
for every default topic arrived, verified.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import orjson
from aiohttp import web

import monitor
from monitor.admin import AdminServer, listen, start_admin
from monitor.daemon import Daemon
from monitor.metrics import Metrics

TOPICS = ("sanctions", "troop-movements", "energy-transit")
SIGNATURE_TOLERANCE = 300  # seconds: a signed request older (or newer) than this is refused
_AGO = re.compile(r"\{\{minutes_ago:(\d+)\}\}")


def default_rules_dir() -> Path | None:
    """The default rule pack: the checkout's ``rules/``, else a copy shipped in the package."""
    for candidate in (
        Path(monitor.__file__).resolve().parents[1] / "rules",
        Path(str(resources.files("monitor") / "rules")),
    ):
        if candidate.is_dir() and any(candidate.glob("*.y*ml")):
            return candidate
    return None


def sample_feeds() -> dict[str, bytes]:
    """The bundled sample feeds by name, with their dates made recent."""
    now = datetime.now(UTC)
    out: dict[str, bytes] = {}
    folder = resources.files("monitor") / "demo_data"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".xml"):
            continue
        text = entry.read_text(encoding="utf-8")
        text = _AGO.sub(
            lambda m: format_datetime(now - timedelta(minutes=int(m.group(1))), usegmt=True), text
        )
        out[entry.name.removesuffix(".xml")] = text.encode("utf-8")
    return out


def verify(secret: str, headers: Any, body: bytes, now: float) -> bool:
    """Check a Standard Webhooks signature with the standard library only."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs(now - int(stamp)) > SIGNATURE_TOLERANCE:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{stamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for sig in headers.get("webhook-signature", "").split():
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


@dataclass(kw_only=True)
class Inbox:
    """What the demo receiver accepted, printed as it arrives."""

    secret: str
    out: TextIO
    topics: set[str] = field(default_factory=set)
    alerts: int = 0
    rejected: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def accept(self, payload: dict[str, Any]) -> None:
        data = payload.get("data", {})
        items = data.get("alerts", []) if payload.get("type") == "alert.digest" else [data]
        for item in items:
            alert, article = item.get("alert", {}), item.get("article", {})
            topic = str(alert.get("topic", "?"))
            self.topics.add(topic)
            self.alerts += 1
            self.out.write(
                f"  verified  {topic:<16} {alert.get('severity', ''):<8} "
                f"{article.get('title', '')}  (rule {alert.get('rule', '?')})\n"
            )
        self.out.flush()
        self.changed.set()

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(self.secret, request.headers, body, time.time()):
            self.rejected += 1
            self.out.write("  REJECTED  a request whose signature did not verify\n")
            return web.Response(status=401, text="bad signature")
        payload = orjson.loads(body)
        if payload.get("type") in ("alert.created", "alert.digest"):
            self.accept(payload)
        return web.Response(status=204)


def local_sources(feeds: dict[str, bytes], inbox: Inbox) -> web.Application:
    """One local server for the sample feeds (GET /feeds/NAME.xml) and the receiver (POST /hook)."""

    async def feed(request: web.Request) -> web.Response:
        body = feeds.get(request.match_info["name"])
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type="application/rss+xml", charset="utf-8")

    app = web.Application()
    app.router.add_get("/feeds/{name}.xml", feed)
    app.router.add_post("/hook", inbox.hook)
    return app


def write_config(
    folder: Path, *, base: str, feeds: list[str], secret: str, rules: Path, model: str, admin: str
) -> Path:
    lines = [
        "# Written by `monitor demo`: a throw-away configuration.",
        f'[storage]\nurl = "sqlite:///{folder / "monitor.db"}"',
        f"[rules]\npaths = [{orjson.dumps(str(rules)).decode()}]\nwatch = false",
        f'[classifier]\nmodel = "{model}"',
    ]
    for name in feeds:
        lines.append(
            f'[[feeds]]\nname = "{name}"\nurl = "{base}/feeds/{name}.xml"\ninterval = "1h"'
        )
    lines += [
        f'[[channels]]\nname = "demo-webhook"\ntype = "webhook"\nurl = "{base}/hook"\n'
        f'secret = "{secret}"',
        '[routes]\ndefault = ["demo-webhook"]',
        '[delivery]\npoll = "0.2s"',
        f'[admin]\nlisten = "{admin}"',
    ]
    path = folder / "monitor.toml"
    path.write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    return path


def _model() -> str:
    from monitor.classifier import builtin_model_path

    return "builtin" if builtin_model_path().is_file() else "none"


async def _until(check: Callable[[], bool], event: asyncio.Event, deadline: float) -> bool:
    end = time.monotonic() + deadline
    while not check():
        left = end - time.monotonic()
        if left <= 0:
            return False
        event.clear()
        try:
            async with asyncio.timeout(min(left, 0.25)):
                await event.wait()
        except TimeoutError:
            pass
    return True


async def run_demo(
    *,
    serve: bool = False,
    linger: float = 5.0,
    port: int = 0,
    deadline: float = 60.0,
    out: TextIO = sys.stdout,
) -> int:
    """The whole demo; returns the exit code."""
    rules = default_rules_dir()
    if rules is None:
        out.write("error: the default rule pack (rules/*.yaml) was not found\n")
        return 1
    feeds = sample_feeds()
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    inbox = Inbox(secret=secret, out=out)
    sources = await listen(local_sources(feeds, inbox), "127.0.0.1", 0)
    base = sources.url.rstrip("/")
    model = _model()
    with tempfile.TemporaryDirectory(prefix="news-monitor-demo-") as tmp:
        config = write_config(
            Path(tmp),
            base=base,
            feeds=list(feeds),
            secret=secret,
            rules=rules,
            model=model,
            admin=f"127.0.0.1:{port}",
        )
        out.write(
            f"news-monitor demo: {len(feeds)} sample feeds served from {base}/feeds/\n"
            f"  rules: {rules}   classifier: {model}   config: {config}\n"
            f"  alerts go to a local webhook receiver at {base}/hook that verifies signatures\n\n"
        )
        out.flush()
        try:
            return await _drive(
                config, inbox, serve=serve, linger=linger, deadline=deadline, out=out
            )
        finally:
            await sources.stop()


async def _drive(
    config: Path, inbox: Inbox, *, serve: bool, linger: float, deadline: float, out: TextIO
) -> int:
    daemon = Daemon(config, observer=Metrics())
    task = asyncio.create_task(daemon.run())
    ready = asyncio.create_task(daemon.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()  # the daemon could not start: its error explains why
        return 1
    # Daemon.run starts the admin endpoint itself once wired (daemon.admin); else start it here.
    admin: AdminServer | None = getattr(daemon, "admin", None)
    own_admin = admin is None
    if admin is None:
        admin = await start_admin(daemon)
    try:
        done = await _until(
            lambda: set(TOPICS) <= inbox.topics or daemon.stopping.is_set() or task.done(),
            inbox.changed,
            deadline,
        )
        store, now = daemon.store, daemon.clock
        if store is not None:  # let the remaining deliveries arrive before the summary
            await _until(lambda: store.outbox_summary(now())["pending"] == 0, inbox.changed, 5.0)
        missing = [t for t in TOPICS if t not in inbox.topics]
        out.write(
            f"\n{inbox.alerts} alerts received and verified"
            f"{f', {inbox.rejected} rejected' if inbox.rejected else ''}; "
            f"topics: {', '.join(sorted(inbox.topics)) or 'none'}\n"
            f"dashboard: {admin.url}   metrics: {admin.url}metrics\n"
        )
        if serve:
            out.write("serving the dashboard until Ctrl-C\n")
        out.flush()
        if serve:
            await daemon.stopping.wait()
        elif linger > 0:
            try:
                async with asyncio.timeout(linger):
                    await daemon.stopping.wait()
            except TimeoutError:
                pass
        if not done or missing or inbox.rejected:
            out.write(
                "demo FAILED: no alert arrived for "
                + (", ".join(missing) or "-")
                + (f"; {inbox.rejected} requests failed verification" if inbox.rejected else "")
                + "\n"
            )
            return 1
        out.write("demo OK: alerts for every default topic arrived, signed and verified\n")
        return 0
    finally:
        if own_admin:
            await admin.stop()
        daemon.stop()
        await task
