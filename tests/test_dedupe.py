from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor import dedupe
from monitor.dedupe import (
    band_distance,
    bands,
    is_near_duplicate,
    same_story,
    signature,
    strip_boilerplate,
)
from monitor.normalize import fingerprint
from monitor.types import Article

PAIRS = Path(__file__).parent / "data" / "near_dup_pairs.jsonl"
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def article(doc: dict[str, Any], source: str = "s") -> Article:
    title, text = doc["title"], doc["text"]
    return Article(
        id=f"{source}:{title}",
        url="",
        title=title,
        text=text,
        source=source,
        published=NOW,
        fetched_at=NOW,
        fingerprint=fingerprint(title, text),
        signature=signature(title, text),
    )


def load_pairs() -> list[dict[str, Any]]:
    return [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines() if line]


def test_labelled_pairs_reach_the_precision_and_recall_targets() -> None:
    pairs = load_pairs()
    assert len(pairs) >= 60
    counts: Counter[str] = Counter()
    missed: list[str] = []
    for pair in pairs:
        a, b = article(pair["a"], "a"), article(pair["b"], "b")
        # What the pipeline does: a shared band makes a candidate, same_story decides.
        predicted = is_near_duplicate(a.signature, b.signature) and same_story(a, b)
        actual = pair["label"] == "same"
        counts[("t" if predicted == actual else "f") + ("p" if predicted else "n")] += 1
        if actual and not predicted:
            missed.append(pair["id"])
    precision = counts["tp"] / max(1, counts["tp"] + counts["fp"])
    recall = counts["tp"] / max(1, counts["tp"] + counts["fn"])
    print(f"\nnear-dup pairs={len(pairs)} {dict(counts)} P={precision:.3f} R={recall:.3f} {missed}")
    assert precision >= 0.95 and recall >= 0.9


def test_same_story_alone_separates_every_labelled_pair() -> None:
    for pair in load_pairs():
        a, b = article(pair["a"]), article(pair["b"])
        assert same_story(a, b) == (pair["label"] == "same"), pair["id"]


def test_signature_is_a_stable_unsigned_64_bit_int() -> None:
    sig = signature("t", "Oil prices rose more than 4 percent on Monday after OPEC+ agreed to cut.")
    assert 0 < sig < 2**128
    # Fixed value: signatures are stored, so they must not change between runs or processes.
    again = signature(
        "t", "Oil prices rose more than 4 percent on Monday after OPEC+ agreed to cut."
    )
    assert sig == again == 0x7090D779111D995A5BC00C45394B6F4F
    a, b, c, d = bands(sig)
    assert a | b << 32 | c << 64 | d << 96 == sig and all(0 <= x < 2**31 for x in (a, b, c, d))


def test_empty_text_has_no_signature_and_never_matches() -> None:
    assert signature("", "") == 0
    assert not is_near_duplicate(0, 0)
    sig = signature("x", "some words here to hash")
    assert is_near_duplicate(sig, sig) and band_distance(sig, sig) == 0
    assert not is_near_duplicate(sig, sig ^ (1 | 1 << 32 | 1 << 64 | 1 << 96))  # every band off


def test_bylines_datelines_and_agency_boilerplate_are_ignored() -> None:
    text = (
        "By Jane Smith and Oleg Petrov\n"
        "KYIV, June 3 (Reuters) - Troops moved north on Monday. By Tuesday, more arrived.\n"
        "Reporting by Jane Smith; Editing by Bob Jones\n"
        "Copyright 2025 Thomson Reuters. All rights reserved."
    )
    assert strip_boilerplate(text) == "Troops moved north on Monday. By Tuesday, more arrived."


def test_title_only_items_match_on_the_same_title_but_not_on_the_same_topic() -> None:
    title = "Russia and Ukraine agree a prisoner exchange of 300 soldiers"
    a = article({"title": title, "text": ""}, "a")
    b = article({"title": title.upper(), "text": ""}, "b")
    c = article({"title": "Russia and Ukraine agree a grain corridor deal", "text": ""}, "c")
    assert same_story(a, b) and not same_story(a, c)


def test_exact_duplicates_match_by_fingerprint() -> None:
    doc = {"title": "Short", "text": "tiny"}
    assert same_story(article(doc, "a"), article(doc, "b"))


# The boilerplate pattern as first written, in one piece.
_BOILERPLATE_REFERENCE = re.compile(
    r"""^\W*(?:
        (?:additional\s+)?(?:reporting|writing|editing|compiled|produced|fact-checked)\s+by\b
      | (?:copyright|©|\(c\))\b | .*\ball\s+rights\s+reserved\b
      | (?:click\s+here|sign\s+up|subscribe|read\s+more|related\s*:|follow\s+us|share\s+this)\b
      | our\s+standards\s*: | .*\btrust\s+principles\b
      | this\s+(?:story|article)\s+(?:was|has\s+been)\s+(?:corrected|updated)\b
      | (?:the\s+)?associated\s+press\s+contributed\b | contact\s+the\s+(?:author|reporter)\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)


def _strip_boilerplate_reference(text: str) -> str:
    """strip_boilerplate as first written: split into sentences, drop the boilerplate ones."""
    kept = [
        s
        for s in dedupe._SENTENCE_END.split(text)
        if s.strip() and not _BOILERPLATE_REFERENCE.match(s) and not dedupe._BYLINE.match(s)
    ]
    return dedupe._DATELINE.sub("", " ".join(kept), count=1)


_PIECES = [
    "Troops",
    "moved",
    "By",
    "by",
    "Jane Smith",
    "and",
    "Reuters",
    "KYIV (Reuters) -",
    "Reporting by",
    "Editing",
    "All Rights Reserved",
    "subscribe",
    "Read more",
    "related:",
    "trust principles",
    "Troops say all rights reserved",
    "ALL  RIGHTS\tRESERVED",
    "fact-checked",
    "(c)",
    "©",
    "ſubscribe",
    "wrıting",
    "’",
    "“Quote”",
    ".",
    "!",
    "?",
    ",",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\t",
    "\u00a0",
    "\u2028",
    "\0",
    "—",
]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(_PIECES), max_size=30).map(" ".join))
@example("Troops moved . \u00a0 Troops moved")  # a break only \\s sees
@example("By Jane Smith . ſubscribe now")  # matches the pattern, not the lower-cased words
@example("Troops moved ! wrıting by Jane Smith")
def test_boilerplate_shortcuts_change_nothing(text: str) -> None:
    assert strip_boilerplate(text) == _strip_boilerplate_reference(text)
    tidy = " ".join(text.split())  # single spaces: the shortcuts' own ground
    assert strip_boilerplate(tidy) == _strip_boilerplate_reference(tidy)


@given(st.text(alphabet="ab Z9_'’-.\né\t\x0b\x1c\x7f~`[]^@", max_size=30))
@example("Troops,moved;10_000\x1ftroops\x85")  # separators bytes.split alone would miss
def test_words_are_the_pattern_s_words_whatever_the_shortcut(text: str) -> None:
    expected = [w.casefold().replace("’", "'").encode() for w in dedupe._WORD.findall(text)]
    assert dedupe._words(text) == expected


@given(st.lists(st.sampled_from([*dedupe._BOILERPLATE_WORDS, "troops", "(", "-", " ", "é"])))
def test_boilerplate_words_are_found_wherever_substring_search_finds_them(parts: list[str]) -> None:
    low = "".join(parts)
    expected = any(w in low for w in dedupe._BOILERPLATE_WORDS)
    assert dedupe._has_boilerplate_words(low) is expected


# ----------------------------------------------------------- the C extension's arithmetic
# Words of several scripts and lengths (a multi-byte UTF-8 word hashes its bytes), so that texts
# fall on both sides of every branch: no words, fewer than a shingle, fewer than MIN_SHINGLES
# (title and body together), longer than the lead.
_SIG_WORDS = st.sampled_from(["troops", "oil", "a", "Ödön", "δρόμος", "中文", "x_1", "it's", "7"])


@settings(max_examples=300)
@given(
    title=st.lists(_SIG_WORDS, max_size=4).map(" ".join),
    body=st.lists(_SIG_WORDS, max_size=90).map(" ".join),
)
@example(title="", body="")
@example(title="", body="oil")
@example(title="Troops", body="oil a")
def test_signature_in_c_is_the_numpy_signature(title: str, body: str) -> None:
    if dedupe._MINHASHES is None:
        pytest.skip("installed without compiling (MONITOR_PURE_PYTHON=1)")
    assert signature(title, body) == dedupe._signature_of_arrays(title, body)


def test_minhashes_are_the_minimum_of_the_mixed_shingles() -> None:
    minhashes = dedupe._MINHASHES
    if minhashes is None:
        pytest.skip("installed without compiling (MONITOR_PURE_PYTHON=1)")
    words = [b"oil", b"prices", b"rose", b"after", b"talks", b"\xc3\xa9t\xc3\xa9"]
    grams = dedupe._hash_array(words)
    seeds = (3, 5)
    expected = tuple(
        int(dedupe._mix(grams[:limit] ^ np.uint64(s)).min())
        for s, limit in zip(seeds, (4, 2), strict=True)
    )
    assert minhashes(words, dedupe._POSITION_INTS, seeds, (4, 2)) == expected
    # A limit past the last shingle is the last shingle.
    assert minhashes(words, dedupe._POSITION_INTS, (3,), (99,)) == minhashes(
        words, dedupe._POSITION_INTS, (3,), (len(grams),)
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (([], (1, 2, 3), (1,), (1,)), TypeError),  # no words
        (([b"a", "b"], (1, 2, 3), (1,), (1,)), TypeError),  # a str among the words
        (([b"a"], (), (1,), (1,)), TypeError),  # no positions
        (([b"a"], (1, -2), (1,), (1,)), OverflowError),  # not a 64-bit unsigned multiplier
        (([b"a"], (1,), (1, 2), (1,)), ValueError),  # a seed without a limit
        (([b"a"], (1,), (1,), (0,)), ValueError),  # a limit of no shingle
        (([b"a"], (1,), (1,)), TypeError),  # an argument missing
    ],
)
def test_minhashes_refuses_what_it_cannot_hash(
    args: tuple[Any, ...], error: type[Exception]
) -> None:
    minhashes = dedupe._MINHASHES
    if minhashes is None:
        pytest.skip("installed without compiling (MONITOR_PURE_PYTHON=1)")
    with pytest.raises(error):
        minhashes(*args)
