"""`monitor rules check|test|schema` and `monitor score`: the analyst's tools for rule files.

`rules test` and `score` run articles through the same Scorer as the daemon.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from monitor.config import Config, load_config
from monitor.rules import load_rules, rule_schema
from monitor.rulespec import ExampleArticle, Rule
from monitor.score import Scorer, load_scorer, read_articles, scored_json
from monitor.types import Article

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _config(path: Path | None) -> Config | None:
    """The configuration when given (or $MONITOR_CONFIG, or ./monitor.toml exists), else None."""
    if path is None:
        env = os.environ.get("MONITOR_CONFIG")
        path = Path(env) if env else Path("monitor.toml")
        if not path.exists():
            return None
    return load_config(path)


def _rule_paths(paths: Sequence[Path], config: Config | None) -> list[Path]:
    if paths:
        return list(paths)
    return config.rule_paths if config is not None else [Path("rules")]


def _model_spec(spec: str | None, config: Config | None) -> str:
    """--model, else the configured classifier, else builtin when installed, else none."""
    if spec is not None:
        return spec
    if config is not None:
        return config.classifier.model
    from monitor import classifier

    return "builtin" if classifier.builtin_model_path().exists() else "none"


def _scorer(paths: tuple[Path, ...], config: Config | None, spec: str | None) -> tuple[Scorer, str]:
    chosen = _model_spec(spec, config)
    scorer = load_scorer(
        model=chosen,
        rule_paths=_rule_paths(paths, config),
        channels=[c.name for c in config.channels] if config is not None else None,
        base_dir=config.base_dir if config is not None else None,
    )
    return scorer, chosen


_config_opt = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Configuration file (default: $MONITOR_CONFIG, else ./monitor.toml if it exists).",
)
_model_opt = click.option(
    "--model",
    "model_spec",
    default=None,
    metavar="builtin|none|PATH",
    help="Classifier (default: the configured one, else builtin when installed, else none).",
)
_paths_arg = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))


def example_article(rule: Rule, kind: str, index: int, example: str | ExampleArticle) -> Article:
    """An embedded example as an Article; a plain string is both the title and the text."""
    ident = f"{rule.id}:{kind}[{index}]"
    if isinstance(example, str):
        return Article(
            id=ident,
            url="",
            title=example,
            text=example,
            source="",
            published=_EPOCH,
            fetched_at=_EPOCH,
        )
    return Article(
        id=ident,
        url=example.url,
        title=example.title,
        text=example.text,
        source=example.source,
        tags=tuple(example.tags),
        published=_EPOCH,
        fetched_at=_EPOCH,
    )


@click.group("rules")
def rules_group() -> None:
    """Validate, test and describe rule files."""


@rules_group.command("check")
@_paths_arg
@_config_opt
def check(paths: tuple[Path, ...], config_path: Path | None) -> None:
    """Validate rule files; print every problem (exit 1) or a one-line summary."""
    config = _config(config_path)
    channels = {c.name for c in config.channels} if config is not None else None
    where = _rule_paths(paths, config)
    ruleset = load_rules(where, channels=channels)
    topics = ", ".join(sorted(ruleset.topics)) or "none"
    click.echo(f"OK: {len(ruleset.rules)} rules in {', '.join(map(str, where))} (topics: {topics})")


@rules_group.command("test")
@_paths_arg
@_config_opt
@_model_opt
def test(paths: tuple[Path, ...], config_path: Path | None, model_spec: str | None) -> None:
    """Run every rule's embedded examples through the scorer; exit 1 on any failure."""
    scorer, chosen = _scorer(paths, _config(config_path), model_spec)
    ruleset = scorer.rules
    cases = [
        (rule, kind, i, example_article(rule, kind, i, ex))
        for rule in ruleset.rules
        if rule.enabled
        for kind, examples in (
            ("match", rule.spec.examples.match),
            ("no_match", rule.spec.examples.no_match),
        )
        for i, ex in enumerate(examples)
    ]
    scored = scorer.score([a for *_x, a in cases])
    failed = 0
    for (rule, kind, i, article), result in zip(cases, scored, strict=True):
        matched = any(m.rule == rule.id for m in result.matches)
        if matched == (kind == "match"):
            continue
        failed += 1
        verb = "did not match" if kind == "match" else "matched"
        click.echo(f"FAIL {rule.file}: examples.{kind}[{i}] {verb}: {article.title[:80]!r}")
        why = ruleset.explain_rule(rule.id, article, result.topics)
        click.echo(json.dumps(why, indent=2, ensure_ascii=False))
    click.echo(
        f"{len(cases) - failed}/{len(cases)} examples passed in {len(ruleset.rules)} rules "
        f"(model: {chosen})"
    )
    if failed:
        sys.exit(1)


@rules_group.command("schema")
def schema() -> None:
    """Print the JSON Schema of a rule file (for yaml-language-server and editors)."""
    click.echo(json.dumps(rule_schema(), indent=2))


@click.command("score")
@click.argument("file", default="-", type=click.Path(allow_dash=True, path_type=Path))
@_config_opt
@_model_opt
@click.option("--explain", is_flag=True, help="Add the evidence: terms, conditions, classifier.")
@click.option(
    "--rules",
    "rule_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Rule files or folders (default: the configured ones, else ./rules).",
)
@click.option("--batch", default=100, show_default=True, type=click.IntRange(1, 10000))
def score(
    file: Path,
    config_path: Path | None,
    model_spec: str | None,
    explain: bool,
    rule_paths: tuple[Path, ...],
    batch: int,
) -> None:
    """Score JSON Lines articles (FILE or - for stdin); one JSON line out per article."""
    scorer, _chosen = _scorer(rule_paths, _config(config_path), model_spec)
    name = "<stdin>" if str(file) == "-" else str(file)
    stream: Any = sys.stdin.buffer if str(file) == "-" else file.open("rb")
    out = sys.stdout.buffer
    try:
        pending: list[Article] = []
        for article in read_articles(stream, name):
            pending.append(article)
            if len(pending) >= batch:
                _emit(scorer, pending, explain, out)
                pending = []
        _emit(scorer, pending, explain, out)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _emit(scorer: Scorer, articles: list[Article], explain: bool, out: Any) -> None:
    for result in scorer.score(articles, explain=explain):
        out.write(orjson.dumps(scored_json(result, explain=explain)) + b"\n")
    out.flush()


def register(cli: click.Group) -> None:
    """Add `rules` (check, test, schema) and `score` to the root group."""
    cli.add_command(rules_group)
    cli.add_command(score)
