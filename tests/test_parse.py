from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import feedparser.mixin
import pytest

from monitor import parse
from monitor.config import FetchConfig
from monitor.errors import FetchError, ParseError
from monitor.fetch import fetch_feed, make_client
from monitor.normalize import normalize
from monitor.parse import parse_feed
from monitor.types import FeedState

import feedreading
from feedserver import Route, serve

URL = "https://news.example/feeds/world.xml"
RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel>
<title>World &amp; More</title><link>https://news.example/</link><language>en-GB</language>
<ttl>30</ttl>
<item><guid isPermaLink="false">a-1</guid><title>Tanks &lt;seen&gt; near border</title>
<link>/world/a-1?utm_source=rss</link>
<description>&lt;p&gt;Columns of &lt;b&gt;armour&lt;/b&gt;&lt;/p&gt;</description>
<category>Defence</category><category>Europe</category><category>Defence</category>
<pubDate>Tue, 03 Jun 2025 08:30:00 +0200</pubDate></item>
<item><title>No date</title><link>https://news.example/world/b</link></item>
</channel></rss>"""


def test_rss_items_dates_ttl_links_and_categories() -> None:
    feed = parse_feed(RSS, url=URL, headers={"Content-Type": "application/rss+xml"})
    assert feed.title == "World & More" and feed.link == "https://news.example/"
    assert feed.language == "en-GB" and feed.ttl == 1800.0 and feed.warning is None
    first, second = feed.items
    assert first.guid == "a-1" and first.link == "https://news.example/world/a-1?utm_source=rss"
    assert first.published == datetime(2025, 6, 3, 6, 30, tzinfo=UTC)
    assert first.categories == ("Defence", "Europe")
    assert "<b>armour</b>" in first.summary and "html" in first.summary_type
    assert second.published is None and second.guid is None


def test_plain_text_title_is_escaped_so_angle_brackets_survive_normalisation() -> None:
    item = parse_feed(RSS, url=URL, headers={}).items[0]
    assert item.title == "Tanks &lt;seen&gt; near border"


ATOM_BASES = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="/news/">
<title>Bases</title><id>urn:feed</id><updated>2025-06-03T08:30:00Z</updated>
<entry><id>urn:a</id><title>Relative to the feed's base</title><link href="a.html"/>
<updated>2025-06-03T08:30:00Z</updated></entry>
<entry xml:base="../world/"><id>urn:b</id><title>Own base</title><link href="b.html"/>
<updated>2025-06-03T08:30:00Z</updated></entry>
<entry xml:base="javascript:alert(1)//"><id>urn:c</id><title>Unsafe base</title>
<link href="c.html"/><updated>2025-06-03T08:30:00Z</updated></entry>
<entry xml:base="https://other.example/x/"><id>urn:d</id><title>Absolute base</title>
<link href="d.html"/><updated>2025-06-03T08:30:00Z</updated></entry>
</feed>"""


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://one.example/feeds/atom.xml", "https://one.example"),
        ("http://two.example:8080/f/atom.xml", "http://two.example:8080"),
        ("https://one.example/feeds/atom.xml", "https://one.example"),  # again, after another
    ],
)
def test_xml_base_resolves_against_each_document_s_own_url(url: str, host: str) -> None:
    """feedparser's base-URI joins are memoised: every document still gets its own bases."""
    links = [i.link for i in parse_feed(ATOM_BASES, url=url, headers={}).items]
    assert links == [
        f"{host}/news/a.html",
        f"{host}/world/b.html",
        f"{host}/news/c.html",  # a javascript: base is ignored
        "https://other.example/x/d.html",
    ]


def test_charset_from_response_headers_decodes_the_body() -> None:
    body = '<rss version="2.0"><channel><title>Café Zürich</title></channel></rss>'.encode(
        "iso-8859-1"
    )
    feed = parse_feed(body, url=URL, headers={"Content-Type": "text/xml; charset=iso-8859-1"})
    assert feed.title == "Café Zürich" and feed.items == ()


def test_malformed_but_readable_feed_gives_items_and_a_warning() -> None:
    broken = RSS.replace(b"</channel></rss>", b"<item><title>x &bogus; y</title></item>")
    feed = parse_feed(broken, url=URL, headers={})
    assert len(feed.items) >= 2 and feed.warning and "malformed" in feed.warning


@pytest.mark.parametrize(
    "body",
    [b"", b"<html><body><p>Not a feed</p></body></html>", b"\x00\xff garbage", b"{}"],
)
def test_unreadable_body_is_a_parse_error_naming_the_url(body: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_feed(body, url=URL, headers={})
    assert URL in str(info.value)


def test_body_that_looks_like_a_path_is_never_opened(tmp_path: Path) -> None:
    secret = tmp_path / "feed.xml"
    secret.write_bytes(RSS)
    with pytest.raises(ParseError):
        parse_feed(str(secret).encode(), url=URL, headers={})


def test_body_that_looks_like_a_url_is_never_fetched() -> None:
    with pytest.raises(ParseError):
        parse_feed(b"http://127.0.0.1:9/feed.xml", url=URL, headers={})


def test_atom_content_and_updated_dates() -> None:
    atom = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom" xml:lang="de">
<title>A</title><id>urn:uuid:f</id><updated>2025-01-02T03:04:05Z</updated>
<entry><id>urn:uuid:e1</id><title type="html">&lt;i&gt;Gas&lt;/i&gt; transit</title>
<updated>2025-01-02T03:04:05+01:00</updated><link href="e1.html"/>
<summary>short</summary><content type="html">&lt;p&gt;long body&lt;/p&gt;</content></entry>
</feed>"""
    (item,) = parse_feed(atom, url="https://x.example/a/feed", headers={}).items
    assert item.guid == "urn:uuid:e1" and item.title == "<i>Gas</i> transit"
    assert item.link == "https://x.example/a/e1.html"
    assert item.updated == datetime(2025, 1, 2, 2, 4, 5, tzinfo=UTC) and item.published is None
    assert item.content == "<p>long body</p>" and item.language == "de"


SHARED = Path(os.environ.get("MONITOR_SHARED", Path(__file__).resolve().parents[2] / "shared"))
CORPUS = SHARED / "corpora" / "feedparser-tests"
_HEADER = re.compile(rb"^\s*Header:\s*([\w-]+):\s*(.*?)\s*$", re.M)


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"feedparser corpus not found at {CORPUS}")
async def test_every_corpus_file_is_fetched_parsed_and_normalised_without_crashing() -> None:
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in (".xml", ".json"))
    assert len(files) > 2000
    config = FetchConfig(timeout=10)
    outcome: Counter[str] = Counter()
    unreadable: list[str] = []
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with serve() as server:
        urls = []
        for i, path in enumerate(files):
            body = path.read_bytes()
            headers = {k.decode(): v.decode("latin-1") for k, v in _HEADER.findall(body[:4096])}
            urls.append(server.route(f"/c/{i}", Route(body=body, headers=headers)))
        gate = asyncio.Semaphore(16)
        started = time.monotonic()

        async def one(client: object, i: int) -> None:
            state = FeedState(feed_id=i, name=files[i].name, url=urls[i], interval=900.0)
            async with gate:
                result = await fetch_feed(client, state, config)  # type: ignore[arg-type]
            try:
                feed = parse_feed(result.body, url=state.url, headers=result.headers)
            except ParseError:
                outcome["parse-error"] += 1
                unreadable.append(str(files[i].relative_to(CORPUS)))
                return
            for item in feed.items:
                article = normalize(item, feed=feed, state=state, fetched_at=now)
                assert article.id and article.published.tzinfo is not None
            outcome["warning" if feed.warning else "clean"] += 1

        async with make_client(config) as client:
            results = await asyncio.gather(
                *(one(client, i) for i in range(len(files))), return_exceptions=True
            )
        elapsed = time.monotonic() - started
    failures = [(files[i], r) for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert not failures, failures[:5]
    assert not any(isinstance(r, FetchError) for r in results)
    print(f"\ncorpus: {len(files)} files in {elapsed:.1f}s: {dict(outcome)}")
    print("unreadable:", sorted(unreadable))
    # Unreadable = no entries and malformed (the 256 undefined-entity files have no entries),
    # or not a feed (JSON Feed, obsolete CDF): never a well-formed RSS/Atom document.
    allowed = ("illformed/", "entities/", "encoding/bozo_", "json/", "wellformed/cdf/")
    assert all(u.startswith(allowed) for u in unreadable), unreadable
    assert outcome["clean"] > 1800


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"feedparser corpus not found at {CORPUS}")
def test_shallow_copies_of_content_parameters_parse_every_corpus_file_as_deep_copies_do() -> None:
    assert feedparser.mixin.copy is not copy  # parse.py's copy is in place
    files = [str(p) for p in sorted(CORPUS.rglob("*.xml")) if p.is_file()]
    assert len(files) > 2000
    ours = feedreading.read(files)  # here, with parse.py's copy in place
    # A fresh interpreter that never imports monitor: feedparser as it ships, deep copies and all.
    shipped = subprocess.run(
        [sys.executable, feedreading.__file__, *files],
        capture_output=True,
        check=True,
        text=True,
    )
    for path, got, expected in zip(files, ours, json.loads(shipped.stdout), strict=True):
        assert got == expected, Path(path).relative_to(CORPUS)


def test_content_parameters_holding_anything_else_are_deep_copied() -> None:
    params = feedparser.FeedParserDict(type="text/html", language=None, base="", base64=False)
    shallow = parse._copy_params(params)
    assert shallow == params and shallow is not params and type(shallow) is type(params)
    for odd in ({"nested": ["a"]}, {"url": "u"}):  # a mutable value; an alias key
        params = feedparser.FeedParserDict(type="text/html", **odd)
        copied = parse._copy_params(params)
        assert copied == copy.deepcopy(params)
        assert all(copied[k] is not v for k, v in params.items() if isinstance(v, list))
