"""Delivery: signed webhook deliveries per second through the real pipeline.

``N`` outbox rows (payloads of ~2,300 bytes, the size of a rendered alert) are created in a fresh
SQLite store for one webhook channel; ``Pipeline.deliver_due`` then runs until the outbox is
drained, against the local receiver (its own process, answering 200 at once, verifying each
signature). Floor: a plain ``httpx.AsyncClient`` posting the same bodies at the same
concurrency (``[delivery] concurrency``), nothing else. ratio = value / floor; target >= 0.5.
Run in this process, one after the other.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.harness import Result
from bench.servers import SECRET, Local, receiver
from monitor.channels import build_channel
from monitor.config import Config, parse_config
from monitor.pipeline import Pipeline
from monitor.rules import load_rules
from monitor.score import Scorer
from monitor.store import open_store
from monitor.types import Delivery

N = 2000
CONCURRENCY = 8  # DeliveryConfig.concurrency's default
PER_CHANNEL = 8  # in flight per channel in the pipelined mode


def _payload(i: int) -> bytes:
    body = {
        "type": "alert",
        "alert": {"id": f"a{i}", "rule": "sanctions-measures", "topic": "sanctions"},
        "article": {
            "url": f"https://news.example/{i}",
            "title": f"Story {i}",
            "excerpt": "word " * 420,
        },
    }
    return json.dumps(body).encode()[:2300]


def _deliveries(now: datetime) -> list[Delivery]:
    return [
        Delivery(
            id=f"msg_{i:06d}",
            channel="hook",
            kind="alert",
            payload=_payload(i),
            created_at=now,
            next_attempt_at=now,
        )
        for i in range(N)
    ]


def _config(tmp: Path, hook: str, per_channel: int) -> Config:
    data: dict[str, object] = {
        "storage": {"url": f"sqlite:///{tmp / f'd{per_channel}.db'}"},
        "classifier": {"model": "none"},
        "rules": {"paths": []},
        "channels": [{"name": "hook", "type": "webhook", "url": hook, "secret": SECRET}],
        "delivery": {"concurrency": CONCURRENCY, "jitter": 0.0},
    }
    if per_channel > 1:
        data["delivery"] = {**data["delivery"], "per_channel": per_channel}  # type: ignore[dict-item]
    return parse_config(data, path=tmp / "monitor.toml")


async def _pipeline_rate(tmp: Path, hook: str, per_channel: int) -> float:
    config = _config(tmp, hook, per_channel)
    store = open_store(config.storage.url)
    store.add_deliveries(_deliveries(datetime.now(UTC)))
    client = httpx.AsyncClient(follow_redirects=False)
    channels = {c.name: build_channel(c, client=client) for c in config.channels}
    scorer = Scorer(None, load_rules([]))
    pipeline = Pipeline(
        config=config,
        store=store,
        scorer=lambda: scorer,
        client=client,
        channels=channels,
        owner="bench",
    )
    try:
        t0 = time.perf_counter()
        done = 0
        while (n := await pipeline.deliver_due()) > 0:
            done += n
        elapsed = time.perf_counter() - t0
    finally:
        await client.aclose()
        pipeline.close()
        store.close()
    assert done == N, done
    return N / elapsed


async def _floor_rate(hook: str) -> float:
    bodies = [_payload(i) for i in range(N)]
    sem = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient() as client:

        async def one(body: bytes) -> None:
            async with sem:
                r = await client.post(
                    hook, content=body, headers={"content-type": "application/json"}
                )
                r.raise_for_status()

        t0 = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        return N / (time.perf_counter() - t0)


def _verified(rx: Local) -> int:
    return int(rx.get("/_log")["verified"])


def run() -> Iterator[Result]:
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmpdir, receiver() as rx:
        tmp = Path(tmpdir)
        hook = f"{rx.base}/hook"
        floor = asyncio.run(_floor_rate(hook))
        strict = asyncio.run(_pipeline_rate(tmp, hook, 1))
        before = _verified(rx)
        piped = asyncio.run(_pipeline_rate(tmp, hook, PER_CHANNEL))
        verified = _verified(rx) - before
        yield Result(
            name="delivery",
            value=piped,
            unit="deliveries/s",
            floor=floor,
            higher_is_better=True,
            note=(
                f"{N} to one channel, per_channel={PER_CHANNEL}, {verified} verified; "
                f"strict order (per_channel=1): {strict:.0f}/s; floor plain httpx"
            ),
        )


GROUPS = {"delivery": run}
