"""`monitor demo` end to end, as a newcomer runs it: a subprocess, no internet, exit code 0."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime

from monitor.demo import TOPICS, default_rules_dir, sample_feeds, verify
from monitor.parse import parse_feed

# Registers `monitor demo` itself when the root command does not list it yet.
RUN = """
import sys
from monitor.cli import _register, cli
_register()
if "demo" not in cli.commands:
    from monitor.cli import ops
    ops.register(cli)
cli.main(args=sys.argv[1:], prog_name="monitor")
"""


def test_demo_shows_verified_alerts_for_every_default_topic_and_exits_0() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", RUN, "demo", "--linger", "0", "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "NO_PROXY": "*", "HOME": "/nonexistent"},
    )
    took = time.monotonic() - started
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    lines = [line.split() for line in out.splitlines() if line.strip().startswith("verified")]
    assert {words[1] for words in lines} >= set(TOPICS), out
    assert "demo OK" in out and "REJECTED" not in out
    assert "dashboard: http://127.0.0.1:" in out
    # Ordinary news and hard negatives (a scout troop, a football club's sanctions) stay quiet.
    for quiet in ("Scout troop", "Football club", "Retail sales", "Bus drivers"):
        assert quiet not in out, out
    assert took < 90


def test_sample_feeds_are_valid_recent_rss() -> None:
    feeds = sample_feeds()
    assert len(feeds) >= 3
    items = 0
    now = datetime.now(UTC)
    for name, body in feeds.items():
        assert b"{{" not in body, name
        parsed = parse_feed(body, url=f"http://127.0.0.1/feeds/{name}.xml", headers={})
        assert parsed.warning is None, (name, parsed.warning)
        for item in parsed.items:
            assert item.published is not None
            assert (now - item.published).total_seconds() < 86400
        items += len(parsed.items)
    assert 10 <= items <= 20


def test_the_default_rule_pack_is_found_from_the_package() -> None:
    rules = default_rules_dir()
    assert rules is not None and any(rules.glob("*.yaml"))


def test_signature_check_accepts_only_a_correct_recent_signature() -> None:
    import base64
    import hashlib
    import hmac

    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    body = b'{"type":"test"}'
    now = 1_800_000_000
    mac = hmac.new(b"k" * 24, f"msg_1.{now}.".encode() + body, hashlib.sha256).digest()
    good = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": "v1,bogus v1," + base64.b64encode(mac).decode(),
    }
    assert verify(secret, good, body, now)
    assert not verify(secret, good, body + b" ", now)
    assert not verify(secret, {**good, "webhook-id": "msg_2"}, body, now)
    assert not verify(secret, good, body, now + 301)  # a replay of an old request
    assert not verify(secret, {**good, "webhook-signature": ""}, body, now)
