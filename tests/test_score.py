"""Scorer: one classifier batch, then the compiled rules; and the JSON article adapter."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.errors import DataError
from monitor.interfaces import Explanation, TopicModel
from monitor.rules import load_rules
from monitor.score import Scorer, article_from_json, read_articles, scored_json
from monitor.types import Article

PACK = Path(__file__).parents[1] / "rules"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
THREE_TOPICS = (
    "The leader threatened to cut transit routes and boycott a neighbour's ports if sanctions "
    "are imposed, while ordering troops to combat readiness."
)


class KeywordModel:
    """A real (tiny) TopicModel: a topic's probability grows with its keywords in the text."""

    KEYWORDS: Mapping[str, tuple[str, ...]] = {
        "sanctions": ("sanction", "embargo"),
        "troop-movements": ("troop", "army"),
        "energy-transit": ("pipeline", "transit"),
    }

    def __init__(self) -> None:
        self.batches: list[int] = []

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(self.KEYWORDS)

    @property
    def thresholds(self) -> Mapping[str, float]:
        return dict.fromkeys(self.KEYWORDS, 0.5)

    def predict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        self.batches.append(len(texts))
        out = []
        for text in texts:
            low = text.lower()
            out.append(
                {
                    t: min(1.0, 0.3 * sum(low.count(k) for k in ks))
                    for t, ks in self.KEYWORDS.items()
                }
            )
        return out

    def explain(self, text: str, *, top: int = 8) -> Explanation:
        low = text.lower()
        return {
            t: {"up": [(k, 0.3) for k in ks if k in low][:top], "down": []}
            for t, ks in self.KEYWORDS.items()
        }


def article(title: str, text: str = "") -> Article:
    return Article(
        id=title[:10], url="", title=title, text=text, source="wire", published=NOW, fetched_at=NOW
    )


def test_keyword_model_honours_the_protocol() -> None:
    assert isinstance(KeywordModel(), TopicModel)


def test_scores_a_batch_with_one_classifier_call() -> None:
    model = KeywordModel()
    scorer = Scorer(model, load_rules([PACK], topics=set(model.topics)))
    results = scorer.score(
        [article("Leader threatens neighbour", THREE_TOPICS), article("Local bakery wins prize")]
    )
    assert model.batches == [2]
    first, second = results
    assert {m.topic for m in first.matches} == set(model.topics)
    assert second.matches == ()
    assert first.topics["sanctions"] == pytest.approx(0.3)
    measures = next(m for m in first.matches if m.rule == "sanctions-measures")
    assert measures.classifier == pytest.approx(0.3)
    assert 0.0 < measures.score <= 1.0
    assert any(h.term == "sanction" and h.matched == "sanctions" for h in measures.hits)


def test_classifier_rules_fire_from_the_model() -> None:
    model = KeywordModel()
    scorer = Scorer(model, load_rules([PACK], topics=set(model.topics)))
    (result,) = scorer.score([article("Embargo, embargo, sanctions", "An embargo on the regime.")])
    assert "sanctions-classifier" in {m.rule for m in result.matches}


def test_explain_carries_terms_conditions_and_classifier_top_terms() -> None:
    scorer = Scorer(KeywordModel(), load_rules([PACK]))
    (result,) = scorer.score([article("Leader threatens neighbour", THREE_TOPICS)], explain=True)
    assert result.explanation is not None
    assert result.explanation["classifier"]["sanctions"]["up"] == [["sanction", 0.3]]
    data = scored_json(result, explain=True)
    why = data["explain"]["rules"]["troops-readiness"]
    assert why["matched"] is True
    assert {
        "field": "text",
        "term": "combat readiness",
        "start": THREE_TOPICS.index("combat"),
        "end": THREE_TOPICS.index("combat") + len("combat readiness"),
        "matched": "combat readiness",
    } in why["hits"]
    assert why["conditions"]["passed"] is True


def test_without_a_model_topics_are_empty_and_term_rules_still_fire() -> None:
    scorer = Scorer(None, load_rules([PACK]))
    (result,) = scorer.score([article("Leader threatens neighbour", THREE_TOPICS)])
    assert result.topics == {}
    assert {m.topic for m in result.matches} == {"sanctions", "troop-movements", "energy-transit"}
    assert scorer.score([]) == []


def test_article_from_json_merges_summary_and_content() -> None:
    a = article_from_json(
        {
            "id": "x1",
            "title": " T ",
            "summary": "S.",
            "content": "C.",
            "url": "https://e/1",
            "source": "wire",
            "extra": [1],
            "published": "2026-01-02T03:04:05Z",
        }
    )
    assert (a.id, a.title, a.text, a.url, a.source) == (
        "x1",
        "T",
        "S.\n\nC.",
        "https://e/1",
        "wire",
    )
    assert a.published == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"title": 5}', "title: expected a string"),
        (b'{"published": "yesterday"}', "published: 'yesterday' is not an ISO 8601 date-time"),
    ],
)
def test_invalid_lines_are_data_errors_with_file_and_line(line: bytes, reason: str) -> None:
    stream = io.BytesIO(b'{"id": "ok", "title": "fine"}\n\n' + line + b"\n")
    with pytest.raises(DataError) as info:
        list(read_articles(stream, "in.jsonl"))
    assert str(info.value).startswith(f"in.jsonl:3: {reason}")


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_loaded_scorer_is_kept_off_the_cyclic_collector_and_a_replaced_one_is_freed() -> None:
    import gc
    import weakref

    from monitor.score import load_scorer, settle_heap

    try:
        scorer = load_scorer(model="none", rule_paths=["rules"], channels=None)
        assert gc.get_freeze_count() > 0  # the compiled rules among them
        assert scorer.rules.rules
        old = _Node()
        gone = weakref.ref(old)
        settle_heap()  # `old` stands for a rule set about to be replaced: frozen with the rest
        del old
        gc.collect()
        assert gone() is not None  # frozen: a full collection does not look at it
        settle_heap()  # the next load unfreezes first
        assert gone() is None
    finally:
        gc.unfreeze()


def test_scoring_a_batch_runs_no_automatic_collection_once_a_scorer_is_loaded() -> None:
    import gc

    from monitor.score import load_scorer

    before = gc.get_threshold()
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    try:
        scorer = load_scorer(model="none", rule_paths=["rules"], channels=None)
        batch = [article(f"Report {i}", THREE_TOPICS) for i in range(100)]
        gc.collect()
        gc.callbacks.append(count)
        scored = scorer.score(batch)
        gc.callbacks.remove(count)
        assert sum(len(s.matches) for s in scored) >= 100  # a batch that keeps its matches
        assert collections == []
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
