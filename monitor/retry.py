"""When to try a failed delivery again.

The schedule is the configured ``delivery.backoff`` list: after the n-th failed attempt the
delivery waits ``backoff[n-1]`` seconds (+- ``jitter`` of it, so that many deliveries failing
together do not hammer a recovering receiver in lock-step). A receiver's ``Retry-After`` is a
floor, never a way to retry sooner. When the list is exhausted the delivery is dead.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

# A receiver asking for "Retry-After: 31536000" must not park a delivery for a year.
MAX_DELAY = 86400.0


def next_attempt_delay(
    attempts: int,
    *,
    backoff: Sequence[float],
    jitter: float,
    retry_after: float | None,
    rng: random.Random,
) -> float | None:
    """Seconds to wait after ``attempts`` failed attempts, or None when no attempt is left.

    ``attempts`` counts the failures so far (1 after the first attempt failed). The result is
    ``backoff[attempts - 1]`` scaled by a uniform factor in ``[1 - jitter, 1 + jitter]``, at least
    ``retry_after`` when given, and at most :data:`MAX_DELAY`.
    """
    if attempts < 1:
        raise ValueError(f"attempts counts failed attempts and must be >= 1, not {attempts}")
    if attempts > len(backoff):
        return None
    jitter = min(max(jitter, 0.0), 1.0)
    delay = backoff[attempts - 1]
    if jitter:
        delay *= 1.0 + rng.uniform(-jitter, jitter)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(max(delay, 0.0), MAX_DELAY)
