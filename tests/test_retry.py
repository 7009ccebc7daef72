from __future__ import annotations

import random

import pytest

from monitor.config import DeliveryConfig
from monitor.retry import MAX_DELAY, next_attempt_delay

SCHEDULE = [5.0, 300.0, 1800.0]


def delay(attempts: int, *, jitter: float = 0.0, retry_after: float | None = None) -> float | None:
    return next_attempt_delay(
        attempts, backoff=SCHEDULE, jitter=jitter, retry_after=retry_after, rng=random.Random(7)
    )


def test_each_failure_waits_the_next_step_of_the_schedule() -> None:
    assert [delay(n) for n in (1, 2, 3)] == SCHEDULE


def test_schedule_exhausted_means_dead() -> None:
    assert delay(4) is None
    assert delay(40, retry_after=1.0) is None


def test_attempts_below_one_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="attempts"):
        delay(0)


def test_jitter_stays_within_bounds_and_actually_varies() -> None:
    rng = random.Random(1)
    seen = [
        next_attempt_delay(2, backoff=SCHEDULE, jitter=0.2, retry_after=None, rng=rng)
        for _ in range(500)
    ]
    values = [v for v in seen if v is not None]
    assert len(values) == 500
    assert min(values) >= 300.0 * 0.8
    assert max(values) <= 300.0 * 1.2
    assert len(set(values)) > 400  # spread, not one value
    assert min(values) < 300.0 * 0.85 and max(values) > 300.0 * 1.15


def test_retry_after_is_a_floor_not_a_shortcut() -> None:
    assert delay(1, retry_after=120.0) == 120.0  # longer than the 5 s step: honoured
    assert delay(2, retry_after=1.0) == 300.0  # shorter: the schedule wins


def test_retry_after_is_honoured_even_with_jitter() -> None:
    rng = random.Random(3)
    for _ in range(100):
        got = next_attempt_delay(1, backoff=SCHEDULE, jitter=1.0, retry_after=60.0, rng=rng)
        assert got is not None and got >= 60.0


def test_absurd_retry_after_is_capped() -> None:
    assert delay(1, retry_after=365 * 86400.0) == MAX_DELAY
    assert MAX_DELAY == 86400.0


def test_default_configuration_allows_eight_attempts() -> None:
    config = DeliveryConfig()
    rng = random.Random(0)
    delays = [
        next_attempt_delay(n, backoff=config.backoff, jitter=0.0, retry_after=None, rng=rng)
        for n in range(1, 9)
    ]
    assert delays[:7] == config.backoff
    assert delays[7] is None
