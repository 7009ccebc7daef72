"""From rule matches to stored alerts and outbox rows: identity, silences, routing.

Ids are derived, not random: an alert's id is a hash of (rule, story) and a delivery's id a hash
of (alert, channel). Whoever processes an article (this replica after a restart, or another
replica racing it) computes the same ids, and the store's uniqueness constraints keep one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.payload import alert_payload
from monitor.types import Alert, Article, Delivery, RuleMatch, Scored


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:26]


def alert_id(rule: str, story_id: str) -> str:
    return f"alr_{_digest(rule, story_id)}"


def delivery_id(first_alert_id: str, channel: str) -> str:
    return f"msg_{_digest(first_alert_id, channel)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Routed:
    alerts: tuple[Alert, ...]
    deliveries: tuple[Delivery, ...]
    silenced: tuple[str, ...]  # alert ids kept without delivery because their rule is silenced
    unrouted: tuple[str, ...]  # alert ids with no channel to go to


def make_alert(match: RuleMatch, article: Article, now: datetime) -> Alert:
    story = article.story_id or article.id
    return Alert(
        id=alert_id(match.rule, story),
        rule=match.rule,
        topic=match.topic,
        severity=match.severity,
        score=match.score,
        article_id=article.id,
        story_id=story,
        created_at=now,
        evidence=match.hits,
        classifier=match.classifier,
    )


def route(
    scored: Sequence[Scored],
    *,
    now: datetime,
    default_channels: Sequence[str],
    silenced_rules: Iterable[str] = (),
    active_channels: Iterable[str] | None = None,
) -> Routed:
    """Alerts for every match, one delivery per (alert, channel) unless the rule is silenced.

    A silenced alert is still stored (it happened, and it must not fire when the silence ends),
    but gets no delivery. ``active_channels`` drops routes to channels that are not configured.
    """
    silenced = set(silenced_rules)
    known = None if active_channels is None else set(active_channels)
    alerts: list[Alert] = []
    deliveries: list[Delivery] = []
    quiet: list[str] = []
    unrouted: list[str] = []
    for s in scored:
        for m in s.matches:
            a = make_alert(m, s.article, now)
            alerts.append(a)
            if m.rule in silenced:
                quiet.append(a.id)
                continue
            channels = [c for c in (m.channels or default_channels) if known is None or c in known]
            if not channels:
                unrouted.append(a.id)
                continue
            body = alert_payload(a, s.article, now=now)
            deliveries += [
                Delivery(
                    id=delivery_id(a.id, ch),
                    channel=ch,
                    kind="alert",
                    payload=body,
                    created_at=now,
                    next_attempt_at=now,
                    alert_ids=(a.id,),
                )
                for ch in dict.fromkeys(channels)
            ]
    return Routed(
        alerts=tuple(alerts),
        deliveries=tuple(deliveries),
        silenced=tuple(quiet),
        unrouted=tuple(unrouted),
    )
