"""Ingestion: one full cycle over 1,000 feeds x 30 items, then a cycle where every feed is a 304.

``ingest-cold``: wall time of ``Daemon.run_once`` (a subprocess, fresh SQLite store, the builtin
classifier when ``monitor/data/model.skops`` exists, the default ``rules/`` pack, a webhook
channel to the local receiver, JSON logs at info written to /dev/null). Floor: a plain script
in this process that GETs the same URLs with httpx at the same concurrency and parses each body
with feedparser (default options), nothing else. ratio = floor / value; target >= 0.6. Each side
is the best of ``BENCH_INGEST_ROUNDS`` (default 2) interleaved rounds, the cycles on a fresh store
each round.

``ingest-304``: the second ``run_once`` on the same store, every feed answering 304. Target: ten
times faster than the cold cycle, so floor = cold time / 10 and ratio = floor / value = cold /
(10 x warm); 1.0 means exactly at target.

Feeds are all on 127.0.0.1; ``[fetch] per_host`` is raised to the global concurrency so one host
stands in for 1,000 publishers. With ``BENCH_PEERS=1``, peer readers (newsboat, rss2email; Debian
packages) are timed refreshing the same feeds once, when installed, and reported in the note.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.harness import Result
from bench.servers import feed_server, feed_urls, receiver, write_config

ROOT = Path(__file__).parents[1]
FEEDS = int(os.environ.get("BENCH_FEEDS", "1000"))
ITEMS = 30
CONCURRENCY = 32  # FetchConfig.concurrency's default
ROUNDS = int(os.environ.get("BENCH_INGEST_ROUNDS", "2"))


def model_name() -> str:
    return "builtin" if (ROOT / "monitor" / "data" / "model.skops").exists() else "none"


def fetch_section(concurrency: int = CONCURRENCY) -> str:
    return f"[fetch]\nconcurrency = {concurrency}\nper_host = {concurrency}\n"


async def _floor(urls: list[str], concurrency: int) -> tuple[float, int]:
    import feedparser
    import httpx

    sem = asyncio.Semaphore(concurrency)
    items = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:

        async def one(url: str) -> None:
            nonlocal items
            async with sem:
                r = await client.get(url)
            items += len(feedparser.parse(io.BytesIO(r.content)).entries)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(u) for u in urls))
        return time.perf_counter() - t0, items


def floor_time(urls: list[str], concurrency: int = CONCURRENCY) -> tuple[float, int]:
    return asyncio.run(_floor(urls, concurrency))


def run_cycles(config: Path, cycles: int = 2) -> list[dict[str, float]]:
    """``Daemon.run_once`` ``cycles`` times in a fresh interpreter: time and summary of each."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_ingest", str(config), str(cycles)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"cycle runner failed:\n{out.stderr[-3000:]}")
    data: list[dict[str, float]] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def _cycle_main(config: Path, cycles: int) -> None:
    from monitor import logs
    from monitor.daemon import Daemon

    with open(os.devnull, "w") as sink:
        logs.configure("info", stream=sink)
        results = []
        for _ in range(cycles):
            daemon = Daemon(config)
            t0 = time.perf_counter()
            summary = asyncio.run(daemon.run_once())
            results.append({"seconds": time.perf_counter() - t0, **summary})
    print(json.dumps(results))


def _peers(urls: list[str], tmp: Path) -> list[str]:
    """Time newsboat and rss2email (where installed) refreshing the same feeds once, and say how
    many items each stored, so that a run that fetched nothing cannot pass for a fast one."""
    notes = []
    if shutil.which("newsboat"):
        (tmp / "urls").write_text("\n".join(urls) + "\n")
        cache = tmp / "newsboat.db"
        t0 = time.perf_counter()
        subprocess.run(
            ["newsboat", "-u", str(tmp / "urls"), "-c", str(cache), "-x", "reload"],
            capture_output=True,
            timeout=1800,
            check=False,
        )
        elapsed = time.perf_counter() - t0
        with contextlib.closing(sqlite3.connect(cache)) as db:
            (stored,) = db.execute("SELECT count(*) FROM rss_item").fetchone()
        notes.append(f"newsboat {elapsed:.1f}s ({stored} items)")
    if shutil.which("r2e"):
        cfg = tmp / "r2e.cfg"
        cfg.write_text(
            "[DEFAULT]\nto = bench@example.org\n\n"
            + "".join(f"[feed.f{i}]\nurl = {u}\n\n" for i, u in enumerate(urls))
        )
        t0 = time.perf_counter()
        subprocess.run(
            ["r2e", "-c", str(cfg), "-d", str(tmp / "r2e.json"), "run", "--no-send"],
            capture_output=True,
            timeout=3600,
            check=False,
        )
        elapsed = time.perf_counter() - t0
        state = json.loads((tmp / "r2e.json").read_text()) if (tmp / "r2e.json").exists() else {}
        seen = sum(len(f.get("seen", {})) for f in state.get("feeds", []))
        notes.append(f"rss2email {elapsed:.1f}s ({seen} items, one feed at a time)")
    return notes


def run() -> Iterator[Result]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmpdir,
        feed_server(FEEDS, ITEMS) as feeds,
        receiver() as rx,
    ):
        tmp = Path(tmpdir)
        urls = feed_urls(feeds, FEEDS)
        # Interleaved rounds, best of each side (each round on a fresh store): on a virtual
        # machine the same work's wall time swings by a third from one minute to the next.
        floor, cold, warm = float("inf"), {"seconds": float("inf")}, {"seconds": float("inf")}
        for r in range(ROUNDS):
            seconds, n_items = floor_time(urls)
            floor = min(floor, seconds)
            config = tmp / f"monitor-{r}.toml"
            write_config(
                config,
                store=f"sqlite:///{tmp / f'monitor-{r}.db'}",
                urls=urls,
                hook=f"{rx.base}/hook",
                model=model_name(),
                rules=str(ROOT / "rules"),
                extra=fetch_section(),
            )
            first, second = run_cycles(config)
            cold = min(cold, first, key=lambda c: c["seconds"])
            warm = min(warm, second, key=lambda c: c["seconds"])
        peers = _peers(urls, tmp) if os.environ.get("BENCH_PEERS") else []
        yield Result(
            name="ingest-cold",
            value=cold["seconds"],
            unit="s",
            floor=floor,
            higher_is_better=False,
            note=(
                f"{FEEDS} feeds, {n_items} items, {cold['new_articles']:.0f} new, "
                f"{cold['alerts']:.0f} alerts, model {model_name()}; floor httpx+feedparser"
                + (f"; {', '.join(peers)}" if peers else "")
            ),
        )
        yield Result(
            name="ingest-304",
            value=warm["seconds"],
            unit="s",
            floor=cold["seconds"] / 10,
            higher_is_better=False,
            note=f"{cold['seconds'] / warm['seconds']:.1f}x faster than cold (target 10x)",
        )


GROUPS = {"ingest": run}

if __name__ == "__main__":
    _cycle_main(Path(sys.argv[1]), int(sys.argv[2]))
