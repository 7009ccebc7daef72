"""``monitor feeds``: import and export OPML, check one feed as the daemon would see it.

``feeds list`` needs the store and is registered with the store's commands.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import click

from monitor.cli.options import config_option, read_config
from monitor.config import FetchConfig
from monitor.errors import DataError
from monitor.fetch import fetch_feed, make_client
from monitor.normalize import normalize
from monitor.opml import import_opml, render_opml
from monitor.parse import parse_feed
from monitor.types import Article, FeedState, ParsedFeed


@click.group("feeds")
def feeds() -> None:
    """Manage the feeds in the configuration."""


@feeds.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@config_option
def import_command(file: Path, config_path: Path) -> None:
    """Add the feeds of an OPML FILE that the configuration does not have yet."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise DataError(str(file), None, f"cannot read: {exc.strerror}") from None
    report = import_opml(config_path, data, source=str(file))
    for feed in report.added:
        tags = f" [{', '.join(feed.tags)}]" if feed.tags else ""
        click.echo(f"added   {feed.name}: {feed.url}{tags}")
    for feed in report.skipped:
        click.echo(f"skipped {feed.name}: {feed.url} (already configured)")
    click.echo(
        f"{len(report.added)} feed(s) added to {config_path}, {len(report.skipped)} already there"
    )


@feeds.command("export")
@config_option
def export_command(config_path: Path) -> None:
    """Print the configured feeds as OPML 2.0."""
    click.echo(render_opml(read_config(config_path).feeds))


@feeds.command("check")
@click.argument("url")
@config_option
def check_command(url: str, config_path: Path) -> None:
    """Fetch and parse one feed and show what the daemon would see; nothing is stored."""
    fetch_config = read_config(config_path).fetch if config_path.exists() else FetchConfig()
    parsed, articles, elapsed = asyncio.run(_check(url, fetch_config))
    click.echo(f"feed:     {parsed.title or '(no title)'} ({url})")
    click.echo(f"items:    {len(articles)} in {elapsed:.2f}s")
    if parsed.ttl is not None:
        click.echo(f"ttl:      {parsed.ttl:g}s")
    if parsed.warning:
        click.echo(f"warning:  {parsed.warning}")
    for a in articles:
        click.echo("")
        click.echo(f"- title:     {a.title}")
        click.echo(f"  id:        {a.id}")
        click.echo(f"  url:       {a.url or '(none)'}")
        click.echo(f"  published: {a.published.isoformat()}")
        if a.categories:
            click.echo(f"  categories: {', '.join(a.categories)}")


async def _check(url: str, config: FetchConfig) -> tuple[ParsedFeed, list[Article], float]:
    state = FeedState(feed_id=0, name="check", url=url, interval=0.0)
    async with make_client(config) as client:
        result = await fetch_feed(client, state, config)
    fetched_at = datetime.now(UTC)
    parsed = parse_feed(result.body, url=result.final_url, headers=result.headers)
    articles = [normalize(i, feed=parsed, state=state, fetched_at=fetched_at) for i in parsed.items]
    return parsed, articles, result.elapsed


def register(cli: click.Group) -> None:
    """Add the ``feeds`` group to the root group."""
    cli.add_command(feeds)
