"""A fitted TF-IDF vectoriser applied to already-split words, with array operations.

scikit-learn's ``TfidfVectorizer.transform`` builds every n-gram as a string and looks it up one
at a time. The scorer has the words of each article anyway (the rule matcher needs them), so
:class:`TokenFeatures` maps each word to an integer once, forms n-gram keys arithmetically over
the whole batch, and finds them with a binary search in the vocabulary's sorted keys. Counting,
sublinear tf, idf and normalisation are the fitted vectoriser's own steps, in its dtype, so the
matrix equals ``transform`` of the text (``tests/test_text.py`` checks it).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix, vstack

SMALL_BATCH = 8  # below this many documents, array passes cost more than they save
MAX_BATCH = 4096  # documents per array pass (keys carry the document in their low digits)
# Arrays whose values cannot exceed this are sorted as int32: half the bytes of int64, and about
# half the time (np.unique of a batch's 60,000 cells: 1.8 against 3.3 ms).
INT32_LIMIT = int(np.iinfo(np.int32).max)


class TokenFeatures:
    """``transform`` for lists of tokens, built from a fitted word n-gram TfidfVectorizer."""

    def __init__(self, vectorizer: Any) -> None:
        self.vectorizer = vectorizer
        self.fast = self.supports(vectorizer)
        self.lo, self.hi = vectorizer.ngram_range
        self.dtype = vectorizer.dtype
        self.sublinear = bool(vectorizer.sublinear_tf)
        self.norm = vectorizer.norm
        self.idf = np.asarray(vectorizer.idf_, dtype=self.dtype) if vectorizer.use_idf else None
        vocabulary: dict[str, int] = vectorizer.vocabulary_
        self.n_features = len(vocabulary)
        words = sorted({w for term in vocabulary for w in term.split(" ")})
        self.ids: dict[str, int] = {w: i for i, w in enumerate(words)}
        self.n_words = max(len(words), 1)
        by_length: dict[int, list[tuple[int, int]]] = {}
        for term, feature in vocabulary.items():
            key = 0
            parts = term.split(" ")
            for w in parts:
                key = key * self.n_words + self.ids[w]
            by_length.setdefault(len(parts), []).append((key, feature))
        # word id -> its unigram feature (or -1)
        self.unigrams = np.full(self.n_words, -1, dtype=np.int64)
        for word, i in self.ids.items():
            self.unigrams[i] = vocabulary.get(word, -1)
        self.keys: dict[int, Any] = {}
        self.features: dict[int, Any] = {}
        for n, pairs in by_length.items():
            pairs.sort()
            self.keys[n] = np.array([k for k, _f in pairs], dtype=np.int64)
            self.features[n] = np.array([f for _k, f in pairs], dtype=np.int64)

    @staticmethod
    def supports(vectorizer: Any) -> bool:
        """Word n-grams with counts, the standard tf-idf options, and keys that fit 64 bits."""
        lo, hi = vectorizer.ngram_range
        words = {w for term in vectorizer.vocabulary_ for w in term.split(" ")}
        return (
            vectorizer.analyzer == "word"
            and not vectorizer.binary
            and vectorizer.norm in ("l2", None)
            and 1 <= lo <= hi
            and (len(words) + 1) ** hi * MAX_BATCH < 2**62
        )

    def transform(self, docs: Sequence[Sequence[str]]) -> csr_matrix:
        """The tf-idf matrix of these token lists, as the vectoriser's ``transform`` gives."""
        if not self.fast or len(docs) < SMALL_BATCH:
            return self.vectorizer._tfidf.transform(self._counts(docs), copy=False)
        if len(docs) > MAX_BATCH:
            return vstack(
                [self.transform(docs[i : i + MAX_BATCH]) for i in range(0, len(docs), MAX_BATCH)],
                format="csr",
            )
        n_docs = len(docs)
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=n_docs)
        flat = list(itertools.chain.from_iterable(docs))
        ids = np.fromiter(
            map(self.ids.get, flat, itertools.repeat(-1)), dtype=np.int64, count=len(flat)
        )
        doc_of = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
        # How many tokens of its document follow each token (itself included).
        left = np.repeat(np.cumsum(lengths), lengths) - np.arange(len(flat), dtype=np.int64)
        found: list[Any] = []  # document * n_features + feature, one per n-gram occurrence
        for n in range(self.lo, self.hi + 1):
            if n not in self.keys:
                continue
            at = np.flatnonzero((left >= n) & (ids >= 0))
            if n == 1:
                feature = self.unigrams[ids[at]]
                known = feature >= 0
                found.append(doc_of[at[known]] * self.n_features + feature[known])
                continue
            key = ids[at]
            for k in range(1, n):
                following = ids[at + k]
                known = following >= 0
                at, key = at[known], key[known] * self.n_words + following[known]
            # Sorted needles make the binary search walk memory in order (4x faster); the
            # document rides along in the low digits.
            needles = key * n_docs + doc_of[at]
            if self.n_words**n * n_docs <= INT32_LIMIT:  # above every needle
                needles = needles.astype(np.int32)
            key, doc = np.divmod(np.sort(needles), n_docs)
            keys = self.keys[n]
            pos = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
            hit = keys[pos] == key
            found.append(doc[hit].astype(np.int64) * self.n_features + self.features[n][pos[hit]])
        cells = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
        if n_docs * self.n_features <= INT32_LIMIT:
            cells = cells.astype(np.int32)
        cells, counts = np.unique(cells, return_counts=True)
        row, col = np.divmod(cells, self.n_features)
        data = counts.astype(self.dtype)
        if self.sublinear:
            np.log(data, out=data)
            data += 1
        if self.idf is not None:
            data *= self.idf[col]
        if self.norm == "l2":
            norms = np.sqrt(np.bincount(row, weights=data * data, minlength=n_docs))
            norms[norms == 0] = 1.0
            data /= norms.astype(self.dtype)[row]
        indptr = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(np.bincount(row, minlength=n_docs), out=indptr[1:])
        return csr_matrix((data, col, indptr), shape=(n_docs, self.n_features))

    def _counts(self, docs: Sequence[Sequence[str]]) -> csr_matrix:
        """The raw n-gram counts, one document at a time (small batches, other vectorisers)."""
        vocabulary = self.vectorizer.vocabulary_
        indptr: list[int] = [0]
        indices: list[int] = []
        counts: list[int] = []
        lo, hi = self.lo, self.hi
        for toks in docs:
            # Built with map/zip so the loops run in C.
            feats: list[Any] = list(toks) if lo == 1 else []
            for n in range(max(2, lo), hi + 1):
                feats += map(" ".join, zip(*(toks[i:] for i in range(n)), strict=False))
            found = Counter(map(vocabulary.get, feats))
            found.pop(None, None)
            indices += found.keys()
            counts += found.values()
            indptr.append(len(indices))
        matrix = csr_matrix(
            (np.asarray(counts, dtype=np.float64), np.asarray(indices, dtype=np.int64), indptr),
            shape=(len(docs), len(vocabulary)),
        )
        matrix.sort_indices()
        if self.vectorizer.binary:
            matrix.data[:] = 1
        return matrix
