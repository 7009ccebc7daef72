"""The walking skeleton end to end: feed on a local server -> rules -> signed webhook.

`monitor run --once` and `monitor run` run as real subprocesses; the feed comes from a real
HTTP server on 127.0.0.1 and the webhook goes to a real receiver that verifies every request
with the standardwebhooks package. Both storage backends.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from daemon_harness import SECRET, Daemon, monitor, rss, write_config
from feedserver import Route, serve
from receiver import WebhookReceiver

ITEMS = [
    ("a1", "EU adopts new sanctions on shipping firms", "Asset freeze for 12 companies."),
    ("a2", "Local bakery wins prize", "Bread, mostly."),
]


def test_run_once_delivers_one_alert_then_nothing_new(tmp_path: Path, store_url: str) -> None:
    with serve() as feeds, WebhookReceiver([SECRET]) as hook:
        feeds.route("/wire.xml", Route(body=rss(ITEMS), etag='"v1"'))
        cfg = write_config(
            tmp_path, store_url=store_url, feeds={"wire": feeds.url("/wire.xml")}, hook_url=hook.url
        )
        first = monitor("run", "--once", "--config", str(cfg))
        assert first.returncode == 0, first.stdout + first.stderr
        (got,) = hook.wait_for(1)
        assert got.verified, got.error
        payload = json.loads(got.body)
        assert payload["type"] == "alert.created"
        assert payload["data"]["alert"]["rule"] == "sanctions-test"
        assert payload["data"]["article"]["title"] == ITEMS[0][1]

        second = monitor("run", "--once", "--config", str(cfg))
        assert second.returncode == 0, second.stdout + second.stderr
        assert len(hook.received) == 1
        # the second poll was conditional and answered 304
        assert feeds.requests_for("/wire.xml")[-1].headers.get("if-none-match") == '"v1"'


def test_an_unreachable_feed_is_reported_and_the_cycle_still_exits_0(tmp_path: Path) -> None:
    with serve() as feeds, WebhookReceiver([SECRET]) as hook:
        feeds.route("/wire.xml", Route(body=rss(ITEMS)))
        cfg = write_config(
            tmp_path,
            store_url=f"sqlite:///{tmp_path / 'm.db'}",
            feeds={"wire": feeds.url("/wire.xml"), "dead": "http://127.0.0.1:9/feed.xml"},
            hook_url=hook.url,
        )
        result = monitor("run", "--once", "--config", str(cfg))
        assert result.returncode == 0, result.stderr
        logs = [json.loads(line) for line in result.stdout.splitlines()]
        failed = [x for x in logs if x.get("feed") == "dead" and x["level"] == "warning"]
        assert failed and "127.0.0.1:9" in str(failed[0]["msg"])
        assert len(hook.wait_for(1)) == 1


def test_the_daemon_stops_on_sigterm_and_a_restart_never_realerts(tmp_path: Path) -> None:
    with serve() as feeds, WebhookReceiver([SECRET]) as hook:
        feeds.route("/wire.xml", Route(body=rss(ITEMS)))
        cfg = write_config(
            tmp_path,
            store_url=f"sqlite:///{tmp_path / 'm.db'}",
            feeds={"wire": feeds.url("/wire.xml")},
            hook_url=hook.url,
        )
        d = Daemon(cfg)
        d.wait_for(lambda x: x.get("event") == "start")
        hook.wait_for(1)
        # keep polling a little: the feed is re-fetched every second and must not re-alert
        n = len(feeds.requests_for("/wire.xml"))
        deadline = time.monotonic() + 10
        while len(feeds.requests_for("/wire.xml")) < n + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        t0 = time.monotonic()
        assert d.stop(signal.SIGTERM) == 0
        assert time.monotonic() - t0 < 10
        d2 = Daemon(cfg)
        d2.wait_for(lambda x: x.get("event") == "start")
        n = len(feeds.requests_for("/wire.xml"))
        deadline = time.monotonic() + 10
        while len(feeds.requests_for("/wire.xml")) < n + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert d2.stop(signal.SIGTERM) == 0
        assert len(hook.received) == 1


def test_errors_reach_the_user_as_one_line_without_traceback(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, store_url="mysql://x", feeds={}, hook_url="http://127.0.0.1:9/")
    result = monitor("run", "--once", "--config", str(cfg))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: mysql://x: unsupported storage URL: use sqlite:///path.db or postgresql://..."
    ]
