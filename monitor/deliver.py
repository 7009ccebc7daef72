"""The delivery loop: claim due outbox rows, send each through its channel, record the outcome.

The channel decides whether a failure is worth retrying (monitor.interfaces.Channel); this loop
only obeys: delivered, retry on the backoff schedule (never sooner than a Retry-After, and the
channel blocked behind the failed row so order survives), dead, or channel gone (410).
Part of :class:`monitor.pipeline.Pipeline`, which supplies the collaborators.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from monitor.config import Config
from monitor.errors import ChannelGoneError, DeliveryError
from monitor.interfaces import Channel
from monitor.observe import Observer
from monitor.retry import next_attempt_delay
from monitor.store import DeliveryOutcome, Store
from monitor.types import Delivery, DeliveryState

log = logging.getLogger("monitor.pipeline")
T = TypeVar("T")


class DeliveryLoop:
    """The outbox half of the pipeline (a mixin: Pipeline provides what is declared here)."""

    config: Config
    store: Store
    channels: Mapping[str, Channel]
    owner: str
    clock: Callable[[], datetime]
    rng: random.Random
    observer: Observer
    _deliver_lock: asyncio.Lock
    # This round's successes, recorded together: (outcome, delivery, seconds it took).
    _delivered: list[tuple[DeliveryOutcome, Delivery, float]] | None

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError  # Pipeline runs store calls on its own thread pool

    async def deliver_due(self, *, limit: int | None = None) -> int:
        """Claim due deliveries and attempt each once; channels are sent to in creation order."""
        # One round at a time: two overlapping rounds would send one channel's rows out of order.
        async with self._deliver_lock:
            return await self._deliver_round(limit)

    async def _deliver_round(self, limit: int | None) -> int:
        now = self.clock()
        batch = limit or self.config.delivery.concurrency * 4
        timeouts = [self._timeout(c) for c in self.config.channels]
        lease = max(timeouts or [self.config.delivery.timeout]) * 2 + 5
        due = await self.db(
            lambda: self.store.claim_due_deliveries(self.owner, now, limit=batch, lease=lease)
        )
        by_channel: dict[str, list[Delivery]] = {}
        for d in due:
            by_channel.setdefault(d.channel, []).append(d)
        sem = asyncio.Semaphore(self.config.delivery.concurrency)
        # Successes are recorded together at the end of the round (one transaction instead of
        # one each); a crash before that re-sends them under the same webhook-id, which
        # receivers de-duplicate. Any other outcome first flushes them, to keep their order.
        self._delivered = []
        try:
            await asyncio.gather(*(self._deliver_channel(ds, sem) for ds in by_channel.values()))
        finally:
            await self._flush_delivered()
            self._delivered = None
        return len(due)

    async def _flush_delivered(self) -> None:
        if self._delivered:
            batch, self._delivered = self._delivered, []
            await self.db(self.store.record_attempts, [outcome for outcome, _, _ in batch])
            for _, d, elapsed in batch:  # observed once committed, so metrics match the store
                self.observer.delivered(d, "delivered", elapsed)

    def _timeout(self, channel: Any) -> float:
        return float(getattr(channel, "timeout", self.config.delivery.timeout))

    async def _deliver_channel(self, deliveries: list[Delivery], sem: asyncio.Semaphore) -> None:
        # One channel's deliveries start oldest first and the first retryable failure stops the
        # rest (they stay pending). With per_channel = 1 each waits for the one before it, so a
        # receiver sees creation order; with N > 1 up to N overlap (see DeliveryConfig).
        window = asyncio.Semaphore(self.config.delivery.per_channel)
        stopped = False
        tasks: list[asyncio.Task[None]] = []

        async def attempt(d: Delivery) -> None:
            nonlocal stopped
            try:
                async with sem:
                    if await self._attempt(d):
                        stopped = True
            except BaseException:
                stopped = True  # as before: an unexpected error ends this channel's round
                raise
            finally:
                window.release()

        for i, d in enumerate(deliveries):
            await window.acquire()
            if stopped:
                window.release()
                await self.db(self._release, deliveries[i:])
                break
            tasks.append(asyncio.create_task(attempt(d)))
        await asyncio.gather(*tasks)

    def _release(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            self.store.release_delivery(d.id, self.owner)

    async def _attempt(self, d: Delivery) -> bool:
        """One attempt; True when the channel should not be sent to again in this round."""
        channel = self.channels.get(d.channel)
        now = self.clock()
        if channel is None:
            err = f"channel {d.channel!r} is not configured"
            await self._flush_delivered()
            await self.db(self.store.record_attempt, self._failed(d, now, err, dead=True))
            log.error("delivery dead: %s", err, extra={"delivery": d.id, "channel": d.channel})
            return False
        started = time.monotonic()
        try:
            await channel.send(d)
        except DeliveryError as exc:
            return await self._failure(d, exc, time.monotonic() - started)
        done = self.clock()
        outcome = DeliveryOutcome(
            delivery_id=d.id, owner=self.owner, at=done, state=DeliveryState.DELIVERED
        )
        elapsed = time.monotonic() - started
        if self._delivered is not None:
            self._delivered.append((outcome, d, elapsed))
        else:
            await self.db(self.store.record_attempt, outcome)
            self.observer.delivered(d, "delivered", elapsed)
        log.info(
            "delivered",
            extra={"delivery": d.id, "channel": d.channel, "attempt": d.attempts + 1},
        )
        return False

    async def _failure(self, d: Delivery, exc: DeliveryError, elapsed: float) -> bool:
        now = self.clock()
        await self._flush_delivered()
        extra = {"delivery": d.id, "channel": d.channel, "attempt": d.attempts + 1}
        if isinstance(exc, ChannelGoneError):
            await self.db(self.store.set_channel_status, d.channel, "gone", exc.detail, now)
            await self.db(self.store.release_delivery, d.id, self.owner)
            self.observer.delivered(d, "gone", elapsed)
            log.error("channel disabled (410 Gone): %s", exc.detail, extra=extra)
            return True
        if not exc.retryable:
            await self.db(self.store.record_attempt, self._failed(d, now, exc.detail, dead=True))
            self.observer.delivered(d, "dead", elapsed)
            log.error("delivery dead (permanent): %s", exc.detail, extra=extra)
            return False
        delay = next_attempt_delay(
            d.attempts + 1,
            backoff=self.config.delivery.backoff,
            jitter=self.config.delivery.jitter,
            retry_after=exc.retry_after,
            rng=self.rng,
        )
        if delay is None:
            await self.db(self.store.record_attempt, self._failed(d, now, exc.detail, dead=True))
            self.observer.delivered(d, "dead", elapsed)
            log.error("delivery dead (attempts exhausted): %s", exc.detail, extra=extra)
            return False
        out = replace(
            self._failed(d, now, exc.detail, dead=False),
            next_attempt_at=now + timedelta(seconds=delay),
            block_channel=True,
        )
        await self.db(self.store.record_attempt, out)
        self.observer.delivered(d, "retry", elapsed)
        log.warning("delivery failed, retry in %.0fs: %s", delay, exc.detail, extra=extra)
        return True

    def _failed(self, d: Delivery, now: datetime, error: str, *, dead: bool) -> DeliveryOutcome:
        return DeliveryOutcome(
            delivery_id=d.id,
            owner=self.owner,
            at=now,
            state=DeliveryState.DEAD if dead else DeliveryState.PENDING,
            error=error,
        )
