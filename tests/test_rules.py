"""Loading rule files: one fixture per error message, all problems at once, schema, fuzzing."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from monitor.errors import RuleError
from monitor.rules import load_rule_file, load_rules, rule_schema

BAD = Path(__file__).parent / "fixtures" / "bad_rules"
PACK = Path(__file__).parents[1] / "rules"
TOPICS = {"sanctions", "troop-movements", "energy-transit"}
CHANNELS = {"ops"}


def _expected(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path} lacks its '# expect: ' line"
    return f"{path}:{first.removeprefix('# expect: ')}"


BAD_FILES = sorted(BAD.glob("*.yaml"))


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_each_bad_rule_file_gives_its_exact_message(path: Path) -> None:
    rule, problems = load_rule_file(path, topics=TOPICS, channels=CHANNELS)
    assert rule is None
    assert [str(p) for p in problems] == [_expected(path)]


def test_every_problem_in_every_file_is_reported_at_once() -> None:
    with pytest.raises(RuleError) as info:
        load_rules([BAD, PACK], topics=TOPICS, channels=CHANNELS)
    assert sorted(str(p) for p in info.value.problems) == sorted(_expected(p) for p in BAD_FILES)
    assert str(info.value).count("\n") == len(BAD_FILES) - 1


def test_several_problems_in_one_file_are_all_listed(tmp_path: Path) -> None:
    rule = tmp_path / "many.yaml"
    rule.write_text("topic: weather\nseverity: urgent\nany: [embargo, 3]\nbogus: 1\n")
    with pytest.raises(RuleError) as info:
        load_rules([rule], topics=TOPICS)
    assert [str(p) for p in info.value.problems] == [
        f"{rule}:1:8: topic: unknown topic 'weather' (known: energy-transit, sanctions, "
        "troop-movements)",
        f"{rule}:2:11: severity: expected one of 'info', 'low', 'medium', 'high' or 'critical'",
        f"{rule}:3:16: any[1]: expected a term (string) or a condition mapping",
        f"{rule}:4:1: bogus: unknown key",
    ]


def test_topics_and_channels_are_only_checked_when_known(tmp_path: Path) -> None:
    rule = tmp_path / "r.yaml"
    rule.write_text("topic: weather\nany: [storm]\nchannels: [pager]\n")
    ruleset = load_rules([rule])
    assert [r.id for r in ruleset.rules] == ["r"]
    assert ruleset.rules[0].channels == ("pager",)


def test_missing_path_and_duplicate_ids_are_problems(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        (tmp_path / d / "same.yaml").write_text("topic: sanctions\nany: [embargo]\n")
    with pytest.raises(RuleError) as info:
        load_rules([tmp_path / "a", tmp_path / "b", tmp_path / "nowhere"])
    reasons = [p.reason for p in info.value.problems]
    assert any(r.startswith("duplicate rule id 'same'") for r in reasons)
    assert "no such file or folder" in reasons


def test_rule_carries_metadata_and_routing(tmp_path: Path) -> None:
    rule = tmp_path / "embargo-watch.yaml"
    rule.write_text(
        "topic: sanctions\nseverity: critical\nowner: desk\ntags: [a]\nany: [embargo]\n"
        "channels: [ops]\ncooldown: 6h\ngroup: 1h30m\nenabled: false\n"
    )
    (r,) = load_rules([rule], topics=TOPICS, channels=CHANNELS).rules
    assert (r.id, r.topic, r.severity, r.owner, r.tags) == (
        "embargo-watch",
        "sanctions",
        "critical",
        "desk",
        ("a",),
    )
    assert (r.channels, r.cooldown, r.group, r.enabled) == (("ops",), 21600.0, 5400.0, False)
    assert r.file == str(rule)


def test_schema_accepts_the_default_pack_and_rejects_unknown_keys() -> None:
    schema = rule_schema()
    validator = jsonschema.Draft202012Validator(schema)
    yaml = YAML(typ="safe")
    files = sorted(PACK.glob("*.yaml"))
    assert files
    for path in files:
        validator.validate(yaml.load(path.read_text()))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"topic": "sanctions", "any": ["x"], "anyy": ["y"]})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"topic": "sanctions", "any": [{"near": {"terms": ["a", "b"], "x": 1}}]})


def test_default_pack_loads_against_known_topics() -> None:
    ruleset = load_rules([PACK], topics=TOPICS)
    assert ruleset.topics == TOPICS
    assert len(ruleset.rules) >= 6


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(-2, 2),
    st.text(max_size=6),
    st.sampled_from(["6h", "embargo", "(", "[", "title", "sanctions", "high", "=x", '"q"']),
)
_keys = st.sampled_from(
    [
        "topic",
        "any",
        "all",
        "none",
        "near",
        "terms",
        "within",
        "regex",
        "classifier",
        "min",
        "fields",
        "weights",
        "threshold",
        "severity",
        "examples",
        "match",
        "feeds",
        "names",
        "cooldown",
        "term",
        "exact",
        "channels",
        "bogus",
    ]
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.dictionaries(_keys, _values, max_size=6), raw=st.text(max_size=40))
def test_random_rule_files_never_crash_the_loader(
    tmp_path_factory: pytest.TempPathFactory, doc: dict[str, object], raw: str
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    import json

    (folder / "structured.yaml").write_text(json.dumps(doc))  # JSON is YAML
    (folder / "raw.yaml").write_text(raw)
    try:
        ruleset = load_rules([folder], topics=TOPICS, channels=CHANNELS)
    except RuleError as err:
        assert err.problems
        assert all(p.file.startswith(str(folder)) for p in err.problems)
    else:
        assert len(ruleset.rules) == 2
