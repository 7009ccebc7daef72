"""The pipeline: every stage composed in one place, and the only writer of state.

    claim due feeds -> fetch -> parse -> normalize -> de-duplicate -> score -> route
        -> one store transaction (feed state + articles + alerts + outbox rows)

    claim due deliveries -> channel.send -> record the outcome (delivered / retry / dead)
        (the delivery half lives in monitor/deliver.py, mixed into Pipeline)

Stages are functions of their inputs; this module only sequences them, moves CPU work (parsing,
scoring) off the event loop, and commits each poll's changes atomically. The daemon, ``monitor run
--once`` and the benchmarks all drive this same code.

With a worker pool (``parser``), parsing and scoring run in worker processes
(monitor/workers.py), so the main process keeps only fetching, de-duplication, routing and the
store. A poll scores the articles the store does not hold yet *before* its commit (feeds are
scored in parallel, and no commit waits while a job waits in the pool's queue); at the commit,
de-duplication runs again against the store as it is then, and only its result is committed,
with the scores of exactly those articles. A worker that cannot score (stale rule files, a
failure, a dead pool) leaves the scoring to this process.

Commits are grouped: the polls that become ready while one commit is under way are
de-duplicated, routed and committed by the next one together, in one trip to a store thread and
one transaction (``_commit_ready``). Each poll gets exactly what committing it alone, in the same
order, would give; a batch that fails is committed again one poll at a time. A 304 and a
failed fetch are committed the same way (their record is the feed's state alone).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
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
from monitor.store import CommitResult, DeliveryOutcome, PollRecord, Store
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
# Polls committed together at most: a backlog is committed in transactions of this many, so that
# no one transaction holds the store's write lock (which deliveries and other replicas wait for)
# for long.
COMMIT_BATCH = 32


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
        self._ready: list[_Ready] = []  # polls waiting for the next commit
        self._committer: asyncio.Task[None] | None = None

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
        if result.not_modified:  # nothing to de-duplicate: its commit is the feed's state
            record = self._poll_record(state, result, None, now)
            await self._commit(_Ready(scorer=self.scorer(), now=now, record=record))
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
        # the same story at the same moment must see each other's articles. Polls that are
        # ready while a commit is under way go through the next one together (_commit_ready).
        ready = _Ready(
            scorer=scorer,
            now=now,
            record=self._poll_record(state, result, ttl, now),
            articles=articles,
            verdicts=verdicts,
        )
        fresh, routed, committed = await self._commit(ready)
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

    # ------------------------------------------------------------------ group commit
    async def _commit(self, ready: _Ready) -> _Committed:
        """De-duplicate, route and commit a poll with whichever others are ready with it."""
        ready.done = asyncio.get_running_loop().create_future()
        self._ready.append(ready)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.ensure_future(self._commit_ready())
        return await ready.done

    async def _commit_ready(self) -> None:
        """Commit the polls that are ready, a batch at a time, until none is left.

        A batch is every poll that became ready while the one before it was committed, up to
        ``COMMIT_BATCH`` (none is held back to wait for others): one trip to a store thread and
        one transaction for all of them, de-duplicated and routed in the order they arrived,
        exactly as one at a time would. Should the batch fail, its polls are committed one by
        one, so that whatever broke fails one poll only.
        """
        batch: list[_Ready] = []
        try:
            while self._ready:
                waiting = [r for r in self._ready if not r.done.done()]  # a cancelled poll: out
                batch, self._ready = waiting[:COMMIT_BATCH], waiting[COMMIT_BATCH:]
                if not batch:
                    continue
                try:
                    out = await self.db(self._commit_batch, batch)
                except Exception as exc:
                    if len(batch) == 1:
                        _settle(batch[0], exc)
                        continue
                    log.warning(
                        "committing %d polls together failed (%s: %s); committing each alone",
                        len(batch),
                        type(exc).__name__,
                        exc,
                    )
                    for r in batch:
                        try:
                            (one,) = await self.db(self._commit_batch, [r])
                        except Exception as exc_one:
                            _settle(r, exc_one)
                        else:
                            _settle(r, one)
                    continue
                for r, committed in zip(batch, out, strict=True):
                    _settle(r, committed)
        except BaseException:  # cancelled (shutdown): no poll waits for a commit that won't come
            for r in batch + self._ready:
                if not r.done.done():
                    r.done.cancel()
            self._ready = []
            raise

    def _commit_batch(self, batch: Sequence[_Ready]) -> list[_Committed]:
        """Runs on a store thread: de-duplicate, score what was not, route, and commit.

        The store is read once for the batch: near-duplicate candidates from the window before
        its earliest poll, silences as they stand at its latest (polls of one batch finish
        within moments of each other)."""
        since = min(r.now for r in batch) - NEAR_DUP_WINDOW
        fresh_by_poll = self._new_stories([r.articles for r in batch], since)
        scored_by_poll: list[list[Scored]] = []
        for r, fresh in zip(batch, fresh_by_poll, strict=True):
            # An article stored when the poll began but gone now (pruned) was not scored.
            missing = [a for a in fresh if a.id not in r.verdicts]
            if missing:
                self.scored_here += len(missing)
                r.verdicts |= {s.article.id: s for s in r.scorer.score(missing)}
            scored_by_poll.append([replace(r.verdicts[a.id], article=a) for a in fresh])
        rules = {m.rule for scored in scored_by_poll for s in scored for m in s.matches}
        silenced, last = (
            self.store.suppression_state(rules, max(r.now for r in batch)) if rules else (set(), {})
        )
        recs: list[PollRecord] = []
        routes: list[Routed] = []
        rule_policies: dict[int, dict[str, Policy]] = {}  # per scorer (a reload makes a new one)
        for r, fresh, scored in zip(batch, fresh_by_poll, scored_by_poll, strict=True):
            routed = Routed(alerts=(), deliveries=())
            if any(s.matches for s in scored):
                pols = rule_policies.get(id(r.scorer))
                if pols is None:
                    pols = rule_policies[id(r.scorer)] = policies(r.scorer)
                routed = route(
                    scored,
                    now=r.now,
                    default_channels=self.config.routes.default,
                    policies=pols,
                    silenced_rules=silenced,
                    last_alert=last,
                    active_channels=self.channels.keys(),
                )
            # What the store would answer the next poll once this one is committed.
            last |= {a.rule: r.now for a in routed.alerts if a.suppressed is None}
            recs.append(r.record(fresh, routed))
            routes.append(routed)
        results = self.store.record_polls(recs)
        return [
            (fresh, routed, committed)
            for fresh, routed, committed in zip(fresh_by_poll, routes, results, strict=True)
        ]

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

    def _poll_record(
        self, state: FeedState, result: FetchResult, ttl: float | None, now: datetime
    ) -> Callable[[list[Article], Routed], PollRecord]:
        """How a fetched poll is recorded once its commit knows what it brought: the new
        articles (which set the next poll's delay and the posting rate) and their routing."""

        def record(fresh: list[Article], routed: Routed) -> PollRecord:
            delay = self._delay(state, result, ttl, len(fresh), None, now)
            return replace(
                self._record(state, result, now, delay),
                articles=tuple(fresh),
                alerts=routed.alerts,
                deliveries=routed.deliveries,
                avg_new_interval=update_posting_rate(
                    state.avg_new_interval, state.last_new_at, now, len(fresh)
                ),
            )

        return record

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
        failed = PollRecord(
            feed_id=state.feed_id,
            owner=self.owner,
            polled_at=now,
            next_poll_at=now + timedelta(seconds=delay),
            ok=False,
            error=exc.reason,
            status=FeedStatus.GONE if gone else state.status,
        )
        # Nothing to de-duplicate: committed with the other polls ready, its record as it is.
        await self._commit(
            _Ready(scorer=self.scorer(), now=now, record=lambda _fresh, _routed: failed)
        )
        return PollSummary(
            feed=state.name, ok=False, status="gone" if gone else "error", error=str(exc)
        )

    def _new_stories(
        self, polls: Sequence[Sequence[Article]], since: datetime
    ) -> list[list[Article]]:
        """Each poll's articles without those already stored, earlier in the batch or exact
        copies; syndicated copies linked to their story. Runs on a store thread.

        Within a poll, as against the store, only articles sharing a signature band are
        compared (the store's candidate rule), so a feed's 30 items cost a handful of shingle
        comparisons rather than 435, and the store is read once per batch. A copy's story is
        looked for first among its own poll's articles, then in the store, then among the
        batch's earlier polls: the order committing the polls one by one would give.
        """
        uniques = [list({a.id: a for a in articles}.values()) for articles in polls]
        if not any(uniques):  # 304s: no need to ask the store
            return [[] for _ in polls]
        view = self.store.dedupe_view([a for u in uniques for a in u], since)
        out: list[list[Article]] = []
        taken: set[str] = set()  # ids stored by an earlier poll of the batch
        urls: set[str] = set()
        prints: set[str] = set()
        # (band position, band value) -> (poll, position in its fresh list): a pair is a
        # candidate when one band agrees (``dedupe.is_near_duplicate``).
        banded: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for p, unique in enumerate(uniques):
            fresh: list[Article] = []
            for a in unique:
                if a.id in view.known or a.id in taken or view.exact(a):
                    continue
                if a.url in urls or a.fingerprint in prints:
                    continue
                keys = list(enumerate(dedupe.bands(a.signature))) if a.signature else []
                near = sorted({i for k in keys for i in banded.get(k, ())})
                own = [fresh[i] for q, i in near if q == p]
                story = next((c.story_id for c in own if dedupe.same_story(a, c)), None)
                if story is None and a.signature:  # 0: no text to compare
                    earlier = [out[q][i] for q, i in near if q != p]
                    candidates = [*view.near.get(a.id, ()), *earlier]
                    story = next((c.story_id for c in candidates if dedupe.same_story(a, c)), None)
                urls.add(a.url)
                prints.add(a.fingerprint)
                for k in keys:
                    banded.setdefault(k, []).append((p, len(fresh)))
                fresh.append(replace(a, story_id=story or a.id))
            taken.update(a.id for a in fresh)
            out.append(fresh)
        return out


# A poll's commit: its new articles, what routing made of their matches, what the store kept.
_Committed = tuple[list[Article], Routed, CommitResult]


@dataclass(slots=True, kw_only=True)
class _Ready:
    """A poll parsed and scored, waiting for its turn to commit."""

    scorer: Scorer
    now: datetime
    # The poll's record, given its new articles and their routing (Pipeline._poll_record).
    record: Callable[[list[Article], Routed], PollRecord]
    articles: list[Article] = field(default_factory=list)
    verdicts: dict[str, Scored] = field(default_factory=dict)  # article id -> its verdict
    done: asyncio.Future[_Committed] = field(init=False)


def _settle(ready: _Ready, outcome: _Committed | BaseException) -> None:
    """Hand a poll its commit, or the reason it failed (unless it was cancelled meanwhile)."""
    if ready.done.done():
        return
    if isinstance(outcome, BaseException):
        ready.done.set_exception(outcome)
    else:
        ready.done.set_result(outcome)
