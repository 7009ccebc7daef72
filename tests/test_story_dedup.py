"""One article per story, end to end: syndicated copies across feeds alert once per rule,
while different stories on the same topic alert separately."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from daemon_harness import SECRET, monitor, write_config
from feedserver import Route, serve
from receiver import WebhookReceiver

PAIRS = Path(__file__).parent / "data" / "near_dup_pairs.jsonl"


def pairs(label: str) -> list[dict[str, dict[str, str]]]:
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["label"] == label and "sanction" in json.dumps(r).lower()]


def feed(guid: str, article: dict[str, str]) -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>f</title><link>https://x/</link>'
        f"<description>d</description><item><guid>{guid}</guid>"
        f"<title>{escape(article['title'])}</title><link>https://{guid}.example/a</link>"
        f"<description>{escape(article['text'])}</description></item></channel></rss>"
    ).encode()


def run(tmp: Path, a: dict[str, str], b: dict[str, str]) -> list[dict[str, object]]:
    with serve() as feeds, WebhookReceiver([SECRET]) as hook:
        feeds.route("/a.xml", Route(body=feed("first", a)))
        feeds.route("/b.xml", Route(body=feed("second", b)))
        cfg = write_config(
            tmp,
            store_url=f"sqlite:///{tmp / 'm.db'}",
            feeds={"a": feeds.url("/a.xml"), "b": feeds.url("/b.xml")},
            hook_url=hook.url,
        )
        result = monitor("run", "--once", "--config", str(cfg))
        assert result.returncode == 0, result.stderr
        return [json.loads(r.body) for r in hook.received]


def test_the_same_story_in_two_dresses_alerts_once(tmp_path: Path) -> None:
    pair = pairs("same")[0]
    got = run(tmp_path, pair["a"], pair["b"])
    assert len(got) == 1


def test_two_different_stories_on_the_same_topic_alert_twice(tmp_path: Path) -> None:
    pair = pairs("different")[0]
    got = run(tmp_path, pair["a"], pair["b"])
    assert len(got) == 2
    assert len({p["data"]["article"]["story_id"] for p in got}) == 2  # type: ignore[index]
