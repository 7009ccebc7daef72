from __future__ import annotations

import base64
import hashlib
import hmac
import re
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.channels import build_channel
from monitor.channels.webhook import WebhookChannel, secret_key
from monitor.config import parse_config
from monitor.errors import (
    ChannelGoneError,
    ConfigError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from monitor.httpdates import retry_after
from monitor.payload import test_payload
from monitor.types import Delivery

from receiver import Received, Reply, WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
WRONG_SECRET = "whsec_" + base64.b64encode(b"w" * 32).decode()
NOW = datetime.now(UTC)


def delivery(n: int = 1) -> Delivery:
    return Delivery(
        id=f"dlv_{n:04d}",
        channel="hook",
        kind="test",
        payload=test_payload("hook", now=NOW),
        created_at=NOW,
        next_attempt_at=NOW,
    )


def ticking(*offsets: float) -> Callable[[], float]:
    """A clock at real time plus the given offsets, one per call (verification needs ~now)."""
    base = time.time()
    values = iter(offsets)
    return lambda: base + next(values)


@pytest.fixture
def rx() -> Iterator[WebhookReceiver]:
    with WebhookReceiver([SECRET]) as receiver:
        yield receiver


def channel(url: str, **kwargs: object) -> WebhookChannel:
    options: dict[str, object] = {"secrets": [SECRET], "timeout": 3.0} | kwargs
    return WebhookChannel(name="hook", url=url, **options)  # type: ignore[arg-type]


async def test_signed_post_verifies_with_standardwebhooks(rx: WebhookReceiver) -> None:
    ch = channel(rx.url, headers={"Authorization": "Bearer t", "webhook-id": "forged"})
    d = delivery()
    receipt = await ch.send(d)
    await ch.aclose()
    assert receipt.status == 200 and receipt.delivery_id == d.id and receipt.channel == "hook"
    (got,) = rx.received
    assert got.verified, got.error
    assert got.method == "POST"
    assert got.id == d.id  # a configured header cannot replace ours
    assert got.body == d.payload
    assert got.headers["content-type"] == "application/json"
    assert got.headers["authorization"] == "Bearer t"
    assert abs((got.timestamp or 0) - time.time()) < 60


async def test_signature_matches_a_plain_stdlib_hmac(rx: WebhookReceiver) -> None:
    ch = channel(rx.url)
    await ch.send(delivery())
    await ch.aclose()
    (got,) = rx.received
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{got.id}.{got.timestamp}.".encode() + got.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert got.signatures == [f"v1,{expected}"]


async def test_during_rotation_both_old_and_new_secret_verify() -> None:
    with (
        WebhookReceiver([OLD_SECRET]) as old_only,
        WebhookReceiver([SECRET]) as new_only,
        WebhookReceiver([base64.b64encode(b"x" * 32).decode()]) as stranger,
    ):
        for rx in (old_only, new_only, stranger):
            ch = channel(rx.url, secrets=[SECRET, OLD_SECRET])
            await ch.send(delivery())
            await ch.aclose()
        assert old_only.received[0].verified
        assert new_only.received[0].verified
        assert len(new_only.received[0].signatures) == 2
        assert not stranger.received[0].verified  # the check itself can fail


async def test_secret_without_prefix_is_used_as_raw_bytes() -> None:
    with WebhookReceiver([b"correct horse battery staple"]) as rx:
        ch = channel(rx.url, secrets=["correct horse battery staple"])
        await ch.send(delivery())
        await ch.aclose()
        assert rx.received[0].verified


def test_malformed_whsec_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        secret_key("whsec_not*base64")
    with pytest.raises(ConfigError):
        WebhookChannel(name="hook", url="http://127.0.0.1:1/", secrets=[])


async def test_retry_keeps_the_id_and_body_but_signs_a_fresh_timestamp(
    rx: WebhookReceiver,
) -> None:
    rx.program(Reply(status=503, body=b"try later"))
    ch = channel(rx.url, clock=ticking(0, 90))
    d = delivery()
    with pytest.raises(RetryableDeliveryError, match="HTTP 503: try later"):
        await ch.send(d)
    await ch.send(d)
    await ch.aclose()
    first, second = rx.wait_for(2)
    assert first.verified and second.verified
    assert first.id == second.id == d.id
    assert first.body == second.body
    assert second.timestamp is not None and first.timestamp is not None
    assert second.timestamp - first.timestamp == 90
    assert first.signatures != second.signatures


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429, 301, 302, 307, 308])
async def test_server_trouble_and_redirects_are_retryable(rx: WebhookReceiver, status: int) -> None:
    rx.program(Reply(status=status, headers={"Location": "http://127.0.0.1:1/elsewhere"}))
    ch = channel(rx.url)
    with pytest.raises(RetryableDeliveryError) as info:
        await ch.send(delivery())
    await ch.aclose()
    assert f"HTTP {status}" in str(info.value)
    assert info.value.retryable


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 413, 422])
async def test_client_errors_are_permanent(rx: WebhookReceiver, status: int) -> None:
    rx.program(Reply(status=status, body=b'{"error": "bad"}'))
    ch = channel(rx.url)
    with pytest.raises(PermanentDeliveryError) as info:
        await ch.send(delivery())
    await ch.aclose()
    assert type(info.value) is PermanentDeliveryError
    assert not info.value.retryable
    assert f"HTTP {status}" in str(info.value) and '{"error": "bad"}' in str(info.value)
    assert "dlv_0001" in str(info.value) and "hook" in str(info.value)


async def test_410_means_the_channel_is_gone(rx: WebhookReceiver) -> None:
    rx.program(Reply(status=410))
    ch = channel(rx.url)
    with pytest.raises(ChannelGoneError):
        await ch.send(delivery())
    await ch.aclose()


async def test_429_retry_after_seconds_is_reported(rx: WebhookReceiver) -> None:
    rx.program(Reply(status=429, headers={"Retry-After": "120"}))
    ch = channel(rx.url)
    with pytest.raises(RetryableDeliveryError) as info:
        await ch.send(delivery())
    await ch.aclose()
    assert info.value.retry_after == 120.0


async def test_503_retry_after_http_date_is_reported(rx: WebhookReceiver) -> None:
    base = time.time()
    when = format_datetime(datetime.fromtimestamp(int(base) + 300, UTC), usegmt=True)
    rx.program(Reply(status=503, headers={"Retry-After": when}))
    ch = channel(rx.url, clock=lambda: float(int(base)))
    with pytest.raises(RetryableDeliveryError) as info:
        await ch.send(delivery())
    await ch.aclose()
    assert info.value.retry_after == 300.0


def test_unusable_retry_after_is_ignored() -> None:
    assert retry_after("soon", now=datetime.fromtimestamp(0, UTC)) is None
    assert retry_after(None, now=datetime.fromtimestamp(0, UTC)) is None
    assert (
        retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=datetime.fromtimestamp(2e9, UTC)) == 0.0
    )  # past


async def test_redirect_is_not_followed_even_by_a_following_client(rx: WebhookReceiver) -> None:
    with WebhookReceiver([SECRET]) as elsewhere:
        rx.program(Reply(status=307, headers={"Location": elsewhere.url}))
        async with httpx.AsyncClient(follow_redirects=True) as client:
            ch = channel(rx.url, client=client)
            with pytest.raises(RetryableDeliveryError, match="HTTP 307"):
                await ch.send(delivery())
            await ch.aclose()  # a shared client is the caller's to close
            assert not client.is_closed
        assert elsewhere.received == []


async def test_refused_connection_is_retryable() -> None:
    with socket.socket() as holder:  # bound but not listening: connections are refused
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        ch = channel(f"http://127.0.0.1:{port}/hook")
        with pytest.raises(RetryableDeliveryError, match="network error"):
            await ch.send(delivery())
        await ch.aclose()


async def test_dropped_connection_without_answer_is_retryable(rx: WebhookReceiver) -> None:
    rx.program(Reply(close=True))
    ch = channel(rx.url)
    with pytest.raises(RetryableDeliveryError):
        await ch.send(delivery())
    await ch.aclose()
    assert rx.received[0].verified


async def test_slow_receiver_times_out_within_the_deadline(rx: WebhookReceiver) -> None:
    rx.program(Reply(delay=30.0))
    ch = channel(rx.url, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(RetryableDeliveryError) as info:
        await ch.send(delivery())
    elapsed = time.monotonic() - started
    await ch.aclose()
    assert 0.4 <= elapsed < 2.0
    assert "time" in str(info.value)


async def test_deadline_holds_even_when_the_shared_client_would_wait_longer(
    rx: WebhookReceiver,
) -> None:
    rx.program(Reply(delay=30.0))
    async with httpx.AsyncClient(timeout=60.0) as client:
        ch = channel(rx.url, timeout=0.5, client=client)
        started = time.monotonic()
        with pytest.raises(RetryableDeliveryError, match=r"no answer within 0\.5s"):
            await ch.send(delivery())
        assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("answer", [b"", b"ok", b"x" * 3000])
async def test_deliveries_reuse_one_connection(rx: WebhookReceiver, answer: bytes) -> None:
    # httpx drops a connection whose answer was not read to its end: a new TCP connection for
    # every delivery otherwise.
    rx.default = Reply(body=answer)
    ch = channel(rx.url)
    for n in range(3):
        await ch.send(delivery(n))
    await ch.aclose()
    first, second, third = rx.received
    assert first.client_port == second.client_port == third.client_port


async def test_a_success_whose_body_stalls_is_still_a_success_within_the_deadline(
    rx: WebhookReceiver,
) -> None:
    rx.program(Reply(body=b"ok", stall=30.0))
    ch = channel(rx.url, timeout=0.5)
    started = time.monotonic()
    receipt = await ch.send(delivery())
    elapsed = time.monotonic() - started
    await ch.aclose()
    assert receipt.status == 200
    assert 0.4 <= elapsed < 2.0


async def test_invalid_configured_header_is_permanent(rx: WebhookReceiver) -> None:
    ch = channel(rx.url, headers={"X-Bad": "line\r\nbreak"})
    with pytest.raises(PermanentDeliveryError):
        await ch.send(delivery())
    await ch.aclose()
    assert rx.received == []


async def test_error_message_is_one_short_line_without_credentials(rx: WebhookReceiver) -> None:
    rx.program(Reply(status=500, body=("trace\n" + "x" * 5000).encode()))
    url = rx.url.replace("http://", "http://user:pw@") + "?token=s3cret"
    ch = channel(url)
    with pytest.raises(RetryableDeliveryError) as info:
        await ch.send(delivery())
    await ch.aclose()
    message = str(info.value)
    assert "\n" not in message
    assert "pw" not in message and "s3cret" not in message
    assert "HTTP 500: trace xxx" in message
    assert len(info.value.detail) < 260


async def test_build_channel_from_config_signs_with_both_configured_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLD_HOOK_SECRET", OLD_SECRET)
    with WebhookReceiver([OLD_SECRET]) as rx:
        config = parse_config(
            {
                "channels": [
                    {
                        "type": "webhook",
                        "name": "hook",
                        "url": rx.url,
                        "secret": SECRET,
                        "previous_secret_env": "OLD_HOOK_SECRET",
                        "headers": {"X-Team": "desk"},
                    }
                ]
            },
            path=tmp_path / "monitor.toml",
        )
        ch = build_channel(config.channel("hook"), default_timeout=2.0)
        assert ch.name == "hook"
        await ch.send(delivery())
        await ch.aclose()
        got: Received = rx.received[0]
        assert got.verified and got.headers["x-team"] == "desk"
        assert len(got.signatures) == 2


def documented_python(name: str) -> str:
    docs = Path(__file__).parents[1] / "docs" / "webhooks.md"
    blocks = re.findall(r"```python\n(.*?)```", docs.read_text(encoding="utf-8"), flags=re.S)
    found: list[str] = [b for b in blocks if f"def {name}(" in b]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("secret", [SECRET, "a plain shared password"])
async def test_documented_stdlib_verification_accepts_real_requests_and_rejects_forgeries(
    secret: str,
) -> None:
    namespace: dict[str, Any] = {}
    exec(documented_python("verify_webhook"), namespace)
    verify = namespace["verify_webhook"]
    raw = secret.encode() if not secret.startswith("whsec_") else secret
    with WebhookReceiver([raw]) as rx:
        ch = channel(rx.url, secrets=[secret, OLD_SECRET])
        await ch.send(delivery())
        await ch.aclose()
        got = rx.received[0]
    assert got.verified
    assert verify(secret, dict(got.headers), got.body)["type"] == "test"
    with pytest.raises(ValueError):
        verify(secret, dict(got.headers), got.body + b" ")
    with pytest.raises(ValueError):
        verify(WRONG_SECRET, dict(got.headers), got.body)
