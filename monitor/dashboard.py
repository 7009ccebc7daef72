"""The dashboard page: what the store says, gathered in one pass and rendered server-side.

No JavaScript, no build step, no external resource: one HTML document with inline CSS and inline
SVG charts whose geometry is computed here, so the page is the same in any browser and readable
by a text-mode one. Jinja2 autoescapes every value; links are only ever http(s).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import jinja2

from monitor.cli.outbox import feed_health
from monitor.config import Config
from monitor.store import Store
from monitor.types import DeliveryState

WINDOW = timedelta(hours=48)
BUCKET = 3600.0  # the store keeps poll statistics per hour
RECENT_ALERTS = 50
DEAD_SHOWN = 20
TOPIC_COLOURS = 6  # CSS classes topic-0 .. topic-5, then they repeat

# Chart geometry, in SVG user units (the SVG scales to the page width).
WIDTH, HEIGHT = 480.0, 170.0
LEFT, RIGHT, TOP, BOTTOM = 30.0, 6.0, 10.0, 20.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    cls: str
    title: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Label:
    x: float
    y: float
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Chart:
    title: str
    bars: tuple[Bar, ...]
    grid: tuple[Label, ...]  # y gridlines with their value
    xlabels: tuple[Label, ...]
    legend: tuple[tuple[str, str], ...]  # (label, css class)
    total: int
    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    right: float = WIDTH - RIGHT
    bottom: float = HEIGHT - BOTTOM


def _ceil_nice(value: float) -> int:
    """A round axis maximum at or above ``value`` (1, 2, 5 x 10^n)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return int(step * power)
    return int(10 * power)  # pragma: no cover - the loop always returns


def _hours(now: datetime) -> list[float]:
    end = now.timestamp() - now.timestamp() % BUCKET
    n = int(WINDOW.total_seconds() // BUCKET)
    return [end - BUCKET * (n - 1 - i) for i in range(n)]


def _hour(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M")


def _frame(
    hours: Sequence[float], top: float
) -> tuple[float, float, tuple[Label, ...], tuple[Label, ...]]:
    plot_w = WIDTH - LEFT - RIGHT
    slot = plot_w / len(hours)
    scale = (HEIGHT - TOP - BOTTOM) / top
    grid = tuple(
        Label(x=LEFT, y=HEIGHT - BOTTOM - v * scale, text=str(v)) for v in (0, top // 2, top) if v
    )
    xlabels = tuple(
        Label(x=LEFT + i * slot + slot / 2, y=HEIGHT - 6, text=_hour(t))
        for i, t in enumerate(hours)
        if datetime.fromtimestamp(t, UTC).hour % 6 == 0
    )
    return slot, scale, grid, xlabels


def topic_chart(counts: Sequence[Mapping[str, Any]], now: datetime) -> Chart:
    """Stacked bars: alerts per hour, one colour per topic."""
    hours = _hours(now)
    topics = sorted({str(r["topic"]) for r in counts})
    colour = {t: f"topic-{i % TOPIC_COLOURS}" for i, t in enumerate(topics)}
    per: dict[float, dict[str, int]] = {}
    for r in counts:
        per.setdefault(float(r["bucket"]), {})[str(r["topic"])] = int(r["alerts"])
    top = _ceil_nice(max((sum(v.values()) for v in per.values()), default=0))
    slot, scale, grid, xlabels = _frame(hours, top)
    bars: list[Bar] = []
    for i, t in enumerate(hours):
        base = HEIGHT - BOTTOM
        for topic in topics:
            n = per.get(t, {}).get(topic, 0)
            if not n:
                continue
            h = n * scale
            base -= h
            title = f"{_hour(t)}–{_hour(t + BUCKET)} UTC: {n} {topic}"
            bars.append(
                Bar(x=LEFT + i * slot + 1, y=base, w=slot - 2, h=h, cls=colour[topic], title=title)
            )
    return Chart(
        title="Alerts per topic, last 48 hours",
        bars=tuple(bars),
        grid=grid,
        xlabels=xlabels,
        legend=tuple((t, colour[t]) for t in topics),
        total=sum(sum(v.values()) for v in per.values()),
    )


def poll_chart(stats: Sequence[Mapping[str, Any]], now: datetime) -> Chart:
    """Polls per hour, with the failed ones in front of them."""
    hours = _hours(now)
    by_hour = {float(r["bucket"]): (int(r["polls"] or 0), int(r["errors"] or 0)) for r in stats}
    top = _ceil_nice(max((p for p, _ in by_hour.values()), default=0))
    slot, scale, grid, xlabels = _frame(hours, top)
    bars: list[Bar] = []
    for i, t in enumerate(hours):
        polls, errors = by_hour.get(t, (0, 0))
        span = f"{_hour(t)}–{_hour(t + BUCKET)} UTC"
        x, w = LEFT + i * slot + 1, slot - 2
        if polls:
            h = polls * scale
            title = f"{span}: {polls} polls, {errors} failed"
            bars.append(Bar(x=x, y=HEIGHT - BOTTOM - h, w=w, h=h, cls="polls", title=title))
        if errors:
            h = errors * scale
            title = f"{span}: {errors} failed polls"
            bars.append(Bar(x=x, y=HEIGHT - BOTTOM - h, w=w, h=h, cls="errors", title=title))
    return Chart(
        title="Feed polls and failures, last 48 hours",
        bars=tuple(bars),
        grid=grid,
        xlabels=xlabels,
        legend=(("polls", "polls"), ("failed", "errors")),
        total=sum(p for p, _ in by_hour.values()),
    )


def web_url(value: object) -> str | None:
    """The URL if it is http(s): autoescaping does not make a ``javascript:`` link safe."""
    text = str(value or "")
    return text if text.lower().startswith(("http://", "https://")) else None


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def gather(store: Store, config: Config, now: datetime) -> dict[str, Any]:
    """Everything the page shows (blocking store reads: call it off the event loop)."""
    alerts = store.list_alerts(limit=RECENT_ALERTS)
    articles = store.get_articles(a.article_id for a in alerts)
    recent = []
    for a in alerts:
        art = articles.get(a.article_id)
        recent.append(
            {
                "alert": a,
                "title": art.title if art else a.article_id,
                "href": web_url(art.url) if art else None,
                "source": art.source if art else "",
                "terms": sorted({h.term for h in a.evidence}),
                "fields": sorted({h.field for h in a.evidence}),
            }
        )
    feeds = feed_health(store, now, config.fetch.stale_after)
    for f in feeds:
        # A failing feed is retried later and later (backoff); say when the next try is.
        f["backing_off"] = f["health"] == "failing" and f["errors"] >= 2
    since = now - WINDOW
    return {
        "now": now,
        "recent": recent,
        "feeds": feeds,
        "feed_counts": _count(f["health"] for f in feeds),
        "outbox": store.outbox_summary(now),
        "dead": store.list_deliveries(state=DeliveryState.DEAD, limit=DEAD_SHOWN),
        "channels": list(store.channel_states().values()),
        "topic_chart": topic_chart(store.alert_counts(since), now),
        "poll_chart": poll_chart(store.poll_stats(since), now),
        "alerts_24h": sum(int(r["alerts"]) for r in store.alert_counts(now - timedelta(hours=24))),
    }


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("monitor", "templates"),
        autoescape=True,  # every value, whatever the template's name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["age"] = _age
    return env


def render(view: Mapping[str, Any], *, checks: Mapping[str, str]) -> str:
    template = environment().get_template("dashboard.html.j2")
    return template.render(**view, checks=checks, ready=all(v == "ok" for v in checks.values()))
