"""From rule matches to stored alerts and outbox rows: identity, silences, routing.

Ids are derived, not random: an alert's id is a hash of (rule, story) and a delivery's id a hash
of (alert, channel). Whoever processes an article (this replica after a restart, or another
replica racing it) computes the same ids, and the store's uniqueness constraints keep one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from monitor.payload import alert_payload, digest_payload
from monitor.types import Alert, Article, Delivery, RuleMatch, Scored


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:26]


def alert_id(rule: str, story_id: str) -> str:
    return f"alr_{_digest(rule, story_id)}"


def delivery_id(first_alert_id: str, channel: str) -> str:
    return f"msg_{_digest(first_alert_id, channel)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """What a rule asks of delivery (from its file): where to, how often, bundled or not."""

    channels: tuple[str, ...] = ()
    cooldown: float | None = None  # seconds without another delivery for the rule
    group: float | None = None  # seconds: matches are bundled into one digest per window


@dataclass(frozen=True, slots=True, kw_only=True)
class Routed:
    alerts: tuple[Alert, ...]
    deliveries: tuple[Delivery, ...]


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


def channels_for(
    rule_channels: Sequence[str], default: Sequence[str], known: Iterable[str] | None
) -> list[str]:
    allowed = None if known is None else set(known)
    chosen = rule_channels or default
    return [c for c in dict.fromkeys(chosen) if allowed is None or c in allowed]


def route(
    scored: Sequence[Scored],
    *,
    now: datetime,
    default_channels: Sequence[str],
    policies: Mapping[str, Policy] | None = None,
    silenced_rules: Iterable[str] = (),
    last_alert: Mapping[str, datetime] | None = None,
    active_channels: Iterable[str] | None = None,
) -> Routed:
    """An alert for every match, and for each one that is not held back, one delivery per channel.

    Held back, and recorded with the reason: a silenced rule ("silenced"), a rule still in its
    cooldown since its last alert ("cooldown"), a rule with no channel ("unrouted"). A rule with
    a ``group`` window gets no delivery now: its alerts wait for the digest (``grouped``).
    A held-back alert is still stored: it happened, and it must not fire later.
    """
    policies = policies or {}
    silenced = set(silenced_rules)
    last = dict(last_alert or {})
    known = None if active_channels is None else list(active_channels)
    alerts: list[Alert] = []
    deliveries: list[Delivery] = []
    for s in scored:
        for m in s.matches:
            a = make_alert(m, s.article, now)
            policy = policies.get(m.rule, Policy(channels=m.channels))
            channels = channels_for(m.channels or policy.channels, default_channels, known)
            previous = last.get(m.rule)
            if m.rule in silenced:
                a = replace(a, suppressed="silenced")
            elif (
                policy.cooldown and previous and (now - previous).total_seconds() < policy.cooldown
            ):
                a = replace(a, suppressed="cooldown")
            elif not channels:
                a = replace(a, suppressed="unrouted")
            elif policy.group:
                a = replace(a, grouped=True)
            if a.suppressed is None:
                last[m.rule] = now
            alerts.append(a)
            if a.suppressed or a.grouped:
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
                for ch in channels
            ]
    return Routed(alerts=tuple(alerts), deliveries=tuple(deliveries))


def digest_deliveries(
    rule: str,
    items: Sequence[tuple[Alert, Article]],
    now: datetime,
    *,
    channels: Sequence[str],
    window: float,
) -> list[Delivery]:
    """One digest delivery per channel for a rule's alerts gathered over its group window."""
    if not items or not channels:
        return []
    ids = tuple(a.id for a, _ in items)
    start = min(a.created_at for a, _ in items)
    body = digest_payload(
        items,
        rule=rule,
        topic=items[0][0].topic,
        window_start=start,
        window_end=max(now, start + timedelta(seconds=window)),
        now=now,
    )
    first = hashlib.sha256("\x00".join(ids).encode()).hexdigest()[:16]
    return [
        Delivery(
            id=delivery_id(f"dig_{first}", ch),
            channel=ch,
            kind="digest",
            payload=body,
            created_at=now,
            next_attempt_at=now,
            alert_ids=ids,
        )
        for ch in channels
    ]
