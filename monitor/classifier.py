"""The topic classifier: TF-IDF features, one calibrated linear model per topic.

This is the only module that imports scikit-learn and skops. A model file is a skops archive
holding one dict: a format marker, the fitted vectorizer, one calibrated estimator per topic and
the metadata as a JSON string. Loading refuses every type outside an explicit allow-list before
anything is built, so a tampered or foreign file is a ModelError, never code execution.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import warnings
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import skops.io as sio
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from monitor.errors import DataError, ModelError
from monitor.features import TokenFeatures
from monitor.interfaces import Explanation
from monitor.text import lower_without_accents, tokenize_lower

log = logging.getLogger(__name__)


FORMAT = "news-monitor/topic-model"
FORMAT_VERSION = 1
MAX_MODEL_BYTES = 256 * 1024 * 1024  # a sane model is a few MB; refuse zip bombs early

# Every type a model file of ours may contain. skops trusts all scikit-learn estimators by
# default; we do not: anything else in the file (even a harmless estimator) means it is not ours.
ALLOWED_TYPES: frozenset[str] = frozenset(
    {
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "numpy.ndarray",
        "numpy.float32",
        "numpy.float64",
        "numpy.int64",
        "sklearn.feature_extraction.text.TfidfVectorizer",
        "sklearn.feature_extraction.text.TfidfTransformer",
        "sklearn.calibration.CalibratedClassifierCV",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.linear_model._logistic.LogisticRegression",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class HyperParams:
    """Feature and model settings; chosen by cross-validation on the training files only."""

    c: float = 10.0  # inverse regularisation strength of the logistic regression
    min_df: int = 2  # keeps the vocabulary (and the file) small
    max_ngram: int = 2
    calibration_folds: int = 3

    def to_dict(self) -> dict[str, Any]:
        return {
            "c": self.c,
            "min_df": self.min_df,
            "max_ngram": self.max_ngram,
            "calibration_folds": self.calibration_folds,
        }


class LinearTopicModel:
    """A fitted model; implements monitor.interfaces.TopicModel. Never mutated after creation."""

    def __init__(
        self,
        *,
        vectorizer: Any,
        estimators: Sequence[Any],
        topics: Sequence[str],
        thresholds: Mapping[str, float],
        metadata: Mapping[str, Any] | None = None,
        warnings: Sequence[str] = (),
    ) -> None:
        self._vectorizer = vectorizer
        self._estimators = tuple(estimators)
        self._topics = tuple(topics)
        self._thresholds = {t: float(thresholds[t]) for t in self._topics}
        self._metadata = dict(metadata or {})
        self._warnings = tuple(warnings)
        self._feature_names: Any = None
        self._coefficients: Any = None
        self._scoring: tuple[Any, Any, Any, Any] | None = None
        self._plain: bool | None = None
        self._features: TokenFeatures | None = None

    @property
    def topics(self) -> tuple[str, ...]:
        return self._topics

    @property
    def thresholds(self) -> Mapping[str, float]:
        return dict(self._thresholds)

    @property
    def metadata(self) -> Mapping[str, Any]:
        """Training facts: data hash, seed, versions, validation metrics, created_at."""
        return dict(self._metadata)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Problems found while loading that do not prevent use (a scikit-learn mismatch)."""
        return self._warnings

    def with_training_info(
        self, *, thresholds: Mapping[str, float], metadata: Mapping[str, Any]
    ) -> LinearTopicModel:
        """The same fitted model with its validated thresholds and metadata."""
        return LinearTopicModel(
            vectorizer=self._vectorizer,
            estimators=self._estimators,
            topics=self._topics,
            thresholds=thresholds,
            metadata=metadata,
        )

    def tokens(self, text: str) -> list[str]:
        """The model's own reading of a text: its preprocessing (lower case, accents stripped)
        and token pattern. ``predict_tokens`` of these equals ``predict`` of the text, so a caller
        that needs the words anyway (the rule matcher) tokenises once for both."""
        if self.plain_tokens:
            return tokenize_lower(lower_without_accents(text))
        v = self._vectorizer
        result: list[str] = v.build_tokenizer()(v.build_preprocessor()(text))
        return result

    @property
    def plain_tokens(self) -> bool:
        """True when this model reads a text as :func:`monitor.text.tokenize` does wherever
        :func:`monitor.text.is_plain` holds (its vectorizer has the standard reading: lower
        case, unicode accent stripping, runs of two or more word characters, word n-grams)."""
        if self._plain is None:
            v = self._vectorizer
            self._plain = (
                v.analyzer == "word"
                and v.preprocessor is None
                and v.tokenizer is None
                and v.lowercase
                and v.strip_accents == "unicode"
                and v.token_pattern == r"(?u)\b\w\w+\b"
                and v.stop_words is None
            )
        return self._plain

    def predict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        if not texts:
            return []
        return self._probabilities(self._vectorizer.transform(list(texts)))

    def predict_tokens(self, token_lists: Sequence[Sequence[str]]) -> list[dict[str, float]]:
        """``predict`` for texts already split by :meth:`tokens`."""
        if not token_lists:
            return []
        if self._features is None:
            self._features = TokenFeatures(self._vectorizer)
        return self._probabilities(self._features.transform(token_lists))

    def _probabilities(self, matrix: Any) -> list[dict[str, float]]:
        weights, intercepts, slopes, offsets = self._scorer()
        decisions = np.asarray(matrix @ weights) + intercepts
        # Sigmoid calibration of each fold's regression, averaged per topic: what
        # CalibratedClassifierCV.predict_proba computes, in one product instead of
        # topics x folds validated calls (27 ms per single article otherwise).
        calibrated = expit(-(slopes * decisions + offsets))
        rows = matrix.shape[0]
        probs = np.clip(calibrated.reshape(rows, len(self._topics), -1).mean(axis=2), 0, 1)
        return [dict(zip(self._topics, map(float, row), strict=True)) for row in probs]

    def _scorer(self) -> tuple[Any, Any, Any, Any]:
        if self._scoring is None:
            folds = max(len(est.calibrated_classifiers_) for est in self._estimators)
            if any(len(est.calibrated_classifiers_) != folds for est in self._estimators):
                raise ModelError("model", "topics were calibrated with different fold counts")
            parts = [c for est in self._estimators for c in est.calibrated_classifiers_]
            self._scoring = (
                np.column_stack([c.estimator.coef_[0].astype(np.float64) for c in parts]),
                np.array([float(c.estimator.intercept_[0]) for c in parts]),
                np.array([float(c.calibrators[0].a_) for c in parts]),
                np.array([float(c.calibrators[0].b_) for c in parts]),
            )
        return self._scoring

    def explain(self, text: str, *, top: int = 8) -> Explanation:
        names, coefficients = self._explainer()
        row = self._vectorizer.transform([text]).tocsr()
        indices, values = row.indices, row.data
        result: Explanation = {}
        for topic, coef in zip(self._topics, coefficients, strict=True):
            contributions = values * coef[indices]
            order = np.argsort(-contributions, kind="stable")
            up = [(str(names[indices[i]]), float(contributions[i])) for i in order[:top]]
            down_order = np.argsort(contributions, kind="stable")
            down = [(str(names[indices[i]]), float(contributions[i])) for i in down_order[:top]]
            result[topic] = {
                "up": [(term, value) for term, value in up if value > 0],
                "down": [(term, value) for term, value in down if value < 0],
            }
        return result

    def _explainer(self) -> tuple[Any, list[Any]]:
        # The calibration ensemble holds one logistic regression per fold; their mean
        # coefficients are the linear view of the topic that a reader can follow.
        if self._coefficients is None:
            self._feature_names = self._vectorizer.get_feature_names_out()
            self._coefficients = [
                np.mean([c.estimator.coef_[0] for c in est.calibrated_classifiers_], axis=0)
                for est in self._estimators
            ]
        return self._feature_names, self._coefficients

    def _archive(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "metadata_json": json.dumps(self._metadata, sort_keys=True),
            "topics": list(self._topics),
            "thresholds_json": json.dumps(self._thresholds, sort_keys=True),
            "vectorizer": self._vectorizer,
            "estimators": list(self._estimators),
        }


def sklearn_version() -> str:
    return str(sklearn.__version__)


def fit(
    texts: Sequence[str],
    labels: Sequence[Iterable[str]],
    *,
    topics: Sequence[str],
    seed: int,
    params: HyperParams | None = None,
) -> LinearTopicModel:
    """Fit the vectorizer and one calibrated model per topic; thresholds start at 0.5."""
    params = params or HyperParams()
    label_sets = [frozenset(ls) for ls in labels]
    vectorizer = TfidfVectorizer(
        ngram_range=(1, params.max_ngram),
        sublinear_tf=True,
        min_df=params.min_df,
        strip_accents="unicode",
        dtype=np.float32,
    )
    try:
        matrix = vectorizer.fit_transform(list(texts))
    except ValueError as exc:  # empty vocabulary: too little or too repetitive text
        raise DataError("training data", None, f"cannot build features: {exc}") from exc
    estimators = []
    for topic in topics:
        target = np.array([topic in ls for ls in label_sets], dtype=np.int64)
        positives = int(target.sum())
        folds = min(params.calibration_folds, positives, len(target) - positives)
        if folds < 2:
            raise DataError(
                "training data",
                None,
                f"topic {topic!r} has {positives} positive and {len(target) - positives} "
                "negative examples in a training split; at least 2 of each are needed",
            )
        base = LogisticRegression(
            C=params.c, class_weight="balanced", max_iter=2000, random_state=seed
        )
        estimator = CalibratedClassifierCV(base, method="sigmoid", cv=folds)
        estimator.fit(matrix, target)
        estimators.append(estimator)
    return LinearTopicModel(
        vectorizer=vectorizer,
        estimators=estimators,
        topics=topics,
        thresholds=dict.fromkeys(topics, 0.5),
    )


def save(model: LinearTopicModel, path: Path) -> None:
    """Write the model as a skops archive (never pickle), atomically."""
    data = canonical_bytes(sio.dumps(model._archive(), compression=zipfile.ZIP_DEFLATED))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a model is data other users may read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def canonical_bytes(data: bytes) -> bytes:
    """Rewrite a skops archive so equal models give equal bytes.

    skops names array members and memo ids after memory addresses and stamps members with the
    current time; we renumber both in order of appearance and use a fixed timestamp.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        schema = json.loads(source.read("schema.json"))
        ids: dict[int, int] = {}
        files: dict[str, str] = {}

        def renumber(node: Any) -> Any:
            if isinstance(node, dict):
                out: dict[str, Any] = {}
                for key, value in node.items():
                    if key == "__id__" and isinstance(value, int):
                        out[key] = ids.setdefault(value, len(ids) + 1)
                    elif key == "file" and isinstance(value, str) and value in source.namelist():
                        suffix = Path(value).suffix
                        out[key] = files.setdefault(value, f"{len(files) + 1:06d}{suffix}")
                    else:
                        out[key] = renumber(value)
                return out
            if isinstance(node, list):
                return [renumber(v) for v in node]
            return node

        schema = renumber(schema)
        members = [(new, source.read(old)) for old, new in files.items()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name, content in [*members, ("schema.json", json.dumps(schema, indent=2).encode())]:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, content)
    return buffer.getvalue()


def builtin_model_path() -> Path:
    return Path(str(resources.files("monitor") / "data" / "model.skops"))


def model_path(spec: str, base_dir: Path | None = None) -> Path:
    """The file of "builtin" or of a model path (relative paths resolve against ``base_dir``)."""
    if spec == "builtin":
        return builtin_model_path()
    path = Path(spec).expanduser()
    return base_dir / path if not path.is_absolute() and base_dir is not None else path


def load_model(
    spec: str,
    *,
    base_dir: Path | None = None,
    expected_topics: Iterable[str] | None = None,
) -> LinearTopicModel:
    """Load "builtin" or a model file path (relative paths resolve against ``base_dir``)."""
    path = model_path(spec, base_dir)
    model = load_path(path)
    if expected_topics is not None:
        expected = set(expected_topics)
        missing = sorted(expected - set(model.topics))
        extra = sorted(set(model.topics) - expected)
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing topics {', '.join(missing)}")
            if extra:
                parts.append(f"extra topics {', '.join(extra)}")
            raise ModelError(str(path), f"model was trained with other topics: {'; '.join(parts)}")
    return model


def load_path(path: Path) -> LinearTopicModel:
    name = str(path)
    try:
        if path.stat().st_size > MAX_MODEL_BYTES:
            raise ModelError(name, f"file is larger than {MAX_MODEL_BYTES} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(name, f"cannot read model file: {exc.strerror or exc}") from exc
    return load_bytes(data, source=name)


def load_bytes(data: bytes, *, source: str) -> LinearTopicModel:
    """Check every type in the archive against ALLOWED_TYPES, then build the model."""
    found = _types_in_archive(data, source)
    refused = sorted(found - ALLOWED_TYPES)
    try:
        untrusted = set(sio.get_untrusted_types(data=data))
    except Exception as exc:  # skops raises many kinds on malformed input
        raise ModelError(source, f"not a readable model file: {exc}") from exc
    refused += sorted(untrusted - ALLOWED_TYPES - set(refused))
    if refused:
        raise ModelError(source, f"refused: file contains disallowed types {', '.join(refused)}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            archive = sio.loads(data, trusted=sorted(untrusted))
        except Exception as exc:
            raise ModelError(source, f"not a readable model file: {exc}") from exc
    notes = [str(w.message) for w in caught if "version" in str(w.message).lower()]
    return _model_from_archive(archive, source, notes)


def _types_in_archive(data: bytes, source: str) -> set[str]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ModelError(source, f"not a skops model file (corrupt or foreign): {exc}") from exc
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node or "__module__" in node:
                found.add(f"{node.get('__module__')}.{node.get('__class__')}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _model_from_archive(archive: Any, source: str, notes: list[str]) -> LinearTopicModel:
    if not isinstance(archive, dict) or archive.get("format") != FORMAT:
        raise ModelError(source, "not a news-monitor topic model")
    version = archive.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(
            source, f"model format version {version} is not supported (expected {FORMAT_VERSION})"
        )
    try:
        metadata = json.loads(archive["metadata_json"])
        thresholds = json.loads(archive["thresholds_json"])
        topics = [str(t) for t in archive["topics"]]
        vectorizer = archive["vectorizer"]
        estimators = list(archive["estimators"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(source, f"incomplete model file: {exc}") from exc
    if not isinstance(vectorizer, TfidfVectorizer) or not all(
        isinstance(e, CalibratedClassifierCV) for e in estimators
    ):
        raise ModelError(source, "model parts are not of the expected kinds")
    if len(estimators) != len(topics) or set(thresholds) != set(topics):
        raise ModelError(source, "topics, thresholds and estimators do not agree")
    if not all(isinstance(v, int | float) and 0.0 <= v <= 1.0 for v in thresholds.values()):
        raise ModelError(source, "thresholds must be numbers in [0, 1]")
    trained_with = metadata.get("sklearn_version") if isinstance(metadata, dict) else None
    if trained_with and trained_with != sklearn_version():
        notes.insert(
            0,
            f"{source}: model was trained with scikit-learn {trained_with}, running "
            f"{sklearn_version()}; retrain it (monitor train) if scores look wrong",
        )
    for note in notes:
        log.warning("%s", note)
    return LinearTopicModel(
        vectorizer=vectorizer,
        estimators=estimators,
        topics=topics,
        thresholds=thresholds,
        metadata=metadata if isinstance(metadata, dict) else {},
        warnings=notes,
    )
