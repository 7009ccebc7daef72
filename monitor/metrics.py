"""Prometheus metrics: counters fed by the pipeline's observer hooks, gauges read from the store.

Everything lives in one dedicated ``CollectorRegistry`` (never the process-global one), so two
daemons in one process, or a test and a daemon, never share or collide on a metric. Gauges that
describe stored state (outbox depth, the oldest pending delivery, per-feed errors) are computed
from the store at scrape time by :class:`StoreCollector`: every replica sharing a database then
reports the same truth, and nothing has to be kept in step in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.observe import Observer

if TYPE_CHECKING:
    from monitor.pipeline import PollSummary
    from monitor.store import Store
    from monitor.types import Alert, Delivery, FeedState

log = logging.getLogger("monitor.metrics")

PREFIX = "news_monitor"
POLL_OUTCOMES = ("new", "unchanged", "not-modified", "error", "gone")
DELIVERY_OUTCOMES = ("delivered", "retry", "dead", "gone")
RELOAD_RESULTS = ("ok", "refused")
# Feed polls take from milliseconds (304) to the fetch deadline (30 s by default).
POLL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StoreCollector(Collector):
    """Gauges computed from the store when Prometheus scrapes (blocking: scrape off the loop)."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock

    def describe(self) -> Iterable[Metric]:
        # Describing without touching the store keeps registration cheap and side-effect free.
        return [
            GaugeMetricFamily(f"{PREFIX}_store_up", ""),
            GaugeMetricFamily(f"{PREFIX}_outbox_deliveries", "", labels=["state"]),
            GaugeMetricFamily(f"{PREFIX}_outbox_oldest_pending_age_seconds", ""),
            GaugeMetricFamily(f"{PREFIX}_feed_consecutive_errors", "", labels=["feed"]),
            GaugeMetricFamily(f"{PREFIX}_feed_last_success_timestamp_seconds", "", labels=["feed"]),
        ]

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            f"{PREFIX}_store_up", "1 when the store answered this scrape's queries, else 0."
        )
        depth = GaugeMetricFamily(
            f"{PREFIX}_outbox_deliveries",
            "Deliveries in the outbox by state (pending, delivered, dead).",
            labels=["state"],
        )
        oldest = GaugeMetricFamily(
            f"{PREFIX}_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending delivery in seconds (0 when nothing is pending).",
        )
        errors = GaugeMetricFamily(
            f"{PREFIX}_feed_consecutive_errors",
            "Consecutive failed polls of each active feed (0 after a success).",
            labels=["feed"],
        )
        last_ok = GaugeMetricFamily(
            f"{PREFIX}_feed_last_success_timestamp_seconds",
            "Unix time of each feed's last successful poll (absent before the first).",
            labels=["feed"],
        )
        try:
            summary = self.store.outbox_summary(self.clock())
            feeds = self.store.list_feeds()
        except Exception as exc:  # a scrape must answer even when the database does not
            log.warning("metrics: store unavailable: %s", exc, extra={"event": "metrics"})
            up.add_metric([], 0.0)
            return [up]
        up.add_metric([], 1.0)
        for state, value in sorted(summary.items()):
            if state != "oldest_pending_age":
                depth.add_metric([state], value)
        oldest.add_metric([], summary.get("oldest_pending_age", 0.0))
        for f in feeds:
            if f.status.value != "active":
                continue  # a gone or disabled feed is reported by its status, not as errors
            errors.add_metric([f.name], float(f.consecutive_errors))
            if f.last_ok_at is not None:
                last_ok.add_metric([f.name], f.last_ok_at.timestamp())
        return [up, depth, oldest, errors, last_ok]


class Metrics(Observer):
    """The daemon's observer: ``Daemon(path, observer=Metrics())``; the admin server serves it."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.polls = Counter(
            f"{PREFIX}_polls",
            "Feed polls by outcome.",
            ["outcome"],
            registry=r,
        )
        self.poll_seconds = Histogram(
            f"{PREFIX}_poll_duration_seconds",
            "Time to poll one feed: fetch (the bulk of it), parse, score and commit.",
            buckets=POLL_BUCKETS,
            registry=r,
        )
        self.articles_seen = Counter(
            f"{PREFIX}_articles_seen", "Feed items read by successful polls.", registry=r
        )
        self.articles_new = Counter(
            f"{PREFIX}_articles_new",
            "New articles stored (not seen before, not a copy).",
            registry=r,
        )
        self.alerts = Counter(
            f"{PREFIX}_alerts",
            "Alerts committed, by rule and topic.",
            ["rule", "topic"],
            registry=r,
        )
        self.deliveries = Counter(
            f"{PREFIX}_deliveries",
            "Delivery attempts by channel and outcome (delivered, retry, dead, gone).",
            ["channel", "outcome"],
            registry=r,
        )
        self.delivery_seconds = Histogram(
            f"{PREFIX}_delivery_duration_seconds",
            "Time of one delivery attempt, by channel.",
            ["channel"],
            registry=r,
        )
        self.reloads = Counter(
            f"{PREFIX}_reloads",
            "Rule and configuration reloads by result (ok, refused).",
            ["result"],
            registry=r,
        )
        self.reload_ok = Gauge(
            f"{PREFIX}_last_reload_successful",
            "1 when the last reload was applied (or none was tried), 0 when it was refused.",
            registry=r,
        )
        self.reload_time = Gauge(
            f"{PREFIX}_last_reload_timestamp_seconds",
            "Unix time of the last reload attempt (0 before the first).",
            registry=r,
        )
        self.reload_ok.set(1)
        # Every known label value starts at 0, so rate() and increase() see the first event.
        for outcome in POLL_OUTCOMES:
            self.polls.labels(outcome=outcome)
        for result in RELOAD_RESULTS:
            self.reloads.labels(result=result)
        self._bound: StoreCollector | None = None

    def bind(self, store: Store, clock: Callable[[], datetime] | None = None) -> None:
        """Serve the store's gauges from now on (again after the daemon reopens its store)."""
        if self._bound is not None:
            self.registry.unregister(self._bound)
        self._bound = StoreCollector(store, clock or (lambda: datetime.now(UTC)))
        self.registry.register(self._bound)

    def channels(self, names: Iterable[str]) -> None:
        """Start every configured channel's delivery counters at 0."""
        for name in names:
            for outcome in DELIVERY_OUTCOMES:
                self.deliveries.labels(channel=name, outcome=outcome)

    def render(self) -> bytes:
        """The text exposition format (queries the store when bound: call it off the loop)."""
        return generate_latest(self.registry)

    # ------------------------------------------------------------------ observer hooks
    def polled(self, feed: FeedState, summary: PollSummary) -> None:
        self.polls.labels(outcome=summary.status).inc()
        self.poll_seconds.observe(summary.elapsed)
        if summary.ok:
            self.articles_seen.inc(summary.items)
            self.articles_new.inc(summary.new_articles)

    def alerted(self, alert: Alert) -> None:
        self.alerts.labels(rule=alert.rule, topic=alert.topic).inc()

    def delivered(self, delivery: Delivery, outcome: str, elapsed: float) -> None:
        self.deliveries.labels(channel=delivery.channel, outcome=outcome).inc()
        self.delivery_seconds.labels(channel=delivery.channel).observe(elapsed)

    def reloaded(self, ok: bool, detail: str) -> None:
        self.reloads.labels(result="ok" if ok else "refused").inc()
        self.reload_ok.set(1 if ok else 0)
        self.reload_time.set_to_current_time()
