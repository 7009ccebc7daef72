"""The C extension's one pass over a text finds the tokens and words where ``\\w+`` does."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor import matchnodes
from monitor.text import tokenize_lower

c_pass = matchnodes.TOKEN_PLACES
if c_pass is None:  # installed with MONITOR_PURE_PYTHON=1
    if os.environ.get("MONITOR_TEST_COMPILED_REQUIRED") == "1":
        pytest.fail("MONITOR_TEST_COMPILED_REQUIRED=1 but monitor._scan is not built")
    pytest.skip("installed without compiling (MONITOR_PURE_PYTHON=1?)", allow_module_level=True)
token_places = c_pass

# Word and non-word characters of several scripts and widths: ASCII, Latin-1, Greek, CJK, and
# astral (four bytes a character in CPython's representation), digits, underscore, marks.
_chars = st.sampled_from(list("ab_2 -.,\n\t’é\u00a0ΟδςÅ中文\U0001d400\u0301"))
_texts = st.lists(_chars, max_size=60).map("".join).map(str.lower)


@given(text=_texts, pick=st.integers(0, 2**16))
def test_places_are_where_the_wanted_tokens_stand(text: str, pick: int) -> None:
    words = tokenize_lower(text)
    runs = [(m.start(), m.group()) for m in re.finditer(r"\w+", text)]
    tokens = [(n, start, word) for n, (start, word) in enumerate(runs) if len(word) > 1]
    assert [w for _n, _s, w in tokens] == words  # the tokeniser's reading, which the pass uses
    wanted = {w for i, w in enumerate(sorted(set(words))) if pick >> (i % 16) & 1}
    wanted.add("absent")
    expected: dict[str, list[int]] = {}
    for i, (n, start, word) in enumerate(tokens):
        if word in wanted:
            expected.setdefault(word, []).extend((i, start, n))
    assert token_places(text, words, wanted) == expected


@pytest.mark.parametrize(
    "words",
    [
        ["troops", "massed"],  # one token missing
        ["troops", "massed", "border", "again"],  # one too many
        ["troops", "massed", "borders"],  # another length
        [],
    ],
)
def test_tokens_of_another_text_give_none(words: list[str]) -> None:
    assert token_places("troops massed, border", words, {"troops"}) is None
    assert token_places("troops massed, border", ["troops", "massed", "border"], {"troops"}) == {
        "troops": [0, 0, 0]
    }


def test_wrong_argument_types_are_refused() -> None:
    with pytest.raises(TypeError):
        token_places("text", ("text",), {"text"})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        token_places("text", ["text"])  # type: ignore[call-arg]


def test_new_tuple_makes_the_named_tuple_its_constructor_would() -> None:
    from monitor._scan import new_tuple
    from monitor.types import RuleMatch, TermHit

    hit = new_tuple(TermHit, "text", "ban", 4, 7, "ban")
    assert type(hit) is TermHit
    assert hit == TermHit("text", "ban", 4, 7, "ban")
    assert hit.start == 4 and hit.matched == "ban"
    match = new_tuple(RuleMatch, "r", "t", "high", 0.5, (hit,), None, (), None)
    assert match == RuleMatch("r", "t", "high", 0.5, (hit,), None, (), None)
    assert match._replace(score=0.75).score == 0.75  # still a full named tuple
    assert matchnodes.new_tuple is new_tuple
    with pytest.raises(TypeError, match="subclass tuple"):
        new_tuple(list, 1, 2)  # type: ignore[type-var]
    with pytest.raises(TypeError):
        new_tuple()  # type: ignore[call-arg]
