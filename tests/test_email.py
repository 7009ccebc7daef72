from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from monitor.channels import EmailChannel, build_channel
from monitor.config import EmailChannelConfig
from monitor.errors import PermanentDeliveryError, RetryableDeliveryError
from monitor.payload import alert_payload, digest_payload, test_payload
from monitor.types import Alert, Article, Delivery, TermHit

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
USER, PASSWORD = "monitor", "s3cret-pw"


@dataclass
class Sink:
    """aiosmtpd handler recording what arrived and how (over TLS? authenticated?)."""

    reply: str = "250 OK"
    rcpt_reply: str | None = None
    hang: bool = False
    messages: list[dict[str, Any]] = field(default_factory=list)
    auth_attempts: list[tuple[str, bool]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.hang:
            await asyncio.Event().wait()  # cancelled when the controller stops
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "content": envelope.content,
                "tls": server.transport.get_extra_info("ssl_object") is not None,
                "authenticated": session.authenticated,
            }
        )
        return self.reply

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        self.auth_attempts.append(
            (mechanism, server.transport.get_extra_info("ssl_object") is not None)
        )
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


class LoopbackController(Controller):
    """Binds port 0 and learns the port, so parallel tests never race for a fixed one."""

    def _create_server(self) -> Any:
        return self._bind()

    async def _bind(self) -> Any:
        server = await self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=0, ssl=self.ssl_context
        )
        self.port = server.sockets[0].getsockname()[1]
        return server


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="module")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def serve(sink: Sink, **kwargs: Any) -> LoopbackController:
    ctl = LoopbackController(
        sink,
        hostname="127.0.0.1",
        server_hostname="mx.test",
        authenticator=sink.authenticate,
        **kwargs,
    )
    ctl.start()
    return ctl


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def starttls_server(sink: Sink, server_tls: ssl.SSLContext) -> Iterator[LoopbackController]:
    ctl = serve(sink, tls_context=server_tls, require_starttls=True, auth_required=True)
    yield ctl
    ctl.stop()


def make_channel(port: int, client_tls: ssl.SSLContext | None, **kwargs: Any) -> EmailChannel:
    options: dict[str, Any] = {
        "name": "desk",
        "host": "127.0.0.1",
        "port": port,
        "sender": "monitor@alerts.example",
        "recipients": ["analyst@example.org", "desk@example.org"],
        "tls": "starttls",
        "username": USER,
        "password": PASSWORD,
        "timeout": 5.0,
        "tls_context": client_tls,
        "local_hostname": "client.test",
        "clock": lambda: NOW,
    } | kwargs
    return EmailChannel(**options)


def article(n: int, title: str = "") -> Article:
    return Article(
        id=f"art{n}",
        url=f"https://news.example/{n}",
        title=title or f"EU adopts sanctions package {n}",
        text="Ministers agreed a new package of sanctions on Tuesday. " * 3,
        source="example-wire",
        published=NOW - timedelta(hours=n),
        fetched_at=NOW,
        story_id=f"art{n}",
    )


def alert(n: int) -> Alert:
    return Alert(
        id=f"alr{n}",
        rule="eu-sanctions",
        topic="sanctions",
        severity="high",
        score=0.87,
        article_id=f"art{n}",
        story_id=f"art{n}",
        created_at=NOW,
        evidence=(TermHit(field="title", term="sanctions", start=10, end=19, matched="sanctions"),),
        classifier=0.91,
    )


def delivery(payload: bytes, kind: str = "alert", id: str = "dlv_0001") -> Delivery:
    return Delivery(
        id=id, channel="desk", kind=kind, payload=payload, created_at=NOW, next_attempt_at=NOW
    )


def parse(content: bytes) -> EmailMessage:
    msg = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def parts(msg: EmailMessage) -> tuple[str, str]:
    text, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


async def test_alert_arrives_over_starttls_with_auth_text_and_html(
    sink: Sink, starttls_server: LoopbackController, client_tls: ssl.SSLContext
) -> None:
    ch = make_channel(starttls_server.port, client_tls)
    receipt = await ch.send(delivery(alert_payload(alert(1), article(1), now=NOW)))
    await ch.aclose()
    assert receipt.status == 250 and receipt.channel == "desk"
    (got,) = sink.messages
    assert got["tls"] and got["authenticated"]
    assert sink.auth_attempts and all(tls for _, tls in sink.auth_attempts)
    assert got["to"] == ["analyst@example.org", "desk@example.org"]
    msg = parse(got["content"])
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Subject"] == "[news-monitor] HIGH sanctions: EU adopts sanctions package 1"
    assert msg["Message-ID"] == "<dlv_0001@alerts.example>"
    assert msg["X-News-Monitor-Delivery"] == "dlv_0001"
    text, html = parts(msg)
    for part in (text, html):
        assert "EU adopts sanctions package 1" in part
        assert "https://news.example/1" in part
        assert "0.87" in part and "eu-sanctions" in part
        assert "'sanctions' in title" in part or "&#39;sanctions&#39; in title" in part
    assert '<a href="https://news.example/1">' in html


async def test_repeat_carries_the_same_message_id(
    sink: Sink, starttls_server: LoopbackController, client_tls: ssl.SSLContext
) -> None:
    ch = make_channel(starttls_server.port, client_tls)
    d = delivery(test_payload("desk", now=NOW), kind="test", id="dlv_7")
    await ch.send(d)
    await ch.send(d)
    first, second = (parse(m["content"]) for m in sink.messages)
    assert first["Message-ID"] == second["Message-ID"] == "<dlv_7@alerts.example>"
    assert first["Subject"] == "[news-monitor] test event for channel desk"
    assert "test event" in parts(first)[0]


async def test_digest_lists_every_alert_in_one_message(
    sink: Sink, starttls_server: LoopbackController, client_tls: ssl.SSLContext
) -> None:
    items = [(alert(n), article(n)) for n in range(1, 6)]
    body = digest_payload(
        items,
        rule="eu-sanctions",
        topic="sanctions",
        window_start=NOW - timedelta(minutes=15),
        window_end=NOW,
        now=NOW,
    )
    ch = make_channel(starttls_server.port, client_tls)
    await ch.send(delivery(body, kind="digest"))
    (got,) = sink.messages
    msg = parse(got["content"])
    assert msg["Subject"] == "[news-monitor] 5 alerts: eu-sanctions"
    text, html = parts(msg)
    for n in range(1, 6):
        assert f"EU adopts sanctions package {n}" in text
        assert f'href="https://news.example/{n}"' in html


async def test_html_part_escapes_feed_content(
    sink: Sink, starttls_server: LoopbackController, client_tls: ssl.SSLContext
) -> None:
    hostile = article(1, title='<script>alert("x")</script> & co')
    hostile = replace(hostile, url="javascript:alert(1)")
    ch = make_channel(starttls_server.port, client_tls)
    await ch.send(delivery(alert_payload(alert(1), hostile, now=NOW)))
    text, html = parts(parse(sink.messages[0]["content"]))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html
    assert '<script>alert("x")</script>' in text  # plain text needs no escaping


async def test_server_without_starttls_gets_nothing_in_clear(
    sink: Sink, client_tls: ssl.SSLContext
) -> None:
    # A careless server: no TLS at all, yet it would accept AUTH and mail in clear.
    ctl = serve(sink, auth_require_tls=False)
    try:
        ch = make_channel(ctl.port, client_tls)
        with pytest.raises(PermanentDeliveryError, match="STARTTLS"):
            await ch.send(delivery(test_payload("desk", now=NOW), kind="test"))
    finally:
        ctl.stop()
    assert sink.messages == [] and sink.auth_attempts == []


async def test_plaintext_mode_sends_when_configured_so(sink: Sink) -> None:
    ctl = serve(sink)
    try:
        ch = make_channel(ctl.port, None, tls="none", username=None, password=None)
        await ch.send(delivery(test_payload("desk", now=NOW), kind="test"))
    finally:
        ctl.stop()
    assert len(sink.messages) == 1 and not sink.messages[0]["tls"]


async def test_implicit_tls_mode_delivers(
    sink: Sink, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    # aiosmtpd only counts STARTTLS as encryption; this whole connection is TLS.
    ctl = serve(sink, ssl_context=server_tls, auth_require_tls=False)
    try:
        ch = make_channel(ctl.port, client_tls, tls="tls")
        await ch.send(delivery(test_payload("desk", now=NOW), kind="test"))
    finally:
        ctl.stop()
    assert sink.messages[0]["tls"] and sink.messages[0]["authenticated"]


async def test_untrusted_certificate_is_permanent(
    sink: Sink, starttls_server: LoopbackController
) -> None:
    ch = make_channel(starttls_server.port, ssl.create_default_context())  # system CAs only
    with pytest.raises(PermanentDeliveryError, match="certificate"):
        await ch.send(delivery(test_payload("desk", now=NOW), kind="test"))
    assert sink.messages == []


async def test_wrong_password_is_permanent(
    sink: Sink, starttls_server: LoopbackController, client_tls: ssl.SSLContext
) -> None:
    ch = make_channel(starttls_server.port, client_tls, password="wrong")
    with pytest.raises(PermanentDeliveryError, match="535") as info:
        await ch.send(delivery(test_payload("desk", now=NOW), kind="test"))
    assert not info.value.retryable
    assert "wrong" not in str(info.value)
    assert sink.messages == []


async def test_temporary_451_reply_is_retryable(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    sink = Sink(reply="451 4.3.0 Mailbox busy, try again later")
    ctl = serve(sink, tls_context=server_tls, require_starttls=True)
    try:
        with pytest.raises(RetryableDeliveryError, match="451"):
            await make_channel(ctl.port, client_tls).send(
                delivery(test_payload("desk", now=NOW), kind="test")
            )
    finally:
        ctl.stop()


async def test_permanent_554_reply_and_refused_recipients_are_permanent(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    for sink, code in (
        (Sink(reply="554 5.7.1 Rejected as spam"), "554"),
        (Sink(rcpt_reply="550 5.1.1 No such user"), "550"),
    ):
        ctl = serve(sink, tls_context=server_tls, require_starttls=True)
        try:
            with pytest.raises(PermanentDeliveryError, match=code):
                await make_channel(ctl.port, client_tls).send(
                    delivery(test_payload("desk", now=NOW), kind="test")
                )
        finally:
            ctl.stop()


async def test_refused_connection_is_retryable(client_tls: ssl.SSLContext) -> None:
    with socket.socket() as holder:  # bound but not listening: connections are refused
        holder.bind(("127.0.0.1", 0))
        ch = make_channel(holder.getsockname()[1], client_tls)
        with pytest.raises(RetryableDeliveryError, match="network error"):
            await ch.send(delivery(test_payload("desk", now=NOW), kind="test"))


async def test_stalled_server_is_retryable_within_the_deadline(
    server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    sink = Sink(hang=True)
    ctl = serve(sink, tls_context=server_tls, require_starttls=True)
    try:
        ch = make_channel(ctl.port, client_tls, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(RetryableDeliveryError, match="timed out"):
            await ch.send(delivery(test_payload("desk", now=NOW), kind="test"))
        assert time.monotonic() - started < 2.0
    finally:
        ctl.stop()


async def test_payload_that_is_not_an_event_is_permanent(client_tls: ssl.SSLContext) -> None:
    ch = make_channel(1, client_tls)
    with pytest.raises(PermanentDeliveryError, match="payload"):
        await ch.send(delivery(b"not json"))


def test_build_channel_maps_the_configuration(client_tls: ssl.SSLContext) -> None:
    config = EmailChannelConfig.model_validate(
        {"type": "email", "name": "desk", "host": "127.0.0.1", "from": "m@x.example", "to": ["a@b"]}
    )
    ch = build_channel(config, default_timeout=3.0, tls_context=client_tls)
    assert isinstance(ch, EmailChannel) and ch.name == "desk"
    msg = ch.render(delivery(test_payload("desk", now=NOW), kind="test"))
    assert msg["From"] == "m@x.example" and msg["To"] == "a@b"
    assert msg["Message-ID"] == "<dlv_0001@x.example>"
