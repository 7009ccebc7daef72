"""Meta-tests that keep the documentation honest: every key and command is documented."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
from pydantic import BaseModel

from monitor.cli import _register, cli
from monitor.config import Config, EmailChannelConfig, WebhookChannelConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def keys(model: type[BaseModel]) -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        out.add(field.alias or name)
        ann: Any = field.annotation
        for sub in getattr(ann, "__args__", (ann,)):
            inner = getattr(sub, "__args__", (sub,))
            for t in inner:
                if isinstance(t, type) and issubclass(t, BaseModel):
                    out |= keys(t)
    return out


def test_every_config_key_is_in_the_readme_reference() -> None:
    documented = set(re.findall(r"`\[{0,2}([a-z_]+)", README))
    every = keys(Config) | keys(WebhookChannelConfig) | keys(EmailChannelConfig)
    missing = sorted(every - documented)
    assert not missing, f"undocumented config keys: {missing}"


def commands(group: click.Group, prefix: str = "") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(cmd, click.Group):
            out += commands(cmd, path + " ")
        else:
            out.append(path)
    return out


def test_every_command_is_in_the_readme() -> None:
    _register()
    missing = [c for c in commands(cli) if f"monitor {c}" not in README and f"`{c}" not in README]
    assert not missing, f"undocumented commands: {missing}"


def test_the_readme_shows_the_two_setup_commands_and_ci_uses_the_same_one() -> None:
    assert "make run" in README and "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_rule_key_is_in_the_rule_reference() -> None:
    from monitor.rulespec import RuleSpec

    doc = ROOT / "docs" / "rules.md"
    if not doc.exists():
        pytest.fail("docs/rules.md is missing")
    spans = re.findall(r"`([^`]+)`", doc.read_text())
    documented = {word for span in spans for word in re.findall(r"[a-z_]+", span)}
    missing = sorted(keys(RuleSpec) - documented)
    assert not missing, f"undocumented rule keys: {missing}"


def test_every_payload_field_is_in_the_webhook_reference() -> None:
    from monitor.payload import payload_schema

    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            names.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload_schema())
    doc = (ROOT / "docs" / "webhooks.md").read_text()
    missing = sorted(n for n in names if n not in doc)
    assert not missing, f"undocumented payload fields: {missing}"
