"""Delivery transports: one module per channel type, each the only importer of its library.

:func:`build_channel` turns a channel's configuration into an object honouring
:class:`monitor.interfaces.Channel`.
"""

from __future__ import annotations

import ssl

import httpx

from monitor.channels.email import EmailChannel
from monitor.channels.webhook import Clock, WebhookChannel, system_clock
from monitor.config import EmailChannelConfig, WebhookChannelConfig
from monitor.interfaces import Channel

__all__ = ["EmailChannel", "WebhookChannel", "build_channel"]


def build_channel(
    config: WebhookChannelConfig | EmailChannelConfig,
    *,
    client: httpx.AsyncClient | None = None,
    default_timeout: float = 15.0,
    clock: Clock = system_clock,
    tls_context: ssl.SSLContext | None = None,
) -> Channel:
    """The channel for one configured entry.

    ``client`` is shared by every webhook channel when given (the caller closes it); otherwise
    each webhook channel owns a client closed by its ``aclose``. The channel's own ``timeout``
    wins; ``default_timeout`` (``delivery.timeout``) applies when the channel left it unset.
    ``tls_context`` overrides certificate trust for email (tests trust a private CA with it).
    """
    timeout = config.timeout if "timeout" in config.model_fields_set else default_timeout
    if isinstance(config, WebhookChannelConfig):
        return WebhookChannel(
            name=config.name,
            url=config.url,
            secrets=[s.get_secret_value() for s in config.secrets],
            headers=config.headers,
            timeout=timeout,
            client=client,
            clock=clock,
        )
    password = config.password.get_secret_value() if config.password is not None else None
    return EmailChannel(
        name=config.name,
        host=config.host,
        port=config.port,
        sender=config.from_,
        recipients=config.to,
        tls=config.tls,
        username=config.username,
        password=password,
        timeout=timeout,
        tls_context=tls_context,
    )
