"""Versioned JSON payloads sent to channels (documented in docs/webhooks.md).

A payload is rendered once, when its outbox row is created, and the stored bytes are re-sent
unchanged on every retry: the body a consumer verifies on a repeat is byte-identical to the
first, so it can drop the repeat by its ``webhook-id``. Every shape is described by the JSON
Schema shipped at ``monitor/schemas/webhook-payload.v1.json``.

    {"type": "alert.created" | "alert.digest" | "test", "version": "1",
     "timestamp": "2026-01-02T03:04:05Z", "data": {...}}
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

import orjson

from monitor.types import Alert, Article

PAYLOAD_VERSION = "1"
MAX_EVIDENCE = 20  # a rule with hundreds of hits must not make a megabyte body
EXCERPT_CHARS = 300
SCHEMA_FILE = "webhook-payload.v1.json"


def iso8601(when: datetime) -> str:
    """UTC, second precision, ``Z`` suffix; a naive datetime is taken to be UTC already."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of ``text`` with whitespace collapsed, at most ``limit`` characters.

    Cut on a word boundary and marked with an ellipsis (counted in the limit) so a consumer
    never shows half a word; a single word longer than the limit is cut hard.
    """
    # Only the head is needed; collapsing whitespace of a whole long article is most of the cost.
    clean = " ".join(text[: limit * 4].split())
    if len(clean) <= limit and len(text) > limit * 4:
        clean = " ".join(text.split())
    if len(clean) <= limit:
        return clean
    head = clean[: limit - 1]
    if clean[limit - 1] != " ":  # the cut fell inside a word: drop the partial word
        space = head.rfind(" ")
        if space > 0:
            head = head[:space]
    return head.rstrip(" ,;:.-") + "…"


def why(alert: Alert) -> str:
    """One line a human reads first: the score and what matched where."""
    parts = [f"{alert.severity} {alert.topic} alert, score {alert.score:.2f}"]
    if alert.classifier is not None:
        parts.append(f"classifier {alert.classifier:.2f}")
    seen: list[str] = []
    for hit in alert.evidence:
        label = f"{hit.term!r} in {hit.field}"
        if label not in seen:
            seen.append(label)
    if seen:
        more = f" and {len(seen) - 5} more" if len(seen) > 5 else ""
        parts.append("matched " + ", ".join(seen[:5]) + more)
    return "; ".join(parts)


def _alert(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "rule": alert.rule,
        "topic": alert.topic,
        "severity": alert.severity,
        "score": round(alert.score, 4),
        "classifier": None if alert.classifier is None else round(alert.classifier, 4),
        "created_at": iso8601(alert.created_at),
        "evidence": [
            {"field": h.field, "term": h.term, "matched": h.matched, "start": h.start, "end": h.end}
            for h in alert.evidence[:MAX_EVIDENCE]
        ],
        "evidence_total": len(alert.evidence),
        "why": why(alert),
    }


def _article(article: Article) -> dict[str, Any]:
    return {
        "id": article.id,
        "story_id": article.story_id or article.id,
        "title": article.title,
        "url": article.url,
        "source": article.source,
        "published": iso8601(article.published),
        "excerpt": excerpt(article.text),
    }


def _envelope(kind: str, now: datetime, data: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {"type": kind, "version": PAYLOAD_VERSION, "timestamp": iso8601(now), "data": data}
    )


def alert_payload(alert: Alert, article: Article, *, now: datetime) -> bytes:
    """``alert.created``: one alert and the article it is about."""
    return _envelope("alert.created", now, {"alert": _alert(alert), "article": _article(article)})


def digest_payload(
    items: Sequence[tuple[Alert, Article]],
    *,
    rule: str,
    topic: str,
    window_start: datetime,
    window_end: datetime,
    now: datetime,
) -> bytes:
    """``alert.digest``: the alerts of one rule grouped over a window, oldest first as given."""
    group = {
        "rule": rule,
        "topic": topic,
        "window_start": iso8601(window_start),
        "window_end": iso8601(window_end),
        "count": len(items),
    }
    alerts = [{"alert": _alert(a), "article": _article(art)} for a, art in items]
    return _envelope("alert.digest", now, {"group": group, "alerts": alerts})


def test_payload(channel: str, *, now: datetime) -> bytes:
    """``test``: proves the channel's URL, secret and verification end to end."""
    data = {"channel": channel, "message": f"Test event from news-monitor for channel {channel}."}
    return _envelope("test", now, data)


# pytest would otherwise try to collect the function above when a test module imports it.
test_payload.__test__ = False  # type: ignore[attr-defined]


def payload_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of every payload type, as shipped with the package."""
    raw = files("monitor").joinpath("schemas", SCHEMA_FILE).read_bytes()
    schema: dict[str, Any] = orjson.loads(raw)
    return schema
