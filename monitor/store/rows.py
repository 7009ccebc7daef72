"""Conversions between stored rows and the frozen pipeline values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from monitor.types import (
    Alert,
    Article,
    Delivery,
    DeliveryState,
    FeedState,
    FeedStatus,
    TermHit,
)

Row = dict[str, Any]

_MASK = (1 << 64) - 1


def ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(value), UTC)


def must_dt(value: float) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)


def signed64(value: int) -> int:
    """A 64-bit unsigned signature as a signed BIGINT (PostgreSQL has no unsigned type)."""
    value &= _MASK
    return value - (1 << 64) if value >= 1 << 63 else value


_BAND = (1 << 31) - 1


def bands(signature: int) -> tuple[int, int, int, int]:
    """The four 31-bit near-duplicate bands of a signature (see monitor.dedupe)."""
    s = signature
    return (s & _BAND, (s >> 32) & _BAND, (s >> 64) & _BAND, (s >> 96) & _BAND)


def from_bands(b0: int, b1: int, b2: int, b3: int) -> int:
    return int(b0) | int(b1) << 32 | int(b2) << 64 | int(b3) << 96


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def feed(row: Row) -> FeedState:
    return FeedState(
        feed_id=int(row["id"]),
        name=row["name"],
        url=row["url"],
        interval=float(row["interval_s"]),
        tags=tuple(orjson.loads(row["tags"])),
        status=FeedStatus(row["status"]),
        etag=row["etag"],
        last_modified=row["last_modified"],
        next_poll_at=dt(row["next_poll_at"]),
        consecutive_errors=int(row["consecutive_errors"]),
        last_error=row["last_error"],
        last_ok_at=dt(row["last_ok_at"]),
        last_new_at=dt(row["last_new_at"]),
        last_polled_at=dt(row["last_polled_at"]),
        avg_new_interval=row["avg_new_interval"],
    )


def article(row: Row) -> Article:
    return Article(
        id=row["id"],
        url=row["url"],
        title=row["title"],
        text=row["text"],
        source=row["source"],
        feed_url=row["feed_url"],
        published=must_dt(row["published"]),
        fetched_at=must_dt(row["first_seen"]),
        language=row["language"],
        tags=tuple(orjson.loads(row["tags"])),
        categories=tuple(orjson.loads(row["categories"])),
        fingerprint=row["fingerprint"],
        signature=from_bands(row["band0"], row["band1"], row["band2"], row["band3"]),
        story_id=row["story_id"],
    )


def article_params(a: Article, feed_id: int | None) -> tuple[Any, ...]:
    b = bands(a.signature)
    return (
        a.id,
        feed_id,
        a.url,
        a.title,
        a.text,
        a.source,
        a.feed_url,
        ts(a.published),
        ts(a.fetched_at),
        a.language,
        dumps(list(a.tags)),
        dumps(list(a.categories)),
        a.fingerprint,
        signed64(a.signature),  # its low 64 bits: non-zero exactly when there is a signature
        *b,
        a.story_id or a.id,
    )


ARTICLE_COLUMNS = (  # bands are stored in full; the signature is rebuilt from them
    "id, feed_id, url, title, text, source, feed_url, published, first_seen, language, tags, "
    "categories, fingerprint, signature, band0, band1, band2, band3, story_id"
)


def hits_json(hits: tuple[TermHit, ...]) -> str:
    return dumps(
        [
            {"field": h.field, "term": h.term, "start": h.start, "end": h.end, "matched": h.matched}
            for h in hits
        ]
    )


def alert(row: Row) -> Alert:
    return Alert(
        id=row["id"],
        rule=row["rule"],
        topic=row["topic"],
        severity=row["severity"],
        score=float(row["score"]),
        classifier=row["classifier"],
        article_id=row["article_id"],
        story_id=row["story_id"],
        created_at=must_dt(row["created_at"]),
        evidence=tuple(TermHit(**h) for h in orjson.loads(row["evidence"])),
        suppressed=row.get("suppressed"),
        grouped=bool(row.get("group_pending")),
    )


def delivery(row: Row, alert_ids: tuple[str, ...] = ()) -> Delivery:
    return Delivery(
        id=row["id"],
        channel=row["channel"],
        kind=row["kind"],
        payload=bytes(row["payload"]),
        state=DeliveryState(row["state"]),
        attempts=int(row["attempts"]),
        created_at=must_dt(row["created_at"]),
        next_attempt_at=must_dt(row["next_attempt_at"]),
        last_error=row["last_error"],
        delivered_at=dt(row["delivered_at"]),
        alert_ids=alert_ids,
    )
