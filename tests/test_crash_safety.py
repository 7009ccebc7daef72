"""Fault test: SIGKILL the daemon at random moments while it polls and delivers.

Over several rounds the feed grows and the receiver answers slowly, so kills land during polls,
commits and in-flight deliveries. Afterwards every stored alert's delivery id has reached the
receiver at least once, and no alert was ever sent under two different ids.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

from monitor.store import open_store

from daemon_harness import SECRET, Daemon, rss, write_config
from feedserver import Route, serve
from receiver import Reply, WebhookReceiver

ROUNDS = 6


def test_sigkill_at_random_moments_loses_nothing_and_never_changes_ids(tmp_path: Path) -> None:
    rng = random.Random(20261128)
    db = tmp_path / "m.db"
    items: list[tuple[str, str, str]] = []
    with serve() as feeds, WebhookReceiver([SECRET], default=Reply(delay=0.15)) as hook:
        cfg = write_config(
            tmp_path,
            store_url=f"sqlite:///{db}",
            feeds={"wire": feeds.url("/wire.xml")},
            hook_url=hook.url,
        )
        for rnd in range(ROUNDS):
            items += [
                (
                    f"r{rnd}-{i}",
                    f"Round {rnd} item {i}: new sanctions on shipper {i}",
                    f"Asset freeze story {rnd}-{i} " * (3 + i),
                )
                for i in range(5)
            ]
            feeds.route("/wire.xml", Route(body=rss(items)))
            d = Daemon(cfg)
            d.wait_for(lambda x: x.get("event") == "start")
            time.sleep(rng.uniform(0.2, 2.5))  # a random moment to crash at, not a synchronisation
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait(timeout=10)
        # a last, undisturbed run drains everything
        d = Daemon(cfg)
        d.wait_for(lambda x: x.get("event") == "start")
        store = open_store(f"sqlite:///{db}")
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                alerts = store.list_alerts(limit=10_000)
                deliveries = store.list_deliveries(limit=10_000)
                if (
                    len(alerts) == len(items)
                    and all(x.state.value == "delivered" for x in deliveries)
                    and len(deliveries) == len(alerts)
                ):
                    break
                time.sleep(0.2)
            assert d.stop(signal.SIGTERM) == 0
            alerts = store.list_alerts(limit=10_000)
            deliveries = store.list_deliveries(limit=10_000)
        finally:
            store.close()

    assert len(alerts) == len(items) == ROUNDS * 5
    stored = {x.alert_ids[0]: x.id for x in deliveries}
    assert set(stored) == {a.id for a in alerts}
    seen: dict[str, set[str]] = {}
    for r in hook.received:
        assert r.verified, r.error
        alert_id = json.loads(r.body)["data"]["alert"]["id"]
        seen.setdefault(alert_id, set()).add(str(r.id))
    assert set(seen) == set(stored), "every alert reached the receiver"
    assert all(ids == {stored[a]} for a, ids in seen.items()), "one id per alert, ever"
