"""`monitor run` and `monitor config check`: the daemon's entry point and its pre-flight check."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from monitor import logs
from monitor.cli.options import config_option
from monitor.config import load_config

log = logging.getLogger("monitor.cli")


@click.command()
@config_option
@click.option("--once", is_flag=True, help="Poll every feed once, attempt due deliveries, exit.")
def run(config_path: Path, once: bool) -> None:
    """Run the service in the foreground (JSON logs on stdout)."""
    from monitor.daemon import Daemon
    from monitor.metrics import Metrics

    config = load_config(config_path)
    logs.configure(config.log.level)
    daemon = Daemon(config_path, observer=Metrics())
    if once:
        summary = asyncio.run(daemon.run_once())
        log.info(
            "cycle done: %(feeds)d feeds (%(failed)d failed), %(new_articles)d new articles, "
            "%(alerts)d alerts, %(attempts)d delivery attempts",
            summary,
            extra={"event": "once"},
        )
        return
    asyncio.run(daemon.run())


@click.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@config_option
def config_check(config_path: Path) -> None:
    """Validate the configuration and the rule files it names; exit 2 (config) or 1 (rules)."""
    config = load_config(config_path)
    from monitor.daemon import build_scorer  # after the config: its errors come first

    scorer = build_scorer(config)
    click.echo(
        f"{config_path}: OK: {len(config.feeds)} feeds, {len(config.channels)} channels, "
        f"{len(scorer.rules.rules)} rules, storage {config.storage.url.split('://')[0]}"
    )


def register(cli: click.Group) -> None:
    cli.add_command(run)
    cli.add_command(config_group)
