from __future__ import annotations

import asyncio
import contextlib
import random
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from monitor.config import FetchConfig
from monitor.errors import FeedGoneError, FetchError
from monitor.fetch import HostLimiter, PooledTransport, fetch_feed, make_client, parse_max_age
from monitor.httpdates import retry_after as parse_retry_after
from monitor.polling import next_poll_delay
from monitor.types import FeedState

from feedserver import FeedServer, Route, serve

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>
<item><guid>1</guid><title>One</title></item></channel></rss>"""
GIB = 1024**3


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with serve() as s:
        yield s


@pytest.fixture
def config() -> FetchConfig:
    return FetchConfig(timeout=1.5, connect_timeout=1.0, max_bytes=2 * 1024 * 1024)


@pytest.fixture
async def client(config: FetchConfig) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(config) as c:
        yield c


def state(url: str, **kw: object) -> FeedState:
    return FeedState(feed_id=1, name="t", url=url, interval=900.0, **kw)  # type: ignore[arg-type]


async def test_second_fetch_of_unchanged_feed_sends_validators_and_gets_304(
    server: FeedServer, client: httpx.AsyncClient, config: FetchConfig
) -> None:
    lm = "Wed, 01 Jan 2025 10:00:00 GMT"
    url = server.route("/f", Route(body=RSS, etag='W/"v1"', last_modified=lm))
    first = await fetch_feed(client, state(url), config)
    assert first.status == 200 and first.body == RSS and not first.not_modified
    assert (first.etag, first.last_modified) == ('W/"v1"', lm)

    second = await fetch_feed(client, state(url, etag=first.etag, last_modified=lm), config)
    assert second.not_modified and second.status == 304 and second.body == b""
    sent = server.requests_for("/f")[-1].headers
    assert sent["if-none-match"] == 'W/"v1"' and sent["if-modified-since"] == lm
    assert "if-none-match" not in server.requests_for("/f")[0].headers


async def test_client_identifies_itself_and_decodes_gzip(
    server: FeedServer, client: httpx.AsyncClient, config: FetchConfig
) -> None:
    url = server.route("/g", Route(body=RSS * 50, gzip=True))
    result = await fetch_feed(client, state(url), config)
    assert result.body == RSS * 50
    request = server.requests_for("/g")[0]
    assert request.headers["user-agent"] == config.user_agent
    assert "gzip" in request.headers["accept-encoding"]


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_seconds_is_reported_and_respected_by_polling(
    server: FeedServer, client: httpx.AsyncClient, config: FetchConfig, status: int
) -> None:
    url = server.route("/busy", Route(status=status, headers={"Retry-After": "7200"}))
    with pytest.raises(FetchError) as info:
        await fetch_feed(client, state(url), config)
    assert info.value.status == status and info.value.retry_after == 7200.0
    assert url in str(info.value) and str(status) in str(info.value)
    delay = next_poll_delay(
        state(url, consecutive_errors=1),
        config=config,
        result=None,
        ttl=None,
        new_items=0,
        error=info.value,
        now=datetime.now(UTC),
        rng=random.Random(1),
    )
    assert delay >= 7200.0


async def test_retry_after_http_date_is_relative_to_the_server_clock(
    server: FeedServer, client: httpx.AsyncClient, config: FetchConfig
) -> None:
    server_now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    later = server_now + timedelta(hours=1)
    headers = {
        "Retry-After": format_datetime(later, usegmt=True),
        "Date": format_datetime(server_now, usegmt=True),
    }
    url = server.route("/date", Route(status=503, headers=headers))
    with pytest.raises(FetchError) as info:
        await fetch_feed(client, state(url), config)
    assert info.value.retry_after == 3600.0


async def test_permanent_redirect_is_reported_and_followed(
    server: FeedServer, client: httpx.AsyncClient, config: FetchConfig
) -> None:
    new = server.route("/new", Route(body=RSS))
    old = server.route("/old", Route(status=301, location="/new"))
    result = await fetch_feed(client, state(old), config)
    assert result.permanent_redirect == new and result.final_url == new and result.body == RSS
    assert result.url == old


async def test_temporary_hop_before_a_301_is_not_a_permanent_move(
    server: FeedServer, client: httpx.AsyncClient, config: FetchConfig
) -> None:
    server.route("/final", Route(body=RSS))
    server.route("/moved", Route(status=301, location="/final"))
    temp = server.route("/temp", Route(status=302, location="/moved"))
    result = await fetch_feed(client, state(temp), config)
    assert result.permanent_redirect is None and result.final_url.endswith("/final")


async def test_too_many_redirects_is_a_fetch_error(
    server: FeedServer, client: httpx.AsyncClient
) -> None:
    for i in range(4):
        server.route(f"/r{i}", Route(status=302, location=f"/r{i + 1}"))
    server.route("/r4", Route(body=RSS))
    cfg = FetchConfig(max_redirects=2, timeout=2)
    with pytest.raises(FetchError, match="more than 2 redirects"):
        await fetch_feed(client, state(server.url("/r0")), cfg)
    assert (await fetch_feed(client, state(server.url("/r0")), FetchConfig())).body == RSS


async def test_410_raises_feed_gone(
    server: FeedServer, client: httpx.AsyncClient, config: FetchConfig
) -> None:
    url = server.route("/gone", Route(status=410))
    with pytest.raises(FeedGoneError) as info:
        await fetch_feed(client, state(url), config)
    assert info.value.status == 410 and url in str(info.value)


async def test_http_error_status_names_url_and_status(
    server: FeedServer, client: httpx.AsyncClient, config: FetchConfig
) -> None:
    with pytest.raises(FetchError) as info:
        await fetch_feed(client, state(server.url("/missing")), config)
    assert info.value.status == 404 and "HTTP 404" in str(info.value)


async def test_connection_refused_is_a_fetch_error(
    client: httpx.AsyncClient, config: FetchConfig
) -> None:
    with socket_bound_but_closed() as port:
        url = f"http://127.0.0.1:{port}/feed"
        with pytest.raises(FetchError, match="cannot connect") as info:
            await fetch_feed(client, state(url), config)
    assert url in str(info.value)


class socket_bound_but_closed:
    """A port nobody listens on (bound, never listening, so nothing else takes it meanwhile)."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        port: int = self._sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


HOSTILE = {
    "declared 1 GiB": Route(stream_bytes=GIB),
    "chunked 1 GiB": Route(stream_bytes=GIB, content_length=False),
    "gzip bomb": Route(gzip_bomb=GIB),
    "trickle": Route(body=RSS, trickle=1.0),
    "reset mid-body": Route(body=RSS * 20, reset="mid-body"),
    "reset before headers": Route(body=RSS, reset="before-headers"),
}
EXPECTED = {
    "declared 1 GiB": "exceeds the limit",
    "chunked 1 GiB": "exceeds the limit",
    "gzip bomb": "exceeds the limit",
    "trickle": "deadline",
    "reset mid-body": "connection broken",
    "reset before headers": "connection broken",
}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_server_fails_in_bounded_time_and_memory_while_good_feed_is_fetched(
    server: FeedServer, client: httpx.AsyncClient, config: FetchConfig, name: str
) -> None:
    bad = server.route("/bad", HOSTILE[name])
    good = server.route("/good", Route(body=RSS))
    limiter = HostLimiter(config)
    tracemalloc.start()
    started = time.monotonic()
    try:
        outcomes = await asyncio.gather(
            fetch_feed(client, state(bad), config, limiter=limiter),
            *(fetch_feed(client, state(good), config, limiter=limiter) for _ in range(3)),
            return_exceptions=True,
        )
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    failure, *goods = outcomes
    assert isinstance(failure, FetchError), failure
    assert EXPECTED[name] in str(failure) and bad in str(failure)
    assert all(not isinstance(g, BaseException) and g.body == RSS for g in goods)
    assert elapsed < 2 * config.timeout
    assert peak < 4 * config.max_bytes + 16 * 1024 * 1024
    assert limiter.hosts_in_use == 0


async def test_redirect_loop_fails_fast_and_names_the_url(
    server: FeedServer, client: httpx.AsyncClient, config: FetchConfig
) -> None:
    a = server.route("/a", Route(status=302, location="/b"))
    server.route("/b", Route(status=301, location="/a"))
    good = server.route("/ok", Route(body=RSS))
    started = time.monotonic()
    loop, ok = await asyncio.gather(
        fetch_feed(client, state(a), config),
        fetch_feed(client, state(good), config),
        return_exceptions=True,
    )
    assert isinstance(loop, FetchError) and "redirect loop" in str(loop) and a in str(loop)
    assert not isinstance(ok, BaseException) and ok.body == RSS
    assert time.monotonic() - started < config.timeout


async def test_host_limiter_caps_requests_per_host_and_in_total() -> None:
    limiter = HostLimiter(FetchConfig(per_host=2, concurrency=3))
    active: dict[str, int] = {}
    peak: dict[str, int] = {}
    total_peak = 0
    release = asyncio.Event()

    async def hold(url: str) -> None:
        nonlocal total_peak
        host = url.split("/")[2]
        async with limiter.whole(), limiter.host(url):
            active[host] = active.get(host, 0) + 1
            peak[host] = max(peak.get(host, 0), active[host])
            total_peak = max(total_peak, sum(active.values()))
            await release.wait()
            active[host] -= 1

    tasks = [asyncio.create_task(hold(f"http://h{i % 2}.example/x")) for i in range(8)]
    for _ in range(20):
        await asyncio.sleep(0)  # let every task reach its semaphore
    release.set()
    await asyncio.gather(*tasks)
    assert max(peak.values()) <= 2 and total_peak == 3
    assert limiter.hosts_in_use == 0


async def test_pooled_transport_uses_every_connection_and_gives_each_back(
    server: FeedServer,
) -> None:
    url = server.route("/f", Route(body=RSS))
    transport = PooledTransport(10, per_pool=4)
    async with httpx.AsyncClient(transport=transport) as client:
        async with contextlib.AsyncExitStack() as open_bodies, asyncio.timeout(10):
            # Ten responses held open at once: the pools (4 + 3 + 3 connections) take all ten;
            # one pool for every request would leave the fifth waiting until the timeout.
            for _ in range(10):
                await open_bodies.enter_async_context(client.stream("GET", url))
            assert transport.in_flight == (4, 3, 3)
        assert transport.in_flight == (0, 0, 0)
        # A failed request gives its slot back too (a refused connection, and a cancelled one).
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:9/")
        slow = server.route("/slow", Route(body=RSS, trickle=0.5))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await client.get(slow)
        assert transport.in_flight == (0, 0, 0)
        assert [(await client.get(url)).content for _ in range(5)] == [RSS] * 5
        assert transport.in_flight == (0, 0, 0)


async def test_a_proxy_named_in_the_environment_is_still_used(
    server: FeedServer, config: FetchConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx honours HTTP_PROXY only with its own transport, so make_client keeps that one then.
    monkeypatch.setenv("HTTP_PROXY", server.base)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    target = "http://feeds.invalid/world.xml"
    server.route(target, Route(body=RSS))
    async with make_client(config) as client:
        got = await fetch_feed(client, state(target), config)
    assert got.body == RSS and [r.path for r in server.requests] == [target]


def test_cache_headers_become_seconds() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_max_age({"cache-control": "public, max-age=600"}, now=now) == 600.0
    expires = format_datetime(now + timedelta(minutes=30), usegmt=True)
    assert parse_max_age({"expires": expires}, now=now) == 1800.0
    both = {"cache-control": "max-age=60", "expires": expires}
    assert parse_max_age(both, now=now) == 60.0  # max-age wins over Expires
    assert parse_max_age({"expires": "0"}, now=now) is None
    assert parse_max_age({}, now=now) is None
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after("soon", now=now) is None
    past = format_datetime(now - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
