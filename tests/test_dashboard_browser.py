"""The dashboard as a user sees it: a real headless Chromium loads the page from the admin app.

Needs the Debian package ``chromium``; skipped with the reason when it is missing, unless
MONITOR_TEST_BROWSER_REQUIRED=1 (CI), where a missing browser fails the test.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.admin import build_app, listen
from monitor.config import Config, load_config
from monitor.observe import Observer
from monitor.store import DeliveryOutcome, PollRecord, Store, open_store
from monitor.types import DeliveryState, TermHit

from factories import alert, article, delivery

NOW = datetime.now(UTC).replace(microsecond=0)
TOPICS = ("sanctions", "troop-movements", "energy-transit")
DEAD = delivery(alert(4, rule=f"{TOPICS[1]}-rule").id).id


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "headless Chromium is not installed (Debian: apt-get install -y chromium)"
    if os.environ.get("MONITOR_TEST_BROWSER_REQUIRED") == "1":
        pytest.fail(reason + "; MONITOR_TEST_BROWSER_REQUIRED=1")
    pytest.skip(reason)


@dataclass
class Service:
    config: Config
    store: Store
    scorer: object = None
    ticker: object = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    observer: Observer = field(default_factory=Observer)
    clock: Callable[[], datetime] = lambda: NOW


def populate(store: Store) -> None:
    """A day of history: alerts on three topics, a healthy and a failing feed, a dead delivery."""
    from monitor.config import FeedConfig

    store.sync_feeds(
        [
            FeedConfig(name="world-wire", url="https://world-wire.example/rss"),
            FeedConfig(name="broken-desk", url="https://broken.example/rss"),
        ],
        NOW - timedelta(hours=30),
    )
    ids = {f.name: f.feed_id for f in store.list_feeds()}
    for n in range(9):
        when = NOW - timedelta(hours=26 - 3 * n)
        a = replace(article(n), title=f"Headline number {n}", fetched_at=when)
        al = replace(
            alert(n, rule=f"{TOPICS[n % 3]}-rule"),
            topic=TOPICS[n % 3],
            created_at=when,
            evidence=(TermHit(field="title", term=f"term{n}", start=0, end=4, matched="x"),),
        )
        if n == 8:  # hostile text must be shown as text, and a javascript: link never linked
            a = replace(
                a, title="Sanctions <script>alert(1)</script> & co", url="javascript:alert(1)"
            )
        store.record_poll(
            PollRecord(
                feed_id=ids["world-wire"],
                owner="t",
                polled_at=when,
                next_poll_at=when + timedelta(minutes=15),
                ok=True,
                articles=(a,),
                alerts=(al,),
                deliveries=(replace(delivery(al.id), created_at=when),),
            )
        )
    for n in range(3):
        store.record_poll(
            PollRecord(
                feed_id=ids["broken-desk"],
                owner="t",
                polled_at=NOW - timedelta(hours=3 - n),
                next_poll_at=NOW + timedelta(hours=1),
                ok=False,
                error="HTTP 503 Service Unavailable",
            )
        )
    store.record_attempt(
        DeliveryOutcome(
            delivery_id=DEAD,
            owner="t",
            at=NOW - timedelta(hours=1),
            state=DeliveryState.DEAD,
            error="HTTP 400: payload rejected by receiver",
        )
    )


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text('[storage]\nurl = "sqlite:///m.db"\n[classifier]\nmodel = "none"\n')
    config = load_config(cfg)
    store = open_store(config.storage_url)
    populate(store)
    yield Service(config=config, store=store)
    store.close()


async def browse(browser: str, url: str, tmp: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp / 'profile'}",
        *args,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


async def test_dashboard_shows_alerts_feeds_charts_and_dead_deliveries(
    service: Service, tmp_path: Path
) -> None:
    browser = chromium()
    app = build_app(service, registry=CollectorRegistry())  # type: ignore[arg-type]
    server = await listen(app, "127.0.0.1", 0)
    shot = tmp_path / "dashboard.png"
    try:
        dom = await browse(browser, server.url, tmp_path, "--dump-dom")
        await browse(
            browser, server.url, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000"
        )
    finally:
        await server.stop()
    # What a user reads: the alert, its topic and why it matched, with a working link.
    assert "Headline number 7" in dom
    assert re.search(r'<a href="https://news.example/7"[^>]*>Headline number 7</a>', dom)
    assert all(f'<span class="topic">{t}</span>' in dom for t in TOPICS)
    assert '<span class="term">term7</span>' in dom and "troop-movements-rule" in dom
    # Hostile text arrives as text: no script element, no javascript: link.
    assert "Sanctions &lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in dom
    assert "<script" not in dom and 'href="javascript' not in dom
    # The failing feed is marked failing, with its error and the backoff.
    row = re.search(
        r'<tr class="feed">\s*<td><div class="title">broken-desk</div>.*?</tr>', dom, re.S
    )
    assert row and 'class="badge h-failing">failing<' in row.group(0)
    assert "HTTP 503 Service Unavailable" in row.group(0) and "backing off" in row.group(0)
    # Both charts drew bars; the topic chart has a bar per alerting hour.
    topics_chart = dom.split('id="chart-topics"')[1].split("</section>")[0]
    polls_chart = dom.split('id="chart-polls"')[1].split("</section>")[0]
    assert topics_chart.count('<rect class="bar topic-') == 9
    assert polls_chart.count('<rect class="bar errors"') == 3
    assert polls_chart.count('<rect class="bar polls"') >= 9
    # The dead delivery is listed with why it died.
    assert f"<code>{DEAD}</code>" in dom and "payload rejected by receiver" in dom
    assert '<meta http-equiv="refresh" content="30">' in dom
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    if os.environ.get("MONITOR_TEST_SCREENSHOT"):
        shutil.copy(shot, os.environ["MONITOR_TEST_SCREENSHOT"])
