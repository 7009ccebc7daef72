"""Frozen values that flow from one pipeline stage to the next.

    FeedState --fetch--> FetchResult --parse--> ParsedFeed(RawItem...) --normalize--> Article
       --dedupe--> Article (new story or syndicated copy) --score--> Scored
       --match--> RuleMatch --suppress/route--> Alert + Delivery (outbox) --deliver--> receipt

Values are never mutated; a stage returns a new value (``dataclasses.replace``).
All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple


class FeedStatus(StrEnum):
    ACTIVE = "active"
    GONE = "gone"  # HTTP 410: disabled until an operator re-enables it
    DISABLED = "disabled"  # removed from the configuration or disabled by an operator


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedState:
    """What the store knows about one feed; the input of a poll."""

    feed_id: int
    name: str
    url: str
    interval: float  # configured seconds between polls
    tags: tuple[str, ...] = ()
    status: FeedStatus = FeedStatus.ACTIVE
    etag: str | None = None
    last_modified: str | None = None
    next_poll_at: datetime | None = None
    consecutive_errors: int = 0
    last_error: str | None = None
    last_ok_at: datetime | None = None
    last_new_at: datetime | None = None  # last time a poll brought a new article
    last_polled_at: datetime | None = None
    avg_new_interval: float | None = None  # observed seconds between new items (adaptive polling)


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchResult:
    """The outcome of one successful HTTP exchange with a feed (errors raise FetchError)."""

    url: str  # the URL requested
    final_url: str  # after redirects
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes = b""
    not_modified: bool = False  # 304: no parse, no scoring
    permanent_redirect: str | None = None  # 301/308 target: the stored URL is updated
    etag: str | None = None
    last_modified: str | None = None
    retry_after: float | None = None  # seconds
    max_age: float | None = None  # seconds, from Cache-Control max-age or Expires
    elapsed: float = 0.0  # seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class RawItem:
    """One feed entry as the parser read it, before normalisation."""

    guid: str | None
    link: str | None
    title: str
    summary: str  # may be HTML
    summary_type: str = "text/html"
    content: str = ""  # the longest content block, may be HTML
    content_type: str = "text/html"
    published: datetime | None = None
    updated: datetime | None = None
    author: str | None = None
    language: str | None = None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedFeed:
    """A feed document: its own metadata and its entries."""

    url: str
    title: str
    link: str | None
    items: tuple[RawItem, ...]
    language: str | None = None
    ttl: float | None = None  # seconds, from RSS <ttl>
    warning: str | None = None  # set when the feed was malformed but still readable ("bozo")


@dataclass(frozen=True, slots=True, kw_only=True)
class Article:
    """A normalised article: the unit that is de-duplicated, scored and alerted on."""

    id: str  # stable id: trustworthy guid, else canonical link, else content hash
    url: str  # canonical URL (tracking parameters stripped)
    title: str
    text: str  # clean text (HTML reduced), summary and content merged
    source: str  # feed name
    feed_url: str = ""
    published: datetime
    fetched_at: datetime
    language: str | None = None
    tags: tuple[str, ...] = ()  # the feed's tags from the configuration
    categories: tuple[str, ...] = ()  # the entry's own categories
    fingerprint: str = ""  # hash of the normalised content: exact duplicates
    signature: int = 0  # near-duplicate signature: four 31-bit MinHash bands; 0 when no text
    story_id: str = ""  # id of the first article of this story; equals id for a new story


class TermHit(NamedTuple):
    """Evidence: one term matched in one field at character offsets [start, end).

    A named tuple rather than a frozen dataclass: scoring makes one for every occurrence of every
    matched term, and a tuple is built three times faster."""

    field: str  # title | text | url | source | tags
    term: str  # the term as the analyst wrote it
    start: int
    end: int
    matched: str  # the text actually matched


class RuleMatch(NamedTuple):
    """A rule decided that an article matches, with its score and evidence.

    A named tuple like :class:`TermHit`: scoring builds one per match, and a frozen dataclass's
    ``__init__`` (one ``object.__setattr__`` per field) cost more than deciding the match."""

    rule: str  # rule id (file stem)
    topic: str
    severity: str
    score: float  # in [0, 1]
    hits: tuple[TermHit, ...] = ()
    classifier: float | None = None  # the topic probability that counted, if any
    channels: tuple[str, ...] = ()  # empty: the default route
    explanation: Mapping[str, Any] | None = None  # filled only when asked (--explain)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scored:
    """An article with its classifier probabilities and the rules it matched."""

    article: Article
    topics: Mapping[str, float]
    matches: tuple[RuleMatch, ...]
    explanation: Mapping[str, Any] | None = None


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting for its first or next attempt
    DELIVERED = "delivered"
    DEAD = "dead"  # permanent failure or attempts exhausted; listed and replayable


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """A stored alert: unique per (rule, story)."""

    id: str
    rule: str
    topic: str
    severity: str
    score: float
    article_id: str
    story_id: str
    created_at: datetime
    evidence: tuple[TermHit, ...] = ()
    classifier: float | None = None
    # Why no delivery was made for it: "silenced", "cooldown" or "unrouted"; None when delivered.
    suppressed: str | None = None
    grouped: bool = False  # waits for its rule's group window, then goes out in a digest


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One outbox row: an alert (or a digest of alerts) for one channel."""

    id: str  # stable across retries: the webhook-id
    channel: str
    kind: str  # "alert" | "digest" | "test"
    payload: bytes  # the JSON body, rendered once when the row is created
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None = None
    delivered_at: datetime | None = None
    alert_ids: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """What one delivery attempt achieved (failures raise DeliveryError)."""

    delivery_id: str
    channel: str
    status: int | None = None  # HTTP status or SMTP code
    elapsed: float = 0.0
