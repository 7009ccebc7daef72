"""The classifier module: probabilities, explanations, and safe model files."""

from __future__ import annotations

import json
import logging
import os
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import skops.io as sio
from conftest_classifier import make_corpus

from monitor import classifier, training
from monitor.classifier import LinearTopicModel, load_model, save
from monitor.errors import ModelError
from monitor.interfaces import TopicModel, document_text

TOPICS = ("energy-transit", "sanctions", "troop-movements")
FIXED = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> list[training.Example]:
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in make_corpus()), encoding="utf-8")
    return training.read_examples([path])


@pytest.fixture(scope="module")
def model(examples: list[training.Example]) -> LinearTopicModel:
    return training.train(examples, seed=0, created_at=FIXED)


@pytest.fixture(scope="module")
def model_file(model: LinearTopicModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.skops"
    save(model, path)
    return path


def _dump(tmp_path: Path, obj: Any, name: str = "hostile.skops") -> Path:
    path = tmp_path / name
    sio.dump(obj, path)
    return path


class Marker:
    """A class that is in nobody's allow-list."""

    def __init__(self) -> None:
        self.flag = 1


def _write_sentinel() -> None:  # pragma: no cover - must never run
    Path(os.environ["CLASSIFIER_SENTINEL"]).write_text("executed")


def test_model_honours_the_topic_model_protocol(model: LinearTopicModel) -> None:
    assert isinstance(model, TopicModel)
    assert model.topics == TOPICS
    assert set(model.thresholds) == set(TOPICS)
    assert all(0.0 < t < 1.0 for t in model.thresholds.values())


def test_probabilities_lie_in_unit_interval_and_rank_clear_examples(
    model: LinearTopicModel,
) -> None:
    texts = [
        document_text("Treasury sanctions", "OFAC designated entities; asset freeze and embargo"),
        document_text("Troops on the move", "armoured column and battalion deployment, tanks"),
        document_text("Gas transit", "pipeline flows through the compressor station, lng tanker"),
        document_text("Festival", "the city council said the museum and park open on tuesday"),
    ]
    rows = model.predict(texts)
    assert len(rows) == 4
    for row in rows:
        assert set(row) == set(TOPICS)
        assert all(0.0 <= p <= 1.0 for p in row.values())
    sanctions, troops, energy, neutral = rows
    assert max(sanctions, key=sanctions.__getitem__) == "sanctions"
    assert max(troops, key=troops.__getitem__) == "troop-movements"
    assert max(energy, key=energy.__getitem__) == "energy-transit"
    assert sanctions["sanctions"] > 0.8 > neutral["sanctions"]
    assert troops["troop-movements"] > 0.8 > neutral["troop-movements"]
    assert energy["energy-transit"] > 0.8 > neutral["energy-transit"]
    assert all(p < model.thresholds[t] for t, p in neutral.items())


def test_predict_with_an_empty_batch_returns_nothing(model: LinearTopicModel) -> None:
    assert model.predict([]) == []


def test_explanation_puts_topic_terms_up_and_other_topics_down(model: LinearTopicModel) -> None:
    text = "OFAC sanctions and an asset freeze on a pipeline operator"
    explanation = model.explain(text, top=3)
    assert set(explanation) == set(TOPICS)
    up = explanation["sanctions"]["up"]
    assert 0 < len(up) <= 3
    assert {term for term, _ in up} & {"ofac", "sanctions", "asset", "freeze", "asset freeze"}
    assert all(value > 0 for _, value in up)
    assert [v for _, v in up] == sorted((v for _, v in up), reverse=True)
    down = explanation["sanctions"]["down"]
    assert all(value < 0 for _, value in down)
    assert "pipeline" in {term for term, _ in explanation["energy-transit"]["up"]}


def test_saved_model_loads_with_same_predictions_and_metadata(
    model: LinearTopicModel, model_file: Path
) -> None:
    loaded = load_model(str(model_file))
    texts = ["sanctions on a tanker", "troops near the pipeline"]
    assert loaded.predict(texts) == model.predict(texts)
    assert loaded.thresholds == model.thresholds
    assert loaded.metadata == model.metadata
    assert loaded.metadata["training_data_sha256"] == model.metadata["training_data_sha256"]
    assert loaded.metadata["created_at"] == "2026-01-01T00:00:00+00:00"
    assert loaded.warnings == ()


def test_same_model_saved_twice_gives_identical_bytes(
    model: LinearTopicModel, model_file: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again.skops"
    save(model, again)
    assert again.read_bytes() == model_file.read_bytes()


def test_model_file_is_small(model_file: Path) -> None:
    assert model_file.stat().st_size < 2_000_000


def test_relative_path_resolves_against_base_dir(model_file: Path) -> None:
    loaded = load_model(model_file.name, base_dir=model_file.parent)
    assert loaded.topics == TOPICS


def test_missing_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read model file") as info:
        load_model(str(tmp_path / "absent.skops"))
    assert info.value.path == str(tmp_path / "absent.skops")


def test_flipped_bytes_are_refused(model_file: Path, tmp_path: Path) -> None:
    data = bytearray(model_file.read_bytes())
    for offset in range(len(data) // 3, len(data) // 3 + 64):
        data[offset] ^= 0xFF
    tampered = tmp_path / "tampered.skops"
    tampered.write_bytes(bytes(data))
    with pytest.raises(ModelError) as info:
        load_model(str(tampered))
    assert str(tampered) in str(info.value)


def test_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x04\x95cos\nsystem\n")
    with pytest.raises(ModelError, match="corrupt or foreign"):
        load_model(str(path))


def test_function_reference_is_refused_and_never_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentinel = tmp_path / "sentinel"
    monkeypatch.setenv("CLASSIFIER_SENTINEL", str(sentinel))
    path = _dump(tmp_path, {"format": classifier.FORMAT, "hook": os.system, "f": _write_sentinel})
    with pytest.raises(ModelError, match="disallowed types") as info:
        load_model(str(path))
    assert "system" in str(info.value)
    assert not sentinel.exists()


def test_unknown_class_is_refused(tmp_path: Path) -> None:
    path = _dump(tmp_path, {"format": classifier.FORMAT, "payload": Marker()})
    with pytest.raises(ModelError, match=r"disallowed types .*Marker"):
        load_model(str(path))


def test_estimator_trusted_by_skops_but_not_by_us_is_refused(tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeClassifier

    path = _dump(tmp_path, {"format": classifier.FORMAT, "m": DecisionTreeClassifier()})
    with pytest.raises(ModelError, match="DecisionTreeClassifier"):
        load_model(str(path))


def test_archive_of_allowed_types_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    path = _dump(tmp_path, {"format": "someone-else", "x": [1, 2]})
    with pytest.raises(ModelError, match="not a news-monitor topic model"):
        load_model(str(path))


def test_format_version_mismatch_is_an_error(model: LinearTopicModel, tmp_path: Path) -> None:
    archive = {**model._archive(), "format_version": classifier.FORMAT_VERSION + 1}
    path = _dump(tmp_path, archive)
    with pytest.raises(ModelError, match="format version 2 is not supported"):
        load_model(str(path))


def test_sklearn_version_mismatch_is_a_logged_warning(
    model: LinearTopicModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metadata = {**model.metadata, "sklearn_version": "0.0.1"}
    path = _dump(tmp_path, {**model._archive(), "metadata_json": json.dumps(metadata)})
    with caplog.at_level(logging.WARNING, logger="monitor.classifier"):
        loaded = load_model(str(path))
    assert any("scikit-learn 0.0.1" in w for w in loaded.warnings)
    assert "scikit-learn 0.0.1" in caplog.text
    assert loaded.predict(["sanctions"])[0].keys() == set(TOPICS)


def test_model_trained_with_other_topics_is_detected(model_file: Path) -> None:
    with pytest.raises(ModelError, match="missing topics cyber; extra topics troop-movements"):
        load_model(str(model_file), expected_topics=["sanctions", "energy-transit", "cyber"])
    ok = load_model(str(model_file), expected_topics=reversed(TOPICS))
    assert ok.topics == TOPICS


def test_members_of_saved_file_have_no_pickle(model_file: Path) -> None:
    with zipfile.ZipFile(model_file) as archive:
        names = archive.namelist()
    assert "schema.json" in names
    assert all(n == "schema.json" or n.endswith(".npy") for n in names)


def test_builtin_model_loads_when_shipped() -> None:
    path = classifier.builtin_model_path()
    if not path.exists():
        pytest.skip(f"no shipped model at {path}")
    model = load_model("builtin", expected_topics=TOPICS)
    assert model.warnings == ()
    assert model.metadata["seed"] == 0


def test_fast_scoring_agrees_with_scikit_learn_calibrated_probabilities(
    model: LinearTopicModel, examples: list[training.Example]
) -> None:
    texts = [e.document for e in examples]
    ours = model.predict(texts)
    matrix = model._vectorizer.transform(texts)
    for topic, estimator in zip(model.topics, model._estimators, strict=True):
        reference = estimator.predict_proba(matrix)[:, 1]
        assert [row[topic] for row in ours] == pytest.approx(list(reference), abs=1e-6)
