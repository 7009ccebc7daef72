"""The pipeline: every stage composed in one place, and the only writer of state.

    claim due feeds -> fetch -> parse -> normalize -> de-duplicate -> score -> route
        -> one store transaction (feed state + articles + alerts + outbox rows)

    claim due deliveries -> channel.send -> record the outcome (delivered / retry / dead)
        (the delivery half lives in monitor/deliver.py, mixed into Pipeline)

Stages are functions of their inputs; this module only sequences them, moves CPU work (parsing,
scoring) off the event loop, and commits each poll as one transaction. The daemon, ``monitor run
--once`` and the benchmarks all drive this same code.

With a worker pool (``parser``), parsing and scoring run in worker processes
(monitor/workers.py), so the main process keeps only fetching, de-duplication, routing and the
store. A poll scores the articles the store does not hold yet *before* it takes the commit lock
(feeds are scored in parallel, and the lock is never held while a job waits in the pool's
queue); under the lock, de-duplication runs again against the store as it is then, and only its
result is committed, with the scores of exactly those articles. A worker that cannot score
(stale rule files, a failure, a dead pool) leaves the scoring to this process.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from monitor import dedupe
from monitor.config import Config
from monitor.deliver import DeliveryLoop
from monitor.errors import (
    FeedError,
    FeedGoneError,
    FetchError,
)
from monitor.fetch import HostLimiter, fetch_feed
from monitor.interfaces import Channel
from monitor.observe import Observer
from monitor.offload import Offload
from monitor.polling import next_poll_delay, update_posting_rate
from monitor.route import Policy, Routed, channels_for, digest_deliveries, route
from monitor.score import Scorer
from monitor.store import DeliveryOutcome, PollRecord, Store
from monitor.types import (
    Alert,
    Article,
    Delivery,
    FeedState,
    FeedStatus,
    FetchResult,
    Scored,
)
from monitor.workers import ScorerSpec, cores, worth_scoring

log = logging.getLogger("monitor.pipeline")
T = TypeVar("T")

NEAR_DUP_WINDOW = timedelta(days=7)  # syndicated copies arrive within days of the original


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class PollSummary:
    feed: str
    ok: bool
    status: str  # "new", "unchanged", "not-modified", "error", "gone"
    items: int = 0
    new_articles: int = 0
    alerts: int = 0
    deliveries: int = 0
    error: str | None = None
    elapsed: float = 0.0


def policies(scorer: Scorer) -> dict[str, Policy]:
    """Each rule's delivery policy, from its file."""
    return {
        r.id: Policy(channels=tuple(r.channels), cooldown=r.cooldown, group=r.group)
        for r in scorer.rules.rules
    }


class Pipeline(Offload, DeliveryLoop):
    """The stages wired to their collaborators (all passed in, none global)."""

    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        scorer: Callable[[], Scorer],
        scorer_spec: Callable[[], ScorerSpec | None] | None = None,
        client: httpx.AsyncClient,
        channels: Mapping[str, Channel],
        owner: str,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        observer: Observer | None = None,
        cpu: Executor | None = None,
        parser: Executor | None = None,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.scorer = scorer  # called per batch, so a reload swaps rules between polls
        # How a worker rebuilds that same scorer; None: score in this process.
        self.scorer_spec = scorer_spec or (lambda: None)
        self.client = client
        self.channels = channels
        self.owner = owner
        self.clock = clock
        self.rng = rng or random.Random()
        self.observer = observer or Observer()
        self.limiter = HostLimiter(config.fetch)
        self._own_cpu = cpu is None
        self.cpu = cpu or ThreadPoolExecutor(max_workers=2, thread_name_prefix="cpu")
        # Parsing, normalising and scoring (most of a poll's CPU) may run in worker processes,
        # so a second core does real work.
        self.parser = parser
        # The pool runs jobs in the order they came. Parse jobs wait here, a few at a time in
        # the pool, so a scoring job (which a commit waits for) never queues behind the
        # bodies of every feed fetched so far.
        self._parse_slots = asyncio.Semaphore(2 * cores())
        self._refusals: set[str] = set()  # why workers did not score, each logged once
        self.scored_in_workers = 0  # articles, for tests and the benchmarks
        self.scored_here = 0
        # Called when a poll queued deliveries, so they go out now rather than at the next
        # outbox tick (up to [delivery] poll later).
        self.on_outbox = on_outbox
        self._deliver_lock = asyncio.Lock()
        # This round's successes, recorded together: (outcome, delivery, seconds it took).
        self._delivered: list[tuple[DeliveryOutcome, Delivery, float]] | None = None
        self._db = ThreadPoolExecutor(max_workers=4, thread_name_prefix="store")
        self._commit_lock = asyncio.Lock()

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a (blocking) store call off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    def close(self) -> None:
        self._db.shutdown(wait=True)
        if self._own_cpu:
            self.cpu.shutdown(wait=True)

    # ------------------------------------------------------------------ feeds
    async def poll_due(
        self, *, limit: int | None = None, everything: bool = False
    ) -> list[PollSummary]:
        """Claim due feeds (all active feeds with ``everything``) and poll them concurrently."""
        now = self.clock()
        # Longer than any fetch can take (its total deadline), short enough that the feeds of a
        # crashed replica are picked up again soon.
        lease = self.config.fetch.timeout * 2 + 10
        feeds = await self.db(
            lambda: self.store.claim_due_feeds(
                self.owner,
                now,
                limit=limit or self.config.fetch.concurrency * 4,
                lease=lease,
                due_by=now + timedelta(days=3650) if everything else None,
            )
        )
        return list(await asyncio.gather(*(self.poll(f) for f in feeds)))

    async def poll(self, state: FeedState) -> PollSummary:
        """Fetch, process and commit one feed. Never raises for a bad feed."""
        started = time.monotonic()
        try:
            summary = await self._poll(state)
        except FeedError as exc:
            summary = await self._record_failure(state, exc)
        summary = replace(summary, elapsed=time.monotonic() - started)
        self.observer.polled(state, summary)
        extra = {"feed": state.name, "url": state.url, "status": summary.status}
        if summary.ok:
            log.info(
                "poll %s: %d items, %d new, %d alerts",
                summary.status,
                summary.items,
                summary.new_articles,
                summary.alerts,
                extra=extra | {"elapsed": round(summary.elapsed, 3)},
            )
        else:
            log.warning("poll failed: %s", summary.error, extra=extra)
        return summary

    async def _poll(self, state: FeedState) -> PollSummary:
        result = await fetch_feed(self.client, state, self.config.fetch, limiter=self.limiter)
        now = self.clock()
        if result.not_modified:
            delay = self._delay(state, result, None, 0, None, now)
            await self.db(self.store.record_poll, self._record(state, result, now, delay))
            return PollSummary(feed=state.name, ok=True, status="not-modified")
        # Score what the store does not hold yet, outside the critical section (the costly part):
        # on a feed's first poll, that is everything it brings, scored by the worker parsing it.
        scorer, spec = self.scorer(), self.scorer_spec()
        first = spec if state.last_ok_at is None else None
        (articles, warning, ttl), early = await self._parse(result, state, now, first)
        if warning:
            log.info("feed is malformed but readable: %s", warning, extra={"feed": state.name})
        if early is None:
            early = await self._score(scorer, spec, await self._unseen(articles))
        verdicts = {s.article.id: s for s in early}
        # Deciding what is new and committing it is one critical section: two feeds carrying
        # the same story at the same moment must see each other's articles.
        async with self._commit_lock:
            fresh = await self._new_stories(articles, now)
            # An article stored when the poll began but gone now (pruned) was not scored.
            missing = [a for a in fresh if a.id not in verdicts]
            verdicts |= {s.article.id: s for s in await self._score_here(scorer, missing)}
            scored = [replace(verdicts[a.id], article=a) for a in fresh]
            routed = await self._route(scorer, scored, now)
            delay = self._delay(state, result, ttl, len(fresh), None, now)
            rec = replace(
                self._record(state, result, now, delay),
                articles=tuple(fresh),
                alerts=routed.alerts,
                deliveries=routed.deliveries,
                avg_new_interval=update_posting_rate(
                    state.avg_new_interval, state.last_new_at, now, len(fresh)
                ),
            )
            committed = await self.db(self.store.record_poll, rec)
        if committed.deliveries and self.on_outbox is not None:
            self.on_outbox()
        for a in routed.alerts:
            if a.id in committed.alerts:
                self.observer.alerted(a)
                log.info(
                    "alert %s",
                    a.topic,
                    extra={"rule": a.rule, "article": a.article_id, "alert": a.id},
                )
        return PollSummary(
            feed=state.name,
            ok=True,
            status="new" if fresh else "unchanged",
            items=len(articles),
            new_articles=committed.articles,
            alerts=len(committed.alerts),
            deliveries=len(committed.deliveries),
        )

    async def _unseen(self, articles: Sequence[Article]) -> list[Article]:
        """The articles worth scoring (``worth_scoring``), asking the store which it holds."""
        known = await self.db(self.store.known_article_ids, list({a.id: a for a in articles}))
        return worth_scoring(articles, known)

    async def _route(self, scorer: Scorer, scored: Sequence[Scored], now: datetime) -> Routed:
        rules = {m.rule for s in scored for m in s.matches}
        if not rules:
            return Routed(alerts=(), deliveries=())
        silenced, last = await self.db(self.store.suppression_state, rules, now)
        return route(
            scored,
            now=now,
            default_channels=self.config.routes.default,
            policies=policies(scorer),
            silenced_rules=silenced,
            last_alert=last,
            active_channels=self.channels.keys(),
        )

    async def flush_groups(self) -> int:
        """Send the digests of rules whose group window has closed."""
        scorer = self.scorer()
        pols = policies(scorer)
        windows = {rule: p.group for rule, p in pols.items() if p.group}
        default = self.config.routes.default
        known = list(self.channels.keys())

        def build(rule: str, items: list[tuple[Alert, Article]], now: datetime) -> list[Delivery]:
            pol = pols.get(rule, Policy())
            return digest_deliveries(
                rule,
                items,
                now,
                channels=channels_for(pol.channels, default, known),
                window=windows.get(rule, 0.0),
            )

        created = await self.db(self.store.flush_groups, self.clock(), windows, build)
        for d in created:
            log.info("digest queued", extra={"delivery": d})
        return len(created)

    def _delay(
        self,
        state: FeedState,
        result: FetchResult | None,
        ttl: float | None,
        new_items: int,
        error: FetchError | None,
        now: datetime,
    ) -> float:
        return next_poll_delay(
            state,
            config=self.config.fetch,
            result=result,
            ttl=ttl,
            new_items=new_items,
            error=error,
            now=now,
            rng=self.rng,
        )

    def _record(
        self, state: FeedState, result: FetchResult, now: datetime, delay: float
    ) -> PollRecord:
        return PollRecord(
            feed_id=state.feed_id,
            owner=self.owner,
            polled_at=now,
            next_poll_at=now + timedelta(seconds=delay),
            ok=True,
            etag=result.etag,
            last_modified=result.last_modified,
            keep_validators=result.not_modified,
            new_url=result.permanent_redirect,
        )

    async def _record_failure(self, state: FeedState, exc: FeedError) -> PollSummary:
        now = self.clock()
        gone = isinstance(exc, FeedGoneError)
        fetch_error = exc if isinstance(exc, FetchError) else None
        errored = replace(state, consecutive_errors=state.consecutive_errors + 1)
        delay = self._delay(errored, None, None, 0, fetch_error, now)
        await self.db(
            self.store.record_poll,
            PollRecord(
                feed_id=state.feed_id,
                owner=self.owner,
                polled_at=now,
                next_poll_at=now + timedelta(seconds=delay),
                ok=False,
                error=exc.reason,
                status=FeedStatus.GONE if gone else state.status,
            ),
        )
        return PollSummary(
            feed=state.name, ok=False, status="gone" if gone else "error", error=str(exc)
        )

    async def _new_stories(self, articles: Sequence[Article], now: datetime) -> list[Article]:
        """Drop articles already stored or exact copies; link syndicated copies to their story.

        Within the batch, as against the store, only articles sharing a signature band are
        compared (the store's candidate rule), so a feed's 30 items cost a handful of shingle
        comparisons rather than 435, and the store is read once per batch.
        """
        unique = list({a.id: a for a in articles}.values())
        view = await self.db(self.store.dedupe_view, unique, now - NEAR_DUP_WINDOW)
        fresh: list[Article] = []
        urls: set[str] = set()
        prints: set[str] = set()
        # (band position, band value) -> positions in ``fresh``: a pair is a candidate when
        # one band agrees (``dedupe.is_near_duplicate``), so only those pairs are looked at.
        banded: dict[tuple[int, int], list[int]] = {}
        for a in unique:
            if a.id in view.known or view.exact(a):
                continue
            if a.url in urls or a.fingerprint in prints:
                continue
            keys = list(enumerate(dedupe.bands(a.signature))) if a.signature else []
            near = sorted({i for k in keys for i in banded.get(k, ())})
            story = next((fresh[i].story_id for i in near if dedupe.same_story(a, fresh[i])), None)
            if story is None and a.signature:  # 0: no text to compare
                candidates = view.near.get(a.id, ())
                story = next((c.story_id for c in candidates if dedupe.same_story(a, c)), None)
            urls.add(a.url)
            prints.add(a.fingerprint)
            for k in keys:
                banded.setdefault(k, []).append(len(fresh))
            fresh.append(replace(a, story_id=story or a.id))
        return fresh
