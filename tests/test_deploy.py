"""deploy/: the systemd unit verified by systemd-analyze, the container and compose files checked
statically (no container engine here), and the Prometheus alert rules checked against /metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from ruamel.yaml import YAML

from monitor.admin import build_app, listen
from monitor.config import load_config
from monitor.metrics import Metrics
from monitor.store import PollRecord, open_store

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
UNIT = DEPLOY / "systemd" / "news-monitor.service"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"


def yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def unit_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_systemd_unit_is_hardened_and_checks_before_starting() -> None:
    s = unit_settings()
    expected = {
        "Type": "notify",
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "StateDirectory": "news-monitor",
        "ConfigurationDirectory": "news-monitor",
        "Restart": "on-failure",
        "ExecReload": "/bin/kill -HUP $MAINPID",
    }
    assert {k: s[k][0] for k in expected} == expected
    assert "@system-service" in s["SystemCallFilter"]
    assert set(s["RestrictAddressFamilies"][0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert s["WatchdogSec"] and s["ExecStart"][0].endswith(
        "monitor run --config /etc/news-monitor/monitor.toml"
    )
    checks = " ".join(s["ExecStartPre"])
    assert "monitor config check" in checks and "monitor rules check" in checks
    # The daemon's STOP_DEADLINE (8 s) must fit in the stop timeout.
    assert int(s["TimeoutStopSec"][0].removesuffix("s")) > 8


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify insists that the binaries exist: point the unit at a stand-in for the venv's one.
    binary = tmp_path / "bin" / "monitor"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    unit = tmp_path / "news-monitor.service"
    unit.write_text(UNIT.read_text().replace("/opt/news-monitor/bin/monitor", str(binary)))
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    # Unknown keys and bad values are only warnings (exit 0): any output is a failure.
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), (
        done.stdout + done.stderr
    )


def test_containerfile_is_multi_stage_non_root_hash_checked_and_healthchecked() -> None:
    text = CONTAINERFILE.read_text()
    lines = [line.strip() for line in text.splitlines() if not line.lstrip().startswith("#")]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert len(froms) == 2 and all("python:3.11-slim" in f for f in froms)
    assert "--require-hashes" in text and "-r requirements.lock" in text
    # The matcher is compiled (mypyc) with the locked build tools, and checked to be.
    assert "-r requirements-build.lock" in text and "--no-build-isolation" in text
    assert "MONITOR_PURE_PYTHON" not in text and "build.compiled()" in text
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    health = next(line for line in lines if line.startswith("HEALTHCHECK"))
    health_cmd = health + text.split(health)[1].split("\n")[1]
    assert "urllib" in health_cmd and "/healthz" in health_cmd and "python" in health_cmd
    assert any(line.startswith("EXPOSE 8787") for line in lines)
    assert '"/var/lib/news-monitor"' in text and "/etc/news-monitor/monitor.toml" in text
    # Every file the build copies exists in the repository (the context is its root).
    root = DEPLOY.parent
    for line in lines:
        m = re.match(r"COPY (?!--from)(.+) \S+$", line)
        if m:
            for src in m.group(1).split():
                assert (root / src).exists(), src


def test_compose_runs_two_replicas_on_one_postgres_with_healthchecks() -> None:
    doc = yaml(COMPOSE)
    services = doc["services"]
    replicas = [n for n, s in services.items() if s.get("image", "").startswith("news-monitor")]
    assert len(replicas) == 2
    assert services["postgres"]["image"].startswith("postgres:")
    assert "healthcheck" in services["postgres"]
    assert "pgdata" in doc["volumes"]
    for name in replicas:
        svc = services[name]
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "/healthz" in " ".join(svc["healthcheck"]["test"])
        assert "./monitor.toml:/etc/news-monitor/monitor.toml:ro" in svc["volumes"]
        assert svc["build"]["dockerfile"] == "deploy/container/Containerfile"
        assert all(p.startswith("127.0.0.1:") for p in svc["ports"])
    for secret in doc["secrets"].values():
        assert not secret["file"].startswith("/")


def test_compose_configuration_is_valid_and_uses_postgresql(tmp_path: Path) -> None:
    text = (COMPOSE.parent / "monitor.toml").read_text()
    for name in ("webhook_secret", "admin_token"):
        (tmp_path / name).write_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n")
        text = text.replace(f"/run/secrets/{name}", str(tmp_path / name))
    (tmp_path / "monitor.toml").write_text(text)
    config = load_config(tmp_path / "monitor.toml")
    assert config.storage.url.startswith("postgresql://") and "@postgres:" in config.storage.url
    assert ":" not in config.storage.url.split("//")[1].split("@")[0]  # no password in the file
    assert config.admin.token is not None and not config.admin.loopback


METRIC = re.compile(r"\b(news_monitor_[a-z_]+|up)\b(?!\s*\()")


async def scrape(tmp_path: Path) -> set[str]:
    """Sample names from a real /metrics with every labelled series present."""
    from datetime import UTC, datetime

    from test_admin import FakeService, minimal_config

    from monitor.config import FeedConfig

    config = minimal_config(tmp_path)
    store = open_store(config.storage_url)
    try:
        now = datetime.now(UTC)
        store.sync_feeds([FeedConfig(name="f", url="https://a.example/f")], now)
        feed = store.list_feeds()[0]
        store.record_poll(
            PollRecord(feed_id=feed.feed_id, owner="t", polled_at=now, next_poll_at=now, ok=True)
        )
        metrics = Metrics()
        metrics.bind(store)
        metrics.channels(["hook"])
        svc = FakeService(config=config, store=store, observer=metrics)
        server = await listen(build_app(svc, registry=metrics.registry), "127.0.0.1", 0)  # type: ignore[arg-type]
        try:
            async with httpx.AsyncClient() as client:
                text = (await client.get(server.url + "metrics")).text
        finally:
            await server.stop()
    finally:
        store.close()
    from prometheus_client.parser import text_string_to_metric_families

    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


async def test_every_metric_the_alert_rules_use_is_exported(tmp_path: Path) -> None:
    rules = [r for g in yaml(ALERTS)["groups"] for r in g["rules"]]
    assert len(rules) >= 8
    exported = await scrape(tmp_path)
    used: set[str] = set()
    for rule in rules:
        assert rule["alert"].startswith("NewsMonitor") and rule["labels"]["severity"]
        assert rule["annotations"]["summary"]
        expr = re.sub(r"\{[^}]*\}", "", rule["expr"])  # label matchers are not metric names
        used |= {m for m in METRIC.findall(expr)}
    assert "up" in used  # "daemon down" comes from Prometheus' own scrape status
    missing = sorted(used - exported - {"up"})
    assert not missing, f"alert rules use metrics /metrics does not export: {missing}"
    wanted = {
        "news_monitor_feed_consecutive_errors",
        "news_monitor_outbox_oldest_pending_age_seconds",
        "news_monitor_deliveries_total",
        "news_monitor_last_reload_successful",
    }
    assert wanted <= used
