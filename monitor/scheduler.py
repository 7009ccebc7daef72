"""Timing, through APScheduler (the only module that imports it).

The daemon's periodic jobs are *ticks*: claim what is due in the store, then work on it. Each
feed's own interval, backoff and next poll time live in the store (``next_poll_at``), so they
survive restarts and are shared by replicas; APScheduler decides when to look. Every tick runs
at most once at a time and missed runs coalesce, so a slow tick never piles up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger("monitor.scheduler")


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    name: str
    every: float  # seconds
    run: Callable[[], Awaitable[object]]
    immediately: bool = True


class Ticker:
    """Runs ticks on the event loop and knows which are in flight, so stop can drain them."""

    def __init__(self, ticks: list[Tick]) -> None:
        self._ticks = ticks
        self._scheduler = AsyncIOScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
        )
        self._running: set[asyncio.Task[object]] = set()

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        from datetime import UTC, datetime

        for t in self._ticks:
            # APScheduler reads next_run_time=None as "paused": only pass it to run at once.
            first = {"next_run_time": datetime.now(UTC)} if t.immediately else {}
            self._scheduler.add_job(
                self._guarded(t), "interval", seconds=t.every, id=t.name, name=t.name, **first
            )
        self._scheduler.start()

    def _guarded(self, tick: Tick) -> Callable[[], Awaitable[None]]:
        async def job() -> None:
            task = asyncio.current_task()
            if task is not None:
                self._running.add(task)
            try:
                await tick.run()
            except asyncio.CancelledError:
                raise
            except Exception:  # the per-job guard: log and keep the daemon going
                log.exception("tick %s failed", tick.name, extra={"event": tick.name})
            finally:
                if task is not None:
                    self._running.discard(task)

        return job

    async def stop(self, deadline: float) -> bool:
        """Stop scheduling; wait up to ``deadline`` seconds for running ticks, then cancel them.

        Returns True when everything finished in time. Cancelled work is safe to abandon: a poll
        commits nothing until its single transaction, and a delivery whose outcome was not
        recorded is sent again (same id) when its lease expires.
        """
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        pending = set(self._running)
        if not pending:
            return True
        _, not_done = await asyncio.wait(pending, timeout=deadline)
        for task in not_done:
            task.cancel()
        if not_done:
            await asyncio.wait(not_done, timeout=2)
        return not not_done
