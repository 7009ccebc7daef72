"""Scoring: the classifier over a batch, then the compiled rules; the daemon and the CLI share it.

Also a small adapter from JSON article objects (the input of ``monitor score``) to Articles, built
the way the normaliser builds them: text = summary + content.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from monitor.errors import DataError
from monitor.interfaces import TokenTopicModel, TopicModel, document_text
from monitor.match import RuleSet
from monitor.text import ArticleWords
from monitor.types import Article, Scored


def load_scorer(
    *,
    model: str,
    rule_paths: Sequence[str | Path],
    channels: Iterable[str] | None,
    base_dir: Path | None = None,
) -> Scorer:
    """The classifier named by ``model`` (``"none"``, ``"builtin"`` or a file) and the rule files,
    validated against the classifier's topics and, when known, the configured channels. The
    daemon, ``rules test`` and ``score`` all build their scorer here (raises on any error)."""
    from monitor.rules import load_rules

    topic_model: TopicModel | None = None
    if model != "none":
        from monitor.classifier import load_model  # scikit-learn loads only when asked for

        topic_model = load_model(model, base_dir=base_dir)
    rules = load_rules(
        rule_paths,
        topics=set(topic_model.topics) if topic_model is not None else None,
        channels=set(channels) if channels is not None else None,
    )
    scorer = Scorer(topic_model, rules)
    settle_heap()
    return scorer


# Net container allocations between two automatic collections of the youngest generation
# (CPython's default is 700). Scoring a batch keeps its results alive to the end of the batch
# (about 90 matches and evidence objects an article at 10,000 rules), so with 700 the collector
# ran about every eight articles and walked them all, then again in the next generation: 37 us
# an article at 10,000 rules, measured with ``gc.callbacks``, to find nothing (reference counting
# frees a batch's objects). At 10,000 a batch of 100 articles runs none; cycles, which nothing
# here makes, wait for the next 10,000 allocations. A higher threshold already set is kept.
YOUNG_COLLECTION_THRESHOLD = 10_000


def settle_heap() -> None:
    """Keep the cyclic garbage collector off what was just loaded and lives on (the model, the
    compiled rules: half a million objects at 10,000 rules). Without this, every full collection
    walks all of them: about 0.4 s, once every few thousand articles scored at 10,000 rules,
    146 us an article on average (measured with ``gc.callbacks``). Objects frozen before are
    released first, so a rule set replaced by a reload can still be collected. Memory is still
    freed by reference counting; only cycles among frozen objects wait for the next call.
    Also raises the youngest generation's threshold to ``YOUNG_COLLECTION_THRESHOLD``."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    young, *older = gc.get_threshold()
    if young < YOUNG_COLLECTION_THRESHOLD:
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *older)


# Title and text as the rule matcher reads them: their tokens, and their text lower-cased.
Reading = tuple[dict[str, list[str]], dict[str, str]]


class Scorer:
    """``Scorer(model, rules).score(articles)``; ``model`` None means rules only."""

    def __init__(self, model: TopicModel | None, rules: RuleSet) -> None:
        self.model = model
        self.rules = rules

    def probabilities(self, articles: Sequence[Article]) -> list[dict[str, float]]:
        return self._read(articles)[0]

    def _read(
        self, articles: Sequence[Article]
    ) -> tuple[list[dict[str, float]], list[Reading | None]]:
        """Classifier probabilities, and title and text as the rule matcher reads them.

        Tokenising is a large share of the cost, so with a model that reads plain text the way
        the matcher does, each field is split once for both.
        """
        model = self.model
        if model is None or not articles:
            return [{} for _ in articles], [None] * len(articles)
        if not (isinstance(model, TokenTopicModel) and model.plain_tokens):
            # One batch: vectorising dominates the classifier's cost and batches amortise it.
            texts = [document_text(a.title, a.text) for a in articles]
            return model.predict(texts), [None] * len(articles)
        words: list[Reading | None] = []
        docs: list[list[str]] = []
        for a in articles:
            read = ArticleWords(a.title, a.text)
            words.append(
                (
                    {"title": read.title_words, "text": read.text_words},
                    {"title": read.title, "text": read.text},
                )
            )
            if read.classifier is not None:
                docs.append(read.classifier)
            else:
                docs.append(model.tokens(document_text(a.title, a.text)))
        return model.predict_tokens(docs), words

    def score(self, articles: Sequence[Article], *, explain: bool = False) -> list[Scored]:
        out = []
        probabilities, words = self._read(articles)
        for article, probs, reading in zip(articles, probabilities, words, strict=True):
            tokens, lowered = reading or (None, None)
            matches = self.rules.match(
                article, probs, explain=explain, tokens=tokens, lowered=lowered
            )
            explanation: dict[str, Any] | None = None
            if explain:
                explanation = {"classifier": self._explain_model(article)}
            out.append(
                Scored(article=article, topics=probs, matches=matches, explanation=explanation)
            )
        return out

    def _explain_model(self, article: Article) -> Mapping[str, Any] | None:
        if self.model is None:
            return None
        terms = self.model.explain(document_text(article.title, article.text))
        return {
            topic: {side: [[t, round(float(w), 4)] for t, w in pairs] for side, pairs in d.items()}
            for topic, d in terms.items()
        }


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected a string")
    return value.strip()


def _when(value: Any) -> datetime:
    if value in (None, ""):
        return _EPOCH
    if not isinstance(value, str):
        raise ValueError("published: expected an ISO 8601 date-time string")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"published: {value!r} is not an ISO 8601 date-time") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def article_from_json(obj: Any, *, index: int = 0) -> Article:
    """A JSON object (id, title, summary, content, url, source, published) -> Article."""
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    title = _text(obj, "title")
    text = "\n\n".join(p for p in (_text(obj, "summary"), _text(obj, "content")) if p)
    ident = obj.get("id")
    if ident is not None and not isinstance(ident, str | int):
        raise ValueError("id: expected a string")
    url = _text(obj, "url")
    published = _when(obj.get("published"))
    return Article(
        id=str(ident) if ident is not None else (url or f"line-{index}"),
        url=url,
        title=title,
        text=text,
        source=_text(obj, "source"),
        published=published,
        fetched_at=published,
    )


def read_articles(stream: IO[bytes], file: str) -> Iterator[Article]:
    """Articles from JSON Lines; an invalid line is a DataError naming the file and line."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            yield article_from_json(orjson.loads(line), index=number)
        except orjson.JSONDecodeError as exc:
            raise DataError(file, number, f"not valid JSON: {exc}") from None
        except ValueError as exc:
            raise DataError(file, number, str(exc)) from None


def scored_json(scored: Scored, *, explain: bool = False) -> dict[str, Any]:
    """The ``monitor score`` output object for one article."""
    out: dict[str, Any] = {
        "id": scored.article.id,
        "topics": {t: round(p, 4) for t, p in scored.topics.items()},
        "alerts": [
            {"rule": m.rule, "topic": m.topic, "score": m.score, "severity": m.severity}
            for m in scored.matches
        ],
    }
    if explain:
        out["explain"] = {
            "classifier": (scored.explanation or {}).get("classifier"),
            "rules": {m.rule: m.explanation for m in scored.matches},
        }
    return out
