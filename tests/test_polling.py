from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from monitor.config import FetchConfig
from monitor.errors import FetchError
from monitor.polling import is_stale, next_poll_delay, update_posting_rate
from monitor.types import FeedState, FeedStatus, FetchResult

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CFG = FetchConfig(min_interval=60, max_interval=86400, jitter=0.0)


def feed(**kw: object) -> FeedState:
    base: dict[str, object] = {"feed_id": 1, "name": "f", "url": "http://x/f", "interval": 900.0}
    return FeedState(**(base | kw))  # type: ignore[arg-type]


def ok(**kw: object) -> FetchResult:
    return FetchResult(url="http://x/f", final_url="http://x/f", status=200, headers={}, **kw)  # type: ignore[arg-type]


def delay(
    state: FeedState,
    *,
    result: FetchResult | None = None,
    ttl: float | None = None,
    new_items: int = 0,
    error: FetchError | None = None,
    config: FetchConfig = CFG,
    seed: int = 0,
) -> float:
    return next_poll_delay(
        state,
        config=config,
        result=result,
        ttl=ttl,
        new_items=new_items,
        error=error,
        now=NOW,
        rng=random.Random(seed),
    )


def test_plain_success_polls_at_the_configured_interval() -> None:
    assert delay(feed(), result=ok()) == 900.0


def test_publisher_hints_only_ever_lengthen_the_interval() -> None:
    assert delay(feed(), result=ok(max_age=3600.0)) == 3600.0
    assert delay(feed(), result=ok(max_age=10.0)) == 900.0
    assert delay(feed(), result=ok(), ttl=7200.0) == 7200.0
    assert delay(feed(), result=ok(retry_after=5000.0)) == 5000.0


def test_everything_is_clamped_to_min_and_max_interval() -> None:
    assert delay(feed(interval=5.0), result=ok()) == 60.0
    assert delay(feed(), result=ok(max_age=10 * 86400.0)) == 86400.0
    err = FetchError("http://x/f", "HTTP 429", status=429, retry_after=30 * 86400.0)
    assert delay(feed(consecutive_errors=1), error=err) == 86400.0


def test_errors_back_off_exponentially_up_to_max_interval() -> None:
    err = FetchError("http://x/f", "boom")
    got = [delay(feed(consecutive_errors=n), error=err) for n in range(1, 10)]
    assert got[:4] == [900.0, 1800.0, 3600.0, 7200.0]
    assert got[-1] == 86400.0 and got == sorted(got)


def test_retry_after_is_a_floor_for_the_backoff() -> None:
    err = FetchError("http://x/f", "HTTP 503", status=503, retry_after=4000.0)
    assert delay(feed(consecutive_errors=1), error=err) == 4000.0
    small = FetchError("http://x/f", "HTTP 503", status=503, retry_after=5.0)
    assert delay(feed(consecutive_errors=3), error=small) == 3600.0


def test_failure_without_fetch_error_still_backs_off() -> None:
    # A ParseError reaches the scheduler as "no result" with the error counted on the state.
    assert delay(feed(consecutive_errors=2)) == 1800.0


def test_busy_feed_is_polled_faster_but_not_beyond_half_the_interval() -> None:
    assert delay(feed(avg_new_interval=1200.0, last_new_at=NOW), result=ok(), new_items=2) == 600.0
    assert delay(feed(avg_new_interval=60.0, last_new_at=NOW), result=ok(), new_items=5) == 450.0


def test_quiet_feed_is_polled_slower_within_eight_intervals() -> None:
    quiet = feed(avg_new_interval=4 * 3600.0, last_new_at=NOW - timedelta(hours=1))
    assert delay(quiet, result=ok()) == 2 * 3600.0
    silent = feed(avg_new_interval=3600.0, last_new_at=NOW - timedelta(days=5))
    assert delay(silent, result=ok()) == 8 * 900.0


def test_jitter_spreads_feeds_within_the_configured_fraction() -> None:
    cfg = FetchConfig(jitter=0.1)
    got = {delay(feed(), result=ok(), config=cfg, seed=s) for s in range(50)}
    assert len(got) > 40
    assert all(810.0 <= d <= 990.0 for d in got)


def test_jitter_never_undercuts_retry_after() -> None:
    cfg = FetchConfig(jitter=0.5)
    err = FetchError("http://x/f", "HTTP 429", status=429, retry_after=3000.0)
    got = [delay(feed(consecutive_errors=1), error=err, config=cfg, seed=s) for s in range(50)]
    assert min(got) >= 3000.0


def test_posting_rate_is_an_ewma_of_gaps_per_item() -> None:
    assert update_posting_rate(None, None, NOW, 5) is None  # first items: no gap known
    assert update_posting_rate(None, NOW - timedelta(hours=1), NOW, 2) == 1800.0
    assert update_posting_rate(1000.0, NOW - timedelta(seconds=2000), NOW, 1) == pytest.approx(
        0.3 * 2000 + 0.7 * 1000
    )
    assert update_posting_rate(1000.0, NOW - timedelta(hours=5), NOW, 0) == 1000.0


def test_stale_when_nothing_new_for_stale_after() -> None:
    assert is_stale(feed(last_new_at=NOW - timedelta(days=4)), NOW, 3 * 86400.0)
    assert not is_stale(feed(last_new_at=NOW - timedelta(days=2)), NOW, 3 * 86400.0)
    assert is_stale(feed(last_ok_at=NOW - timedelta(days=4)), NOW, 3 * 86400.0)
    assert not is_stale(feed(), NOW, 3 * 86400.0)
    gone = feed(status=FeedStatus.GONE, last_new_at=NOW - timedelta(days=9))
    assert not is_stale(gone, NOW, 3 * 86400.0)
