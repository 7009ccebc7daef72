"""One reading of text for rules and classifier: the shared tokens change no result."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.classifier import builtin_model_path, load_model
from monitor.match import RuleSet
from monitor.rules import load_rules
from monitor.score import Scorer
from monitor.text import (
    ArticleWords,
    is_plain,
    lower_without_accents,
    strip_table,
    tokenize,
    tokenize_lower,
)
from monitor.types import Article

SAMPLES = [
    "EU widens sanctions on Russia’s shadow fleet — 52 tankers listed",
    "Troops massed near the border; a convoy of T-72 tanks was seen at 5 a.m.",
    "Türkiye’s café owners say naïve résumé writers ﬁnd jobs",
    "Gas flows via Ukraine halted… transit fee dispute, said Gazprom",
    "",
    "a b c",
]

needs_model = pytest.mark.skipif(
    not builtin_model_path().exists(), reason="the builtin model file is not built"
)


def test_tokens_are_runs_of_two_or_more_word_characters() -> None:
    assert tokenize("The U.S. and EU-27 ban a T-72's 5 exports_2") == [
        "the",
        "and",
        "eu",
        "27",
        "ban",
        "72",
        "exports_2",
    ]


@given(
    st.text(alphabet=st.characters(max_codepoint=127), max_size=200)
    | st.text(max_size=200)
    | st.lists(
        st.sampled_from(["Kyiv", "’s", "café", "—", "\u00a0", "\u2028", "ǅ", "٣", "_", "a"])
    ).map(" ".join)
)
def test_tokens_are_the_runs_the_pattern_finds(text: str) -> None:
    # Text is split by turning non-word characters into spaces, not by the pattern.
    low = text.lower()
    assert tokenize_lower(low) == re.findall(r"\w\w+", low)


def test_is_plain_says_when_accent_stripping_changes_nothing() -> None:
    assert is_plain("plain ascii") and is_plain("Russia’s “quotes” — dash")
    assert not is_plain("café") and not is_plain("ﬁnd")
    for s in SAMPLES:
        if is_plain(s):
            assert lower_without_accents(s) == s.lower()


@needs_model
def test_model_reads_tokens_as_it_reads_text() -> None:
    model = load_model("builtin")
    direct = model.predict(SAMPLES)
    via_tokens = model.predict_tokens([model.tokens(s) for s in SAMPLES])
    for a, b in zip(direct, via_tokens, strict=True):
        assert a.keys() == b.keys()
        assert all(abs(a[k] - b[k]) < 1e-6 for k in a)  # float32 features
    for s in SAMPLES:
        if is_plain(s):
            assert model.tokens(s) == tokenize(s)


@needs_model
def test_scoring_with_shared_tokens_equals_scoring_without() -> None:
    model = load_model("builtin")
    rules: RuleSet = load_rules(["rules"])
    now = datetime(2026, 11, 1, tzinfo=UTC)
    articles = [
        Article(
            id=str(i),
            url="https://x/",
            title=t,
            text=t + " " + t,
            source="s",
            published=now,
            fetched_at=now,
        )
        for i, t in enumerate(SAMPLES)
    ]
    scored = Scorer(model, rules).score(articles)
    for s in scored:
        plain = rules.match(s.article, model.predict([f"{s.article.title}\n{s.article.text}"])[0])
        assert [(m.rule, m.score, m.hits) for m in s.matches] == [
            (m.rule, pytest.approx(m.score), m.hits) for m in plain
        ]


# Characters whose accent stripping keeps words as they are, and ones that would not.
_ALPHABET = "abcXYZ09_ -.,\n’—éÉñøÅçİıΣσς\u0301\u00a0Ａ²ﬁ½…ǅĳ℡"


@given(st.text(alphabet=_ALPHABET, max_size=40))
def test_words_of_the_stripped_text_are_the_translated_words_where_the_table_says_so(
    text: str,
) -> None:
    low = text.lower()
    table = strip_table(set(low))
    expected = tokenize_lower(lower_without_accents(text))
    if table is not None:
        assert [w.translate(table) for w in tokenize(text)] == expected


@given(st.text(alphabet=_ALPHABET, max_size=30), st.text(alphabet=_ALPHABET, max_size=40))
def test_an_article_is_read_once_as_the_matcher_and_the_classifier_each_read_it(
    title: str, text: str
) -> None:
    read = ArticleWords(title, text)
    assert (read.title, read.text) == (title.lower(), text.lower())
    assert (read.title_words, read.text_words) == (tokenize(title), tokenize(text))
    # The classifier's own reading of the document (title, newline, text).
    expected = tokenize_lower(lower_without_accents(f"{title}\n{text}"))
    if read.classifier is not None:
        assert read.classifier == expected
    else:  # only where translating the words cannot give its reading
        assert strip_table(set(title.lower() + text.lower())) is None


def test_plain_and_accented_articles_are_read_without_a_second_pass() -> None:
    assert ArticleWords("Gas “halted”", "Transit — fee").classifier == [
        "gas",
        "halted",
        "transit",
        "fee",
    ]
    assert ArticleWords("Café", "naïve").classifier == ["cafe", "naive"]
    assert ArticleWords("ﬁnd", "x").classifier is None


def test_strip_table_refuses_what_would_change_the_words() -> None:
    assert strip_table(set("caf\u00e9 na\u00efve")) == {ord("\u00e9"): "e", ord("\u00ef"): "i"}
    assert strip_table(set("\ufb01nd")) is None  # ligature: one letter becomes two
    assert strip_table(set("cafe\u0301s")) is None  # a lone mark would vanish and join words
    assert strip_table(set("\u00bd")) is None  # one half (a digit to \\w): "1⁄2"
    assert strip_table(set("\u2121")) is None  # the telephone sign, not a word: "TEL"
    assert strip_table(set("plain \u2019 \u2014 text")) == {}
