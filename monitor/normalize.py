"""RawItem -> Article: stable id, canonical URL, clean text, UTC time, fingerprints.

HTML is reduced to text with selectolax (lexbor, an HTML5 parser): scripts, styles and other
non-text elements are removed with their content, entities are decoded, block elements become
line breaks and runs of whitespace collapse. Text that the feed declared plain is kept as it is
(``<b>`` in a plain title stays ``<b>``), so no markup survives and none is invented.
"""

from __future__ import annotations

import functools
import hashlib
import re
from datetime import datetime, timedelta
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from selectolax.lexbor import LexborHTMLParser

from monitor.dedupe import signature
from monitor.types import Article, FeedState, ParsedFeed, RawItem

FUTURE_SLACK = timedelta(days=1)  # a date further ahead than this is a publisher's mistake
MAX_GUID = 512  # longer "guids" are payloads, not identifiers

_DROP = (
    "script, style, noscript, template, iframe, object, embed, svg, math, canvas, "
    "head, button, select, form, input, textarea"
)
_BLOCKS = frozenset(
    [
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "tr",
        "table",
        "blockquote",
        "pre",
        "section",
        "article",
        "header",
        "footer",
        "aside",
        "figure",
        "figcaption",
        "dt",
        "dd",
        "hr",
        "address",
    ]
)
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "_hs", "itm_")
_TRACKING = frozenset(
    [
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "msclkid",
        "yclid",
        "twclid",
        "ttclid",
        "igshid",
        "igsh",
        "wbraid",
        "gbraid",
        "mc_cid",
        "mc_eid",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "_ga",
        "_gl",
        "vero_id",
        "vero_conv",
        "rb_clickid",
        "s_cid",
        "wt_mc",
        "cmpid",
        "ocid",
        "sr_share",
        "smid",
        "ref_src",
        "icid",
        "at_medium",
        "at_campaign",
        "at_custom1",
        "at_custom2",
        "at_custom3",
        "at_custom4",
        "ns_mchannel",
        "ns_source",
        "ns_campaign",
        "ns_linkname",
        "ns_fee",
    ]
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SPACE = re.compile(r"[^\S\n]+")
_LINES = re.compile(r"\s*\n\s*")
# ASCII whitespace other than space and line breaks (\r is turned into \n first).
_ODD_SPACES = ("\t", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")
_ELLIPSIS = re.compile(r"\s*(?:\.\.\.|…|\[…\]|\[\.\.\.\]|\(more\)|read more)\s*$", re.I)
_URI_SCHEMES = ("http://", "https://", "urn:", "tag:")


def html_to_text(markup: str) -> str:
    """Clean text of an HTML fragment: no scripts or styles, entities decoded, tidy spaces."""
    if "<" not in markup and "&" not in markup:
        return collapse(markup)
    tree = LexborHTMLParser(f"<div>{markup}</div>")
    root = tree.body or tree.root
    if root is None:
        return ""
    for node in root.css(_DROP):
        node.decompose()
    parts: list[str] = []
    for node in root.traverse(include_text=True):
        if node.is_text_node:
            parts.append(node.text_content or "")
        elif node.tag in _BLOCKS:
            parts.append("\n")
    return collapse("".join(parts))


def collapse(text: str) -> str:
    """Single spaces within a paragraph, single line breaks between paragraphs."""
    text = text.replace("\r", "\n").replace("\xa0", " ")
    # Most text is already tidy, and looking for what the patterns would change is far cheaper
    # than letting them replace every single space by itself.
    if not (text.isascii() and "  " not in text and not any(c in text for c in _ODD_SPACES)):
        text = _SPACE.sub(" ", text)
    if "\n" in text:
        text = _LINES.sub("\n", text)
    return text.strip()


def _as_text(value: str, kind: str) -> str:
    return html_to_text(value) if "html" in kind.lower() else collapse(value)


@functools.lru_cache(maxsize=4096)  # pure; every item of a feed asks for its feed's URL
def canonical_url(url: str) -> str:
    """The URL without tracking parameters or fragment; scheme/host lower-cased; query sorted."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return url
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    if parts.username is not None:
        creds = parts.username + (f":{parts.password}" if parts.password is not None else "")
        host = f"{creds}@{host}"
    # Filter and sort the raw pairs, so percent-encoding is kept exactly as the publisher wrote it.
    pairs = [p for p in parts.query.split("&") if p and not _is_tracking(p)]
    return urlunsplit((scheme, host, parts.path or "/", "&".join(sorted(pairs)), ""))


def _is_tracking(pair: str) -> bool:
    key = unquote_plus(pair.split("=", 1)[0]).lower()
    return key in _TRACKING or key.startswith(_TRACKING_PREFIXES)


def _is_web_url(value: str) -> bool:
    return value.lower().startswith(("http://", "https://"))


def _stable_id(item: RawItem, feed: ParsedFeed, state: FeedState, url: str, text: str) -> str:
    guid = (item.guid or "").strip()
    not_ids = {state.url, feed.url, feed.link or "", canonical_url(state.url)}
    # Some feeds give every item the same guid (or the feed's own URL): that identifies nothing.
    shared = sum(1 for other in feed.items if (other.guid or "").strip() == guid) > 1
    if guid and guid not in not_ids and len(guid) <= MAX_GUID and not shared:
        if guid.lower().startswith(_URI_SCHEMES):
            return guid
        # "12345" is unique only within its feed.
        return f"{state.url}#{guid}"
    homepage = {canonical_url(u) for u in not_ids if u}
    link_shared = item.link is not None and sum(1 for o in feed.items if o.link == item.link) > 1
    if _is_web_url(url) and url not in homepage and not link_shared:
        return url
    digest = hashlib.sha256(f"{state.url}\n{item.title}\n{text}".encode()).hexdigest()
    return f"sha256:{digest[:32]}"


def _merge(summary: str, content: str) -> str:
    if not content:
        return summary
    if not summary:
        return content
    lead = _ELLIPSIS.sub("", summary)
    # The summary is usually the content's opening, possibly cut short: keep the content only.
    if " ".join(lead.split()) in " ".join(content.split()):
        return content
    if " ".join(content.split()) in " ".join(summary.split()):
        return summary
    return f"{summary}\n{content}"


def _published(item: RawItem, fetched_at: datetime) -> datetime:
    when = item.published or item.updated or fetched_at
    return fetched_at if when > fetched_at + FUTURE_SLACK else when


def fingerprint(title: str, text: str) -> str:
    """Hash of the case-folded, whitespace-collapsed title and text: exact duplicates."""
    norm = " ".join(f"{title}\n{text}".casefold().split())
    return hashlib.sha256(norm.encode()).hexdigest()


def normalize(
    item: RawItem, *, feed: ParsedFeed, state: FeedState, fetched_at: datetime
) -> Article:
    """One feed entry as an Article (``story_id`` is left for the pipeline to set)."""
    title = collapse(html_to_text(item.title).replace("\n", " "))
    summary = _as_text(item.summary, item.summary_type)
    content = _as_text(item.content, item.content_type)
    text = _merge(summary, content)
    url = canonical_url(item.link) if item.link else ""
    if not _is_web_url(url) and item.guid and _is_web_url(item.guid):
        url = canonical_url(item.guid)  # RSS guid isPermaLink without a <link>
    language = (item.language or feed.language or "").strip().lower() or None
    return Article(
        id=_stable_id(item, feed, state, url, text),
        url=url,
        title=title,
        text=text,
        source=state.name,
        feed_url=state.url,
        published=_published(item, fetched_at),
        fetched_at=fetched_at,
        language=language,
        tags=state.tags,
        categories=item.categories,
        fingerprint=fingerprint(title, text),
        signature=signature(title, text),
        story_id="",
    )
