"""Labelled data, training, evaluation and cross-validation for the topic classifier.

Labelled data is JSON Lines, one article per line:
``{"id": ..., "title": ..., "summary": ..., "content": ..., "labels": [...]}`` (summary and/or
content; an empty ``labels`` list is a negative example). Topics are the union of the labels, so
a new topic is labelled examples plus ``monitor train``, never code.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor import classifier
from monitor.classifier import HyperParams, LinearTopicModel
from monitor.errors import DataError
from monitor.interfaces import document_text

Progress = Callable[[str], None]
VALIDATION_FOLDS = 5
DEFAULT_PARAMS = HyperParams()


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Example:
    id: str
    title: str
    text: str  # summary + "\n" + content, as an article's text is
    labels: tuple[str, ...]  # sorted; empty for a negative example
    file: str
    line: int

    @property
    def document(self) -> str:
        return document_text(self.title, self.text)


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicMetrics:
    topic: str
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def support(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else 0.0

    @property
    def defined(self) -> bool:
        """False when there was nothing to find and nothing was found: F1 means nothing."""
        return self.tp + self.fp + self.fn > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "precision": round(self.precision, 6),
            "recall": round(self.recall, 6),
            "f1": round(self.f1, 6),
            "support": self.support,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    topics: tuple[TopicMetrics, ...]
    n_examples: int

    @property
    def macro_f1(self) -> float:
        """Mean F1 over topics where F1 is defined (something to find or something found)."""
        scored = [m.f1 for m in self.topics if m.defined]
        return sum(scored) / len(scored) if scored else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_examples": self.n_examples,
            "macro_f1": round(self.macro_f1, 6),
            "topics": {m.topic: m.to_dict() for m in self.topics},
        }


def read_examples(paths: Sequence[Path], *, warn: Progress = _quiet) -> list[Example]:
    """Read labelled files in order; a later file's example replaces an earlier one's id."""
    by_id: dict[str, Example] = {}
    for path in paths:
        for example in _read_file(path):
            earlier = by_id.get(example.id)
            if earlier is not None:
                warn(
                    f"duplicate id {example.id!r}: {example.file}:{example.line} replaces "
                    f"{earlier.file}:{earlier.line}"
                )
            by_id[example.id] = example
    # Sorted by id so that the order of the --data files cannot change the model.
    return [by_id[key] for key in sorted(by_id)]


def _read_file(path: Path) -> Iterable[Example]:
    name = str(path)
    seen: dict[str, int] = {}
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise DataError(name, None, f"cannot read: {exc.strerror or exc}") from exc
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                example = _parse_line(line, name, number)
                if example.id in seen:
                    raise DataError(
                        name, number, f"id {example.id!r} already used on line {seen[example.id]}"
                    )
                seen[example.id] = number
                yield example
        except UnicodeDecodeError as exc:
            raise DataError(name, None, f"not UTF-8: {exc}") from exc


def _parse_line(line: str, file: str, number: int) -> Example:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(file, number, f"invalid JSON: {exc.msg}") from exc
    if not isinstance(record, dict):
        raise DataError(file, number, "expected a JSON object")
    unknown = sorted(set(record) - {"id", "title", "summary", "content", "labels"})
    if unknown:
        raise DataError(file, number, f"unknown keys: {', '.join(unknown)}")
    ident = record.get("id")
    if not isinstance(ident, str | int) or isinstance(ident, bool) or str(ident).strip() == "":
        raise DataError(file, number, "'id' must be a non-empty string")
    fields: dict[str, str] = {}
    for key in ("title", "summary", "content"):
        value = record.get(key, "")
        if not isinstance(value, str):
            raise DataError(file, number, f"{key!r} must be a string")
        fields[key] = value.strip()
    if not (fields["summary"] or fields["content"]):
        raise DataError(file, number, "needs a non-empty 'summary' or 'content'")
    labels = record.get("labels")
    if not isinstance(labels, list) or not all(
        isinstance(x, str) and x.strip() == x and x for x in labels
    ):
        raise DataError(file, number, "'labels' must be a list of topic names (may be empty)")
    text = "\n".join(x for x in (fields["summary"], fields["content"]) if x)
    return Example(
        id=str(ident),
        title=fields["title"],
        text=text,
        labels=tuple(sorted(set(labels))),
        file=file,
        line=number,
    )


def topics_of(examples: Iterable[Example]) -> tuple[str, ...]:
    return tuple(sorted({label for e in examples for label in e.labels}))


def data_sha256(examples: Iterable[Example]) -> str:
    """A hash of what the model learns from (ids, texts, labels), not of file names or order."""
    digest = hashlib.sha256()
    for e in sorted(examples, key=lambda x: x.id):
        record = {"id": e.id, "title": e.title, "text": e.text, "labels": list(e.labels)}
        digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def evaluate_predictions(
    labels: Sequence[Collection[str]],
    probabilities: Sequence[Mapping[str, float]],
    thresholds: Mapping[str, float],
) -> Evaluation:
    """Confusion counts per topic of ``thresholds``; a topic is predicted when p >= threshold."""
    decisions = [
        {t for t, threshold in thresholds.items() if probs.get(t, 0.0) >= threshold}
        for probs in probabilities
    ]
    return evaluate_decisions(labels, decisions, sorted(thresholds))


def evaluate_decisions(
    labels: Sequence[Collection[str]],
    predicted: Sequence[Collection[str]],
    topics: Sequence[str],
) -> Evaluation:
    if len(labels) != len(predicted):
        raise ValueError("labels and predictions differ in length")
    metrics = []
    for topic in topics:
        tp = fp = fn = tn = 0
        for truth, guess in zip(labels, predicted, strict=True):
            actual, said = topic in truth, topic in guess
            tp += actual and said
            fp += said and not actual
            fn += actual and not said
            tn += not actual and not said
        metrics.append(TopicMetrics(topic=topic, tp=tp, fp=fp, fn=fn, tn=tn))
    return Evaluation(topics=tuple(metrics), n_examples=len(labels))


def best_threshold(truth: Sequence[bool], scores: Sequence[float]) -> float:
    """The cut with maximal F1; among equals, the one in the widest gap between scores."""
    ordered = sorted(set(scores))
    if len(ordered) == 1:
        return 0.5
    best: tuple[float, float, float] | None = None
    for low, high in itertools.pairwise(ordered):
        cut = (low + high) / 2
        tp = sum(1 for t, s in zip(truth, scores, strict=True) if t and s >= cut)
        fp = sum(1 for t, s in zip(truth, scores, strict=True) if not t and s >= cut)
        fn = sum(1 for t, s in zip(truth, scores, strict=True) if t and s < cut)
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        candidate = (f1, high - low, -cut)
        if best is None or candidate > best:
            best = candidate
    assert best is not None
    return round(-best[2], 6)


def choose_thresholds(
    labels: Sequence[Collection[str]],
    probabilities: Sequence[Mapping[str, float]],
    topics: Sequence[str],
) -> dict[str, float]:
    return {
        topic: best_threshold([topic in ls for ls in labels], [p[topic] for p in probabilities])
        for topic in topics
    }


def split_folds(examples: Sequence[Example], folds: int, seed: int) -> list[list[int]]:
    """Indices of ``folds`` folds, stratified by label set, shuffled with ``seed``."""
    rng = random.Random(seed)
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, example in enumerate(examples):
        groups.setdefault(example.labels, []).append(index)
    result: list[list[int]] = [[] for _ in range(folds)]
    position = 0
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        for index in members:
            result[position % folds].append(index)
            position += 1
    return [sorted(f) for f in result]


def _fit(
    examples: Sequence[Example], topics: Sequence[str], seed: int, params: HyperParams
) -> LinearTopicModel:
    return classifier.fit(
        [e.document for e in examples],
        [e.labels for e in examples],
        topics=topics,
        seed=seed,
        params=params,
    )


def validation_predictions(
    examples: Sequence[Example],
    topics: Sequence[str],
    *,
    seed: int,
    params: HyperParams,
    validation_fraction: float | None,
    progress: Progress = _quiet,
) -> tuple[list[int], list[dict[str, float]]]:
    """Probabilities for examples the model did not see: out-of-fold, or a held-out fraction."""
    if validation_fraction:
        if not 0.0 < validation_fraction < 1.0:
            raise DataError("training data", None, "validation fraction must be in (0, 1)")
        parts = max(2, round(1 / validation_fraction))
        held = split_folds(examples, parts, seed)[0]
        groups = [held]
    else:
        groups = split_folds(examples, VALIDATION_FOLDS, seed)
    indices: list[int] = []
    probabilities: list[dict[str, float]] = []
    for number, fold in enumerate(groups, start=1):
        progress(f"validation fit {number}/{len(groups)}")
        inside = set(fold)
        model = _fit([e for i, e in enumerate(examples) if i not in inside], topics, seed, params)
        indices.extend(fold)
        probabilities.extend(model.predict([examples[i].document for i in fold]))
    return indices, probabilities


def train(
    examples: Sequence[Example],
    *,
    seed: int = 0,
    validation_fraction: float | None = None,
    params: HyperParams = DEFAULT_PARAMS,
    progress: Progress = _quiet,
    created_at: datetime | None = None,
) -> LinearTopicModel:
    """Choose thresholds on unseen predictions, then fit the final model on every example."""
    topics = topics_of(examples)
    if not topics:
        raise DataError("training data", None, "no labelled examples: every labels list is empty")
    progress(f"{len(examples)} examples, topics: {', '.join(topics)}")
    indices, probabilities = validation_predictions(
        examples,
        topics,
        seed=seed,
        params=params,
        validation_fraction=validation_fraction,
        progress=progress,
    )
    truth = [examples[i].labels for i in indices]
    thresholds = choose_thresholds(truth, probabilities, topics)
    metrics = evaluate_predictions(truth, probabilities, thresholds)
    progress("final fit on all examples")
    model = _fit(examples, topics, seed, params)
    stamp = created_at or datetime.now(UTC)
    metadata = {
        "format_version": classifier.FORMAT_VERSION,
        "topics": list(topics),
        "thresholds": thresholds,
        "training_data_sha256": data_sha256(examples),
        "n_examples": len(examples),
        "n_positive": {t: sum(t in e.labels for e in examples) for t in topics},
        "seed": seed,
        "params": params.to_dict(),
        "sklearn_version": classifier.sklearn_version(),
        "validation": (
            {"method": "holdout", "fraction": validation_fraction}
            if validation_fraction
            else {"method": "out-of-fold", "folds": VALIDATION_FOLDS}
        ),
        "metrics": metrics.to_dict(),
        "created_at": stamp.isoformat(timespec="seconds"),
    }
    return model.with_training_info(thresholds=thresholds, metadata=metadata)


def evaluate(model: classifier.LinearTopicModel, examples: Sequence[Example]) -> Evaluation:
    probabilities = model.predict([e.document for e in examples])
    return evaluate_predictions([e.labels for e in examples], probabilities, model.thresholds)


def cross_validate(
    examples: Sequence[Example],
    *,
    folds: int = 5,
    seed: int = 0,
    params: HyperParams = DEFAULT_PARAMS,
    progress: Progress = _quiet,
) -> tuple[Evaluation, list[float]]:
    """Run the whole training procedure per outer fold: pooled metrics and each fold's macro-F1."""
    labels: list[Collection[str]] = []
    decisions: list[set[str]] = []
    per_fold: list[float] = []
    topics = topics_of(examples)
    for number, fold in enumerate(split_folds(examples, folds, seed), start=1):
        progress(f"cross-validation fold {number}/{folds}")
        inside = set(fold)
        model = train(
            [e for i, e in enumerate(examples) if i not in inside], seed=seed, params=params
        )
        held = [examples[i] for i in fold]
        probs = model.predict([e.document for e in held])
        chosen = [{t for t in model.topics if p[t] >= model.thresholds[t]} for p in probs]
        per_fold.append(evaluate_decisions([e.labels for e in held], chosen, topics).macro_f1)
        labels.extend(e.labels for e in held)
        decisions.extend(chosen)
    return evaluate_decisions(labels, decisions, topics), per_fold
