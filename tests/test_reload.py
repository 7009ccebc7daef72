"""Reloading rules and configuration: atomic, and a bad new set never replaces a good one."""

from __future__ import annotations

import signal
from pathlib import Path

from daemon_harness import SECRET, Daemon, monitor, rss, write_config
from feedserver import Route, serve
from receiver import WebhookReceiver


def test_run_refuses_to_start_on_an_invalid_rule_set(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path,
        store_url=f"sqlite:///{tmp_path / 'm.db'}",
        feeds={},
        hook_url="http://127.0.0.1:9/",
        rule="topic: sanctions\nany: [sanction]\nseverity: urgent\n",
    )
    result = monitor("run", "--once", "--config", str(cfg))
    assert result.returncode == 1
    assert "sanctions-test.yaml:3:11: severity:" in result.stderr


def test_a_broken_edit_is_refused_and_the_old_rules_keep_working(tmp_path: Path) -> None:
    with serve() as feeds, WebhookReceiver([SECRET]) as hook:
        feeds.route("/wire.xml", Route(body=rss([])))
        cfg = write_config(
            tmp_path,
            store_url=f"sqlite:///{tmp_path / 'm.db'}",
            feeds={"wire": feeds.url("/wire.xml")},
            hook_url=hook.url,
        )
        d = Daemon(cfg)
        try:
            d.wait_for(lambda x: x.get("event") == "start")
            rule = tmp_path / "rules" / "sanctions-test.yaml"
            rule.write_text("topic: sanctions\nany: [sanction\n")  # broken YAML
            refused = d.wait_for(lambda x: "reload refused" in str(x.get("msg")))
            assert "sanctions-test.yaml:" in str(refused["msg"])
            feeds.route("/wire.xml", Route(body=rss([("n1", "New sanctions on refiners", "x")])))
            (got,) = hook.wait_for(1, timeout=20)
            assert got.verified
            # a valid edit, announced by SIGHUP, is taken
            rule.write_text("topic: sanctions\nany: [embargo]\n")
            d.proc.send_signal(signal.SIGHUP)
            d.wait_for(lambda x: str(x.get("msg", "")).startswith("reloaded"))
        finally:
            assert d.stop(signal.SIGTERM) == 0
