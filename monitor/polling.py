"""When to poll a feed next: politeness, adaptivity and backoff in one pure function.

The order of decisions in :func:`next_poll_delay`:

1. After an error, exponential backoff from the configured interval (``interval * 2**(n-1)``
   for the n-th consecutive error), and never sooner than the server's ``Retry-After``.
2. After a success, the adaptive interval: about half the observed gap between new items,
   kept within ``[interval / 2, interval * 8]`` so a busy feed is polled somewhat faster than
   configured and a quiet one much slower, but neither drifts far from what the operator chose.
3. The publisher's hints (``Retry-After``, ``Cache-Control: max-age`` or ``Expires``, RSS
   ``<ttl>``) can only make us wait longer, never shorter.
4. Random jitter of ``config.jitter`` (a fraction, both ways) so feeds added together do not
   poll in lockstep; it never takes us below a hint from the server.
5. Everything is clamped to ``[config.min_interval, config.max_interval]``.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from monitor.config import FetchConfig
from monitor.errors import FetchError
from monitor.types import FeedState, FeedStatus, FetchResult

ADAPT_FASTEST = 0.5  # a busy feed is polled at most twice as often as configured
ADAPT_SLOWEST = 8.0  # a quiet feed is polled at least every 8 configured intervals
EWMA_ALPHA = 0.3  # weight of the newest observed gap in the posting-rate average


def next_poll_delay(
    state: FeedState,
    *,
    config: FetchConfig,
    result: FetchResult | None,
    ttl: float | None,
    new_items: int,
    error: FetchError | None,
    now: datetime,
    rng: random.Random,
) -> float:
    """Seconds until the next poll of ``state``.

    A failed poll passes ``error`` (a FetchError, with its ``retry_after``) or, for failures
    that are not fetch errors (a ParseError), ``result=None``; either way with
    ``state.consecutive_errors`` already counting this failure (at least 1 is assumed).
    A successful poll passes its ``result`` (a 304 too), the feed's ``ttl`` in seconds if it
    has one, and ``new_items``. ``state.avg_new_interval`` is the posting-rate average (see
    :func:`update_posting_rate`).
    """
    base = max(state.interval, config.min_interval)
    floor = 0.0  # a server hint we must not undercut, even with jitter
    if error is not None or (result is None and state.consecutive_errors > 0):
        errors = max(1, state.consecutive_errors)
        # Cap the exponent: beyond it the product exceeds any sane max_interval anyway.
        delay = base * 2.0 ** min(errors - 1, 30)
        floor = (error.retry_after if error else None) or 0.0
    else:
        delay = _adaptive(state, base, now, new_items)
        hints = [ttl or 0.0]
        if result is not None:
            hints += [result.retry_after or 0.0, result.max_age or 0.0]
        floor = max(hints)
    delay = max(delay, floor)
    delay *= 1.0 + rng.uniform(-config.jitter, config.jitter)
    delay = max(delay, floor, config.min_interval)
    return min(delay, config.max_interval)


def _adaptive(state: FeedState, base: float, now: datetime, new_items: int) -> float:
    gap = state.avg_new_interval
    if gap is None:
        return base
    if new_items == 0 and state.last_new_at is not None:
        # A feed that has gone quiet for longer than its usual gap is posting less often now.
        gap = max(gap, (now - state.last_new_at).total_seconds())
    return min(max(gap / 2.0, base * ADAPT_FASTEST), base * ADAPT_SLOWEST)


def update_posting_rate(
    prev_avg: float | None, last_new_at: datetime | None, now: datetime, new_items: int
) -> float | None:
    """The new EWMA of seconds between new items, after a poll that found ``new_items``.

    The first poll that finds items gives no gap (we do not know when they were posted
    relative to anything), so the average starts at the second poll with news.
    """
    if new_items <= 0 or last_new_at is None:
        return prev_avg
    gap = max(0.0, (now - last_new_at).total_seconds()) / new_items
    if prev_avg is None:
        return gap
    return EWMA_ALPHA * gap + (1.0 - EWMA_ALPHA) * prev_avg


def is_stale(state: FeedState, now: datetime, stale_after: float) -> bool:
    """An active feed that has brought nothing new for ``stale_after`` seconds.

    A feed that never brought anything is judged from its first successful poll.
    """
    if state.status is not FeedStatus.ACTIVE:
        return False
    since = state.last_new_at or state.last_ok_at
    if since is None:
        return False
    return now - since > timedelta(seconds=stale_after)
