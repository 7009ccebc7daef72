"""The admin endpoint against a running daemon: a real feed server, verifying receiver, SQLite."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from monitor.admin import AdminServer, build_app, is_loopback, listen, serve, start_admin, token_ok
from monitor.config import AdminConfig, Config, load_config
from monitor.daemon import Daemon
from monitor.errors import ConfigError
from monitor.metrics import Metrics
from monitor.observe import Observer
from monitor.scheduler import Ticker
from monitor.score import Scorer
from monitor.store import Store, open_store

from feedserver import FeedServer, Route
from feedserver import serve as serve_feeds
from receiver import WebhookReceiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RULE = "topic: sanctions\nseverity: high\nany: [sanctions, asset freeze]\n"


def rss(*items: tuple[str, str, str]) -> bytes:
    body = "".join(
        f"<item><title>{t}</title><link>https://news.example/{g}</link><guid>{g}</guid>"
        f"<description>{d}</description></item>"
        for g, t, d in items
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>'
        f"<link>https://news.example/</link><description>w</description>{body}</channel></rss>"
    ).encode()


FIRST = rss(("a1", "EU adopts sanctions on shipping firms", "An asset freeze on three firms."))
SECOND = rss(
    ("a1", "EU adopts sanctions on shipping firms", "An asset freeze on three firms."),
    ("a2", "UK widens sanctions on metals traders", "New sanctions listings on Tuesday."),
)


def write_config(tmp: Path, feeds: FeedServer, rx: WebhookReceiver, extra: str = "") -> Path:
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "eu-sanctions.yaml").write_text(RULE)
    path = tmp / "monitor.toml"
    path.write_text(
        f"""
[storage]
url = "sqlite:///monitor.db"
[rules]
paths = ["rules"]
[classifier]
model = "none"
[[feeds]]
name = "wire"
url = "{feeds.url("/wire.xml")}"
[[feeds]]
name = "broken"
url = "{feeds.url("/broken.xml")}"
[[channels]]
name = "hook"
type = "webhook"
url = "{rx.url}"
secret = "{SECRET}"
[routes]
default = ["hook"]
[admin]
listen = "127.0.0.1:0"
{extra}
"""
    )
    return path


@asynccontextmanager
async def running(path: Path) -> AsyncIterator[tuple[Daemon, AdminServer]]:
    """``monitor run`` in this event loop, with its admin endpoint."""
    daemon = Daemon(path, observer=Metrics())
    task = asyncio.create_task(daemon.run())
    await asyncio.wait_for(daemon.ready.wait(), 10)
    # Once Daemon.run starts the endpoint itself it is daemon.admin; until then, start it here.
    admin = getattr(daemon, "admin", None)
    own = admin is None
    if admin is None:
        admin = await start_admin(daemon)
    try:
        yield daemon, admin
    finally:
        if own:
            await admin.stop()
        daemon.stop()
        await asyncio.wait_for(task, 15)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


async def until(check: Callable[[], object], what: str, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def scrape_until(
    client: httpx.AsyncClient, url: str, check: Callable[[str], bool], what: str
) -> str:
    end = time.monotonic() + 10
    while True:
        text = (await client.get(url + "metrics")).text
        if check(text):
            return text
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}; last scrape:\n{text}")
        await asyncio.sleep(0.05)


async def test_endpoints_answer_on_a_running_daemon(tmp_path: Path) -> None:
    with serve_feeds() as feeds, WebhookReceiver([SECRET]) as rx:
        feeds.route("/wire.xml", Route(body=FIRST))
        async with running(write_config(tmp_path, feeds, rx)) as (_, admin):
            assert admin.host == "127.0.0.1" and admin.port > 0
            async with httpx.AsyncClient() as client:
                health = await client.get(admin.url + "healthz")
                ready = await client.get(admin.url + "readyz")
                metrics = await client.get(admin.url + "metrics")
                page = await client.get(admin.url)
    assert (health.status_code, health.text.strip()) == (200, "ok")
    assert ready.status_code == 200
    assert ready.json() == {
        "ready": True,
        "failing": [],
        "checks": {"store": "ok", "rules": "ok", "scheduler": "ok"},
    }
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert value(metrics.text, "news_monitor_store_up") == 1.0
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "Feed health" in page.text and "wire" in page.text


async def test_metrics_move_when_a_poll_and_a_delivery_happen(tmp_path: Path) -> None:
    with serve_feeds() as feeds, WebhookReceiver([SECRET]) as rx:
        feeds.route("/wire.xml", Route(body=FIRST))
        feeds.route("/broken.xml", Route(status=500, body=b"oops"))
        path = write_config(tmp_path, feeds, rx)
        async with running(path) as (daemon, admin), httpx.AsyncClient() as client:
            # The first cycle: both feeds polled once, one alert delivered.
            before = await scrape_until(
                client,
                admin.url,
                lambda t: (
                    value(t, "news_monitor_deliveries_total", channel="hook", outcome="delivered")
                    == 1
                    and value(t, "news_monitor_polls_total", outcome="error") == 1
                ),
                "the first cycle",
            )
            feeds.route("/wire.xml", Route(body=SECOND))
            assert daemon.pipeline is not None
            await daemon.pipeline.poll_due(everything=True)
            await asyncio.to_thread(rx.wait_for, 2)
            after = await scrape_until(
                client,
                admin.url,
                lambda t: (
                    value(t, "news_monitor_deliveries_total", channel="hook", outcome="delivered")
                    == 2
                ),
                "the second delivery",
            )
    assert all(r.verified for r in rx.received)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(before, "news_monitor_polls_total", outcome="new") == 1
    assert delta("news_monitor_polls_total", outcome="new") == 1
    assert delta("news_monitor_polls_total", outcome="error") == 1
    assert delta("news_monitor_articles_new_total") == 1
    assert delta("news_monitor_articles_seen_total") == 2
    assert delta("news_monitor_alerts_total", rule="eu-sanctions", topic="sanctions") == 1
    assert delta("news_monitor_poll_duration_seconds_count") == 2
    assert value(after, "news_monitor_deliveries_total", channel="hook", outcome="dead") == 0
    assert value(after, "news_monitor_outbox_deliveries", state="delivered") == 2
    assert value(after, "news_monitor_outbox_deliveries", state="pending") == 0
    assert value(after, "news_monitor_outbox_oldest_pending_age_seconds") == 0
    assert value(before, "news_monitor_feed_consecutive_errors", feed="broken") == 1
    assert value(after, "news_monitor_feed_consecutive_errors", feed="broken") == 2
    assert value(after, "news_monitor_feed_consecutive_errors", feed="wire") == 0


async def test_reloads_are_counted_by_result(tmp_path: Path) -> None:
    with serve_feeds() as feeds, WebhookReceiver([SECRET]) as rx:
        feeds.route("/wire.xml", Route(body=FIRST))
        path = write_config(tmp_path, feeds, rx)
        async with running(path) as (daemon, admin), httpx.AsyncClient() as client:
            (tmp_path / "rules" / "eu-sanctions.yaml").write_text("topic: sanctions\nany: []\n")
            assert await daemon.reload("test") is False
            refused = (await client.get(admin.url + "metrics")).text
            (tmp_path / "rules" / "eu-sanctions.yaml").write_text(RULE)
            assert await daemon.reload("test") is True
            applied = (await client.get(admin.url + "metrics")).text
    assert value(refused, "news_monitor_reloads_total", result="refused") >= 1
    assert value(refused, "news_monitor_last_reload_successful") == 0
    assert value(applied, "news_monitor_last_reload_successful") == 1
    assert value(applied, "news_monitor_reloads_total", result="ok") >= 1


# --------------------------------------------------------------------------- without a daemon
@dataclass
class FakeService:
    """The attributes the admin endpoint reads, with a real store (or none)."""

    config: Config
    store: Store | None
    scorer: Scorer | None = None
    ticker: Ticker | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    observer: Observer = field(default_factory=Observer)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


def minimal_config(tmp_path: Path) -> Config:
    path = tmp_path / "monitor.toml"
    path.write_text('[storage]\nurl = "sqlite:///m.db"\n[classifier]\nmodel = "none"\n')
    return load_config(path)


@asynccontextmanager
async def app_at(svc: FakeService, **kw: object) -> AsyncIterator[str]:
    app = build_app(svc, registry=CollectorRegistry(), **kw)  # type: ignore[arg-type]
    server = await listen(app, "127.0.0.1", 0)
    try:
        yield server.url
    finally:
        await server.stop()


async def test_token_is_required_on_every_path_but_healthz(tmp_path: Path) -> None:
    config = minimal_config(tmp_path)
    store = open_store(config.storage_url)
    try:
        svc = FakeService(config=config, store=store)
        token = {"token": "s3cret-token", "require_token": True}
        async with app_at(svc, **token) as url, httpx.AsyncClient() as client:
            open_health = await client.get(url + "healthz")
            denied = {p: await client.get(url + p) for p in ("", "readyz", "metrics")}
            wrong = await client.get(url + "metrics", headers={"Authorization": "Bearer nope"})
            basic = await client.get(
                url + "metrics", headers={"Authorization": "Basic s3cret-token"}
            )
            good = await client.get(
                url + "metrics", headers={"Authorization": "Bearer s3cret-token"}
            )
    finally:
        store.close()
    assert open_health.status_code == 200
    assert {p: r.status_code for p, r in denied.items()} == {"": 401, "readyz": 401, "metrics": 401}
    assert denied["metrics"].headers["www-authenticate"].startswith("Bearer")
    assert (wrong.status_code, basic.status_code, good.status_code) == (401, 401, 200)


def test_only_the_usual_loopback_names_skip_the_token() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("127.0.0.2", "0.0.0.0", "::", "10.0.0.5"))
    assert token_ok("Bearer abc", "abc") and token_ok("bearer abc", "abc")
    assert not token_ok("Bearer abcd", "abc") and not token_ok(None, "abc")


async def test_listening_beyond_loopback_without_a_token_is_refused(tmp_path: Path) -> None:
    svc = FakeService(config=minimal_config(tmp_path), store=None)
    with pytest.raises(ConfigError, match="beyond loopback"):
        await serve(svc, AdminConfig(listen="127.0.0.2:0"), registry=CollectorRegistry())  # type: ignore[arg-type]


async def test_a_configured_token_is_enforced_beyond_loopback(tmp_path: Path) -> None:
    svc = FakeService(config=minimal_config(tmp_path), store=None)
    admin = AdminConfig(listen="127.0.0.2:0")
    admin._token = SecretStr("tok")
    server = await serve(svc, admin, registry=CollectorRegistry())  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient() as client:
            health = await client.get(server.url + "healthz")
            denied = await client.get(server.url + "metrics")
            allowed = await client.get(
                server.url + "metrics", headers={"Authorization": "Bearer tok"}
            )
    finally:
        await server.stop()
    assert server.url.startswith("http://127.0.0.2:")
    assert (health.status_code, denied.status_code, allowed.status_code) == (200, 401, 200)


def make_unopenable(db_file: Path) -> None:
    """The database file is gone and its path can no longer be opened: every new connection the
    store makes (one per thread) fails, as it does when a disk or a mount disappears."""
    for leftover in db_file.parent.glob(db_file.name + "*"):
        leftover.unlink()
    db_file.mkdir()


async def test_readyz_is_503_naming_the_store_while_it_is_unreachable(tmp_path: Path) -> None:
    config = minimal_config(tmp_path)
    store = open_store(config.storage_url)
    store.close()
    make_unopenable(Path(config.storage_url.removeprefix("sqlite:///")))
    svc = FakeService(config=config, store=store)
    async with app_at(svc) as url, httpx.AsyncClient() as client:
        r = await client.get(url + "readyz")
        health = await client.get(url + "healthz")
    assert r.status_code == 503
    body = r.json()
    assert body["ready"] is False
    assert "store" in body["failing"] and body["checks"]["store"] != "ok"
    assert health.status_code == 200  # alive, just not ready


class StuckStore(Store):
    """A store whose database stops answering (a hung network, a locked file)."""

    def __init__(self, inner: Store, release: threading.Event) -> None:
        super().__init__(inner.db)
        self.release = release

    def ping(self) -> None:
        self.release.wait(5)


async def test_readyz_gives_up_on_a_store_that_does_not_answer(tmp_path: Path) -> None:
    config = minimal_config(tmp_path)
    inner = open_store(config.storage_url)
    release = threading.Event()
    svc = FakeService(config=config, store=StuckStore(inner, release))
    try:
        async with app_at(svc, ping_timeout=0.2) as url, httpx.AsyncClient() as client:
            started = time.monotonic()
            r = await client.get(url + "readyz")
            took = time.monotonic() - started
    finally:
        release.set()
        inner.close()
    assert r.status_code == 503 and r.json()["checks"]["store"] == "no answer within 0.2 s"
    assert took < 2


async def test_readyz_names_a_scheduler_that_is_not_running(tmp_path: Path) -> None:
    config = minimal_config(tmp_path)
    store = open_store(config.storage_url)
    try:
        svc = FakeService(config=config, store=store, ticker=None)
        async with app_at(svc) as url, httpx.AsyncClient() as client:
            r = await client.get(url + "readyz")
    finally:
        store.close()
    assert r.status_code == 503
    assert r.json()["failing"] == ["rules", "scheduler"]
    assert r.json()["checks"]["store"] == "ok"
