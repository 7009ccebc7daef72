"""Benchmark harness: every figure is printed with a floor measured in the same run.

A benchmark module ``bench/bench_<group>.py`` defines
``GROUPS: dict[str, Callable[[], Iterable[Result]]]``; the key is a name prefix (``score``,
``ingest``, ...), so ``--only score`` runs just that group. ``ratio`` is value/floor for rates
(higher is better) and floor/value for times and sizes, so 1.0 means "at the floor" and lower
is worse.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    name: str
    value: float
    unit: str
    floor: float
    higher_is_better: bool
    note: str = ""

    @property
    def ratio(self) -> float:
        if self.value == 0 or self.floor == 0:
            return 0.0
        return self.value / self.floor if self.higher_is_better else self.floor / self.value

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "value": round(self.value, 4),
            "unit": self.unit,
            "floor": round(self.floor, 4),
            "ratio": round(self.ratio, 4),
        }


def best_rate(n_items: int, fn: Callable[[], object], *, repeat: int = 3) -> float:
    """Items per second of the fastest of ``repeat`` runs (the least disturbed by noise)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_items / min(times)


def median_time(fn: Callable[[], object], *, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
