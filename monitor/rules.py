"""Load rule files: YAML with positions, strict validation, every problem reported at once.

``load_rules(paths, topics=..., channels=...)`` reads every ``*.yaml``/``*.yml`` file (one rule
per file, the file stem is the rule id), validates each against :mod:`monitor.rulespec` and
compiles the lot into a :class:`~monitor.match.RuleSet`. Any problem in any file raises one
:class:`RuleError` listing them all as ``FILE:LINE:COLUMN: key.path: reason``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from monitor.errors import Problem, RuleError
from monitor.match import RuleSet
from monitor.rulespec import Group, Near, Rule, RuleSpec, TermSpec

__all__ = ["RuleSet", "load_rule_file", "load_rules", "rule_files", "rule_schema"]

_TYPE_REASONS = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "bool_type": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
}


def rule_files(paths: Iterable[str | Path]) -> Iterator[tuple[Path, Problem | None]]:
    """Every rule file under ``paths`` (files or folders, searched recursively), in order."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
            yield from ((p, None) for p in found if p.is_file())
        elif path.is_file():
            yield path, None
        else:
            yield path, Problem(str(path), None, None, "", "no such file or folder")


def _plain(node: Any) -> Any:
    # ruamel's node types carry positions; validation wants plain values.
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    for kind in (int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


def _locate(root: Any, parts: Sequence[str | int], *, key: bool) -> tuple[int, int, str]:
    """(line, column, dotted path) of the deepest node of ``parts`` that exists in the YAML."""
    node, line, col, path = root, 1, 1, ""
    if isinstance(root, CommentedMap | CommentedSeq):
        line, col = root.lc.line + 1, root.lc.col + 1
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(part, int) and isinstance(node, CommentedSeq) and part < len(node):
            ln, cl = node.lc.item(part)
            node, path = node[part], f"{path}[{part}]"
        elif isinstance(part, str) and isinstance(node, CommentedMap) and part in node:
            ln, cl = node.lc.key(part) if key and last else node.lc.value(part)
            node, path = node[part], f"{path}.{part}" if path else part
        else:
            # Absent from the file (a missing key, a scalar for a list): name it, keep the position.
            path += "".join(f".{p}" if path else p for p in parts[i:] if isinstance(p, str))
            break
        line, col = ln + 1, cl + 1
        if isinstance(node, CommentedMap | CommentedSeq) and not (key and last):
            line, col = node.lc.line + 1, node.lc.col + 1
    return line, col, path


def _reason(err: Any) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in _TYPE_REASONS:
        return _TYPE_REASONS[kind]
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"needs at least {n} items"
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected', '')}"
    for key, op in (("ge", ">="), ("le", "<="), ("gt", ">"), ("lt", "<")):
        if key in ctx:
            return f"must be {op} {ctx[key]}"
    return str(err["msg"]).removeprefix("Value error, ")


def _validation_problems(file: str, root: Any, err: ValidationError) -> list[Problem]:
    out = []
    for e in err.errors():
        parts = [p for p in e["loc"] if not (isinstance(p, str) and p.startswith("<"))]
        line, col, path = _locate(root, parts, key=e["type"] == "extra_forbidden")
        out.append(Problem(file, line, col, path, _reason(e)))
    return out


def _classifier_topics(
    node: Group | Near | TermSpec | str, path: list[str | int]
) -> Iterator[tuple[list[str | int], str]]:
    if not isinstance(node, Group):
        return
    if node.classifier is not None and node.classifier.topic is not None:
        yield [*path, "classifier", "topic"], node.classifier.topic
    for key in ("any", "all", "none"):
        for i, child in enumerate(getattr(node, key) or ()):
            yield from _classifier_topics(child, [*path, key, i])


def _cross_checks(
    file: str, root: Any, spec: RuleSpec, topics: set[str] | None, channels: set[str] | None
) -> list[Problem]:
    found: list[tuple[list[str | int], str]] = []
    if topics is not None:
        known = ", ".join(sorted(topics)) or "none"
        if spec.topic not in topics:
            found.append((["topic"], f"unknown topic {spec.topic!r} (known: {known})"))
        for path, topic in _classifier_topics(spec, []):
            if topic not in topics:
                found.append((path, f"unknown topic {topic!r} (known: {known})"))
    if channels is not None:
        known = ", ".join(sorted(channels)) or "none"
        for i, name in enumerate(spec.channels):
            if name not in channels:
                found.append((["channels", i], f"unknown channel {name!r} (known: {known})"))
    if spec.threshold is not None and spec.weights is None:
        found.append((["threshold"], "needs weights"))
    out = []
    for parts, reason in found:
        line, col, where = _locate(root, parts, key=False)
        out.append(Problem(file, line, col, where, reason))
    return out


def load_rule_file(
    path: Path, *, topics: set[str] | None = None, channels: set[str] | None = None
) -> tuple[Rule | None, list[Problem]]:
    """One file -> (its rule, or None, and the problems found)."""
    file = str(path)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(file, None, None, "", f"cannot read: {exc}")]
    try:
        root = YAML(typ="rt").load(source)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        reason = " ".join(str(exc.problem or exc.context or "").split())
        return None, [Problem(file, line, col, "", f"YAML syntax error: {reason}")]
    except YAMLError as exc:
        return None, [Problem(file, None, None, "", f"YAML syntax error: {exc}")]
    if root is None:
        return None, [Problem(file, None, None, "", "empty rule file")]
    if not isinstance(root, CommentedMap):
        line, col = (
            (root.lc.line + 1, root.lc.col + 1) if isinstance(root, CommentedSeq) else (1, 1)
        )
        return None, [Problem(file, line, col, "", "a rule file must be a mapping of keys")]
    data = _plain(root)
    try:
        spec = RuleSpec.model_validate(data)
    except ValidationError as err:
        problems = _validation_problems(file, root, err)
        topic = data.get("topic")
        if topics is not None and isinstance(topic, str) and topic and topic not in topics:
            line, col, where = _locate(root, ["topic"], key=False)
            known = ", ".join(sorted(topics)) or "none"
            problems.append(
                Problem(file, line, col, where, f"unknown topic {topic!r} (known: {known})")
            )
        return None, sorted(problems, key=lambda p: (p.line or 0, p.column or 0))
    problems = _cross_checks(file, root, spec, topics, channels)
    if problems:
        return None, problems
    return Rule.from_spec(path.stem, file, spec), []


def load_rules(
    paths: Iterable[str | Path],
    *,
    topics: set[str] | None = None,
    channels: set[str] | None = None,
) -> RuleSet:
    """Validate and compile every rule under ``paths``; RuleError lists every problem at once.

    ``topics``/``channels``: when given, a rule naming anything else is an error.
    """
    problems: list[Problem] = []
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for path, missing in rule_files(paths):
        if missing is not None:
            problems.append(missing)
            continue
        rule, found = load_rule_file(path, topics=topics, channels=channels)
        problems += found
        if rule is None:
            continue
        if rule.id in seen:
            problems.append(
                Problem(
                    str(path), None, None, "", f"duplicate rule id {rule.id!r} ({seen[rule.id]})"
                )
            )
            continue
        seen[rule.id] = str(path)
        rules.append(rule)
    if problems:
        raise RuleError(problems)
    return RuleSet.compile(rules)


def rule_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of one rule file, for editors (yaml-language-server)."""
    schema = RuleSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "news-monitor rule"
    return schema
