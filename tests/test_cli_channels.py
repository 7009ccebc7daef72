from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from monitor.cli import cli, deliveries

from receiver import Reply, WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"c" * 32).decode()


@pytest.fixture
def root() -> click.Group:
    deliveries.register(cli)
    return cli


@pytest.fixture
def rx() -> Iterator[WebhookReceiver]:
    with WebhookReceiver([SECRET]) as receiver:
        yield receiver


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "monitor.toml"
    path.write_text(
        f"""
[[channels]]
type = "webhook"
name = "ops"
url = "{url}"
secret = "{SECRET}"
timeout = "3s"
""",
        encoding="utf-8",
    )
    return path


def test_channels_test_sends_a_verifiable_test_event(
    root: click.Group, rx: WebhookReceiver, tmp_path: Path
) -> None:
    config = write_config(tmp_path, rx.url)
    result = CliRunner().invoke(root, ["channels", "test", "ops", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ops accepted test_")
    (got,) = rx.received
    assert got.verified, got.error
    assert got.id is not None and got.id.startswith("test_")
    assert b'"type":"test"' in got.body
    assert got.id in result.output


def test_channels_test_failure_is_one_line_and_exit_1(
    root: click.Group, rx: WebhookReceiver, tmp_path: Path
) -> None:
    rx.program(Reply(status=401, body=b"bad signature"))
    config = write_config(tmp_path, rx.url)
    result = CliRunner().invoke(root, ["channels", "test", "ops", "--config", str(config)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "HTTP 401: bad signature" in lines[0] and "permanent" in lines[0]


def test_channels_test_unknown_channel_names_the_known_ones(
    root: click.Group, rx: WebhookReceiver, tmp_path: Path
) -> None:
    config = write_config(tmp_path, rx.url)
    result = CliRunner().invoke(root, ["channels", "test", "nope", "--config", str(config)])
    assert result.exit_code == 2
    assert "no channel named 'nope'" in result.output and "ops" in result.output
    assert rx.received == []
