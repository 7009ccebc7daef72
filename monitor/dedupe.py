"""Near-duplicate detection for syndicated copies of one story.

Two steps, as the store can afford them:

1. Candidates. :func:`signature` packs four independent 31-bit MinHash values of the body's
   word 3-shingles into one int (32 bits apart); :func:`bands` splits it back into the four
   values the store indexes. Two bodies with Jaccard similarity J share a given band with
   probability J (plus 2^-16 by chance), so at least one of four with probability
   1 - (1 - J)^4: 0.94 at J = 0.5, 0.996 at J = 0.75. A 64-bit SimHash was the first idea, but
   its bands only survive near-identical texts: a copy with its last paragraph trimmed flips
   around 8-10 of 64 bits, and then shares a clean 16-bit band only about a third of the time.
   Bands were 16 bits at first; with tens of thousands of stored articles each new one then met
   several unrelated candidates by chance, each costing a shingle comparison.
2. Decision. :func:`same_story` compares the two bodies' shingle sets directly: containment
   (shared shingles over the smaller set) tolerates a trimmed tail or a summary-only copy, and
   3-word shingles are specific enough that different stories on the same topic, which share
   much vocabulary, share few shingles.

Headlines are left out (syndicators rewrite them); datelines ("LONDON (Reuters) -"), bylines
and agency boilerplate ("Reporting by ...; Editing by ...") are stripped before shingling.
Bodies too short to shingle (title-only feeds) fall back to title plus body.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import re2

from monitor.text import BYTES_NON_WORD_TO_SPACE
from monitor.types import Article

MinHashes = Callable[
    [list[bytes], tuple[int, ...], tuple[int, ...], tuple[int, ...]], tuple[int, ...]
]


def _minhashes() -> MinHashes | None:
    """The C extension's ``minhashes`` (monitor/_shingle.c), or None where the project was
    installed without compiling (``MONITOR_PURE_PYTHON=1``): signatures are then computed with
    numpy, to the same values."""
    try:
        from monitor import _shingle
    except ImportError:
        return None
    return _shingle.minhashes


_MINHASHES = _minhashes()

SHINGLE = 3  # words per shingle
# A band is 31 bits (it fits a signed 32-bit column): unrelated articles share one by chance with
# probability about 4 x W / 2^31 for W stored articles, so candidates do not grow with the store.
BAND_MASK = (1 << 31) - 1
# Shingle sets are cached for the comparisons of one poll (an article against its few
# candidates); a few hundred entries suffice, and each holds a few hundred 64-bit hashes.
CACHE = 512
LEAD_WORDS = 40  # the opening that summary-only copies keep
MIN_SHINGLES = 8  # fewer than this from the body: shingle title + body instead
CONTAINMENT = 0.5  # same_story: shared shingles / shingles of the smaller text
SHORT_CONTAINMENT = 0.8  # the same for short (title-only) texts, which agree by chance more
_POSITIONS = np.array(
    [0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB], dtype=np.uint64
)  # one odd multiplier per word position: "a b c" and "c b a" hash differently
_POSITION_INTS = tuple(int(p) for p in _POSITIONS)
_LEAD_GRAMS = LEAD_WORDS - SHINGLE + 1  # the shingles of the first LEAD_WORDS words
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S27, _S30, _S31 = np.uint64(27), np.uint64(30), np.uint64(31)
_SEEDS = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93)

_WORD = re.compile(r"\w+(?:['’]\w+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_DATELINE = re.compile(
    r"^\s*[A-Z][A-Za-z0-9 .,'/-]{0,60}?(?:\([^)]{1,40}\))?\s*[-–—]{1,2}\s+(?=[A-Z\"'“])"
)
# A boilerplate sentence opens with one of these (after any non-word characters)...
_BOILERPLATE = re.compile(
    r"""^\W*(?:
        (?:additional\s+)?(?:reporting|writing|editing|compiled|produced|fact-checked)\s+by\b
      | (?:copyright|©|\(c\))\b
      | (?:click\s+here|sign\s+up|subscribe|read\s+more|related\s*:|follow\s+us|share\s+this)\b
      | our\s+standards\s*:
      | this\s+(?:story|article)\s+(?:was|has\s+been)\s+(?:corrected|updated)\b
      | (?:the\s+)?associated\s+press\s+contributed\b | contact\s+the\s+(?:author|reporter)\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# ... or holds one of these anywhere (sentences have no line breaks).
_BOILERPLATE_ANYWHERE = re.compile(
    r"\ball\s+rights\s+reserved\b|\btrust\s+principles\b", re.IGNORECASE
)


# A byline is a whole sentence of capitalised names: "By Jane Smith and Oleg Petrov in Kyiv".
_BYLINE = re.compile(
    r"^\W*(?:[Bb]y|BY)\s+[A-Z][\w.'’-]*(?:\s+(?:[A-Z][\w.'’-]*|and|in|for|of|at)|\s*[,&]){0,12}\W*$"
)


# A sentence can only be boilerplate if it holds one of these words (case aside): one look for
# each in an ASCII body is far cheaper than matching the patterns above on every sentence.
_BOILERPLATE_WORDS = (
    "reporting",
    "writing",
    "editing",
    "compiled",
    "produced",
    "fact-checked",
    "copyright",
    "(c)",
    "rights",
    "click",
    "sign",
    "subscribe",
    "read",
    "related",
    "follow",
    "share",
    "standards",
    "trust",
    "corrected",
    "updated",
    "contributed",
    "contact",
)


# Whitespace other than single spaces and single line breaks between words.
_UNTIDY = ("  ", " \n", "\n ", "\n\n", "\t", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")
# Every character Python's ``\\s`` matches beyond the ASCII ones (none lies above U+3000).
_OTHER_SPACES = re.compile(
    "[" + "".join(c for c in map(chr, range(0x80, 0x3001)) if c.isspace()) + "]"
)


def _plainly_spaced(text: str) -> bool:
    """Whitespace only as single spaces and single line breaks between words (what the
    normaliser makes of a body): every sentence break is then one space or one line break after
    [.!?], or one line break, so the sentences joined by spaces are the text with its line
    breaks turned into spaces."""
    return (
        text == text.strip()
        and not any(u in text for u in _UNTIDY)
        and (text.isascii() or _OTHER_SPACES.search(text) is None)
    )


def _sentences(text: str, plain: bool) -> list[str]:
    """``_SENTENCE_END.split(text)``; for plainly spaced text with str methods (in C)."""
    if "\0" in text or not plain:
        return _SENTENCE_END.split(text)
    out: list[str] = []
    for line in text.split("\n"):
        out += line.replace(". ", ".\0").replace("! ", "!\0").replace("? ", "?\0").split("\0")
    return out


# Any of them in one pass of RE2's automaton: ~9 us for a 2,400-character body, against ~40 us
# for a substring search per word (Python's own ``re`` tries every word at every position).
_BOILERPLATE_WORD = re2.compile("|".join(re.escape(w) for w in _BOILERPLATE_WORDS))


def _has_boilerplate_words(low: str) -> bool:
    """Does the lower-cased ``low`` contain one of the boilerplate words anywhere?"""
    return _BOILERPLATE_WORD.search(low) is not None


def _boilerplate_sentence(s: str, words: bool = True) -> bool:
    """Is this sentence boilerplate or a byline? ``words`` False: the text it comes from is
    ASCII and holds none of the boilerplate words."""
    if not words:
        return _BYLINE.match(s) is not None
    anywhere = True
    if s.isascii():  # lower-casing is case-insensitive matching: look for the words first
        low = s.lower()
        if not _has_boilerplate_words(low):
            return _BYLINE.match(s) is not None
        anywhere = "rights" in low or "principles" in low
    return (
        _BOILERPLATE.match(s) is not None
        or (anywhere and _BOILERPLATE_ANYWHERE.search(s) is not None)
        or _BYLINE.match(s) is not None
    )


def strip_boilerplate(text: str) -> str:
    """The body without its dateline, bylines and agency boilerplate sentences."""
    words = True  # might a sentence hold a boilerplate word?
    plain = _plainly_spaced(text)
    if text.isascii():
        low = text.lower()
        words = _has_boilerplate_words(low)
        # A byline needs "by" and then a space or a line break (the only whitespace of plain
        # text).
        if plain and not words and "by " not in low and "by\n" not in low:
            # No sentence can be dropped: what splitting and joining would give, cheaper.
            return _DATELINE.sub("", text.replace("\n", " "), count=1)
    kept = [s for s in _sentences(text, plain) if s.strip() and not _boilerplate_sentence(s, words)]
    joined = " ".join(kept)
    # The dateline opens the first sentence that is left once a byline line is gone.
    return _DATELINE.sub("", joined, count=1)


def _words(text: str) -> list[bytes]:
    """The case-folded words of ``text`` (``_WORD``), UTF-8 encoded: what shingles hash."""
    if text.isascii():  # the same words: ASCII case-folds to itself lower-cased, word by word
        low = text.lower()
        if "'" not in low:
            # Without an apostrophe the optional part never matches: the words are the runs of
            # ASCII word characters, which bytes.translate and split find in C, already bytes.
            return low.encode().translate(BYTES_NON_WORD_TO_SPACE).split()
        return [w.encode() for w in _WORD.findall(low)]
    return [w.casefold().replace("’", "'").encode() for w in _WORD.findall(text)]


def _hash_array(words: list[bytes]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """64-bit hashes of the word 3-shingles, computed with array arithmetic: each word gets a
    stable CRC-32 once, and a shingle's hash mixes its words' hashes position by position."""
    if not words:
        return np.empty(0, dtype=np.uint64)
    # map() over the builtin: no Python frame per word
    h = np.fromiter(map(zlib.crc32, words), dtype=np.uint64, count=len(words))
    if len(words) < SHINGLE:
        h = np.array([np.bitwise_xor.reduce(h * _POSITIONS[: len(h)])], dtype=np.uint64)
        return _mix(h)
    n = len(words) - SHINGLE + 1
    grams = h[:n] * _POSITIONS[0]
    for i in range(1, SHINGLE):
        grams ^= h[i : i + n] * _POSITIONS[i]
    return _mix(grams)


def _mix(x: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    # splitmix64's finaliser: a cheap, well-mixed permutation of 64-bit ints (uint64 wraps).
    x = x ^ (x >> _S30)
    x = x * _M1
    x = x ^ (x >> _S27)
    x = x * _M2
    return x ^ (x >> _S31)


def _shingled_words(title: str, text: str) -> tuple[list[bytes], bool]:
    """The words a story's shingles are made of, and whether they are too few for a lead of
    their own: the body's, or title and body when the body alone is too short to shingle."""
    words = _words(strip_boilerplate(text))
    if len(words) - SHINGLE + 1 < MIN_SHINGLES:
        return _words(title) + words, True
    return words, False


@lru_cache(maxsize=CACHE)
def _body_and_lead(
    title: str, text: str
) -> tuple[np.ndarray[Any, np.dtype[np.uint64]], np.ndarray[Any, np.dtype[np.uint64]]]:
    words, short = _shingled_words(title, text)
    body = _hash_array(words)
    if short:
        return body, body
    return body, body[:_LEAD_GRAMS]  # the shingles of the first LEAD_WORDS words


@lru_cache(maxsize=CACHE)
def shingles(title: str, text: str) -> frozenset[int]:
    """64-bit hashes of the word 3-shingles that characterise a story."""
    return frozenset(_body_and_lead(title, text)[0].tolist())


def _minhash(grams: np.ndarray[Any, np.dtype[np.uint64]], seed: int) -> int:
    # The low bits of the minimum are uniform; its high bits are biased towards zero.
    return int(_mix(grams ^ np.uint64(seed)).min()) & BAND_MASK


def signature(title: str, text: str) -> int:
    """Four 31-bit MinHash values in one int (bands at bits 0, 32, 64, 96); 0 when no text.

    Bands 0-1 sample the whole body, bands 2-3 its first ``LEAD_WORDS`` words: a summary-only
    copy (just the opening paragraph) has a low Jaccard similarity with the full article but a
    high one with its lead, and a copy with its tail trimmed matches on both.
    """
    if _MINHASHES is None:
        return _signature_of_arrays(title, text)
    words, short = _shingled_words(title, text)
    if not words:
        return 0
    lead = len(words) if short else _LEAD_GRAMS
    values = _MINHASHES(words, _POSITION_INTS, _SEEDS, (len(words), len(words), lead, lead))
    return _packed(*(v & BAND_MASK for v in values))


def _signature_of_arrays(title: str, text: str) -> int:
    """:func:`signature` with numpy: the reference the C extension is held to, and the fallback
    where the project was installed without compiling."""
    body, lead = _body_and_lead(title, text)
    if not len(body):
        return 0
    return _packed(
        _minhash(body, _SEEDS[0]),
        _minhash(body, _SEEDS[1]),
        _minhash(lead, _SEEDS[2]),
        _minhash(lead, _SEEDS[3]),
    )


def _packed(b0: int, b1: int, b2: int, b3: int) -> int:
    sig = b0 | b1 << 32 | b2 << 64 | b3 << 96
    return sig or 1  # 0 is reserved for "no signature"


def bands(sig: int) -> tuple[int, int, int, int]:
    """The four 31-bit bands the store indexes; one shared band makes a candidate pair."""
    return (
        sig & BAND_MASK,
        (sig >> 32) & BAND_MASK,
        (sig >> 64) & BAND_MASK,
        (sig >> 96) & BAND_MASK,
    )


def band_distance(a: int, b: int) -> int:
    """How many of the four bands differ (0-4)."""
    return sum(x != y for x, y in zip(bands(a), bands(b), strict=True))


def is_near_duplicate(a: int, b: int, *, max_distance: int = 3) -> bool:
    """Whether two signatures make a candidate pair: at most ``max_distance`` bands differ.

    The default (3: at least one band equal) is exactly the store's band lookup.
    """
    if not a or not b:
        return False
    return band_distance(a, b) <= max_distance


def containment(a: frozenset[int], b: frozenset[int]) -> float:
    """Shared shingles over the smaller set's size (1.0: one text is inside the other)."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def same_story(a: Article, b: Article) -> bool:
    """The final check on a candidate pair: are these two copies of one story?"""
    if a.fingerprint and a.fingerprint == b.fingerprint:
        return True
    sa, sb = shingles(a.title, a.text), shingles(b.title, b.text)
    if not sa or not sb:
        return False
    short = min(len(sa), len(sb)) < MIN_SHINGLES
    return containment(sa, sb) >= (SHORT_CONTAINMENT if short else CONTAINMENT)
