from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.dedupe import signature
from monitor.normalize import canonical_url, html_to_text, normalize
from monitor.types import Article, FeedState, ParsedFeed, RawItem

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
STATE = FeedState(
    feed_id=7, name="Wire", url="https://wire.example/rss", interval=900.0, tags=("agency",)
)


def raw(**kw: object) -> RawItem:
    base: dict[str, object] = {"guid": None, "link": None, "title": "T", "summary": ""}
    return RawItem(**(base | kw))  # type: ignore[arg-type]


def feed(*items: RawItem, link: str | None = "https://wire.example/") -> ParsedFeed:
    return ParsedFeed(url=STATE.url, title="Wire", link=link, items=items, language="en")


def norm(item: RawItem, *others: RawItem) -> Article:
    return normalize(item, feed=feed(item, *others), state=STATE, fetched_at=NOW)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "HTTPS://News.Example.COM:443/a?utm_source=rss&b=2&a=1&fbclid=x#top",
            "https://news.example.com/a?a=1&b=2",
        ),
        ("http://x.example:8080?gclid=1&mc_cid=2&mc_eid=3", "http://x.example:8080/"),
        ("https://x.example/p?q=a%20b&UTM_Medium=e", "https://x.example/p?q=a%20b"),
        ("https://x.example/p?id=5&ref=home", "https://x.example/p?id=5&ref=home"),
        ("tag:x.example,2025:1", "tag:x.example,2025:1"),
    ],
)
def test_canonical_url_strips_tracking_and_normalises(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_html_is_reduced_to_clean_text_without_scripts_or_styles() -> None:
    markup = (
        "<style>p{color:red}</style><p>Troops &amp; tanks&nbsp;moved</p>"
        "<script>alert('x')</script><p>Second   <b>para</b><br>line</p><!-- note -->"
    )
    assert html_to_text(markup) == "Troops & tanks moved\nSecond para\nline"


def test_plain_text_content_is_kept_literally() -> None:
    item = raw(summary="1 < 2 and <b>not bold</b> &amp;", summary_type="text/plain")
    assert norm(item).text == "1 < 2 and <b>not bold</b> &amp;"


def test_escaped_markup_in_html_becomes_text_not_markup() -> None:
    item = raw(summary="&lt;script&gt;alert(1)&lt;/script&gt; ok")
    assert norm(item).text == "<script>alert(1)</script> ok"


def test_url_guid_is_the_id_and_fields_are_filled() -> None:
    item = raw(
        guid="https://wire.example/story/1",
        link="https://wire.example/story/1?utm_campaign=x",
        title="<b>Gas</b> &amp; oil",
        summary="<p>Pipeline flows fell.</p>",
        published=datetime(2025, 5, 31, tzinfo=UTC),
        categories=("Energy",),
    )
    a = norm(item)
    assert a.id == "https://wire.example/story/1"
    assert a.url == "https://wire.example/story/1"
    assert a.title == "Gas & oil" and a.text == "Pipeline flows fell."
    assert (a.source, a.feed_url, a.tags) == ("Wire", STATE.url, ("agency",))
    assert a.categories == ("Energy",) and a.language == "en"
    assert a.signature == signature(a.title, a.text) and len(a.fingerprint) == 64
    assert a.story_id == ""


def test_bare_number_guid_is_prefixed_by_the_feed_url() -> None:
    assert norm(raw(guid="12345")).id == "https://wire.example/rss#12345"


@pytest.mark.parametrize("guid", ["", "  ", "https://wire.example/rss", "https://wire.example/"])
def test_untrustworthy_guid_falls_back_to_the_canonical_link(guid: str) -> None:
    item = raw(guid=guid, link="https://wire.example/s/9?utm_source=a")
    assert norm(item).id == "https://wire.example/s/9"


def test_guid_shared_by_several_items_is_not_trusted() -> None:
    a = raw(guid="same", link="https://wire.example/a", title="A")
    b = raw(guid="same", link="https://wire.example/b", title="B")
    assert norm(a, b).id == "https://wire.example/a"


def test_without_guid_or_link_the_id_is_a_stable_content_hash() -> None:
    item = raw(title="Only a title", summary="and a body")
    first, again = norm(item), norm(item)
    assert first.id.startswith("sha256:") and first.id == again.id
    other = norm(raw(title="Another title", summary="and a body"))
    assert other.id != first.id


def test_link_to_the_homepage_is_not_an_id() -> None:
    item = raw(link="https://wire.example/", title="x")
    assert norm(item).id.startswith("sha256:")


def test_published_falls_back_to_updated_then_fetch_time_and_future_is_clamped() -> None:
    upd = datetime(2025, 5, 1, tzinfo=UTC)
    assert norm(raw(updated=upd)).published == upd
    assert norm(raw()).published == NOW
    soon = NOW + timedelta(hours=20)
    assert norm(raw(published=soon)).published == soon
    assert norm(raw(published=NOW + timedelta(days=3))).published == NOW


def test_summary_that_opens_the_content_is_not_repeated() -> None:
    item = raw(
        summary="<p>Ministers agreed new sanctions on …</p>",
        content="<p>Ministers agreed new sanctions on Tuesday.</p><p>More detail.</p>",
    )
    text = norm(item).text
    assert text == "Ministers agreed new sanctions on Tuesday.\nMore detail."


def test_exact_copies_share_a_fingerprint_despite_case_and_spacing() -> None:
    a = norm(raw(title="Gas  Deal", summary="<p>Flows resume</p>"))
    b = norm(raw(title="gas deal", summary="flows   resume"))
    assert a.fingerprint == b.fingerprint
