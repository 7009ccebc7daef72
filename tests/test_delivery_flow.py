"""Match -> outbox -> channel, in process, against a real feed server and a verifying receiver.

The pipeline's clock is controlled so that backoff, Retry-After, cooldowns and group windows can
be stepped through without waiting; everything else (HTTP, store, signatures) is real.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from monitor.channels import build_channel
from monitor.config import Config, parse_config
from monitor.fetch import make_client
from monitor.payload import payload_schema
from monitor.pipeline import Pipeline
from monitor.rules import load_rules
from monitor.score import Scorer
from monitor.store import Store, open_store
from monitor.types import DeliveryState

from daemon_harness import SECRET, rss
from feedserver import FeedServer, Route, serve
from receiver import Reply, WebhookReceiver

RULE = "topic: sanctions\nseverity: high\nany: [sanction, asset freeze]\n"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def items(n: int, start: int = 0) -> list[tuple[str, str, str]]:
    return [
        (f"g{i}", f"Story {i}: sanctions widen on firm {i}", f"Distinct body number {i} " * (i + 3))
        for i in range(start, start + n)
    ]


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    with serve() as server:
        yield server


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver([SECRET]) as rx:
        yield rx


class Harness:
    def __init__(self, tmp: Path, store_url: str, feeds: FeedServer, hook: WebhookReceiver) -> None:
        self.tmp, self.feeds, self.hook = tmp, feeds, hook
        self.clock = Clock()
        self.store_url = store_url

    def config(self, rule: str) -> Config:
        (self.tmp / "rules").mkdir(exist_ok=True)
        (self.tmp / "rules" / "sanc.yaml").write_text(rule)
        return parse_config(
            {
                "storage": {"url": self.store_url},
                "rules": {"paths": ["rules"]},
                "classifier": {"model": "none"},
                "fetch": {"min_interval": "1s", "jitter": 0.0, "timeout": "5s"},
                "feeds": [{"name": "wire", "url": self.feeds.url("/wire.xml"), "interval": "1s"}],
                "channels": [
                    {"name": "hook", "type": "webhook", "url": self.hook.url, "secret": SECRET}
                ],
                "routes": {"default": ["hook"]},
                "delivery": {"backoff": ["10s", "20s", "40s"], "jitter": 0.0},
            },
            path=self.tmp / "monitor.toml",
        )


@pytest.fixture
async def make(
    tmp_path: Path, store_url: str, feeds: FeedServer, hook: WebhookReceiver
) -> AsyncIterator[object]:
    made: list[tuple[Pipeline, Store, object]] = []
    h = Harness(tmp_path, store_url, feeds, hook)

    async def build(rule: str = RULE) -> tuple[Pipeline, Store, Clock]:
        cfg = h.config(rule)
        store = open_store(cfg.storage_url)
        store.sync_feeds(cfg.feeds, h.clock())
        client = make_client(cfg.fetch)
        channels = {c.name: build_channel(c) for c in cfg.channels}
        scorer = Scorer(None, load_rules(cfg.rule_paths, topics=None, channels={"hook"}))
        p = Pipeline(
            config=cfg,
            store=store,
            scorer=lambda: scorer,
            client=client,
            channels=channels,
            owner="test",
            clock=h.clock,
        )
        made.append((p, store, client))
        return p, store, h.clock

    yield build
    for p, store, client in made:
        for ch in p.channels.values():
            await ch.aclose()
        await client.aclose()  # type: ignore[attr-defined]
        p.close()
        store.close()


def payloads(hook: WebhookReceiver) -> list[dict[str, object]]:
    got = hook.received
    assert all(r.verified for r in got), [r.error for r in got]
    schema = payload_schema()
    out = [json.loads(r.body) for r in got]
    for p in out:
        jsonschema.validate(p, schema)
    return out


async def test_retries_after_503s_then_delivers_under_the_same_id(make, feeds, hook) -> None:  # type: ignore[no-untyped-def]
    p, store, clock = await make()
    feeds.route("/wire.xml", Route(body=rss(items(1))))
    hook.program(Reply(status=503), Reply(status=503))
    await p.poll_due(everything=True)
    assert await p.deliver_due() == 1
    clock.advance(5)
    assert await p.deliver_due() == 0  # not due before the 10 s backoff
    clock.advance(6)
    assert await p.deliver_due() == 1
    clock.advance(21)
    assert await p.deliver_due() == 1
    ids = [r.id for r in hook.received]
    assert len(ids) == 3 and len(set(ids)) == 1
    (d,) = store.list_deliveries()
    assert d.state is DeliveryState.DELIVERED and d.attempts == 3
    payloads(hook)


async def test_a_refused_connection_is_retried(make, feeds, tmp_path) -> None:  # type: ignore[no-untyped-def]
    p, store, clock = await make()
    p.channels = {
        "hook": build_channel(
            parse_config(
                {
                    "channels": [
                        {
                            "name": "hook",
                            "type": "webhook",
                            "url": "http://127.0.0.1:9/x",
                            "secret": SECRET,
                        }
                    ]
                },
                path=tmp_path / "x.toml",
            ).channels[0]
        )
    }
    feeds.route("/wire.xml", Route(body=rss(items(1))))
    await p.poll_due(everything=True)
    await p.deliver_due()
    (d,) = store.list_deliveries()
    assert d.state is DeliveryState.PENDING and d.attempts == 1
    assert d.next_attempt_at == clock.now + timedelta(seconds=10)
    assert "127.0.0.1" in (d.last_error or "")


async def test_retry_after_is_respected(make, feeds, hook) -> None:  # type: ignore[no-untyped-def]
    p, store, clock = await make()
    feeds.route("/wire.xml", Route(body=rss(items(1))))
    hook.program(Reply(status=429, headers={"Retry-After": "120"}))
    await p.poll_due(everything=True)
    await p.deliver_due()
    (d,) = store.list_deliveries()
    assert d.next_attempt_at == clock.now + timedelta(seconds=120)
    clock.advance(60)
    assert await p.deliver_due() == 0
    clock.advance(61)
    assert await p.deliver_due() == 1
    assert len(hook.received) == 2


async def test_a_permanent_4xx_is_dead_lettered_and_replayable(make, feeds, hook) -> None:  # type: ignore[no-untyped-def]
    p, store, clock = await make()
    feeds.route("/wire.xml", Route(body=rss(items(1))))
    hook.program(Reply(status=422, body=b"schema mismatch"))
    await p.poll_due(everything=True)
    await p.deliver_due()
    (dead,) = store.list_deliveries(state=DeliveryState.DEAD)
    assert "422" in (dead.last_error or "")
    assert store.retry_deliveries(clock.now, all_dead=True) == 1
    await p.deliver_due()
    assert [r.id for r in hook.received] == [dead.id, dead.id]
    assert store.list_deliveries()[0].state is DeliveryState.DELIVERED


async def test_a_gone_receiver_disables_the_channel_and_keeps_the_delivery(
    make, feeds, hook
) -> None:  # type: ignore[no-untyped-def]
    p, store, clock = await make()
    feeds.route("/wire.xml", Route(body=rss(items(2))))
    hook.program(Reply(status=410))
    await p.poll_due(everything=True)
    await p.deliver_due()
    assert store.channel_states()["hook"].status == "gone"
    clock.advance(3600)
    assert await p.deliver_due() == 0
    assert {d.state for d in store.list_deliveries()} == {DeliveryState.PENDING}
    store.set_channel_status("hook", "active", None, clock.now)
    assert await p.deliver_due() == 2


async def test_receiver_down_then_back_gets_everything_in_creation_order(make, feeds, hook) -> None:  # type: ignore[no-untyped-def]
    p, store, clock = await make()
    feeds.route("/wire.xml", Route(body=rss(items(6))))
    hook.default = Reply(status=503)
    await p.poll_due(everything=True)
    for _ in range(2):
        await p.deliver_due()
        clock.advance(11)
    # while down, only the oldest delivery was tried (the channel is blocked behind it)
    assert len({r.id for r in hook.received}) == 1
    hook.default = Reply(status=200)
    clock.advance(30)
    while await p.deliver_due():
        pass
    created = [d.id for d in sorted(store.list_deliveries(), key=lambda d: d.created_at)]
    ok = [r.id for r in hook.received[2:]]
    assert ok == [d.id for d in reversed(store.list_deliveries())]
    assert sorted(ok) == sorted(created) and len(ok) == 6


async def test_silenced_rule_stores_the_alert_but_sends_nothing(make, feeds, hook) -> None:  # type: ignore[no-untyped-def]
    p, store, clock = await make()
    store.add_silence("sanc", clock.now - timedelta(minutes=1), clock.now + timedelta(hours=1), "")
    feeds.route("/wire.xml", Route(body=rss(items(2))))
    await p.poll_due(everything=True)
    await p.deliver_due()
    assert hook.received == []
    assert {a.suppressed for a in store.list_alerts()} == {"silenced"}


async def test_cooldown_keeps_a_rule_quiet_for_its_duration(make, feeds, hook) -> None:  # type: ignore[no-untyped-def]
    p, store, clock = await make(RULE + "cooldown: 1h\n")
    feeds.route("/wire.xml", Route(body=rss(items(2))))
    await p.poll_due(everything=True)
    await p.deliver_due()
    assert len(hook.received) == 1
    assert sorted(str(a.suppressed) for a in store.list_alerts()) == ["None", "cooldown"]
    clock.advance(3601)
    feeds.route("/wire.xml", Route(body=rss(items(1, start=10))))
    await p.poll_due(everything=True)
    await p.deliver_due()
    assert len(hook.received) == 2


async def test_group_window_bundles_matches_into_one_digest(make, feeds, hook) -> None:  # type: ignore[no-untyped-def]
    p, _store, clock = await make(RULE + "group: 10m\n")
    feeds.route("/wire.xml", Route(body=rss(items(3))))
    await p.poll_due(everything=True)
    assert await p.flush_groups() == 0
    await p.deliver_due()
    assert hook.received == []
    clock.advance(601)
    assert await p.flush_groups() == 1
    await p.deliver_due()
    (digest,) = payloads(hook)
    assert digest["type"] == "alert.digest"
    assert digest["data"]["group"]["count"] == 3  # type: ignore[index]
    assert await p.flush_groups() == 0
