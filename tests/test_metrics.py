"""Metrics: observer hooks move counters; store gauges are read from a real store at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import FeedConfig
from monitor.metrics import POLL_OUTCOMES, Metrics
from monitor.pipeline import PollSummary
from monitor.store import DeliveryOutcome, PollRecord, Store, open_store
from monitor.types import DeliveryState, FeedState

from factories import T0, alert, article, at, delivery

FEED = FeedState(feed_id=1, name="wire", url="https://news.example/feed.xml", interval=900)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'monitor.db'}")
    yield s
    s.close()


def sample(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_polls_are_counted_by_outcome_with_their_duration_and_articles() -> None:
    m = Metrics()
    assert all(sample(m, "news_monitor_polls_total", outcome=o) == 0 for o in POLL_OUTCOMES)
    m.polled(
        FEED, PollSummary(feed="wire", ok=True, status="new", items=7, new_articles=3, elapsed=0.3)
    )
    m.polled(FEED, PollSummary(feed="wire", ok=True, status="not-modified", elapsed=0.02))
    m.polled(
        FEED, PollSummary(feed="wire", ok=False, status="error", error="HTTP 500", elapsed=1.5)
    )
    assert sample(m, "news_monitor_polls_total", outcome="new") == 1
    assert sample(m, "news_monitor_polls_total", outcome="not-modified") == 1
    assert sample(m, "news_monitor_polls_total", outcome="error") == 1
    assert sample(m, "news_monitor_polls_total", outcome="unchanged") == 0
    assert sample(m, "news_monitor_articles_seen_total") == 7
    assert sample(m, "news_monitor_articles_new_total") == 3
    assert sample(m, "news_monitor_poll_duration_seconds_count") == 3
    assert sample(m, "news_monitor_poll_duration_seconds_sum") == pytest.approx(1.82)
    assert sample(m, "news_monitor_poll_duration_seconds_bucket", le="0.25") == 1


def test_alerts_deliveries_and_reloads_are_counted_by_their_labels() -> None:
    m = Metrics()
    m.channels(["hook"])
    assert sample(m, "news_monitor_deliveries_total", channel="hook", outcome="dead") == 0
    m.alerted(alert(1, rule="eu-sanctions"))
    m.alerted(alert(2, rule="eu-sanctions"))
    d = delivery("alr-eu-sanctions-1")
    m.delivered(d, "retry", 0.1)
    m.delivered(d, "delivered", 0.2)
    m.reloaded(False, "bad rule")
    assert sample(m, "news_monitor_alerts_total", rule="eu-sanctions", topic="sanctions") == 2
    assert sample(m, "news_monitor_deliveries_total", channel="hook", outcome="retry") == 1
    assert sample(m, "news_monitor_deliveries_total", channel="hook", outcome="delivered") == 1
    assert sample(m, "news_monitor_delivery_duration_seconds_count", channel="hook") == 2
    assert sample(m, "news_monitor_reloads_total", result="refused") == 1
    assert sample(m, "news_monitor_last_reload_successful") == 0
    m.reloaded(True, "SIGHUP")
    assert sample(m, "news_monitor_reloads_total", result="ok") == 1
    assert sample(m, "news_monitor_last_reload_successful") == 1


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()  # two daemons in one process must not collide
    a.alerted(alert(1))
    assert sample(a, "news_monitor_alerts_total", rule="r1", topic="sanctions") == 1
    assert sample(b, "news_monitor_alerts_total", rule="r1", topic="sanctions") is None


def fill(store: Store) -> None:
    """Two feeds; one failing twice; three deliveries: delivered, pending (old), dead."""
    store.sync_feeds(
        [
            FeedConfig(name="wire", url="https://a.example/f"),
            FeedConfig(name="broken", url="https://b.example/f"),
        ],
        T0,
    )
    ids = {f.name: f.feed_id for f in store.list_feeds()}
    arts = (article(1), article(2), article(3))
    alerts = tuple(alert(n) for n in (1, 2, 3))
    deliveries = tuple(delivery(a.id, when=100 * i) for i, a in enumerate(alerts))
    store.record_poll(
        PollRecord(
            feed_id=ids["wire"],
            owner="t",
            polled_at=at(0),
            next_poll_at=at(900),
            ok=True,
            articles=arts,
            alerts=alerts,
            deliveries=deliveries,
        )
    )
    for n in (1, 2):
        store.record_poll(
            PollRecord(
                feed_id=ids["broken"],
                owner="t",
                polled_at=at(n),
                next_poll_at=at(900),
                ok=False,
                error="HTTP 500",
            )
        )
    store.record_attempt(
        DeliveryOutcome(
            delivery_id=deliveries[0].id, owner="t", at=at(5), state=DeliveryState.DELIVERED
        )
    )
    store.record_attempt(
        DeliveryOutcome(
            delivery_id=deliveries[2].id,
            owner="t",
            at=at(5),
            state=DeliveryState.DEAD,
            error="HTTP 400",
        )
    )


def test_store_gauges_are_read_at_scrape_time(store: Store) -> None:
    m = Metrics()
    m.bind(store, lambda: T0 + timedelta(seconds=400))
    fill(store)
    assert sample(m, "news_monitor_store_up") == 1
    assert sample(m, "news_monitor_outbox_deliveries", state="pending") == 1
    assert sample(m, "news_monitor_outbox_deliveries", state="delivered") == 1
    assert sample(m, "news_monitor_outbox_deliveries", state="dead") == 1
    # The pending delivery was created at T0+100 s; "now" is T0+400 s.
    assert sample(m, "news_monitor_outbox_oldest_pending_age_seconds") == pytest.approx(300)
    assert sample(m, "news_monitor_feed_consecutive_errors", feed="broken") == 2
    assert sample(m, "news_monitor_feed_consecutive_errors", feed="wire") == 0
    assert sample(m, "news_monitor_feed_last_success_timestamp_seconds", feed="wire") == (
        at(0).timestamp()
    )
    assert sample(m, "news_monitor_feed_last_success_timestamp_seconds", feed="broken") is None


def test_a_scrape_answers_with_store_up_0_when_the_store_fails(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    m = Metrics()
    m.bind(store)
    store.close()
    (tmp_path / "m.db").unlink()
    (tmp_path / "m.db").mkdir()  # the path can no longer be opened as a database
    text = m.render().decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert sample(m, "news_monitor_store_up") == 0
    assert "news_monitor_polls" in names  # the counters are still served
    assert "news_monitor_outbox_deliveries" not in names


def test_rebinding_replaces_the_store_collector(store: Store, tmp_path: Path) -> None:
    m = Metrics()
    m.bind(store)
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        fill(other)
        m.bind(other)
        assert sample(m, "news_monitor_outbox_deliveries", state="dead") == 1
    finally:
        other.close()
