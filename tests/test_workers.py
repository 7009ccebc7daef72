"""Scoring in the worker processes: the same results as in the daemon, the daemon's rules and no
others (a reload reaches the workers, an edit the daemon refused or has not loaded does not).

Real worker processes (the daemon's own pool), real rule files, a real feed server and store.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.daemon import Daemon
from monitor.pipeline import PollSummary
from monitor.types import Article, FeedState
from monitor.workers import (
    Refused,
    load_scorer_spec,
    parse_and_normalize,
    rejoin,
    score_in_worker,
)

from daemon_harness import RULE, rss, write_config
from feedserver import FeedServer, Route, serve

BUILTIN_MODEL = Path(__file__).parents[1] / "monitor" / "data" / "model.skops"
EMBARGO_RULE = "topic: sanctions\nseverity: high\nany: [embargo]\n"


def articles(items: list[tuple[str, str, str]]) -> list[Article]:
    state = FeedState(feed_id=1, name="wire", url="https://news.example/feed.xml", interval=60.0)
    out, _, _ = parse_and_normalize(rss(items), {}, state, datetime(2026, 11, 2, tzinfo=UTC))
    return out


@pytest.fixture
def pool() -> Iterator[ProcessPoolExecutor]:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
        yield ex


@pytest.mark.parametrize("model", ["none", "builtin"])
def test_a_worker_scores_exactly_like_the_daemon(
    tmp_path: Path, pool: ProcessPoolExecutor, model: str
) -> None:
    if model == "builtin" and not BUILTIN_MODEL.exists():
        pytest.skip("no builtin model in this checkout")
    rules = Path(__file__).parents[1] / "rules"
    scorer, spec = load_scorer_spec(model=model, rule_paths=[rules], channels=None)
    assert spec is not None
    batch = articles(
        [
            ("a1", "EU adopts new sanctions on shipping firms", "Asset freeze for 12 companies."),
            ("a2", "Troops massed near the border", "Armoured columns and artillery moved."),
            ("a3", "Local bakery wins prize", "Bread, mostly."),
        ]
    )
    verdicts = pool.submit(score_in_worker, spec, batch).result(timeout=120)
    assert not isinstance(verdicts, Refused), verdicts
    local = scorer.score(batch)
    assert rejoin(batch, verdicts) == local
    assert any(s.matches for s in local)  # the comparison covers matches, not only empties


def test_a_worker_refuses_rules_the_daemon_did_not_load(
    tmp_path: Path, pool: ProcessPoolExecutor
) -> None:
    rule = tmp_path / "sanctions-test.yaml"
    rule.write_text(RULE)
    _, spec = load_scorer_spec(model="none", rule_paths=[tmp_path], channels=None)
    assert spec is not None
    rule.write_text(EMBARGO_RULE)  # valid, but not what the daemon loaded
    got = pool.submit(score_in_worker, spec, articles([("a1", "sanctions", "x")])).result(60)
    assert isinstance(got, Refused) and got.stale
    rule.write_text("topic: sanctions\nany: [sanction\n")  # broken: still refused, not raised
    got = pool.submit(score_in_worker, spec, articles([("a1", "sanctions", "x")])).result(60)
    assert isinstance(got, Refused) and got.stale


def test_a_worker_that_cannot_build_the_scorer_says_why(
    tmp_path: Path, pool: ProcessPoolExecutor
) -> None:
    (tmp_path / "sanctions-test.yaml").write_text(RULE + "channels: [hook]\n")
    _, spec = load_scorer_spec(model="none", rule_paths=[tmp_path], channels=["hook"])
    assert spec is not None
    # The same files, but a channel list the rule does not fit: an error, not a stale set.
    bad = replace(spec, channels=("pager",))
    got = pool.submit(score_in_worker, bad, articles([("a1", "sanctions", "x")])).result(60)
    assert isinstance(got, Refused) and not got.stale
    assert "hook" in got.reason
    again = pool.submit(score_in_worker, bad, articles([("a2", "sanctions", "y")])).result(60)
    assert again == got  # the next batch is refused the same way
    assert not isinstance(pool.submit(score_in_worker, spec, []).result(60), Refused)


# --------------------------------------------------------------------------- through the daemon
def item(n: int, title: str) -> tuple[str, str, str]:
    return (f"n{n}", title, "Wire copy.")


class Wire:
    """A daemon (in this process, with its worker pool) polling one feed we write to."""

    def __init__(self, tmp: Path, feeds: FeedServer, *, edit: str | None = None) -> None:
        self.feeds = feeds
        self.items: list[tuple[str, str, str]] = []
        feeds.route("/wire.xml", Route(body=rss([])))
        self.config = write_config(
            tmp,
            store_url=f"sqlite:///{tmp / 'm.db'}",
            feeds={"wire": feeds.url("/wire.xml")},
            hook_url="http://127.0.0.1:9/",
        )
        self.rule = tmp / "rules" / "sanctions-test.yaml"
        self.daemon = Daemon(self.config)
        if edit is not None:  # after the daemon loaded the rules, before its workers start
            self.rule.write_text(edit)
        self.pipeline = self.daemon._open()
        if self.pipeline.parser is None:
            pytest.skip("one core: no worker processes")

    async def publish(self, title: str) -> PollSummary:
        """A new item at the head of the feed, and one poll: its summary."""
        self.items.insert(0, item(len(self.items), title))
        self.feeds.route("/wire.xml", Route(body=rss(self.items)))
        (summary,) = await self.pipeline.poll_due(everything=True)
        assert summary.ok and summary.new_articles == 1, summary
        return summary


@pytest.fixture
async def wire(tmp_path: Path) -> AsyncIterator[Wire]:
    with serve() as feeds:
        w = Wire(tmp_path, feeds)
        try:
            yield w
        finally:
            await w.daemon._close()


async def test_a_reload_reaches_the_workers_and_a_broken_edit_does_not(wire: Wire) -> None:
    assert (await wire.publish("New sanctions on refiners")).alerts == 1
    assert (await wire.publish("Grain tariff raised")).alerts == 0
    assert wire.pipeline.scored_in_workers == 2 and wire.pipeline.scored_here == 0

    wire.rule.write_text(EMBARGO_RULE)
    assert await wire.daemon.reload("test")
    assert (await wire.publish("Embargo on grain lifted")).alerts == 1
    assert (await wire.publish("More sanctions on banks")).alerts == 0
    assert wire.pipeline.scored_in_workers == 4 and wire.pipeline.scored_here == 0

    wire.rule.write_text("topic: sanctions\nany: [sanction\n")  # broken YAML: refused
    assert not await wire.daemon.reload("test")
    assert (await wire.publish("Embargo on coal")).alerts == 1  # the embargo rule still holds
    assert (await wire.publish("Sanctions on shipping")).alerts == 0
    assert wire.pipeline.scored_in_workers + wire.pipeline.scored_here == 6


async def test_rules_edited_but_not_reloaded_are_scored_by_the_daemon(tmp_path: Path) -> None:
    # The workers start after the edit: they find other files than the daemon loaded, refuse,
    # and the daemon scores with the rules it validated.
    with serve() as feeds:
        wire = Wire(tmp_path, feeds, edit=EMBARGO_RULE)
        try:
            assert (await wire.publish("New sanctions on refiners")).alerts == 1  # loaded rule
            assert wire.pipeline.scored_here == 1 and wire.pipeline.scored_in_workers == 0
            assert await wire.daemon.reload("test")  # now they follow the daemon again
            assert (await wire.publish("Embargo on grain lifted")).alerts == 1
            assert (await wire.publish("More sanctions on banks")).alerts == 0
            assert wire.pipeline.scored_in_workers == 2 and wire.pipeline.scored_here == 1
        finally:
            await wire.daemon._close()


async def test_a_feed_s_first_poll_is_scored_by_the_worker_that_parsed_it(tmp_path: Path) -> None:
    # Nothing can be stored under a feed before its first good poll, so its worker scores all
    # it brought without asking the store; an article another feed brought already is scored in
    # vain and still not stored or alerted twice. Later polls ask the store first.
    old = ("urn:t:1", "New sanctions on refiners", "Asset freeze for 12 firms.")
    with serve() as feeds:
        feeds.route("/a.xml", Route(body=rss([old, ("urn:t:2", "Grain tariff", "Wheat.")])))
        feeds.route("/b.xml", Route(status=500))
        config = write_config(
            tmp_path,
            store_url=f"sqlite:///{tmp_path / 'm.db'}",
            feeds={"a": feeds.url("/a.xml"), "b": feeds.url("/b.xml")},
            hook_url="http://127.0.0.1:9/",
        )
        daemon = Daemon(config)
        pipeline = daemon._open()
        try:
            if pipeline.parser is None:
                pytest.skip("one core: no worker processes")
            polls = {s.feed: s for s in await pipeline.poll_due(everything=True)}
            assert (polls["a"].new_articles, polls["a"].alerts, polls["b"].ok) == (2, 1, False)
            assert pipeline.scored_in_workers == 2

            new = ("urn:t:3", "Sanctions on banks", "Another asset freeze.")
            feeds.route("/b.xml", Route(body=rss([old, new])))
            polls = {s.feed: s for s in await pipeline.poll_due(everything=True)}
            assert (polls["a"].new_articles, polls["a"].alerts) == (0, 0)
            assert (polls["b"].new_articles, polls["b"].alerts) == (1, 1)
            # b's copy of urn:t:1 was scored with it (a's second poll scored nothing).
            assert pipeline.scored_in_workers == 4 and pipeline.scored_here == 0

            feeds.route("/b.xml", Route(body=rss([("urn:t:4", "Embargo", "Oil."), old, new])))
            (_, b) = sorted(await pipeline.poll_due(everything=True), key=lambda s: s.feed)
            assert (b.new_articles, b.alerts) == (1, 1)
            assert pipeline.scored_in_workers == 5  # the store was asked: only urn:t:4
        finally:
            await daemon._close()
