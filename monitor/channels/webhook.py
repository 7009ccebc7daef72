"""Signed webhooks (Standard Webhooks): the only module that speaks HTTP to receivers.

Each attempt POSTs the stored payload bytes unchanged with

    webhook-id:        the delivery id (stable across retries, so consumers drop repeats)
    webhook-timestamp: integer seconds of *this* attempt (consumers reject stale replays)
    webhook-signature: "v1,<base64 HMAC-SHA256(secret, f'{id}.{timestamp}.{body}')>" per secret

During secret rotation both the current and the previous secret sign every request, separated
by a space, so the consumer may switch its secret at any time. Whether a failure is worth
another attempt is decided here (see :func:`classify`); the outbox loop only obeys.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from monitor import __version__
from monitor.errors import (
    ChannelGoneError,
    ConfigError,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from monitor.httpdates import retry_after as parse_retry_after
from monitor.types import Delivery, Receipt

SECRET_PREFIX = "whsec_"
BODY_SNIPPET = 200  # characters of the receiver's answer kept in the error message
_READ_LIMIT = 4096  # bytes of the answer read at most: a huge error page is not our problem

# A clock returns the current time as an aware datetime or as epoch seconds.
Clock = Callable[[], datetime | float]


def system_clock() -> datetime:
    return datetime.now(UTC)


def _epoch(clock: Clock) -> float:
    now = clock()
    return now.timestamp() if isinstance(now, datetime) else float(now)


def secret_key(secret: str) -> bytes:
    """The HMAC key of a configured secret.

    ``whsec_<base64>`` is decoded as Standard Webhooks specifies; any other string is used as its
    UTF-8 bytes, so a plain shared password works too (its consumers must then verify with those
    raw bytes, not pass the string to a Standard Webhooks library, which would base64-decode it).
    """
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error as exc:
            raise ConfigError(f"webhook secret {SECRET_PREFIX}...: not valid base64") from exc
    else:
        key = secret.encode("utf-8")
    if not key:
        raise ConfigError("webhook secret is empty")
    return key


def sign(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: one ``v1,<base64>`` per key."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")
        for key in keys
    )


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= BODY_SNIPPET else flat[: BODY_SNIPPET - 1] + "…"


def classify(status: int, snippet: str, *, retry_after: float | None) -> DeliveryError | None:
    """None for success, else the error this status means (retryable or not decided here)."""
    if 200 <= status < 300:
        return None
    message = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    if status == 410:
        return ChannelGoneError(message)
    # Redirects are never followed (a signed body must not be replayed to another host), but a
    # moved endpoint is usually an operator's slip worth retrying once it is fixed.
    if 300 <= status < 400 or status in (408, 425, 429) or status >= 500:
        return RetryableDeliveryError(message, retry_after=retry_after)
    return PermanentDeliveryError(message)


async def _head(response: httpx.Response) -> bytes:
    """The first ``_READ_LIMIT`` bytes of the answer (all of a short one); fewer when reading
    fails: the status decides, a broken body only loses its excerpt."""
    body = b""
    try:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= _READ_LIMIT:
                break
    except httpx.HTTPError:
        pass
    return body[:_READ_LIMIT]


async def _drain(response: httpx.Response, deadline: asyncio.Timeout) -> None:
    """Read a 2xx answer's (short) body to its end within what is left of the deadline.

    httpx closes a connection whose answer was not read to the end, so without this every
    delivery paid for a new TCP connection (about 0.5 ms of CPU each on loopback). The status
    has decided already: a body that is long, broken or too slow only costs the connection,
    never the success.
    """
    left = (deadline.when() or 0.0) - asyncio.get_running_loop().time()
    deadline.reschedule(None)  # from here on the delivery succeeded, whatever the body does
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(left, 0.0)):
            await _head(response)


class WebhookChannel:
    """A Standard Webhooks endpoint. ``send`` makes exactly one signed POST."""

    def __init__(
        self,
        *,
        name: str,
        url: str,
        secrets: Sequence[str],
        headers: Mapping[str, str] | None = None,
        timeout: float = 15.0,
        client: httpx.AsyncClient | None = None,
        clock: Clock = system_clock,
    ) -> None:
        if not secrets:
            raise ConfigError(f"channel {name}: a webhook needs at least one secret")
        self._name = name
        self._url = url
        self._host = urlsplit(url).netloc.rsplit("@", 1)[-1]  # never echo credentials in errors
        self._keys = tuple(secret_key(s) for s in secrets)
        self._extra = dict(headers or {})
        self._timeout = timeout
        self._clock = clock
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        )

    @property
    def name(self) -> str:
        return self._name

    def headers_for(self, delivery: Delivery, timestamp: int) -> dict[str, str]:
        """The request headers of one attempt; ours win over configured extras of the same name."""
        ours = {
            "content-type": "application/json",
            "user-agent": f"news-monitor/{__version__}",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._keys, delivery.id, timestamp, delivery.payload),
        }
        extra = {k: v for k, v in self._extra.items() if k.lower() not in ours}
        return extra | ours

    async def send(self, delivery: Delivery) -> Receipt:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout) as deadline:
                status, snippet, retry_after = await self._post(delivery, deadline)
        except TimeoutError as exc:
            raise self._error(
                RetryableDeliveryError(f"timed out: no answer within {self._timeout:g}s"), delivery
            ) from exc
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            # Our request cannot be sent as configured (URL scheme, header values): no retry helps.
            raise self._error(PermanentDeliveryError(f"bad request: {exc}"), delivery) from exc
        except httpx.TimeoutException as exc:
            raise self._error(
                RetryableDeliveryError(f"timed out: {type(exc).__name__}"), delivery
            ) from exc
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise self._error(RetryableDeliveryError(f"network error: {reason}"), delivery) from exc
        error = classify(status, snippet, retry_after=retry_after)
        if error is not None:
            raise self._error(error, delivery)
        return Receipt(
            delivery_id=delivery.id,
            channel=self._name,
            status=status,
            elapsed=time.monotonic() - started,
        )

    async def _post(
        self, delivery: Delivery, deadline: asyncio.Timeout
    ) -> tuple[int, str, float | None]:
        now = _epoch(self._clock)
        headers = self.headers_for(delivery, int(now))
        async with self._client.stream(
            "POST",
            self._url,
            content=delivery.payload,
            headers=headers,
            follow_redirects=False,
        ) as response:
            snippet = ""
            if response.is_success:
                await _drain(response, deadline)
            else:
                snippet = _one_line((await _head(response)).decode("utf-8", "replace"))
            retry_after = parse_retry_after(
                response.headers.get("retry-after"), now=datetime.fromtimestamp(now, UTC)
            )
            return response.status_code, snippet, retry_after

    def _error(self, error: DeliveryError, delivery: Delivery) -> DeliveryError:
        # Rebuilt with the subject so str(err) names the channel, the delivery and the host.
        return type(error)(
            f"{self._host}: {error.detail}",
            channel=self._name,
            delivery_id=delivery.id,
            retry_after=error.retry_after,
        )

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()
