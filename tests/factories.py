"""Small builders of pipeline values for tests (real values, not mocks)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from monitor.types import Alert, Article, Delivery, TermHit

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def article(n: int, *, story: str | None = None, url: str | None = None, sig: int = 0) -> Article:
    text = f"Body of article {n}."
    return Article(
        id=f"art-{n}",
        url=url or f"https://news.example/{n}",
        title=f"Title {n}",
        text=text,
        source="wire",
        feed_url="https://news.example/feed.xml",
        published=T0,
        fetched_at=T0,
        fingerprint=hashlib.sha256(text.encode()).hexdigest(),
        signature=sig,
        story_id=story or f"art-{n}",
    )


def alert(n: int, *, rule: str = "r1", story: str | None = None, when: float = 0) -> Alert:
    return Alert(
        id=f"alr-{rule}-{n}",
        rule=rule,
        topic="sanctions",
        severity="high",
        score=0.9,
        article_id=f"art-{n}",
        story_id=story or f"art-{n}",
        created_at=at(when),
        evidence=(TermHit(field="title", term="sanction", start=0, end=8, matched="Sanction"),),
        classifier=0.8,
    )


def delivery(alert_id: str, *, channel: str = "hook", when: float = 0) -> Delivery:
    return Delivery(
        id=f"dlv-{alert_id}-{channel}",
        channel=channel,
        kind="alert",
        payload=b'{"type":"alert.created"}',
        created_at=at(when),
        next_attempt_at=at(when),
        alert_ids=(alert_id,),
    )
