from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.cli import feeds as feeds_cli
from monitor.config import load_config

from feedserver import FeedServer, Route, serve

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>
<link>http://wire.example/</link>
<item><guid>https://wire.example/a</guid><title>Gas &amp; oil</title>
<link>https://wire.example/a?utm_source=rss#x</link><description>Body</description>
<pubDate>Tue, 03 Jun 2025 08:30:00 GMT</pubDate></item></channel></rss>"""
OPML = b"""<opml version="2.0"><body><outline text="News">
<outline text="Wire" xmlUrl="https://wire.example/rss"/></outline></body></opml>"""


@pytest.fixture
def root() -> click.Group:
    feeds_cli.register(cli)
    return cli


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with serve() as s:
        yield s


def run(root: click.Group, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(root, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_import_then_export(root: click.Group, tmp_path: Path) -> None:
    config, opml = tmp_path / "monitor.toml", tmp_path / "subs.opml"
    config.write_text("")
    opml.write_bytes(OPML)
    code, out, _ = run(root, "feeds", "import", str(opml), "--config", str(config))
    assert code == 0 and "1 feed(s) added" in out
    assert load_config(config).feeds[0].tags == ["News"]
    code, out, _ = run(root, "feeds", "export", "--config", str(config))
    assert code == 0 and 'xmlUrl="https://wire.example/rss"' in out and 'category="News"' in out


def test_import_of_a_missing_file_is_one_line_and_exit_1(root: click.Group, tmp_path: Path) -> None:
    code, _, err = run(
        root, "feeds", "import", str(tmp_path / "no.opml"), "--config", str(tmp_path / "m.toml")
    )
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: ")


def test_check_shows_items_ids_urls_and_dates(
    root: click.Group, server: FeedServer, tmp_path: Path
) -> None:
    url = server.route("/rss", Route(body=RSS, headers={"Content-Type": "application/rss+xml"}))
    code, out, _ = run(root, "feeds", "check", url, "--config", str(tmp_path / "none.toml"))
    assert code == 0, out
    assert "items:    1" in out and "title:     Gas & oil" in out
    assert "id:        https://wire.example/a" in out
    assert "url:       https://wire.example/a\n" in out
    assert "published: 2025-06-03T08:30:00+00:00" in out


@pytest.mark.parametrize(
    ("route", "expected"),
    [(Route(status=500), "HTTP 500"), (Route(body=b"<html>no</html>"), "not a readable feed")],
)
def test_check_failure_is_one_line_and_exit_1(
    root: click.Group, server: FeedServer, tmp_path: Path, route: Route, expected: str
) -> None:
    url = server.route("/bad", route)
    code, _, err = run(root, "feeds", "check", url, "--config", str(tmp_path / "none.toml"))
    assert code == 1 and expected in err and url in err and err.count("\n") == 1
