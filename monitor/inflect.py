"""Terms as analysts write them -> the regular-expression bodies that find them.

A term is one word or a phrase of words. Unless it is exact, the LAST word of the term also
matches its regular English inflections (see :func:`forms`); the other words match as written.
Words of a phrase are separated in the text by whitespace or hyphens (any number). Matching is
case-insensitive and on word boundaries: the characters just before and after a match must not be
word characters (letters or digits of any script, or ``_``).

Two bodies are built from the same list of forms: one for RE2 on the *folded* text (every
non-ASCII character that is not a word character replaced by a space, so that word boundaries can
be written with ASCII classes, which RE2 compiles fast into a set), and one for Python ``re`` on the
original text (the reference evaluator). ``tests/test_match.py`` checks that they agree.
"""

from __future__ import annotations

import re

VOWELS = frozenset("aeiou")
_WORD = re.compile(r"[A-Za-z]+")
# The ASCII characters that are not word characters; with the fold, a complete boundary class.
ASCII_NONWORD = r"[\x00-/:-@\[-^`{-\x7f]"
# Between the words of a phrase: ASCII whitespace (as Python's \s has it) or hyphens on the folded
# text, where every other separator (NBSP, en dash, ...) has become a space.
SEP_FOLDED = r"[\t\n\x0b\x0c\r\x1c-\x1f -]+"
SEP_REFERENCE = r"(?:[\s-]|[^\w\x00-\x7f])+"
_FOLD = re.compile(r"[^\w\x00-\x7f]")


def fold(text: str) -> str:
    """Replace non-ASCII non-word characters by spaces (same length, so offsets carry over)."""
    return text if text.isascii() else _FOLD.sub(" ", text)


def parse_term(raw: str) -> tuple[str, bool]:
    """``'"troop"'`` or ``'=troop'`` -> ("troop", exact=True); otherwise (raw stripped, False)."""
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].strip(), True
    if text.startswith("="):
        return text[1:].strip(), True
    return text, False


def forms(word: str) -> list[str]:
    """The inflections of one lower-case word, the word itself first.

    Only plain ASCII words of three letters or more are inflected:
    - ``+s`` / ``+ed`` / ``+ing`` / ``+er`` / ``+ers`` (sanction -> sanctions, sanctioned, ...);
    - words ending in s, x, z, ch, sh take ``+es`` (tax -> taxes);
    - a final ``e`` is dropped before a vowel suffix (seize -> seized, seizing, seizer);
    - consonant + ``y`` becomes ``ies`` / ``ied`` / ``ier(s)`` (supply -> supplies, supplied);
    - consonant-vowel-consonant endings also get the doubled consonant (ban -> banned, banning),
      besides the plain form, since stress (target -> targeted) cannot be known from spelling.
    """
    w = word.lower()
    if len(w) < 3 or not _WORD.fullmatch(w):
        return [w]
    out = [w]
    if w.endswith("e"):
        stem = w[:-1]
        out += [w + "s", w + "d", stem + "ing", w + "r", w + "rs"]
    elif w.endswith("y") and w[-2] not in VOWELS:
        stem = w[:-1]
        out += [stem + "ies", stem + "ied", w + "ing", stem + "ier", stem + "iers"]
    else:
        plural = w + "es" if w.endswith(("s", "x", "z", "ch", "sh")) else w + "s"
        out += [plural, w + "ed", w + "ing", w + "er", w + "ers"]
        if w[-1] not in VOWELS and w[-1] not in "wxy" and w[-2] in VOWELS and w[-3] not in VOWELS:
            d = w + w[-1]
            out += [d + "ed", d + "ing", d + "er", d + "ers"]
    return out


def _words(term: str) -> list[str]:
    # Folded like the text, so a term written with a curly apostrophe still meets the text.
    return fold(term).split()


def _body(term: str, exact: bool, sep: str) -> str:
    words = _words(term.lower())
    if not words:
        raise ValueError("empty term")
    last = [words[-1]] if exact else forms(words[-1])
    # Longest first: with leftmost-first engines the longest form is tried before its prefixes.
    last_alt = "(?:" + "|".join(re.escape(f) for f in sorted(last, key=len, reverse=True)) + ")"
    return sep.join([*(re.escape(w) for w in words[:-1]), last_alt])


def folded_body(term: str, exact: bool) -> str:
    """Regex body for RE2 on folded text (no boundaries, no flags)."""
    return _body(term, exact, SEP_FOLDED)


def set_pattern(term: str, exact: bool) -> str:
    """The RE2 set pattern: case-insensitive body between ASCII non-word characters or the ends."""
    return f"(?i)(?:^|{ASCII_NONWORD}){folded_body(term, exact)}(?:{ASCII_NONWORD}|$)"


def reference_pattern(term: str, exact: bool) -> str:
    """The Python ``re`` pattern (IGNORECASE) with Unicode word boundaries, for the reference."""
    return rf"(?<!\w){_body(term, exact, SEP_REFERENCE)}(?!\w)"


def search_pattern(term: str, exact: bool) -> str:
    """The Python ``re`` pattern (no flags) that finds the term in lower-cased text, except for
    the word boundary before it, which the caller checks: with a literal first, ``re`` scans
    for it in C, where a look-behind would make it try every position."""
    return rf"{_body(term, exact, SEP_REFERENCE)}(?!\w)"


_PLAIN = re.compile(r"[^\W]+")  # only word characters: findable as one token


def token_keys(
    term: str, exact: bool
) -> tuple[tuple[str, ...], tuple[tuple[str, ...], frozenset[str]] | None] | None:
    """Token lookup keys of a term whose words are all plain word characters, else None.

    A one-word term is present exactly when one of its forms is a token (a maximal run of two
    or more word characters) of the lower-cased text: the same as matching on word boundaries.
    A phrase is keyed by its first word; all its words must be tokens (the last in any form)
    before its regex confirms it. Returns (keys, None) or
    (keys, (words before the last, last forms)).
    """
    words = [w.lower() for w in _words(term)]
    # Tokens are maximal runs of two or more word characters (the classifier's reading too);
    # a term with a one-character word is left to the RE2 set.
    if not words or not all(len(w) > 1 and _PLAIN.fullmatch(w) for w in words):
        return None
    last = tuple(dict.fromkeys([words[-1]] if exact else forms(words[-1])))
    if len(words) > 1:
        return (words[0],), (tuple(words[:-1]), frozenset(last))
    return last, None
