"""The values the store takes and returns, besides the pipeline's own (monitor.types)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from monitor.types import Alert, Article, Delivery, DeliveryState, FeedStatus

POLL_BUCKET = 3600.0  # poll statistics are kept per hour, for the dashboard's charts


@dataclass(frozen=True, slots=True, kw_only=True)
class PollRecord:
    """Everything one poll of one feed changes, committed together."""

    feed_id: int
    owner: str
    polled_at: datetime
    next_poll_at: datetime
    ok: bool
    error: str | None = None
    status: FeedStatus = FeedStatus.ACTIVE
    etag: str | None = None
    last_modified: str | None = None
    keep_validators: bool = False  # a 304 or an error keeps the stored validators
    new_url: str | None = None  # after a permanent redirect
    avg_new_interval: float | None = None
    articles: tuple[Article, ...] = ()
    alerts: tuple[Alert, ...] = ()
    deliveries: tuple[Delivery, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryOutcome:
    """The result of one attempt, as the delivery loop records it."""

    delivery_id: str
    owner: str
    at: datetime
    state: DeliveryState  # DELIVERED, PENDING (retry at next_attempt_at) or DEAD
    error: str | None = None
    next_attempt_at: datetime | None = None
    # A retryable failure blocks the channel: until this delivery succeeds or dies, only the
    # channel's oldest pending delivery is offered, so a receiver that comes back gets
    # everything in creation order.
    block_channel: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelState:
    name: str
    status: str  # "active" | "gone"
    reason: str | None
    blocked_until: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitResult:
    articles: int = 0
    alerts: tuple[str, ...] = field(default_factory=tuple)
    deliveries: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True, kw_only=True)
class DedupeView:
    """What the store already holds that bears on a batch of new articles."""

    known: frozenset[str]  # article ids already stored
    urls: frozenset[str]  # canonical URLs of the batch that are already stored
    fingerprints: frozenset[str]  # content fingerprints of the batch already stored
    near: Mapping[str, tuple[Article, ...]]  # article id -> stored near-duplicate candidates

    def exact(self, a: Article) -> bool:
        return a.url in self.urls or a.fingerprint in self.fingerprints
