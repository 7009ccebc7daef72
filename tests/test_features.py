"""The array vectoriser over token lists equals scikit-learn's ``transform`` of the text."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

import monitor.features
from monitor.features import SMALL_BATCH, TokenFeatures
from monitor.text import tokenize

CORPUS = Path(__file__).parents[1] / "data" / "corpus"


def corpus_texts() -> list[str]:
    texts = []
    for path in sorted(CORPUS.glob("*/*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            obj = json.loads(line)
            texts.append(f"{obj.get('title', '')}\n{obj.get('summary', '')}")
    return texts


def fitted(texts: list[str], **options: Any) -> TfidfVectorizer:
    vectorizer = TfidfVectorizer(dtype=np.float32, **options)
    vectorizer.fit(texts)
    return vectorizer


def assert_same(vectorizer: TfidfVectorizer, texts: list[str]) -> None:
    analyse = vectorizer.build_tokenizer()
    preprocess = vectorizer.build_preprocessor()
    tokens = [analyse(preprocess(t)) for t in texts]
    expected = vectorizer.transform(texts)
    got = TokenFeatures(vectorizer).transform(tokens)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.indptr, expected.indptr)
    np.testing.assert_array_equal(got.indices, expected.indices)
    np.testing.assert_allclose(got.data, expected.data, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "options",
    [
        {"ngram_range": (1, 2), "sublinear_tf": True, "min_df": 2, "strip_accents": "unicode"},
        {"ngram_range": (1, 3), "min_df": 2},
        {"ngram_range": (2, 2), "norm": None},
        {"ngram_range": (1, 1), "use_idf": False},
    ],
)
def test_array_path_equals_transform(options: dict[str, Any]) -> None:
    texts = corpus_texts()
    assert len(texts) > 500
    vectorizer = fitted(texts[::2], **options)
    assert TokenFeatures.supports(vectorizer)
    rng = random.Random(7)
    batch = [*rng.sample(texts, 300), "", "unseen wordsxyz only", "a b c"]
    assert_same(vectorizer, batch)


def test_small_batches_and_batches_split_in_parts_give_the_same_matrix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = corpus_texts()
    vectorizer = fitted(texts, ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    assert_same(vectorizer, texts[: SMALL_BATCH - 1])  # the one-document-at-a-time path
    monkeypatch.setattr(monitor.features, "MAX_BATCH", 16)
    assert_same(vectorizer, texts[:100])


@pytest.mark.parametrize("cells_narrow", [False, True])
def test_keys_past_the_int32_range_are_sorted_as_int64(
    monkeypatch: pytest.MonkeyPatch, cells_narrow: bool
) -> None:
    texts = corpus_texts()[:100]
    vectorizer = fitted(corpus_texts(), ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    features = TokenFeatures(vectorizer)
    cells = len(texts) * features.n_features
    assert cells < features.n_words**2 * len(texts)  # so a limit can sit between the two
    # As if the bigram keys (and, but for cells_narrow, the cells too) went past int32.
    monkeypatch.setattr(monitor.features, "INT32_LIMIT", cells if cells_narrow else 0)
    assert_same(vectorizer, texts)


def test_unsupported_vectorisers_use_the_plain_path() -> None:
    texts = corpus_texts()[:200]
    vectorizer = fitted(texts, binary=True)
    assert not TokenFeatures.supports(vectorizer)
    assert_same(vectorizer, texts)


def test_shared_tokens_are_the_vectorisers_tokens() -> None:
    vectorizer = fitted(corpus_texts()[:50], ngram_range=(1, 2))
    analyse = vectorizer.build_tokenizer()
    preprocess = vectorizer.build_preprocessor()
    text = "The U.S. and EU-27 ban a T-72's 5 exports_2"
    assert analyse(preprocess(text)) == tokenize(text)
