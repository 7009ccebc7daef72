"""The analyst's commands: rules check/test/schema and score, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import _register, cli

PACK = Path(__file__).parents[1] / "rules"
BAD = Path(__file__).parent / "fixtures" / "bad_rules"
THREE_TOPICS = (
    "The leader threatened to cut transit routes and boycott a neighbour's ports if sanctions "
    "are imposed, while ordering troops to combat readiness."
)
HARD_NEGATIVES = [
    "The football association sanctioned the club with a ten-point deduction.",
    "The company's drug pipeline was cut back after two trials were halted.",
    "Scout troop 12 marched to the lake for a week of camping.",
    "City transit workers went on strike, halting bus and subway routes.",
]


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    if "rules" not in cli.commands:
        _register()
    return CliRunner()


def test_check_prints_a_summary_for_the_default_pack(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["rules", "check", str(PACK)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: 8 rules in ")


def test_check_prints_every_problem_and_exits_1(runner: CliRunner) -> None:
    result = runner.invoke(
        cli, ["rules", "check", str(BAD / "unknown_key.yaml"), str(BAD / "bad_regex.yaml")]
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines == [
        f"error: {BAD / 'unknown_key.yaml'}:3:1: anyy: unknown key",
        f"error: {BAD / 'bad_regex.yaml'}:3:8: regex: invalid regular expression: missing ): "
        "sanction(s",
    ]


def test_check_uses_config_channels(runner: CliRunner, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text("topic: sanctions\nany: [embargo]\nchannels: [pager]\n")
    config = tmp_path / "monitor.toml"
    config.write_text('[rules]\npaths = ["rules"]\n')
    result = runner.invoke(cli, ["rules", "check", "--config", str(config)])
    assert result.exit_code == 1
    assert "channels[0]: unknown channel 'pager' (known: none)" in result.output


def test_rules_test_passes_on_the_default_pack(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["rules", "test", str(PACK), "--model", "none"])
    assert result.exit_code == 0, result.output
    assert "examples passed in 8 rules (model: none)" in result.output


def test_rules_test_reports_failures_with_the_explanation(
    runner: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "r.yaml").write_text(
        "topic: sanctions\nany: [embargo]\nnone: [football]\n"
        "examples:\n  match: [an embargo]\n  no_match: [a football embargo, a sale]\n"
    )
    (tmp_path / "w.yaml").write_text(
        "topic: sanctions\nany: [embargo]\nexamples:\n  match: [nothing here]\n"
    )
    result = runner.invoke(cli, ["rules", "test", str(tmp_path), "--model", "none"])
    assert result.exit_code == 1
    assert "examples.match[0] did not match: 'nothing here'" in result.output
    assert '"matched": false' in result.output
    assert "3/4 examples passed in 2 rules (model: none)" in result.output


def test_schema_is_json(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["rules", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["additionalProperties"] is False and "topic" in schema["required"]


def test_score_explain_shows_the_evidence(runner: CliRunner) -> None:
    lines = [
        json.dumps(
            {
                "id": "a1",
                "title": "Leader threatens neighbour",
                "summary": THREE_TOPICS,
                "url": "https://e/1",
                "source": "wire",
                "ignored": True,
            }
        ),
        *(
            json.dumps({"id": f"n{i}", "title": "", "content": t})
            for i, t in enumerate(HARD_NEGATIVES)
        ),
    ]
    result = runner.invoke(
        cli,
        ["score", "-", "--explain", "--model", "none", "--rules", str(PACK)],
        input="\n".join(lines) + "\n",
    )
    assert result.exit_code == 0, result.output
    out = [json.loads(x) for x in result.output.splitlines()]
    assert [o["id"] for o in out] == ["a1", "n0", "n1", "n2", "n3"]
    first = out[0]
    assert {a["topic"] for a in first["alerts"]} == {
        "sanctions",
        "troop-movements",
        "energy-transit",
    }
    why = first["explain"]["rules"]["energy-transit-disruption"]
    port = THREE_TOPICS.index("ports")
    assert {
        "field": "text",
        "term": "port",
        "start": port,
        "end": port + 5,
        "matched": "ports",
    } in why["hits"]
    assert all(o["alerts"] == [] for o in out[1:])
    assert "explain" in first and "explain" not in json.loads(
        runner.invoke(
            cli, ["score", "--model", "none", "--rules", str(PACK)], input=lines[0]
        ).output
    )


def test_score_rejects_an_invalid_line(runner: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "ok"}\n{"id": "bad", "title": 3}\n')
    result = runner.invoke(cli, ["score", str(data), "--model", "none", "--rules", str(PACK)])
    assert result.exit_code == 1
    assert f"error: {data}:2: title: expected a string" in result.output
