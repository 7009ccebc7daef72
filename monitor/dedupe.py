"""Near-duplicate detection for syndicated copies of one story.

Two steps, as the store can afford them:

1. Candidates. :func:`signature` packs four independent 16-bit MinHash values of the body's
   word 3-shingles into one unsigned 64-bit int; :func:`bands` splits it back into the four
   16-bit values the store indexes. Two bodies with Jaccard similarity J share a given band with
   probability J (plus 2^-16 by chance), so at least one of four with probability
   1 - (1 - J)^4: 0.94 at J = 0.5, 0.996 at J = 0.75. A 64-bit SimHash was the first idea, but
   its bands only survive near-identical texts: a copy with its last paragraph trimmed flips
   around 8-10 of 64 bits, and then shares a clean 16-bit band only about a third of the time.
2. Decision. :func:`same_story` compares the two bodies' shingle sets directly: containment
   (shared shingles over the smaller set) tolerates a trimmed tail or a summary-only copy, and
   3-word shingles are specific enough that different stories on the same topic, which share
   much vocabulary, share few shingles.

Headlines are left out (syndicators rewrite them); datelines ("LONDON (Reuters) -"), bylines
and agency boilerplate ("Reporting by ...; Editing by ...") are stripped before shingling.
Bodies too short to shingle (title-only feeds) fall back to title plus body.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from monitor.types import Article

SHINGLE = 3  # words per shingle
LEAD_WORDS = 40  # the opening that summary-only copies keep
MIN_SHINGLES = 8  # fewer than this from the body: shingle title + body instead
CONTAINMENT = 0.5  # same_story: shared shingles / shingles of the smaller text
SHORT_CONTAINMENT = 0.8  # the same for short (title-only) texts, which agree by chance more
_MASK64 = (1 << 64) - 1
_SEEDS = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93)

_WORD = re.compile(r"\w+(?:['’]\w+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_DATELINE = re.compile(
    r"^\s*[A-Z][A-Za-z0-9 .,'/-]{0,60}?(?:\([^)]{1,40}\))?\s*[-–—]{1,2}\s+(?=[A-Z\"'“])"
)
_BOILERPLATE = re.compile(
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


# A byline is a whole sentence of capitalised names: "By Jane Smith and Oleg Petrov in Kyiv".
_BYLINE = re.compile(
    r"^\W*(?:[Bb]y|BY)\s+[A-Z][\w.'’-]*(?:\s+(?:[A-Z][\w.'’-]*|and|in|for|of|at)|\s*[,&]){0,12}\W*$"
)


def strip_boilerplate(text: str) -> str:
    """The body without its dateline, bylines and agency boilerplate sentences."""
    kept = [
        s
        for s in _SENTENCE_END.split(text)
        if s.strip() and not _BOILERPLATE.match(s) and not _BYLINE.match(s)
    ]
    # The dateline opens the first sentence that is left once a byline line is gone.
    return _DATELINE.sub("", " ".join(kept), count=1)


def _words(text: str) -> list[str]:
    return [w.casefold().replace("’", "'") for w in _WORD.findall(text)]


def _shingles_of(words: list[str]) -> frozenset[int]:
    if not words:
        return frozenset()
    if len(words) < SHINGLE:
        return frozenset({_hash(" ".join(words))})
    return frozenset(
        _hash(" ".join(words[i : i + SHINGLE])) for i in range(len(words) - SHINGLE + 1)
    )


@lru_cache(maxsize=4096)
def shingles(title: str, text: str) -> frozenset[int]:
    """64-bit hashes of the word 3-shingles that characterise a story."""
    body = _words(strip_boilerplate(text))
    if len(body) - SHINGLE + 1 >= MIN_SHINGLES:
        return _shingles_of(body)
    return _shingles_of(_words(title) + body)


def _hash(shingle: str) -> int:
    return int.from_bytes(hashlib.blake2b(shingle.encode(), digest_size=8).digest(), "little")


def _mix(x: int) -> int:
    # splitmix64's finaliser: a cheap, well-mixed permutation of 64-bit ints, one per seed.
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK64
    return x ^ (x >> 31)


def _lead(title: str, text: str) -> frozenset[int]:
    words = _words(strip_boilerplate(text))
    if len(words) - SHINGLE + 1 < MIN_SHINGLES:
        return shingles(title, text)
    return _shingles_of(words[:LEAD_WORDS])


def _minhash16(grams: frozenset[int], seed: int) -> int:
    # The low bits of the minimum are uniform; its high bits are biased towards zero.
    return min(_mix(g ^ seed) for g in grams) & 0xFFFF


def signature(title: str, text: str) -> int:
    """Four 16-bit MinHash values in one unsigned 64-bit int; 0 when there is no text at all.

    Bands 0-1 sample the whole body, bands 2-3 its first ``LEAD_WORDS`` words: a summary-only
    copy (just the opening paragraph) has a low Jaccard similarity with the full article but a
    high one with its lead, and a copy with its tail trimmed matches on both.
    """
    body = shingles(title, text)
    if not body:
        return 0
    lead = _lead(title, text)
    values = (
        _minhash16(body, _SEEDS[0]),
        _minhash16(body, _SEEDS[1]),
        _minhash16(lead, _SEEDS[2]),
        _minhash16(lead, _SEEDS[3]),
    )
    sig = values[0] | values[1] << 16 | values[2] << 32 | values[3] << 48
    return sig or 1  # 0 is reserved for "no signature"


def bands(sig: int) -> tuple[int, int, int, int]:
    """The four 16-bit bands the store indexes; one shared band makes a candidate pair."""
    return (sig & 0xFFFF, (sig >> 16) & 0xFFFF, (sig >> 32) & 0xFFFF, (sig >> 48) & 0xFFFF)


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
