"""Feed bytes -> ParsedFeed: the only module that imports feedparser.

feedparser only ever sees the bytes we fetched, wrapped in a stream: given a ``str`` it would
fetch a URL, and given ``bytes`` it first tries ``open(bytes)`` as a *file name*, so a body such
as ``b"/etc/passwd"`` would be read from disk. The response headers go with the bytes so the
charset and Content-Location resolve as the server meant.

HTML sanitising and relative-URI resolution inside content are turned off (about 7 ms instead
of 11.6 ms per feed): :mod:`monitor.normalize` reduces every HTML field to plain text with its
own parser, dropping scripts and styles, so nothing sanitised here would survive anyway. Entry
links are still resolved against the feed's URL.

Titles: ``RawItem.title`` is always HTML (a plain-text title is escaped here), so normalize
can reduce it without guessing whether ``<`` in a title was markup.

Base URIs: feedparser tracks ``xml:base`` by joining the current base with the element's own
(the same base when it has none) at *every* start tag, ``urljoin`` plus a scheme check, six
times an RSS item and about a quarter of its parsing time. The answer depends only on the two
strings, so its function is memoised (:func:`_memoise_base_uris`): the same bases, computed
once a feed rather than once an element.

Content parameters: for every text element it stores (an RSS item's title and description
among them) feedparser ``copy.deepcopy``-s its current content parameters (type, language,
base), about a tenth of its parsing time, as ``copy`` reconstructs a dict subclass item by
item. Their values are strings (or None, a flag), so a shallow copy is the same copy
(:func:`_copy_params`; anything else still goes to ``deepcopy``).
"""

from __future__ import annotations

import calendar
import copy
import functools
import html
import io
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import feedparser
import feedparser.mixin
import feedparser.urls
import feedparser.util

from monitor.errors import ParseError
from monitor.types import ParsedFeed, RawItem

BASE_URI_CACHE = 256  # (base, xml:base) pairs: a few per feed being parsed


def _memoise_base_uris() -> None:
    """Give feedparser's start-tag handler a memoised ``make_safe_absolute_uri``: a pure
    function of its two strings (and of the constant list of safe schemes)."""
    join = feedparser.urls.make_safe_absolute_uri
    if feedparser.mixin.make_safe_absolute_uri is join:
        feedparser.mixin.make_safe_absolute_uri = functools.lru_cache(maxsize=BASE_URI_CACHE)(join)


_memoise_base_uris()

_ATOMIC = (str, bool, int, type(None))


def _copy_params(params: Any, memo: dict[int, Any] | None = None) -> Any:
    """``copy.deepcopy`` for feedparser's content parameters: a shallow copy when it is the
    same thing (a ``FeedParserDict`` of immutable values under canonical keys; ``deepcopy``
    would re-map an alias key such as ``url``), else ``deepcopy`` itself."""
    cls: Any = feedparser.util.FeedParserDict
    if (
        type(params) is cls
        and all(type(v) in _ATOMIC for v in params.values())
        and not cls.keymap.keys() & params.keys()
    ):
        return cls(params)
    return copy.deepcopy(params, memo)


def _copy_content_params_shallowly() -> None:
    """Let feedparser's element handler (the only user of ``copy`` in its module, for the
    content parameters) copy them with :func:`_copy_params`."""
    if feedparser.mixin.copy is copy:
        feedparser.mixin.copy = SimpleNamespace(deepcopy=_copy_params)


_copy_content_params_shallowly()


def parse_feed(body: bytes, *, url: str, headers: Mapping[str, str]) -> ParsedFeed:
    """Parse fetched bytes; raise ParseError when they are not a readable feed."""
    response_headers = {k.lower(): v for k, v in headers.items()}
    # Relative entry links resolve against Content-Location, else against the feed's own URL.
    response_headers.setdefault("content-location", url)
    # Without a Content-Type feedparser flags every document as malformed; the XML
    # declaration then decides the encoding, which is what application/xml means.
    response_headers.setdefault("content-type", "application/xml")
    try:
        doc = feedparser.parse(
            io.BytesIO(body),
            response_headers=response_headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as exc:  # feedparser's internals raise anything on pathological input
        raise ParseError(url, f"the feed parser failed: {type(exc).__name__}: {exc}") from exc
    entries = doc.get("entries") or []
    bozo = bool(doc.get("bozo"))
    reason = _bozo_reason(doc)
    if not entries and (bozo or not doc.get("version")):
        raise ParseError(url, f"not a readable feed: {reason or 'no feed elements found'}")
    meta = doc.get("feed") or {}
    language = _text(meta.get("language")) or _text(response_headers.get("content-language"))
    items = tuple(_item(entry, language or None) for entry in entries)
    return ParsedFeed(
        url=url,
        title=_plain_title(meta),
        link=_text(meta.get("link")) or None,
        items=items,
        language=language or None,
        ttl=_ttl(meta.get("ttl")),
        warning=f"malformed but readable: {reason}" if bozo else None,
    )


def _bozo_reason(doc: Mapping[str, Any]) -> str:
    exc = doc.get("bozo_exception")
    if exc is None:
        return ""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _plain_title(meta: Mapping[str, Any]) -> str:
    return _text(meta.get("title"))


def _html_title(entry: Mapping[str, Any]) -> str:
    title = entry.get("title")
    if not isinstance(title, str):
        return ""
    detail = entry.get("title_detail") or {}
    kind = str(detail.get("type", "text/plain"))
    return title if "html" in kind else html.escape(title, quote=False)


def _ttl(value: object) -> float | None:
    try:
        minutes = float(_text(value))
    except ValueError:
        return None
    return minutes * 60.0 if 0 < minutes < 1e6 else None


def _when(parsed: object) -> datetime | None:
    """feedparser's UTC struct_time -> an aware datetime; None when absent or impossible."""
    if not isinstance(parsed, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _content(entry: Mapping[str, Any]) -> tuple[str, str]:
    blocks = [b for b in entry.get("content") or [] if isinstance(b.get("value"), str)]
    if not blocks:
        return "", "text/html"
    best = max(blocks, key=lambda b: len(b["value"]))
    return best["value"], str(best.get("type") or "text/html")


def _item(entry: dict[str, Any], feed_language: str | None) -> RawItem:
    # A plain dict of the same items: FeedParserDict.get runs its alias logic on every call
    # (almost half of this function's time), and none of the keys read here is an alias.
    entry = dict(entry)
    content, content_type = _content(entry)
    summary_detail = entry.get("summary_detail") or {}
    language = None
    for detail in (entry.get("title_detail"), summary_detail):
        if detail and _text(detail.get("language")):
            language = _text(detail.get("language"))
            break
    categories: list[str] = []
    for tag in entry.get("tags") or []:
        term = _text(tag.get("term"))
        if term and term not in categories:
            categories.append(term)
    return RawItem(
        guid=_text(entry.get("id")) or None,
        link=_text(entry.get("link")) or None,
        title=_html_title(entry),
        summary=entry["summary"] if isinstance(entry.get("summary"), str) else "",
        summary_type=str(summary_detail.get("type") or "text/html"),
        content=content,
        content_type=content_type,
        # dict.get: FeedParserDict.get would silently answer "published" with the updated date.
        published=_when(dict.get(entry, "published_parsed")),
        updated=_when(dict.get(entry, "updated_parsed")),
        author=_text(entry.get("author")) or None,
        language=language or feed_language,
        categories=tuple(categories),
    )
