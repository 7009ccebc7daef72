"""Group commit: polls ready while a commit is under way are committed together, and each gets
exactly what committing it alone, in the same order, would give.

Real stores (SQLite, and PostgreSQL where marked), a real feed server, the real rule compiler;
the only thing held is the store's commit, by an event, so that a batch forms deterministically.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor import pipeline
from monitor.channels import build_channel
from monitor.config import parse_config
from monitor.dedupe import signature
from monitor.errors import StoreError
from monitor.fetch import make_client
from monitor.normalize import fingerprint
from monitor.pipeline import Pipeline, _Committed, _Ready
from monitor.rules import load_rules
from monitor.score import Scorer
from monitor.store import CommitResult, PollRecord, Store, open_store
from monitor.types import Article, FetchResult

from daemon_harness import rss
from feedserver import FeedServer, Route, serve

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
RULE = "topic: sanctions\nseverity: high\ncooldown: 1h\nany: [sanction]\n"
PAIRS = Path(__file__).parent / "data" / "near_dup_pairs.jsonl"
FEEDS = ("a", "b", "c", "d", "e", "f")
# Distinct words, so that no two test articles are near-duplicates of each other.
WORDS = [f"{w}{n}" for n in range(4) for w in ("oil", "gas", "port", "bank", "grain", "ship")]


def story_text(n: int) -> str:
    return " ".join(f"{WORDS[n]}w{m}" for m in range(12))


def wait_for(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class GatedStore:
    """The store, with ``record_polls`` recording each batch's feeds and, while ``hold`` is
    clear, waiting for it (on the store thread) before it commits."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.batches: list[list[int]] = []
        self.fail: Callable[[Sequence[PollRecord]], bool] = lambda recs: False

    def record_polls(self, recs: Sequence[PollRecord]) -> list[CommitResult]:
        self.batches.append([r.feed_id for r in recs])
        self.entered.set()
        assert self.hold.wait(10), "the test never released the commit"
        if self.fail(recs):
            raise StoreError("refused by the test", url="test")
        return self.store.record_polls(recs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def config(tmp: Path, feeds: FeedServer | None, rule: str = RULE) -> Any:
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "sanc.yaml").write_text(rule)
    urls = {n: feeds.url(f"/{n}.xml") if feeds else f"https://{n}.example/feed" for n in FEEDS}
    return parse_config(
        {
            "storage": {"url": "sqlite:///unused.db"},
            "rules": {"paths": [str(tmp / "rules")]},
            "classifier": {"model": "none"},
            "fetch": {"min_interval": "1s", "jitter": 0.0, "timeout": "5s"},
            "feeds": [{"name": n, "url": u, "interval": "1s"} for n, u in urls.items()],
            # Deliveries are queued, never sent: nothing listens there.
            "channels": [
                {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/", "secret": "s"}
            ],
            "routes": {"default": ["hook"]},
        },
        path=tmp / "monitor.toml",
    )


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    with serve() as server:
        yield server


@pytest.fixture
async def pipeline_on(tmp_path: Path) -> AsyncIterator[Callable[..., Pipeline]]:
    made: list[tuple[Pipeline, Any]] = []

    def build(
        store: Any, feeds: FeedServer | None = None, rule: str = RULE, owner: str = "t"
    ) -> Pipeline:
        cfg = config(tmp_path, feeds, rule)
        store.sync_feeds(cfg.feeds, T0)
        scorer = Scorer(None, load_rules(cfg.rule_paths, channels={"hook"}))
        client = make_client(cfg.fetch)
        channels = {c.name: build_channel(c) for c in cfg.channels}
        p = Pipeline(
            config=cfg,
            store=store,
            scorer=lambda: scorer,
            client=client,
            channels=channels,
            owner=owner,
            clock=now,
        )
        made.append((p, client))
        return p

    yield build
    for p, client in made:
        for ch in p.channels.values():
            await ch.aclose()
        await client.aclose()
        p.close()


def now() -> datetime:
    return T0


async def test_polls_ready_during_a_commit_are_committed_together(
    store_url: str, feeds: FeedServer, pipeline_on: Callable[..., Pipeline]
) -> None:
    store = open_store(store_url)
    try:
        gated = GatedStore(store)
        p = pipeline_on(gated, feeds)
        for i, name in enumerate(FEEDS):
            body = [
                (f"{name}{k}", f"Sanctions on {WORDS[3 * i + k]}", story_text(3 * i + k))
                for k in range(3)
            ]
            feeds.route(f"/{name}.xml", Route(body=rss(body)))
        gated.hold.clear()
        polling = asyncio.ensure_future(p.poll_due(everything=True))
        # The first polls ready are being committed (held); the others queue behind them.
        await asyncio.to_thread(
            wait_for,
            lambda: bool(gated.batches) and len(gated.batches[0]) + len(p._ready) == len(FEEDS),
            "every poll ready",
        )
        first = len(gated.batches[0])
        gated.hold.set()
        summaries = await polling
        assert [len(b) for b in gated.batches] == [first, len(FEEDS) - first]
        assert sorted(s.new_articles for s in summaries) == [3] * len(FEEDS)
        assert all(s.ok and s.status == "new" for s in summaries)
        # One rule with a 1 h cooldown: the first alert goes out, the rest are held back, across
        # the batch exactly as across separate commits.
        alerts = store.list_alerts(limit=100)
        assert len(alerts) == 3 * len(FEEDS)
        assert sum(a.suppressed is None for a in alerts) == 1
        assert sum(s.deliveries for s in summaries) == 1
    finally:
        store.close()


async def test_failed_polls_are_committed_in_the_same_batches(
    store_url: str, feeds: FeedServer, pipeline_on: Callable[..., Pipeline]
) -> None:
    store = open_store(store_url)
    try:
        gated = GatedStore(store)
        p = pipeline_on(gated, feeds)
        for name in FEEDS:
            feeds.route(f"/{name}.xml", Route(status=500))
        gated.hold.clear()
        polling = asyncio.ensure_future(p.poll_due(everything=True))
        await asyncio.to_thread(
            wait_for,
            lambda: bool(gated.batches) and len(gated.batches[0]) + len(p._ready) == len(FEEDS),
            "every failed poll ready",
        )
        first = len(gated.batches[0])
        gated.hold.set()
        summaries = await polling
        assert [len(b) for b in gated.batches] == [first, len(FEEDS) - first]
        assert all(not s.ok and s.status == "error" for s in summaries)
        assert all(f.consecutive_errors == 1 and f.last_error for f in store.list_feeds())
    finally:
        store.close()


def _pair() -> tuple[dict[str, str], dict[str, str]]:
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    row = next(r for r in rows if r["label"] == "same" and "sanction" in json.dumps(r).lower())
    return row["a"], row["b"]


def _article(aid: str, url: str, title: str, text: str, at: datetime) -> Article:
    return Article(
        id=aid,
        url=url,
        title=title,
        text=text,
        source="s",
        published=at,
        fetched_at=at,
        fingerprint=fingerprint(title, text),
        signature=signature(title, text),
    )


def _polls(store: Store) -> list[tuple[int, list[Article]]]:
    """Three polls whose articles depend on each other: an exact copy (same URL), a syndicated
    copy (near-duplicate text), an article (by its id) seen by an earlier poll, and matches of
    a rule with a cooldown."""
    ids = {f.name: f.feed_id for f in store.list_feeds()}
    (a, b) = _pair()
    t = [T0 + timedelta(seconds=s) for s in (0, 1, 2)]
    story = _article("x1", "https://a.example/x", a["title"], a["text"], t[0])
    other = _article("y1", "https://a.example/y", "Sanction on y", "First sanction text.", t[0])
    copy = _article("x2", "https://b.example/x", b["title"], b["text"], t[1])
    same_url = _article("y2", "https://a.example/y", "Sanction on y, again", "Other words.", t[1])
    late = _article("z1", "https://c.example/z", "Sanction on z", "Third sanction text.", t[2])
    # The first poll's article again, under the same id but moved (another URL, new text).
    moved = _article("x1", "https://c.example/x", "Sanction on x, moved", "New words.", t[2])
    return [(ids["a"], [story, other]), (ids["b"], [copy, same_url]), (ids["c"], [moved, late])]


def _ready(
    p: Pipeline, store: Store, feed_id: int, articles: list[Article], at: datetime
) -> _Ready:
    state = next(f for f in store.list_feeds() if f.feed_id == feed_id)
    scorer = p.scorer()
    result = FetchResult(url=state.url, final_url=state.url, status=200, headers={})
    verdicts = {s.article.id: s for s in scorer.score(articles)}
    r = _Ready(
        scorer=scorer,
        now=at,
        record=p._poll_record(state, result, None, at),
        articles=articles,
        verdicts=verdicts,
    )
    r.done = asyncio.get_running_loop().create_future()
    return r


def _outcome(c: _Committed) -> tuple[Any, ...]:
    fresh, routed, committed = c
    return (
        [(a.id, a.story_id) for a in fresh],
        [(a.id, a.suppressed) for a in routed.alerts],
        committed,
    )


async def test_a_batch_decides_what_committing_its_polls_one_by_one_would(
    tmp_path: Path, pipeline_on: Callable[..., Pipeline]
) -> None:
    one_by_one, together = (open_store(f"sqlite:///{tmp_path / n}.db") for n in ("seq", "batch"))
    try:
        outcomes: list[list[Any]] = []
        for store, sizes in ((one_by_one, [1, 1, 1]), (together, [3])):
            p = pipeline_on(store)
            polls = _polls(store)
            readies = [
                _ready(p, store, f, arts, T0 + timedelta(seconds=i))
                for i, (f, arts) in enumerate(polls)
            ]
            got: list[_Committed] = []
            start = 0
            for size in sizes:
                got += p._commit_batch(readies[start : start + size])
                start += size
            outcomes.append([_outcome(c) for c in got])
            stored = store.get_articles(["x1", "x2", "y1", "y2", "z1"])
            outcomes[-1].append(sorted((a.id, a.story_id) for a in stored.values()))
        assert outcomes[0] == outcomes[1]
        fresh = [ids for ids, _alerts, _c in outcomes[1][:3]]
        # The syndicated copy joins the story of the first poll's article; the second poll's
        # article with a URL already taken, and the third poll's article already stored, are not
        # new; of the three matches of the cooldown rule only the first is delivered.
        assert fresh == [[("x1", "x1"), ("y1", "y1")], [("x2", "x1")], [("z1", "z1")]]
        held = [s for _ids, alerts, _c in outcomes[1][:3] for _a, s in alerts]
        assert held.count(None) == 1 and held.count("cooldown") == len(held) - 1
    finally:
        one_by_one.close()
        together.close()


async def test_a_failed_batch_is_committed_poll_by_poll_and_fails_one_poll_only(
    store_url: str, pipeline_on: Callable[..., Pipeline]
) -> None:
    store = open_store(store_url)
    try:
        gated = GatedStore(store)
        p = pipeline_on(gated)
        polls = _polls(store)
        bad = polls[1][0]
        gated.fail = lambda recs: any(r.feed_id == bad for r in recs)
        readies = [_ready(p, store, f, arts, T0) for f, arts in polls]
        p._ready = list(readies)
        await p._commit_ready()
        assert gated.batches == [[f for f, _ in polls], *[[f] for f, _ in polls]]
        with pytest.raises(StoreError, match="refused by the test"):
            readies[1].done.result()
        assert [len(readies[i].done.result()[0]) for i in (0, 2)] == [2, 1]
        stored = store.get_articles(["x1", "y1", "x2", "y2", "z1"])
        assert sorted(stored) == ["x1", "y1", "z1"]  # the failed poll's articles: not stored
    finally:
        store.close()


async def test_a_backlog_is_committed_in_batches_of_at_most_commit_batch(
    tmp_path: Path, pipeline_on: Callable[..., Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        gated = GatedStore(store)
        p = pipeline_on(gated)
        monkeypatch.setattr(pipeline, "COMMIT_BATCH", 2)
        polls = _polls(store)
        p._ready = [_ready(p, store, f, arts, T0) for f, arts in polls]
        await p._commit_ready()
        assert gated.batches == [[polls[0][0], polls[1][0]], [polls[2][0]]]
    finally:
        store.close()


async def test_a_poll_cancelled_while_waiting_is_left_out_of_the_batch(
    tmp_path: Path, pipeline_on: Callable[..., Pipeline]
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        p = pipeline_on(store)
        readies = [_ready(p, store, f, arts, T0) for f, arts in _polls(store)]
        readies[0].done.cancel()
        p._ready = list(readies)
        await p._commit_ready()
        assert readies[0].done.cancelled()
        fresh = [[a.id for a in r.done.result()[0]] for r in readies[1:]]
        assert fresh == [["x2", "y2"], ["x1", "z1"]]  # as if the first poll had never come
        assert sorted(store.get_articles(["x1", "y1", "x2", "y2", "z1"])) == [
            "x1",
            "x2",
            "y2",
            "z1",
        ]
    finally:
        store.close()


def test_polls_recorded_together_are_each_recorded_as_alone(store: Store, tmp_path: Path) -> None:
    cfg = config(tmp_path, None)
    store.sync_feeds(cfg.feeds, T0)
    ids = [f.feed_id for f in store.list_feeds()][:2]
    arts = [_article(f"r{i}", f"https://r.example/{i}", f"T{i}", f"text {i}", T0) for i in range(3)]
    # Two polls recorded together; the second carries r1 again, which the first stored.
    recs = [
        PollRecord(feed_id=f, owner="t", polled_at=T0, next_poll_at=T0, ok=True, articles=a)
        for f, a in ((ids[0], (arts[0], arts[1])), (ids[1], (arts[1], arts[2])))
    ]
    assert [c.articles for c in store.record_polls(recs)] == [2, 1]
    assert store.record_polls([]) == []
    after = {f.feed_id: f for f in store.list_feeds()}
    assert all(after[i].last_ok_at == T0 for i in ids)


@pytest.mark.postgres
async def test_two_replicas_committing_the_same_stories_at_once_store_each_once(
    pg_url: str, feeds: FeedServer, pipeline_on: Callable[..., Pipeline]
) -> None:
    # Every feed carries the same three wire stories (URN guids: one id wherever they appear)
    # and one of its own; two replicas claim three feeds each and commit at the same moment.
    wire = [(f"urn:wire:{k}", f"Sanctions on {WORDS[k]}", story_text(k)) for k in range(3)]
    for i, name in enumerate(FEEDS):
        own = (f"urn:{name}:own", f"Sanctions on {WORDS[10 + i]}", story_text(10 + i))
        feeds.route(f"/{name}.xml", Route(body=rss([*wire, own])))
    stores = [open_store(pg_url), open_store(pg_url)]
    try:
        rule = "topic: sanctions\nseverity: high\nany: [sanction]\n"  # no cooldown
        a, b = (pipeline_on(s, feeds, rule, owner) for s, owner in zip(stores, "ab", strict=True))
        half = len(FEEDS) // 2
        polled = await asyncio.gather(
            a.poll_due(everything=True, limit=half), b.poll_due(everything=True, limit=half)
        )
        summaries = [s for replica in polled for s in replica]
        assert sorted(s.feed for s in summaries) == sorted(FEEDS)  # each feed by one replica
        assert all(len(replica) == half for replica in polled)
        stories = 3 + len(FEEDS)
        # Each article, alert and delivery once, whichever replica inserted it.
        assert sum(s.new_articles for s in summaries) == stories
        alerts = stores[0].list_alerts(limit=100)
        assert len(alerts) == len({x.id for x in alerts}) == stories
        assert sum(s.alerts for s in summaries) == stories
        deliveries = stores[0].list_deliveries(limit=100)
        assert len(deliveries) == sum(s.deliveries for s in summaries) == stories
    finally:
        for s in stores:
            s.close()
