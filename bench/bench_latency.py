"""Latency: a new item in one of 1,000 polled feeds -> its signed webhook at the receiver.

The store is first filled by one ``run --once`` cycle (1,000 feeds x 30 items); then the real
daemon (``monitor run``, a subprocess) polls every feed every ~10 s (mostly 304s). Every
second a new item carrying a unique token is put at the head of a random feed. The feed server
logs when it wrote the first 200 carrying each token, the receiver when the webhook carrying it
arrived; the difference is the processing delay, the polling interval's own wait excluded.
A bench rule without cooldown alerts on the token's marker word, so every item is delivered.

Floor: the target, 1 s (the figures are times, ratio = floor / value: >= 1 meets the target).
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.bench_ingest import ROOT, fetch_section, model_name, run_cycles
from bench.harness import Result
from bench.servers import feed_server, feed_urls, receiver, running_daemon, write_config

FEEDS = int(os.environ.get("BENCH_FEEDS", "1000"))
INJECT = 40  # new items, one a second
TARGET = 1.0  # seconds, p99
RULE = """\
topic: sanctions
description: benchmark marker, no cooldown
severity: high
any: [zyxlatency]
"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def run() -> Iterator[Result]:
    rng = random.Random(7)
    with (
        tempfile.TemporaryDirectory(prefix="bench-latency-") as tmpdir,
        feed_server(FEEDS, 30) as feeds,
        receiver() as rx,
    ):
        tmp = Path(tmpdir)
        rules = tmp / "rules"
        shutil.copytree(ROOT / "rules", rules)
        (rules / "bench-latency.yaml").write_text(RULE)
        config = tmp / "monitor.toml"
        write_config(
            config,
            store=f"sqlite:///{tmp / 'monitor.db'}",
            urls=feed_urls(feeds, FEEDS),
            hook=f"{rx.base}/hook",
            model=model_name(),
            rules=str(rules),
            interval="10s",
            extra=fetch_section() + 'min_interval = "5s"\n',
        )
        run_cycles(config, 1)
        with running_daemon(config, tmp / "daemon.log"):
            time.sleep(15)  # the first round of (304) polls after start
            tokens = []
            for _ in range(INJECT):
                token = f"LAT{rng.getrandbits(48):012x}"
                tokens.append(token)
                feeds.post(f"/_ctl/add?feed={rng.randrange(FEEDS)}&token={token}")
                time.sleep(1.0)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                arrived = rx.get("/_log")["arrivals"]
                if all(t in arrived for t in tokens):
                    break
                time.sleep(0.5)
            served = feeds.get("/_ctl/log")["served"]
            arrived = rx.get("/_log")["arrivals"]
        delays = [arrived[t] - served[t] for t in tokens if t in arrived and t in served]
        missing = len(tokens) - len(delays)
        note = f"{len(delays)} items over {FEEDS} feeds polled every ~10 s"
        if missing:
            note += f"; {missing} not delivered within 2 min"
        if not delays:
            delays = [float("inf")]
        yield Result(
            name="latency-p50",
            value=statistics.median(delays),
            unit="s",
            floor=TARGET,
            higher_is_better=False,
            note=note,
        )
        yield Result(
            name="latency-p99",
            value=_percentile(delays, 99),
            unit="s",
            floor=TARGET,
            higher_is_better=False,
            note=f"max {max(delays):.3f} s; floor = the 1 s target",
        )


GROUPS = {"latency": run}
