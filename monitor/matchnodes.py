"""The compiled condition tree of one rule and the per-article context it is evaluated in."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from monitor.rulespec import Group, Near, TermSpec
from monitor.text import is_word_char, lower
from monitor.types import TermHit

FIELDS = ("title", "text", "url", "source", "tags")
FIELD_RANK = {f: i for i, f in enumerate(FIELDS)}
HITS_PER_TERM = 3  # occurrences of one term in one field kept as evidence
# From this many characters on, a field's terms are found where its tokens stand (one pass of the
# C extension over the text) rather than by a search of the text per term.
PLACES_FROM = 400

# token -> [index among the field's tokens, offset in its text, word position (among the runs
# of word characters, as ``near`` counts), index, offset, position, ...] of the wanted tokens of
# a field, from monitor/_scan.c
Places = dict[str, list[int]]
TokenPlaces = Callable[[str, list[str], set[str]], Places | None]


def _scan_module() -> Any:
    """The C extension ``monitor._scan``, or None where the project was installed without
    compiling (``MONITOR_PURE_PYTHON=1``): terms are then found by searching the text, and
    named tuples made by ``tuple.__new__``."""
    try:
        from monitor import _scan
    except ImportError:
        return None
    return _scan


_SCAN = _scan_module()
TOKEN_PLACES: TokenPlaces | None = _SCAN.token_places if _SCAN is not None else None
_NOT_YET: Places = {}  # Context.places: not computed yet for the field (None: none to compute)

# ASCII code -> is it a word character (letters, digits, underscore)?
_ASCII_WORD = np.array([is_word_char(chr(i)) for i in range(128)], dtype=bool)
# For bytes.translate: each ASCII byte -> 1 if a word character, else 0.
_ASCII_WORD_BYTES = bytes(int(i < 128 and bool(_ASCII_WORD[i])) for i in range(256))

AtomFactory = Callable[..., int]


@dataclass(frozen=True, slots=True)
class Atom:
    id: int
    kind: str  # "term" (inflected, on word boundaries, folded text) | "regex" (original text)
    pattern: str
    fields: tuple[str, ...]
    regex: Any  # regex atoms: the RE2 pattern that finds the offsets
    reference: str = ""  # term atoms: the Python pattern (word boundaries) that finds them
    term: tuple[str, bool] = ("", False)  # term atoms: (text, exact)
    forms: tuple[str, ...] = ()  # one-word term atoms: the words (tokens) that match it
    spaced: tuple[tuple[str, str], ...] = ()  # phrase atoms: (words joined by one space, last)
    # phrase atoms: (first word, the words that can follow it): neighbouring tokens wherever the
    # phrase occurs
    pair: tuple[str, frozenset[str]] | None = None
    ranked: tuple[str, ...] = ()  # its fields, in FIELD_RANK order (the order of its evidence)


def rule_score(strength: float, probability: float) -> float:
    """A matched rule's score: its term evidence (``strength``) and the classifier's probability
    combined as independent signals, 1 - (1 - s)(1 - p), to six decimals: ``round(x, 6)``
    computed by scaling and ``round`` to an integer, half to even, by hand (``round(x, 6)`` goes
    through a decimal string; compiled, even ``round(x)`` looks the builtin up per call)."""
    scaled = (1.0 - (1.0 - strength) * (1.0 - probability)) * 1e6  # in [0, 1e6]
    whole = int(scaled)
    rest = scaled - whole  # exact: subtracting a double's integer part loses nothing
    if rest > 0.5 or (rest == 0.5 and whole % 2 == 1):
        whole += 1
    return whole / 1e6


# 1 - 0.5 ** n for n distinct terms, by n; from 54 terms on it is 1.0 in floating point.
_STRENGTH = tuple(1.0 - 0.5**n for n in range(55))


def term_strength(terms: int) -> float:
    """A boolean rule's evidence from the number of its distinct terms present: 1 - 0.5 ** n
    (one term 0.5, two 0.75, ...). From a table: compiled, ``0.5 ** n`` is a generic call."""
    return _STRENGTH[min(terms, len(_STRENGTH) - 1)]


def ranked_fields(fields: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(fields, key=FIELD_RANK.__getitem__))


def _tuple_new(cls: type[Any], /, *items: object) -> Any:
    """``new_tuple`` without the C extension: ``tuple.__new__(cls, items)`` (an argument tuple
    and a copy more than the extension's)."""
    return tuple.__new__(cls, items)


# Final: compiled, a Final module attribute is a C static rather than a look-up in the module's
# dictionary at every use (as are _TERM_HIT here and _RULE_MATCH in match.py, per hit and match).
# ``new_tuple(cls, *items)``: a named tuple without its ``__new__``, a Python function (an
# interpreter frame per hit and match, even from compiled code).
new_tuple: Final[Callable[..., Any]] = _SCAN.new_tuple if _SCAN is not None else _tuple_new
_TERM_HIT: Final[type[TermHit]] = TermHit


def _hit(field_name: str, term: str, start: int, end: int, matched: str) -> TermHit:
    """``TermHit(...)`` without the named tuple's ``__new__``, a Python function: one
    interpreter frame per hit otherwise, even from compiled code."""
    hit: TermHit = new_tuple(_TERM_HIT, field_name, term, start, end, matched)
    return hit


@dataclass(slots=True)
class Context:
    """One article as the matcher sees it; offsets and word positions are computed on demand."""

    # Concrete types (dict, list, tuple) rather than Mapping or Sequence: compiled by mypyc, an
    # operation on a dict is a C call, on a Mapping a method lookup by name.
    texts: dict[str, str]
    folded: dict[str, str]
    matched: set[int]
    probs: Mapping[str, float]
    atoms: tuple[Atom, ...]
    term_regex: Callable[[Atom], tuple[re.Pattern[str], re.Pattern[str]]]  # reference, search
    present: dict[str, set[str]] = field(default_factory=dict)  # field -> its tokens
    words: dict[str, list[str]] = field(default_factory=dict)  # field -> tokens in order
    _spans: dict[tuple[int, str], list[tuple[int, int]]] = field(default_factory=dict)
    _evidence: dict[tuple[int, str], tuple[TermHit, ...]] = field(default_factory=dict)
    _words: dict[str, Any] = field(default_factory=dict)  # field -> word_starts
    lowered: dict[str, str] = field(default_factory=dict)  # field -> its text lower-cased
    # field -> the tokens whose places a term's occurrences are found from: the forms of its
    # one-word terms present, the first words of the phrases that may be present
    wanted: dict[str, set[str]] = field(default_factory=dict)
    _places: dict[str, Places | None] = field(default_factory=dict)
    # (atom, field) -> the first HITS_PER_TERM occurrences of a phrase, found when confirming it
    _confirmed: dict[tuple[int, str], list[tuple[int, int]]] = field(default_factory=dict)
    # field -> the atoms found in it (a term's tokens, a phrase confirmed, an RE2 set's match):
    # evidence is looked for in those fields only
    found_in: dict[str, set[int]] = field(default_factory=dict)

    def spans(self, atom_id: int, field_name: str) -> list[tuple[int, int]]:
        key = (atom_id, field_name)
        found = self._spans.get(key)
        if found is None:
            found = self._spans[key] = self._find(self.atoms[atom_id], field_name)
        return found

    def first_spans(self, atom: Atom, field_name: str, limit: int) -> list[tuple[int, int]]:
        """The first ``limit`` spans (evidence needs a few, not every occurrence)."""
        if self._spans:  # only ``near`` conditions compute every span
            found = self._spans.get((atom.id, field_name))
            if found is not None:
                return found[:limit]
        if self._confirmed:
            found = self._confirmed.get((atom.id, field_name))
            if found is not None and (limit <= HITS_PER_TERM or len(found) < HITS_PER_TERM):
                return found[:limit]
        return self._find(atom, field_name, limit=limit)

    def evidence(self, atom_id: int, label: str) -> tuple[TermHit, ...]:
        """The first few occurrences of the atom in each of its fields, in field order, then by
        offset; computed once per article for every rule that shares the term."""
        key = (atom_id, label)
        found = self._evidence.get(key)
        if found is None:
            hits: list[TermHit] = []
            atom = self.atoms[atom_id]
            found_in = self.found_in
            for field_name in atom.ranked:
                here = found_in.get(field_name)
                if here is None or atom_id not in here:
                    continue
                spans = self.first_spans(atom, field_name, HITS_PER_TERM)
                if spans:
                    text = self.texts[field_name]
                    for start, end in spans:
                        hits.append(_hit(field_name, label, start, end, text[start:end]))
            found = self._evidence[key] = tuple(hits)
        return found

    def confirm(self, atom_id: int, field_name: str) -> bool:
        """Is this phrase (its first words seen as tokens) really in the field?"""
        atom, tokens = self.atoms[atom_id], self.present.get(field_name)
        pair = atom.pair
        if self.places(field_name) is not None:
            # _find tries the phrase only where its first two words stand next to each other,
            # with no search of the text; the evidence's first occurrences are kept, as most
            # confirmed phrases are evidence of a match next.
            found = self._find(atom, field_name, check=False, limit=HITS_PER_TERM)
            if found:
                self._confirmed[(atom_id, field_name)] = found
            return bool(found)
        if pair is not None and tokens is not None:
            # Most occurrences are written with single spaces: str.find settles those.
            low = self.low(field_name)
            spaced = [phrase for phrase, last in atom.spaced if last in tokens]
            if len(low) == len(self.texts[field_name]) and _whole_words(low, spaced, 1):
                return True
            # Its words are neighbouring tokens wherever it occurs; when nowhere, it does not.
            words = self.words.get(field_name)
            if words is not None and not _adjacent(words, pair[0], pair[1]):
                return False
        found = self._find(atom, field_name, check=False, limit=1)
        return bool(found)

    def _find(
        self, atom: Atom, field_name: str, *, check: bool = True, limit: int = 1 << 30
    ) -> list[tuple[int, int]]:
        text = self.texts.get(field_name)
        if (check and atom.id not in self.matched) or not text:
            return []
        if atom.kind == "regex":
            spans = (m.span() for m in atom.regex.finditer(text) if m.end() > m.start())
            return list(itertools.islice(spans, limit))
        low = self.low(field_name)
        if len(low) != len(text):  # lower() changed offsets: rare, slow path
            finder = self.term_regex(atom)[0]
            return [m.span() for m in itertools.islice(finder.finditer(text), limit)]
        if atom.forms or atom.pair is not None:
            places = self.places(field_name)
            if places is not None:
                return self._placed(atom, field_name, low, places, limit)
        tokens = self.present.get(field_name)
        if atom.forms and tokens is not None:
            # A one-word term occurs where one of its forms is a whole token, and the field's
            # tokens say which forms occur at all: find just those, as whole words.
            here = [f for f in atom.forms if f in tokens]
            return _whole_words(low, here, limit) if here else []
        search = self.term_regex(atom)[1]
        # The pattern starts with a literal, so ``re`` finds candidates in C; the boundary
        # before a match is checked here. Python re is safe on these generated patterns
        # (escaped literals, no nested repetition); analysts' regexes always run on RE2.
        # A phrase of plain words starts with its first word: str.find jumps to each occurrence
        # of that word and the pattern is tried there (re's own scan for its literal prefix is
        # slower: 3.6-12 us a text against 2.3-9 us, on this corpus).
        first = atom.pair[0] if atom.pair is not None else None
        out: list[tuple[int, int]] = []
        pos = 0
        while True:
            if first is not None:
                i = low.find(first, pos)
                m = search.match(low, i) if i >= 0 else None
                if m is None and i >= 0:
                    pos = i + 1
                    continue
            else:
                m = search.search(low, pos)
                i = m.start() if m is not None else -1
            if m is None:
                break
            if i and is_word_char(low[i - 1]):  # inside a longer word
                pos = i + 1
                continue
            out.append(m.span())
            if len(out) >= limit:
                break
            pos = m.end()
        return out

    def places(self, field_name: str) -> Places | None:
        """Where the field's wanted tokens stand, from one pass over a long field. None for a
        short field, one whose offsets lower-casing changed, or without the C extension."""
        cached = self._places.get(field_name, _NOT_YET)  # one look-up: called per term and field
        if cached is not _NOT_YET:
            return cached
        found: Places | None = None
        words, wanted = self.words.get(field_name), self.wanted.get(field_name)
        if TOKEN_PLACES is not None and words is not None and wanted is not None:
            low = self.low(field_name)
            if len(low) >= PLACES_FROM and len(low) == len(self.texts[field_name]):
                found = TOKEN_PLACES(low, words, wanted)
        self._places[field_name] = found
        return found

    def _placed(
        self,
        atom: Atom,
        field_name: str,
        low: str,
        places: Places,
        limit: int,
        positions: list[int] | None = None,
    ) -> list[tuple[int, int]]:
        """:meth:`_find` of a token-keyed term from where the tokens stand (and the word
        position of each occurrence added to ``positions``). A one-word term occurs where one
        of its forms is a token; a phrase where its first word is a token followed by the token
        of its second word (only separators lie between the words of a phrase), which its
        pattern then confirms at that offset."""
        out: list[tuple[int, int]] = []
        pair = atom.pair
        if pair is None:
            found = 0
            for form in atom.forms:
                at = places.get(form)
                if at is not None:
                    found += 1
                    n = len(form)
                    for k in range(1, min(len(at), 3 * limit), 3):
                        start = at[k]
                        out.append((start, start + n))
                        if positions is not None:
                            positions.append(at[k + 1])
            if found > 1:
                out.sort()
                del out[limit:]
            return out
        at = places.get(pair[0])
        if at is None:
            return out
        words, seconds = self.words[field_name], pair[1]
        last = len(words) - 1
        search = self.term_regex(atom)[1]
        end = 0  # occurrences do not overlap: the next starts after the last one's end
        for k in range(0, len(at), 3):
            i, start = at[k], at[k + 1]
            if start < end or i == last or words[i + 1] not in seconds:
                continue
            m = search.match(low, start)
            if m is not None:
                end = m.end()
                out.append((start, end))
                if positions is not None:
                    positions.append(at[k + 2])
                if len(out) >= limit:
                    break
        return out

    def low(self, field_name: str) -> str:
        """The field's text lower-cased, once per article (or as the caller gave it)."""
        low = self.lowered.get(field_name)
        if low is None:
            low = self.lowered[field_name] = lower(self.texts[field_name])
        return low

    def word_positions(self, atom_id: int, field_name: str) -> list[int]:
        """The word index (among runs of word characters) of each occurrence of the atom."""
        atom = self.atoms[atom_id]
        if (atom.forms or atom.pair is not None) and atom_id in self.matched:
            places = self.places(field_name)
            if places is not None:  # the pass counted the words
                positions: list[int] = []
                self._placed(atom, field_name, self.low(field_name), places, 1 << 30, positions)
                return positions
        spans = self.spans(atom_id, field_name)
        if not spans:
            return []
        starts = self._words.get(field_name)
        if starts is None:
            starts = self._words[field_name] = word_starts(self.texts.get(field_name, ""))
        # The array's own method: ``np.searchsorted`` is a Python function around it.
        found = starts.searchsorted([s for s, _e in spans], side="right") - 1
        counted: list[int] = found.tolist()
        return counted


def _whole_words(low: str, words: list[str], limit: int) -> list[tuple[int, int]]:
    """The first ``limit`` spans where one of ``words`` stands as a whole word in ``low``."""
    out: list[tuple[int, int]] = []
    end = len(low)
    for word in words:
        n, pos, found = len(word), 0, 0
        while found < limit and (i := low.find(word, pos)) >= 0:
            j = i + n
            # Word characters on either side: inside a longer word.
            if (i and is_word_char(low[i - 1])) or (j < end and is_word_char(low[j])):
                pos = i + 1
                continue
            out.append((i, j))
            found += 1
            pos = j
    if len(words) > 1:
        out.sort()
        del out[limit:]
    return out


def _adjacent(words: list[str], first: str, seconds: frozenset[str]) -> bool:
    """Does ``first`` stand anywhere among the words just before one of ``seconds``?"""
    # A plain loop: compiled, comparing two str is a C call, while list.index goes through
    # the generic rich comparison for every word and raises ValueError at the end.
    for i in range(len(words) - 1):  # noqa: SIM110 (any() over a generator is slower compiled)
        if words[i] == first and words[i + 1] in seconds:
            return True
    return False


def word_starts(text: str) -> Any:
    """Offsets where a run of word characters (as ``\\w+`` reads them) starts, ascending."""
    if not text:
        return np.zeros(0, dtype=np.int64)
    if text.isascii():
        # One byte per character, 1 for a word character: a translate, no array indexing.
        word = np.frombuffer(text.encode("ascii").translate(_ASCII_WORD_BYTES), dtype=np.int8)
    else:
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        # Codes past ASCII are clipped to DEL (not a word character), then tested one by one
        # where few (curly quotes, dashes, accents), or once per distinct character.
        word = _ASCII_WORD.take(codes, mode="clip").view(np.int8)
        high = (codes > 127).nonzero()[0]
        if high.size > 256:
            distinct, where = np.unique(codes[high], return_inverse=True)
            tested = np.array([is_word_char(chr(c)) for c in distinct.tolist()], dtype=np.int8)
            word[high] = tested[where]
        elif high.size:
            word[high] = [is_word_char(chr(c)) for c in codes[high].tolist()]
    # A run starts where a word character follows a non-word character (or the start): the
    # mask after a leading 0, compared with itself one place on. Array methods throughout
    # (``np.flatnonzero`` and ``np.concatenate`` are Python functions around them).
    padded = np.zeros(len(word) + 1, dtype=np.int8)
    padded[1:] = word
    starts = (padded[1:] > padded[:-1]).nonzero()[0]
    return starts


def within_window(positions: Sequence[Sequence[int]], within: int) -> bool:
    """Is there one position per list with max - min <= within? (sliding window over all)."""
    if any(not p for p in positions):
        return False
    events = sorted((pos, i) for i, ps in enumerate(positions) for pos in ps)
    need, counts, have, lo = len(positions), [0] * len(positions), 0, 0
    for pos, i in events:
        counts[i] += 1
        have += counts[i] == 1
        while have == need:
            if pos - events[lo][0] <= within:
                return True
            j = events[lo][1]
            counts[j] -= 1
            have -= counts[j] == 0
            lo += 1
    return False


class Node:
    def ev(self, ctx: Context) -> bool:
        raise NotImplementedError

    def trace(self, ctx: Context, labels: Mapping[int, str]) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class AtomNode(Node):
    atom: int
    kind: str

    def ev(self, ctx: Context) -> bool:
        return self.atom in ctx.matched

    def trace(self, ctx: Context, labels: Mapping[int, str]) -> dict[str, Any]:
        atom = ctx.atoms[self.atom]
        where = [
            {"field": f, "start": s, "end": e}
            for f in atom.fields
            for s, e in ctx.spans(self.atom, f)
        ]
        return {
            self.kind: labels.get(self.atom, atom.pattern),
            "fields": list(atom.fields),
            "passed": self.ev(ctx),
            "at": where[:10],
        }


@dataclass(frozen=True, slots=True)
class NearNode(Node):
    atoms: tuple[int, ...]
    within: int
    fields: tuple[str, ...]

    def ev(self, ctx: Context) -> bool:
        if not all(a in ctx.matched for a in self.atoms):
            return False
        return any(
            within_window([ctx.word_positions(a, f) for a in self.atoms], self.within)
            for f in self.fields
        )

    def trace(self, ctx: Context, labels: Mapping[int, str]) -> dict[str, Any]:
        return {
            "near": [labels.get(a, "") for a in self.atoms],
            "within": self.within,
            "fields": list(self.fields),
            "passed": self.ev(ctx),
        }


@dataclass(frozen=True, slots=True)
class ClassifierNode(Node):
    topic: str
    min: float

    def ev(self, ctx: Context) -> bool:
        return ctx.probs.get(self.topic, 0.0) >= self.min

    def trace(self, ctx: Context, labels: Mapping[int, str]) -> dict[str, Any]:
        return {
            "classifier": self.topic,
            "min": self.min,
            "probability": ctx.probs.get(self.topic),
            "passed": self.ev(ctx),
        }


@dataclass(frozen=True, slots=True)
class BoolNode(Node):
    op: str  # all | any | none
    children: tuple[Node, ...]

    def ev(self, ctx: Context) -> bool:
        if self.op == "all":
            return all(c.ev(ctx) for c in self.children)
        hit = any(c.ev(ctx) for c in self.children)
        return hit if self.op == "any" else not hit

    def trace(self, ctx: Context, labels: Mapping[int, str]) -> dict[str, Any]:
        return {self.op: [c.trace(ctx, labels) for c in self.children], "passed": self.ev(ctx)}


def compile_group(
    group: Group, fields: tuple[str, ...], atom: AtomFactory, labels: dict[int, str], topic: str
) -> Node:
    """A group (or the rule itself) -> one node; its keys are ANDed."""
    scope = tuple(group.fields) if group.fields else fields
    parts: list[Node] = []
    for op in ("all", "any", "none"):
        items = getattr(group, op)
        if items is not None:
            kids = tuple(_condition(c, scope, atom, labels, topic) for c in items)
            parts.append(BoolNode(op, kids))
    if group.near is not None:
        parts.append(_near(group.near, scope, atom, labels))
    for source in group.regex or ():
        a = atom("regex", source, scope)
        labels.setdefault(a, source)
        parts.append(AtomNode(a, "regex"))
    if group.classifier is not None:
        parts.append(ClassifierNode(group.classifier.topic or topic, group.classifier.min))
    return parts[0] if len(parts) == 1 else BoolNode("all", tuple(parts))


def _near(near: Near, scope: tuple[str, ...], atom: AtomFactory, labels: dict[int, str]) -> Node:
    fields = tuple(near.fields) if near.fields else scope
    ids = []
    for term in near.terms:
        a = atom("term", term, fields)
        labels.setdefault(a, term)
        ids.append(a)
    return NearNode(tuple(ids), near.within, fields)


def _condition(
    cond: str | TermSpec | Group,
    scope: tuple[str, ...],
    atom: AtomFactory,
    labels: dict[int, str],
    topic: str,
) -> Node:
    if isinstance(cond, str):
        a = atom("term", cond, scope)
        labels.setdefault(a, cond)
        return AtomNode(a, "term")
    if isinstance(cond, TermSpec):
        fields = tuple(cond.fields) if cond.fields else scope
        a = atom("term", cond.term, fields, exact=cond.exact)
        labels.setdefault(a, cond.term)
        return AtomNode(a, "term")
    return compile_group(cond, scope, atom, labels, topic)


def needs_term(node: Node) -> bool:
    """True when the node can only hold if at least one of its positive atoms is present."""
    if isinstance(node, AtomNode | NearNode):
        return True
    if isinstance(node, BoolNode):
        if node.op == "all":
            return any(needs_term(c) for c in node.children)
        if node.op == "any":
            return all(needs_term(c) for c in node.children)
    return False


def positive_atoms(node: Node) -> frozenset[int]:
    """Atoms whose presence can make the node hold (those under ``none`` cannot)."""
    if isinstance(node, AtomNode):
        return frozenset((node.atom,))
    if isinstance(node, NearNode):
        return frozenset(node.atoms)
    if isinstance(node, BoolNode) and node.op != "none":
        return frozenset().union(*(positive_atoms(c) for c in node.children))
    return frozenset()


def necessary_atoms(node: Node) -> frozenset[int]:
    """For a node that needs a term (:func:`needs_term`): atoms of which at least one is present
    whenever the node holds, as few as its structure allows, so that a rule is a candidate (and
    decided) for fewer articles. ``all`` needs every child: the smallest such set among its
    children will do. ``near`` needs all its terms: one will do."""
    if isinstance(node, AtomNode):
        return frozenset((node.atom,))
    if isinstance(node, NearNode):
        return frozenset(node.atoms[:1])
    if isinstance(node, BoolNode) and node.op == "all":
        return min((necessary_atoms(c) for c in node.children if needs_term(c)), key=len)
    if isinstance(node, BoolNode) and node.op == "any":
        return frozenset().union(*(necessary_atoms(c) for c in node.children))
    raise ValueError("the condition can hold without any term")


def hit_position(hit: TermHit) -> tuple[int, int]:
    """Where a hit stands: its field's rank, then its offset (the order of a rule's evidence)."""
    return FIELD_RANK[hit.field], hit.start
