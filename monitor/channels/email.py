"""Email alerts over SMTP: the only module that imports aiosmtplib.

The message is rendered from the stored JSON payload (the same bytes a webhook would get), as
multipart/alternative with a plain-text and an HTML part. Its Message-ID is derived from the
delivery id, so a repeat after an ambiguous failure is recognisable (and threaded together) by
the reader's mail client.

TLS is explicit, never opportunistic: ``starttls`` refuses to continue when the server does not
offer STARTTLS rather than sending the message (or the password) in clear.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Literal

import aiosmtplib
import jinja2
import orjson

from monitor.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError
from monitor.types import Delivery, Receipt

log = logging.getLogger(__name__)

SUBJECT_PREFIX = "[news-monitor]"
_SUBJECT_MAX = 180
_QUIT_TIMEOUT = 2.0
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

TlsMode = Literal["starttls", "tls", "none"]


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("monitor", "templates"),
        # Titles and excerpts come from arbitrary feeds: escape everything in the HTML part.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["web_url"] = _web_url
    return env


def _web_url(url: object) -> str:
    """Only http(s) links become clickable: a feed can put ``javascript:`` anywhere."""
    text = str(url)
    return text if text.startswith(("https://", "http://")) else ""


def _one_line(text: str, limit: int = _SUBJECT_MAX) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def subject_for(payload: dict[str, Any]) -> str:
    """``[news-monitor] HIGH sanctions: <title>`` / ``[news-monitor] 5 alerts: <rule>``."""
    kind, data = payload["type"], payload["data"]
    if kind == "alert.created":
        alert, article = data["alert"], data["article"]
        text = f"{alert['severity'].upper()} {alert['topic']}: {article['title']}"
    elif kind == "alert.digest":
        count = data["group"]["count"]
        text = f"{count} alert{'s' if count != 1 else ''}: {data['group']['rule']}"
    else:
        text = f"test event for channel {data['channel']}"
    return _one_line(f"{SUBJECT_PREFIX} {text}")


def message_id(delivery_id: str, sender: str) -> str:
    domain = sender.rsplit("@", 1)[1].strip("<> ") if "@" in sender else ""
    return f"<{_ID_UNSAFE.sub('-', delivery_id)}@{domain or 'news-monitor.invalid'}>"


def render_message(
    delivery: Delivery,
    *,
    sender: str,
    recipients: Sequence[str],
    now: datetime,
    env: jinja2.Environment | None = None,
) -> EmailMessage:
    """The complete message for one delivery; PermanentDeliveryError if the payload is unusable."""
    try:
        payload = orjson.loads(delivery.payload)
        kind = payload["type"]
        data = payload["data"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise PermanentDeliveryError(f"payload is not a news-monitor event: {exc}") from exc
    if kind == "alert.created":
        context = {"kind": "alert", "alerts": [data], "group": None, "test": None}
    elif kind == "alert.digest":
        context = {"kind": "digest", "alerts": data["alerts"], "group": data["group"], "test": None}
    elif kind == "test":
        context = {"kind": "test", "alerts": [], "group": None, "test": data}
    else:
        raise PermanentDeliveryError(f"payload type {kind!r} cannot be sent by email")
    context |= {"delivery_id": delivery.id, "timestamp": payload.get("timestamp", "")}
    env = env or _templates()
    try:
        text = env.get_template("email.txt.j2").render(context)
        html = env.get_template("email.html.j2").render(context)
        subject = subject_for(payload)
    except (jinja2.TemplateError, KeyError, TypeError) as exc:
        raise PermanentDeliveryError(f"cannot render the email: {exc}") from exc

    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(now.astimezone(UTC))
    msg["Message-ID"] = message_id(delivery.id, sender)
    msg["X-News-Monitor-Delivery"] = delivery.id
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def translate(exc: BaseException) -> DeliveryError:
    """Our verdict on an SMTP failure: 4xx replies and network trouble are worth retrying."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = sorted({r.code for r in exc.recipients})
        detail = "; ".join(
            f"{r.recipient}: {r.code} {_one_line(r.message)}" for r in exc.recipients
        )
        if any(400 <= c < 500 for c in codes):
            return RetryableDeliveryError(f"recipients refused: {detail}")
        return PermanentDeliveryError(f"recipients refused: {detail}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        what = (
            "authentication failed" if isinstance(exc, aiosmtplib.SMTPAuthenticationError) else ""
        )
        detail = f"{what + ': ' if what else ''}{exc.code} {_one_line(exc.message)}"
        if 400 <= exc.code < 500:
            return RetryableDeliveryError(f"SMTP {detail}")
        return PermanentDeliveryError(f"SMTP {detail}")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError):
        return RetryableDeliveryError(f"network error: {exc}")
    if isinstance(exc, TimeoutError):  # aiosmtplib's timeouts derive from it too
        return RetryableDeliveryError(f"timed out: {exc}" if str(exc) else "timed out")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentDeliveryError(f"TLS certificate rejected: {exc.verify_message}")
    if isinstance(exc, aiosmtplib.SMTPException):
        # No reply code: a capability we require is missing (STARTTLS, AUTH, SMTPUTF8).
        message = str(exc)
        if "STARTTLS" in message:
            message = "server does not offer STARTTLS; refusing to send in clear"
        return PermanentDeliveryError(message)
    if isinstance(exc, OSError):
        return RetryableDeliveryError(f"network error: {exc}")
    return PermanentDeliveryError(f"{type(exc).__name__}: {exc}")


class EmailChannel:
    """One SMTP server and its recipients. ``send`` makes exactly one SMTP session."""

    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        tls: TlsMode = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 15.0,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._name = name
        self._host = host
        self._port = port
        self._sender = sender
        self._recipients = tuple(recipients)
        self._tls = tls
        self._username = username
        self._password = password
        self._timeout = timeout
        self._tls_context = tls_context
        self._local_hostname = local_hostname
        self._clock = clock
        self._env = _templates()

    @property
    def name(self) -> str:
        return self._name

    def render(self, delivery: Delivery) -> EmailMessage:
        return render_message(
            delivery,
            sender=self._sender,
            recipients=self._recipients,
            now=self._clock(),
            env=self._env,
        )

    async def send(self, delivery: Delivery) -> Receipt:
        try:
            msg = self.render(delivery)
        except DeliveryError as exc:
            raise self._error(exc, delivery) from exc
        started = time.monotonic()
        smtp = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            use_tls=self._tls == "tls",
            # True, not None: aiosmtplib's None means "upgrade if offered", i.e. silently clear.
            start_tls=self._tls == "starttls",
            tls_context=self._tls_context,
            username=self._username,
            password=self._password,
            timeout=self._timeout,
            local_hostname=self._local_hostname,
        )
        try:
            try:
                async with asyncio.timeout(self._timeout):
                    await smtp.connect()
                    refused, _reply = await smtp.send_message(
                        msg, sender=self._sender, recipients=list(self._recipients)
                    )
            except (aiosmtplib.SMTPException, OSError) as exc:  # TimeoutError is an OSError
                raise self._error(translate(exc), delivery) from exc
            # Accepted: a failing QUIT must not turn a delivered message into a retry.
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                async with asyncio.timeout(_QUIT_TIMEOUT):
                    await smtp.quit()
        finally:
            smtp.close()
        if refused:
            log.warning(
                "email %s: some recipients refused",
                delivery.id,
                extra={"channel": self._name, "refused": sorted(refused)},
            )
        return Receipt(
            delivery_id=delivery.id,
            channel=self._name,
            status=250,
            elapsed=time.monotonic() - started,
        )

    def _error(self, error: DeliveryError, delivery: Delivery) -> DeliveryError:
        return type(error)(
            f"{self._host}:{self._port}: {error.detail}",
            channel=self._name,
            delivery_id=delivery.id,
            retry_after=error.retry_after,
        )

    async def aclose(self) -> None:
        """Nothing to release: each send opens and closes its own SMTP session."""
