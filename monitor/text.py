"""How text is read as words, shared by the rule matcher and the classifier.

Tokenising is a large share of scoring's cost, so the scorer does it once per field and hands the
same words to both. The rule matcher's reading is :func:`tokenize`; the classifier reads a text
the same way whenever :func:`is_plain` holds (nothing for its accent stripping to change), and
otherwise, in most texts, as those words translated by :func:`strip_table`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable

# Tokens are the runs of two or more word characters (``\w\w+``). Rather than test each character
# in turn as the pattern does, every character that is not a word character becomes a space and
# the text is split on whitespace: the same runs, in about half the time. ASCII characters are
# translated by a table (as bytes where the text is not ASCII: UTF-8 leaves every other character's
# bytes alone); the few distinct non-ASCII ones that are not word characters (curly quotes, dashes)
# are replaced one by one.
_ASCII_NON_WORD = [i for i in range(128) if not (chr(i).isalnum() or chr(i) == "_")]
_TO_SPACE = str.maketrans(dict.fromkeys(_ASCII_NON_WORD, " "))
# For bytes.translate: ASCII bytes that are not word characters -> space, all others unchanged.
BYTES_NON_WORD_TO_SPACE = bytes(32 if i in _ASCII_NON_WORD else i for i in range(256))
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


# CPython's str.lower, called as an object: compiled by mypyc, ``text.lower()`` becomes mypyc's own
# case mapping, which before Python 3.13 lacks the final-sigma rule ("ΟΔΟΣ" -> "οδοσ", not "οδος").
_PY_LOWER: Callable[[str], str] = str.lower


def lower(text: str) -> str:
    """``text.lower()`` exactly as Python computes it, compiled or not."""
    return text.lower() if text.isascii() else _PY_LOWER(text)


def tokenize(text: str) -> list[str]:
    """Maximal runs of two or more word characters of the lower-cased text."""
    return tokenize_lower(lower(text))


def tokenize_lower(low: str) -> list[str]:
    """:func:`tokenize` of a text that is already lower-case."""
    return _words(low, _non_ascii(low))


def _non_ascii(low: str) -> set[str]:
    """The distinct non-ASCII characters of a text."""
    return set() if low.isascii() else set(_NON_ASCII.findall(low))


def _words(low: str, non_ascii: set[str]) -> list[str]:
    """:func:`tokenize_lower`, given the text's non-ASCII characters."""
    for c in non_ascii:
        if not is_word_char(c):
            low = low.replace(c, " ")
    if low.isascii():  # often so once the curly quotes and dashes are gone
        spaced = low.translate(_TO_SPACE)
    else:
        raw = low.encode("utf-8", "surrogatepass").translate(BYTES_NON_WORD_TO_SPACE)
        spaced = raw.decode("utf-8", "surrogatepass")
    return [w for w in spaced.split() if len(w) > 1]


class ArticleWords:
    """An article's title and text as the scorer reads them, each once: lower-cased, as the rule
    matcher's tokens, and as the classifier's tokens where its reading of the text is those words
    (``classifier`` is None where it must read the text itself; see :func:`strip_table`)."""

    def __init__(self, title: str, text: str) -> None:
        self.title = lower(title)
        self.text = lower(text)
        title_chars, text_chars = _non_ascii(self.title), _non_ascii(self.text)
        self.title_words = _words(self.title, title_chars)
        self.text_words = _words(self.text, text_chars)
        both = self.title_words + self.text_words
        self.classifier: list[str] | None = both
        if title_chars or text_chars:
            # The classifier strips accents first; most texts' words just translate.
            table = strip_table(title_chars | text_chars)
            if table is None:
                self.classifier = None
            elif table:
                self.classifier = [w if w.isascii() else w.translate(table) for w in both]


def is_plain(text: str) -> bool:
    """True when stripping accents (NFKD, combining marks removed) would not change the text."""
    if text.isascii():
        return True
    if not unicodedata.is_normalized("NFKD", text):
        return False
    return not any(unicodedata.combining(c) for c in set(text) if not c.isascii())


def lower_without_accents(text: str) -> str:
    """scikit-learn's ``strip_accents="unicode"`` of the lower-cased text, without its
    per-character Python loop: NFKD, then every combining mark deleted in one translate."""
    low = lower(text)
    if low.isascii():
        return low
    decomposed = unicodedata.normalize("NFKD", low)
    marks = {c for c in set(decomposed) if unicodedata.combining(c)}
    return decomposed.translate(dict.fromkeys(map(ord, marks))) if marks else decomposed


def strip_table(chars: Iterable[str]) -> dict[int, str] | None:
    """How accent stripping (:func:`lower_without_accents`) changes these lower-case characters,
    as a ``str.translate`` table, when the words of the stripped text are exactly the words of
    the text, each translated: every non-ASCII word character becomes one word character and
    every other character only non-word characters. None when that does not hold (a ligature
    that becomes two letters, a lone combining mark that would vanish and join two words)."""
    table: dict[int, str] = {}
    for c in chars:
        if c.isascii():
            continue
        decomposed = unicodedata.normalize("NFKD", c)
        stripped = "".join(x for x in decomposed if not unicodedata.combining(x))
        if is_word_char(c):
            if len(stripped) != 1 or not is_word_char(stripped):
                return None
            if stripped != c:
                table[ord(c)] = stripped
        elif not stripped or any(is_word_char(x) for x in stripped):
            return None
    return table


def is_word_char(ch: str) -> bool:
    """What ``\\w`` matches in a str pattern: letters and digits of any script, and ``_``."""
    return ch.isalnum() or ch == "_"
