"""Labelled data, metrics, thresholds, determinism, the shipped model and the CLI commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from conftest_classifier import make_corpus, write_jsonl

from monitor import classifier, training
from monitor.cli import _Root
from monitor.cli.model import register
from monitor.errors import DataError

REPO = Path(__file__).resolve().parents[1]
FIXED = datetime(2026, 1, 1, tzinfo=UTC)


def _cli() -> click.Group:
    @click.group(cls=_Root)
    def root() -> None:
        """Test root."""

    register(root)
    return root


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "train.jsonl", make_corpus())


@pytest.fixture(scope="module")
def heldout_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    records = make_corpus(per_topic=4, negatives=4, both=2, seed=99)
    return write_jsonl(tmp_path_factory.mktemp("data") / "heldout.jsonl", records)


# --- metrics with hand-computed numbers -------------------------------------------------------


def test_evaluate_predictions_matches_a_hand_computed_confusion_matrix() -> None:
    labels = [{"a"}, {"a", "b"}, set(), {"b"}, {"a"}, set()]
    probabilities = [
        {"a": 0.9, "b": 0.1},  # a: tp          b: tn
        {"a": 0.4, "b": 0.7},  # a: fn (< 0.5)  b: tp
        {"a": 0.6, "b": 0.2},  # a: fp          b: tn
        {"a": 0.1, "b": 0.3},  # a: tn          b: tp (threshold 0.3 is inclusive)
        {"a": 0.5, "b": 0.8},  # a: tp (0.5)    b: fp
        {"a": 0.0, "b": 0.29},  # a: tn          b: tn
    ]
    result = training.evaluate_predictions(labels, probabilities, {"a": 0.5, "b": 0.3})
    a, b = result.topics
    assert (a.topic, a.tp, a.fp, a.fn, a.tn, a.support) == ("a", 2, 1, 1, 2, 3)
    assert (b.topic, b.tp, b.fp, b.fn, b.tn, b.support) == ("b", 2, 1, 0, 3, 2)
    assert a.precision == pytest.approx(2 / 3)
    assert a.recall == pytest.approx(2 / 3)
    assert a.f1 == pytest.approx(2 / 3)
    assert b.precision == pytest.approx(2 / 3)
    assert b.recall == pytest.approx(1.0)
    assert b.f1 == pytest.approx(0.8)
    assert result.macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)
    as_dict = result.to_dict()
    assert as_dict["topics"]["b"] == {
        "precision": 0.666667,
        "recall": 1.0,
        "f1": 0.8,
        "support": 2,
        "tp": 2,
        "fp": 1,
        "fn": 0,
        "tn": 3,
    }
    assert as_dict["n_examples"] == 6


def test_macro_f1_leaves_out_a_topic_with_nothing_to_find_and_nothing_found() -> None:
    result = training.evaluate_predictions(
        [{"a"}, set()], [{"a": 0.9, "b": 0.1}, {"a": 0.1, "b": 0.2}], {"a": 0.5, "b": 0.5}
    )
    assert result.topics[1].f1 == 0.0
    assert result.macro_f1 == 1.0
    with_false_alarm = training.evaluate_predictions(
        [{"a"}, set()], [{"a": 0.9, "b": 0.1}, {"a": 0.1, "b": 0.9}], {"a": 0.5, "b": 0.5}
    )
    assert with_false_alarm.macro_f1 == 0.5


def test_threshold_is_the_middle_of_the_widest_gap_with_best_f1() -> None:
    truth = [False, False, True, True, True]
    scores = [0.1, 0.2, 0.6, 0.7, 0.9]
    assert training.best_threshold(truth, scores) == pytest.approx(0.4)
    # F1 ties (2/3) at 0.15 and 0.55: the wider gap between scores wins.
    assert training.best_threshold([True, False, False, True], [0.1, 0.2, 0.3, 0.8]) == 0.55


# --- labelled data ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"title": "t", "summary": "s", "labels": []}', "'id' must be"),
        ('{"id": "x", "title": "t", "labels": []}', "needs a non-empty 'summary' or 'content'"),
        ('{"id": "x", "summary": "s"}', "'labels' must be a list"),
        ('{"id": "x", "summary": "s", "labels": "sanctions"}', "'labels' must be a list"),
        ('{"id": "x", "summary": "s", "labels": [1]}', "'labels' must be a list"),
        ('{"id": "x", "summary": 3, "labels": []}', "'summary' must be a string"),
        ('{"id": "x", "summary": "s", "labels": [], "lables": []}', "unknown keys: lables"),
    ],
)
def test_invalid_line_is_a_data_error_naming_file_and_line(
    tmp_path: Path, line: str, reason: str
) -> None:
    good = json.dumps({"id": "ok", "summary": "fine", "labels": []})
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{good}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(DataError, match=reason) as info:
        training.read_examples([path])
    assert info.value.file == str(path)
    assert info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: ")


def test_duplicate_id_within_one_file_is_a_data_error(tmp_path: Path) -> None:
    record = {"id": "same", "summary": "s", "labels": []}
    path = write_jsonl(tmp_path / "dup.jsonl", [record, record])
    with pytest.raises(DataError, match="already used on line 1") as info:
        training.read_examples([path])
    assert info.value.line == 2


def test_later_file_wins_on_duplicate_id_and_says_so(tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", [{"id": "x", "summary": "old", "labels": []}])
    second = write_jsonl(
        tmp_path / "b.jsonl", [{"id": "x", "summary": "new", "labels": ["sanctions"]}]
    )
    said: list[str] = []
    examples = training.read_examples([first, second], warn=said.append)
    assert [(e.id, e.text, e.labels) for e in examples] == [("x", "new", ("sanctions",))]
    assert said == [f"duplicate id 'x': {second}:1 replaces {first}:1"]


def test_text_joins_summary_and_content_and_topics_are_the_sorted_union(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"id": "2", "title": "T", "summary": "S", "content": "C", "labels": ["zeta"]},
            {"id": "1", "content": "only content", "labels": ["alpha", "zeta"]},
        ],
    )
    examples = training.read_examples([path])
    assert [e.id for e in examples] == ["1", "2"]
    assert examples[1].text == "S\nC"
    assert examples[1].document == "T\nS\nC"
    assert training.topics_of(examples) == ("alpha", "zeta")


def test_data_hash_ignores_file_order_but_not_labels(tmp_path: Path) -> None:
    records = make_corpus(per_topic=2, negatives=2, both=0)
    a = write_jsonl(tmp_path / "a.jsonl", records[:4])
    b = write_jsonl(tmp_path / "b.jsonl", records[4:])
    one = training.data_sha256(training.read_examples([a, b]))
    assert one == training.data_sha256(training.read_examples([b, a]))
    changed = [*records[:-1], {**records[-1], "labels": ["sanctions"]}]
    c = write_jsonl(tmp_path / "c.jsonl", changed)
    assert training.data_sha256(training.read_examples([c])) != one


def test_training_without_any_label_is_a_data_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "n.jsonl", [{"id": "1", "summary": "s", "labels": []}])
    with pytest.raises(DataError, match="no labelled examples"):
        training.train(training.read_examples([path]))


# --- training ---------------------------------------------------------------------------------


def test_same_data_and_seed_give_identical_model_files(
    corpus_file: Path, cli_model: Path, tmp_path: Path
) -> None:
    examples = training.read_examples([corpus_file])
    model = training.train(examples, seed=3, created_at=FIXED)
    path = tmp_path / "again.skops"
    classifier.save(model, path)
    assert path.read_bytes() == cli_model.read_bytes()
    loaded = classifier.load_model(str(path))
    assert loaded.metadata["seed"] == 3
    assert loaded.metadata["n_examples"] == len(examples)
    assert loaded.metadata["validation"] == {"method": "out-of-fold", "folds": 5}
    assert loaded.metadata["metrics"]["macro_f1"] > 0.9


def test_validation_fraction_holds_out_a_part(corpus_file: Path) -> None:
    examples = training.read_examples([corpus_file])
    model = training.train(examples, seed=0, validation_fraction=0.25)
    metrics = model.metadata["metrics"]
    assert model.metadata["validation"] == {"method": "holdout", "fraction": 0.25}
    assert len(examples) / 5 < metrics["n_examples"] < len(examples) / 3


def test_cross_validation_scores_every_example_once(corpus_file: Path) -> None:
    examples = training.read_examples([corpus_file])
    pooled, per_fold = training.cross_validate(examples, folds=2, seed=0)
    assert pooled.n_examples == len(examples)
    assert len(per_fold) == 2
    assert pooled.macro_f1 > 0.85


# --- CLI ----------------------------------------------------------------------------------------


def _run(args: list[str]) -> Any:
    return CliRunner().invoke(_cli(), args, catch_exceptions=False)


@pytest.fixture(scope="module")
def cli_model(corpus_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "m.skops"
    args = ["train", "--data", str(corpus_file), "--out", str(out), "--seed", "3"]
    # SOURCE_DATE_EPOCH fixes created_at, so the file is byte-for-byte reproducible.
    result = CliRunner(env={"SOURCE_DATE_EPOCH": str(int(FIXED.timestamp()))}).invoke(
        _cli(), args, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "validation fit 5/5" in result.stderr
    assert f"wrote {out}" in result.stderr
    return out


def test_train_then_eval_json_reports_the_same_numbers_as_the_library(
    cli_model: Path, heldout_file: Path
) -> None:
    evaluated = _run(["eval", "--data", str(heldout_file), "--model", str(cli_model), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    model = classifier.load_model(str(cli_model))
    expected = training.evaluate(model, training.read_examples([heldout_file])).to_dict()
    assert report["topics"] == expected["topics"]
    assert report["macro_f1"] == expected["macro_f1"] > 0.8
    assert report["thresholds"] == dict(model.thresholds)
    human = _run(["eval", "--data", str(heldout_file), "--model", str(cli_model)])
    assert "macro-F1" in human.stdout
    assert "sanctions" in human.stdout


def test_train_accepts_several_files_after_one_data_option(
    corpus_file: Path, tmp_path: Path
) -> None:
    records = make_corpus()
    a = write_jsonl(tmp_path / "a.jsonl", records[: len(records) // 2])
    b = write_jsonl(tmp_path / "b.jsonl", records[len(records) // 2 :])
    feedback = write_jsonl(tmp_path / "feedback.jsonl", [{**records[0], "labels": []}])
    out = tmp_path / "m.skops"
    args = ["train", "--data", str(a), str(b), "--data", str(feedback), "--out", str(out)]
    result = _run(args)
    assert result.exit_code == 0, result.output
    assert f"duplicate id '{records[0]['id']}': {feedback}:1 replaces" in result.stderr
    assert classifier.load_model(str(out)).metadata["n_examples"] == len(records)


def test_eval_with_invalid_data_exits_with_file_and_line(corpus_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "summary": "s", "labels": []}\n{oops\n', encoding="utf-8")
    result = _run(["train", "--data", str(bad), "--out", str(tmp_path / "m.skops")])
    assert result.exit_code == 1
    assert f"error: {bad}:2: invalid JSON" in result.stderr


def test_eval_with_a_tampered_model_exits_with_a_model_error(
    heldout_file: Path, tmp_path: Path
) -> None:
    model = tmp_path / "m.skops"
    model.write_bytes(b"PK\x03\x04 definitely not a model")
    result = _run(["eval", "--data", str(heldout_file), "--model", str(model)])
    assert result.exit_code == 1
    assert f"error: {model}: not a skops model file" in result.stderr


# --- the shipped model ----------------------------------------------------------------------------


def test_shipped_model_is_what_train_produces_from_the_shipped_corpus() -> None:
    files = sorted((REPO / "data" / "corpus" / "train").glob("*.jsonl"))
    shipped = REPO / "monitor" / "data" / "model.skops"
    if not files or not shipped.exists():
        pytest.skip("no shipped corpus or model in this checkout")
    model = classifier.load_model("builtin")
    examples = training.read_examples(files)
    assert training.data_sha256(examples) == model.metadata["training_data_sha256"], (
        "monitor/data/model.skops was not trained on data/corpus/train: retrain it with "
        "monitor train --data data/corpus/train/*.jsonl --out monitor/data/model.skops --seed 0"
    )
    retrained = training.train(examples, seed=model.metadata["seed"])
    assert retrained.metadata["metrics"] == model.metadata["metrics"]
    # The solver's last digits depend on the CPU (its BLAS picks kernels per processor: a model
    # trained on an Intel Xeon gives thresholds 1e-5 apart when retrained on an AMD EPYC), so
    # numbers are compared to a tolerance far below any decision; the confusion counts above
    # must be the same.
    assert retrained.thresholds == pytest.approx(model.thresholds, abs=1e-3)
    sample = [e.document for e in examples[:20]]
    for got, shipped in zip(retrained.predict(sample), model.predict(sample), strict=True):
        assert got == pytest.approx(shipped, abs=1e-3)
