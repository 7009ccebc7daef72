"""Where a poll's CPU work runs: parsing and scoring in the worker processes when there are any
(monitor/workers.py), else (or when a worker cannot) in this process's "cpu" threads.

A mixin of Pipeline, like the delivery loop: Pipeline provides what is declared here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import BrokenExecutor, Executor
from datetime import datetime

from monitor.errors import ParseError
from monitor.score import Scorer
from monitor.types import Article, FeedState, FetchResult, Scored
from monitor.workers import (
    Parsed,
    Refused,
    ScorerSpec,
    Verdict,
    cores,
    parse_and_normalize,
    parse_in_worker,
    rejoin,
    score_in_worker,
    start_workers,
    worth_scoring,
)

log = logging.getLogger("monitor.pipeline")


class Offload:
    """Parsing and scoring, in a worker process or here (a mixin of Pipeline)."""

    cpu: Executor  # threads of this process
    parser: Executor | None  # the worker processes; None once they died, or on one core
    _parse_slots: asyncio.Semaphore  # parse jobs in the pool at once
    _refusals: set[str]  # why workers did not score, each logged once
    scored_in_workers: int  # articles, for tests and the benchmarks
    scored_here: int
    scorer_spec: Callable[[], ScorerSpec | None]  # how a worker rebuilds the current scorer
    _started: asyncio.Future[None] | None = None  # the workers' start-up, once begun

    def start_workers(self) -> None:
        """Start the worker processes and load the scorer in them, off the event loop: starting
        one blocks until the fork server has imported the worker code (seconds, the first
        time), and a first poll should not wait for that, nor stall every other one."""
        if self.parser is not None and self._started is None:
            loop = asyncio.get_running_loop()
            self._started = loop.run_in_executor(
                self.cpu, start_workers, self.parser, cores(), self.scorer_spec()
            )

    async def _workers(self) -> Executor | None:
        """The worker pool once its processes are up; None without one (or once it broke)."""
        self.start_workers()
        if self._started is not None and self.parser is not None:
            try:
                await asyncio.shield(self._started)
            except BrokenExecutor:
                self._lost_workers()
        return self.parser

    def _lost_workers(self) -> None:
        log.error("the worker processes died; parsing and scoring here from now on")
        self.parser = None

    async def _parse(
        self, result: FetchResult, state: FeedState, now: datetime, spec: ScorerSpec | None
    ) -> tuple[Parsed, list[Scored] | None]:
        """The parsed feed and, given a ``spec`` (a feed's first poll), the scores of
        ``worth_scoring(articles, ())`` from the worker that parsed it; None when nothing was
        scored there (no workers, or the worker refused)."""
        loop = asyncio.get_running_loop()
        if (pool := await self._workers()) is not None:
            args = (result.body, dict(result.headers), state, now, spec)
            try:
                async with self._parse_slots:
                    out = await loop.run_in_executor(pool, parse_in_worker, *args)
            except BrokenExecutor:
                self._lost_workers()
            else:
                if isinstance(out, str):
                    raise ParseError(state.url, out)
                parsed, verdicts = out
                if verdicts is None:
                    return parsed, None
                return parsed, self._joined(worth_scoring(parsed[0], ()), verdicts)
        parsed = await loop.run_in_executor(
            self.cpu, parse_and_normalize, result.body, result.headers, state, now
        )
        return parsed, None

    async def _score(
        self, scorer: Scorer, spec: ScorerSpec | None, articles: Sequence[Article]
    ) -> list[Scored]:
        """``scorer.score(articles)``, in a worker process when there are workers and a spec."""
        if not articles:
            return []
        if spec is not None and (pool := await self._workers()) is not None:
            loop = asyncio.get_running_loop()
            try:
                out = await loop.run_in_executor(pool, score_in_worker, spec, articles)
            except BrokenExecutor:
                self._lost_workers()
            except Exception as exc:  # e.g. an argument that does not pickle: never lose a poll
                self._refused(Refused(f"{type(exc).__name__}: {exc}"))
            else:
                if (scored := self._joined(articles, out)) is not None:
                    return scored
        return await self._score_here(scorer, articles)

    def _joined(
        self, articles: Sequence[Article], out: list[Verdict] | Refused
    ) -> list[Scored] | None:
        """A worker's verdicts on ``articles`` as ``Scorer.score`` gives them; None (logged
        once) when it refused."""
        if isinstance(out, Refused):
            self._refused(out)
            return None
        self.scored_in_workers += len(articles)
        return rejoin(articles, out)

    async def _score_here(self, scorer: Scorer, articles: Sequence[Article]) -> list[Scored]:
        if not articles:
            return []
        self.scored_here += len(articles)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.cpu, scorer.score, articles)

    def _refused(self, refusal: Refused) -> None:
        if refusal.reason in self._refusals:
            return
        self._refusals.add(refusal.reason)
        if refusal.stale:
            log.warning(
                "a worker refused to score (%s); scoring in this process with the rules it holds",
                refusal.reason,
            )
        else:
            log.error(
                "scoring in a worker failed (%s); scoring in this process instead", refusal.reason
            )
