"""Delivery commands: ``monitor channels test NAME`` proves a channel end to end.

The test event is signed and sent exactly as the daemon sends alerts (same channel code, same
payload envelope), so a receiver that accepts it will accept real alerts.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from pathlib import Path

import click

from monitor.channels import build_channel
from monitor.cli.options import config_option, read_config
from monitor.config import Config
from monitor.errors import ConfigError, DeliveryError
from monitor.payload import test_payload
from monitor.types import Delivery, Receipt


async def send_test_event(config: Config, name: str, *, now: datetime) -> Receipt:
    """Send one ``test`` event through the configured channel ``name`` (one attempt)."""
    try:
        channel_config = config.channel(name)
    except KeyError:
        known = ", ".join(sorted(c.name for c in config.channels)) or "none"
        raise ConfigError(f"no channel named {name!r} (configured: {known})") from None
    channel = build_channel(channel_config, default_timeout=config.delivery.timeout)
    delivery = Delivery(
        id="test_" + secrets.token_hex(8),
        channel=name,
        kind="test",
        payload=test_payload(name, now=now),
        created_at=now,
        next_attempt_at=now,
    )
    try:
        return await channel.send(delivery)
    finally:
        await channel.aclose()


@click.group("channels")
def channels() -> None:
    """Inspect and test delivery channels."""


@channels.command("test")
@click.argument("name")
@config_option
def channels_test(name: str, config_path: Path) -> None:
    """Send a signed test event through channel NAME now and print the outcome."""
    config = read_config(config_path)
    try:
        receipt = asyncio.run(send_test_event(config, name, now=datetime.now(UTC)))
    except DeliveryError as exc:
        verdict = "would retry" if exc.retryable else "permanent"
        click.echo(f"error: {exc} ({verdict})", err=True)
        click.get_current_context().exit(1)
    status = f"status {receipt.status}, " if receipt.status is not None else ""
    click.echo(
        f"ok: {name} accepted {receipt.delivery_id} ({status}{receipt.elapsed * 1000:.0f} ms)"
    )


def register(cli: click.Group) -> None:
    """Add this module's commands to the root group."""
    cli.add_command(channels)
