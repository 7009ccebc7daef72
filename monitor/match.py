"""Rules compiled once into one matcher: RE2 sets per field, then only candidate rules.

Every distinct term (after inflection) and regex of every rule becomes an *atom*, scoped to its
fields. Per field one ``re2.Set`` holds the atoms of that field, so one pass over each field's text
tells which atoms occur. Only *candidate* rules are then evaluated: the rules with one of the
atoms present that their condition cannot hold without (:func:`necessary_atoms`), plus the few
that can match without any term (for example classifier-only rules). Character offsets are
computed only for the atoms of matched rules (and for ``near`` conditions, which need them), and
only in the fields where those atoms were found. See docs/rules.md for the language and the score.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import re2

from monitor.inflect import (
    fold,
    parse_term,
    reference_pattern,
    search_pattern,
    set_pattern,
    token_keys,
)
from monitor.matchnodes import (
    FIELDS,
    Atom,
    AtomNode,
    BoolNode,
    Context,
    Node,
    compile_group,
    hit_position,
    necessary_atoms,
    needs_term,
    new_tuple,
    positive_atoms,
    ranked_fields,
    rule_score,
    term_strength,
)
from monitor.rulecode import Predicate, compile_predicate
from monitor.rulespec import DEFAULT_FIELDS, Rule
from monitor.text import tokenize_lower
from monitor.types import Article, RuleMatch, TermHit

MAX_HITS = 50  # evidence kept per rule
_RULE_MATCH: Final[type[RuleMatch]] = RuleMatch  # a C static once compiled (see new_tuple)
PAIRS_FROM = 24  # first words of phrases present from which the tokens are walked in order


def _options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    # A set's DFA must not run out of memory: RE2 would then report no match at all.
    options.max_mem = 1 << 30
    return options


def field_texts(article: Article) -> dict[str, str]:
    return {
        "title": article.title,
        "text": article.text,
        "url": article.url,
        "source": article.source,
        "tags": "\n".join((*article.tags, *article.categories)),
    }


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule: Rule
    root: Node | None
    weights: tuple[tuple[int, float], ...]
    threshold: float
    positives: frozenset[int]
    labels: dict[int, str]
    feed_names: frozenset[str]
    feed_tags: frozenset[str]
    feeds: bool  # has a feed selection (a native flag: no look at two sets per candidate)
    test: Predicate | None  # root.ev as one generated function
    # The condition is "any of these terms" and nothing else: it holds for every candidate (a
    # rule is a candidate when one of its terms is present), so a candidate needs no decide.
    implied: bool
    # The rule's fields every match copies, as native attributes: reading them from the Rule
    # (a Python class) is a generic attribute look-up each, per match.
    rule_id: str
    topic: str
    severity: str
    channels: tuple[str, ...]

    def applies_to(self, article: Article) -> bool:
        if not self.feeds:
            return True
        return article.source in self.feed_names or not self.feed_tags.isdisjoint(article.tags)

    def evidence(self, ctx: Context) -> float:
        return sum(w for atom, w in self.weights if atom in ctx.matched)

    def decide(self, ctx: Context) -> bool:
        if self.test is not None and not self.test(ctx.matched, ctx.probs, ctx):
            return False
        return not self.weights or self.evidence(ctx) >= self.threshold

    def score(self, ctx: Context, present: set[int]) -> tuple[float, float | None]:
        """(score in [0, 1], the classifier probability that counted); ``present`` is
        ``ctx.matched & positives``."""
        if self.weights:
            strength = min(1.0, max(0.0, self.evidence(ctx) / (2 * self.threshold)))
        else:
            strength = term_strength(len(present))
        prob = ctx.probs.get(self.topic) if ctx.probs else None
        p = prob or 0.0
        return rule_score(strength, p), prob


class _Builder:
    def __init__(self) -> None:
        self.atoms: list[Atom] = []
        self._index: dict[tuple[str, str, tuple[str, ...]], int] = {}

    def atom(self, kind: str, raw: str, fields: tuple[str, ...], *, exact: bool = False) -> int:
        if kind == "term":
            text, quoted = parse_term(raw)
            exact = exact or quoted
            pattern, reference = set_pattern(text, exact), reference_pattern(text, exact)
        else:
            pattern, reference = raw, ""
        key = (kind, pattern, fields)
        if key not in self._index:
            regex = re2.compile(raw, _options()) if kind == "regex" else None
            self._index[key] = len(self.atoms)
            term = (text, exact) if kind == "term" else ("", False)
            keys = token_keys(text, exact) if kind == "term" else None
            forms = keys[0] if keys is not None and keys[1] is None else ()
            spaced: tuple[tuple[str, str], ...] = ()
            pair: tuple[str, frozenset[str]] | None = None
            if keys is not None and keys[1] is not None:
                before, lasts = keys[1]
                joined = " ".join(before)
                spaced = tuple((f"{joined} {last}", last) for last in sorted(lasts))
                pair = (before[0], frozenset(before[1:2] or lasts))
            self.atoms.append(
                Atom(
                    len(self.atoms),
                    kind,
                    pattern,
                    fields,
                    regex,
                    reference,
                    term,
                    forms,
                    spaced,
                    pair,
                    ranked_fields(fields),
                )
            )
        return self._index[key]


def _compile_rule(rule: Rule, b: _Builder) -> CompiledRule:
    spec = rule.spec
    labels: dict[int, str] = {}
    root = (
        compile_group(spec, DEFAULT_FIELDS, b.atom, labels, spec.topic)
        if spec.has_condition()
        else None
    )
    weights = tuple(
        (b.atom("term", term, DEFAULT_FIELDS), w) for term, w in (spec.weights or {}).items()
    )
    for (atom, _w), term in zip(weights, spec.weights or {}, strict=True):
        labels.setdefault(atom, term)
    positives = positive_atoms(root) if root is not None else frozenset()
    positives |= {a for a, w in weights if w > 0}
    feeds = spec.feeds
    feed_names = frozenset(feeds.names if feeds else ())
    feed_tags = frozenset(feeds.tags if feeds else ())
    return CompiledRule(
        rule=rule,
        root=root,
        weights=weights,
        threshold=spec.threshold if spec.threshold is not None else 1.0,
        positives=frozenset(positives),
        labels=labels,
        feed_names=feed_names,
        feed_tags=feed_tags,
        feeds=bool(feed_names or feed_tags),
        test=compile_predicate(root) if root is not None else None,
        implied=(
            not weights
            and isinstance(root, BoolNode)
            and root.op == "any"
            and all(isinstance(child, AtomNode) for child in root.children)
        ),
        rule_id=rule.id,
        topic=rule.topic,
        severity=rule.severity,
        channels=rule.channels,
    )


@dataclass(frozen=True, slots=True)
class _Word:
    """What one token can start: the one-word terms it is a form of, and the phrases whose first
    word it is, each with the words that can follow (``follows``: second word -> phrases)."""

    singles: tuple[int, ...]
    firsts: tuple[tuple[int, frozenset[str]], ...]
    follows: dict[str, tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class _TokenIndex:
    """One field's plain terms, by token: one dictionary entry per word, so each distinct word
    of the text is looked up once in a large table (where the time goes at 10,000 rules)."""

    words: dict[str, _Word]

    def find(
        self, words: list[str], present: set[str], matched: set[int], hits: set[str]
    ) -> list[int]:
        """Add the one-word terms present to ``matched``, and to ``hits`` the words that
        their occurrences and the phrases' are found from; return the phrases whose first two
        words are in the text, candidates for confirmation. With few phrases on the words
        present each is checked; with many, one walk over the text's tokens finds the phrases
        whose first two words stand next to each other, which rules out far more."""
        entries = self.words
        starting: dict[str, _Word] = {}
        # The smaller side is walked, the other looked up (a few hundred rule words against a
        # few hundred distinct words of the text, or many thousand against them).
        ours = entries.keys() & present if len(entries) < len(present) else present
        for word in ours:
            entry = entries.get(word)
            if entry is None:
                continue
            if entry.singles:
                matched.update(entry.singles)
                hits.add(word)
            if entry.firsts:
                starting[word] = entry
        if len(starting) <= PAIRS_FROM:
            out = []
            for word, entry in starting.items():
                for atom, seconds in entry.firsts:
                    if not present.isdisjoint(seconds):
                        out.append(atom)
                        hits.add(word)
            return out
        found: set[int] = set()
        after: dict[str, tuple[int, ...]] | None = None
        before = ""
        for word in words:
            if after is not None and (atoms := after.get(word)) is not None:
                found.update(atoms)
                hits.add(before)
            start = starting.get(word)  # a small table: the phrase starts present
            after = start.follows if start is not None else None
            before = word
        return sorted(found)


class RuleSet:
    """Compiled rules: ``match(article, topics_probs)`` -> the rules that match, with evidence."""

    def __init__(self, rules: Sequence[Rule], compiled: Sequence[CompiledRule], b: _Builder):
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.topics: frozenset[str] = frozenset(r.topic for r in rules)
        self._compiled = tuple(compiled)
        self._atoms = tuple(b.atoms)
        self._term_res: dict[int, tuple[re.Pattern[str], re.Pattern[str]]] = {}  # when needed
        self._by_id = {c.rule.id: c for c in compiled}
        # Rules that can match with no term present are always evaluated.
        self._always = tuple(
            i
            for i, c in enumerate(compiled)
            if (not c.weights and (c.root is None or not needs_term(c.root)))
            or (c.weights and c.threshold <= 0)
        )
        # A rule is a candidate when one of its trigger atoms is present: one of those that its
        # condition cannot hold without (``all: [{any: [a, b]}, c]`` needs c), or with weights
        # and no such condition, one of its terms of positive weight.
        triggers: dict[int, list[int]] = {}
        for i, c in enumerate(compiled):
            trigger = c.positives
            if c.root is not None and needs_term(c.root):
                trigger = necessary_atoms(c.root)
            for atom in trigger:
                triggers.setdefault(atom, []).append(i)
        # By atom id (a list: no hashing of the id per matched atom).
        self._triggers = [tuple(triggers.get(a, ())) for a in range(len(b.atoms))]
        # Plain terms are found by token lookup: one tokenisation per field, then dictionary
        # hits, whatever the number of rules. A phrase is looked up by its first two words as a
        # pair of neighbouring tokens, then confirmed in the text (the separator between its
        # words must be spaces or hyphens). RE2 sets take the rest (terms with punctuation
        # inside, and regexes), whose DFA would grow with every distinct word otherwise.
        singles: dict[str, dict[str, list[int]]] = {}
        firsts: dict[str, dict[str, list[tuple[int, frozenset[str]]]]] = {}
        follows: dict[str, dict[str, dict[str, list[int]]]] = {}
        rest: list[Atom] = []
        for a in b.atoms:
            if not a.forms and a.pair is None:
                rest.append(a)
                continue
            for field in a.fields:
                if a.pair is None:
                    for word in a.forms:
                        singles.setdefault(field, {}).setdefault(word, []).append(a.id)
                    continue
                first, seconds = a.pair
                firsts.setdefault(field, {}).setdefault(first, []).append((a.id, seconds))
                after = follows.setdefault(field, {}).setdefault(first, {})
                for second in seconds:
                    after.setdefault(second, []).append(a.id)
        self._tokens: dict[str, _TokenIndex] = {}
        for f in {*singles, *firsts}:
            ones, starts, nexts = singles.get(f, {}), firsts.get(f, {}), follows.get(f, {})
            self._tokens[f] = _TokenIndex(
                {
                    w: _Word(
                        tuple(ones.get(w, ())),
                        tuple(starts.get(w, ())),
                        {second: tuple(v) for second, v in nexts.get(w, {}).items()},
                    )
                    for w in ones.keys() | starts.keys()
                }
            )
        self._sets: list[tuple[str, bool, Any, tuple[int, ...]]] = []
        for field in FIELDS:
            for kind in ("term", "regex"):
                members = [a for a in rest if a.kind == kind and field in a.fields]
                if not members:
                    continue
                rset = re2.Set.SearchSet(_options())
                for a in members:
                    rset.Add(a.pattern)
                rset.Compile()
                self._sets.append((field, kind == "term", rset, tuple(a.id for a in members)))

    @classmethod
    def compile(cls, rules: Sequence[Rule]) -> RuleSet:
        b = _Builder()
        compiled = [_compile_rule(r, b) for r in rules if r.enabled]
        return cls(rules, compiled, b)

    def __len__(self) -> int:
        return len(self.rules)

    def _context(
        self,
        article: Article,
        probs: Mapping[str, float],
        tokens: Mapping[str, Sequence[str]] | None = None,
        lowered: Mapping[str, str] | None = None,
    ) -> Context:
        texts = field_texts(article)
        given = tokens or {}
        folded: dict[str, str] = {}
        matched: set[int] = set()
        token_sets: dict[str, set[str]] = {}
        token_lists: dict[str, list[str]] = {}
        found_in: dict[str, set[int]] = {}
        ctx = Context(
            texts,
            folded,
            matched,
            probs,
            self._atoms,
            self._term_regex,
            token_sets,
            token_lists,
            lowered=dict(lowered) if lowered else {},
            found_in=found_in,
        )
        phrases: list[tuple[int, str]] = []
        for field, index in self._tokens.items():
            text = texts[field]
            if not text:
                continue
            given_words = given.get(field)
            if given_words is None:
                words = tokenize_lower(ctx.low(field))
            else:  # compiled code takes a list
                words = given_words if isinstance(given_words, list) else list(given_words)
            present = token_sets[field] = set(words)
            token_lists[field] = words
            hits = ctx.wanted[field] = set()
            here = found_in[field] = set()
            phrases.extend((atom, field) for atom in index.find(words, present, here, hits))
            matched |= here
        for field, is_term, rset, ids in self._sets:
            text = texts[field]
            if not text:
                continue
            if is_term:
                text = folded.get(field) or folded.setdefault(field, fold(text))
            found = rset.Match(text)
            if found:
                into = found_in.get(field)
                if into is None:
                    into = found_in[field] = set()
                for i in found:
                    into.add(ids[i])
                    matched.add(ids[i])
        for atom, field in phrases:
            # Each field is confirmed on its own: evidence is looked for only where found.
            here = found_in[field]
            if atom not in here and ctx.confirm(atom, field):
                here.add(atom)
                matched.add(atom)
        return ctx

    def _term_regex(self, atom: Atom) -> tuple[re.Pattern[str], re.Pattern[str]]:
        """(the reference pattern, the search pattern for lower-cased text), compiled once."""
        found = self._term_res.get(atom.id)
        if found is None:
            text, exact = atom.term
            found = self._term_res[atom.id] = (
                re.compile(atom.reference, re.IGNORECASE),
                re.compile(search_pattern(text, exact)),
            )
        return found

    def _candidates(self, matched: set[int]) -> list[int]:
        cands = set(self._always)
        triggers = self._triggers
        for atom in matched:
            rules = triggers[atom]
            if rules:
                cands.update(rules)
        return sorted(cands)

    def match(
        self,
        article: Article,
        topics_probs: Mapping[str, float],
        explain: bool = False,
        *,
        tokens: Mapping[str, Sequence[str]] | None = None,
        lowered: Mapping[str, str] | None = None,
    ) -> tuple[RuleMatch, ...]:
        """The rules that match; ``tokens`` may give :func:`tokenize` of some fields, and
        ``lowered`` their text lower-cased (a caller that tokenised has both)."""
        ctx = self._context(article, topics_probs, tokens, lowered)
        out = []
        for i in self._candidates(ctx.matched):
            c = self._compiled[i]
            if c.applies_to(article) and (c.implied or c.decide(ctx)):
                out.append(self._rule_match(c, ctx, article, explain))
        return tuple(out)

    def explain_rule(
        self, rule_id: str, article: Article, topics_probs: Mapping[str, float]
    ) -> dict[str, Any]:
        """Why one rule did or did not match this article (for `rules test`)."""
        c = self._by_id[rule_id]
        ctx = self._context(article, topics_probs)
        return self._explanation(c, ctx, article)

    def _hits(
        self, c: CompiledRule, ctx: Context, present: set[int] | None = None
    ) -> tuple[TermHit, ...]:
        if present is None:
            present = ctx.matched & c.positives
        labels = c.labels
        # One term: its evidence is in order already, and at most HITS_PER_TERM a field, so
        # under MAX_HITS.
        if len(present) == 1:
            (atom,) = present
            label = labels.get(atom)
            return ctx.evidence(atom, self._atoms[atom].pattern if label is None else label)
        hits: list[TermHit] = []
        for atom in sorted(present):
            label = labels.get(atom)
            hits += ctx.evidence(atom, self._atoms[atom].pattern if label is None else label)
        hits.sort(key=hit_position)  # field, then offset (stable for ties)
        return tuple(hits[:MAX_HITS])

    def _explanation(self, c: CompiledRule, ctx: Context, article: Article) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": c.rule.id, "file": c.rule.file}
        if c.feeds:
            out["feeds"] = {"passed": c.applies_to(article)}
        if c.root is not None:
            out["conditions"] = c.root.trace(ctx, c.labels)
        if c.weights:
            terms = {c.labels[a]: w for a, w in c.weights if a in ctx.matched}
            out["weights"] = {
                "matched": terms,
                "total": c.evidence(ctx),
                "threshold": c.threshold,
                "passed": c.evidence(ctx) >= c.threshold,
            }
        out["matched"] = c.applies_to(article) and c.decide(ctx)
        out["hits"] = [
            {"field": h.field, "term": h.term, "start": h.start, "end": h.end, "matched": h.matched}
            for h in self._hits(c, ctx)
        ]
        return out

    def _rule_match(
        self, c: CompiledRule, ctx: Context, article: Article, explain: bool
    ) -> RuleMatch:
        present = ctx.matched & c.positives
        score, prob = c.score(ctx, present)
        # The fields in RuleMatch's order; new_tuple skips the named tuple's __new__, a Python
        # function (an interpreter frame per match, even from compiled code).
        match: RuleMatch = new_tuple(
            _RULE_MATCH,
            c.rule_id,
            c.topic,
            c.severity,
            score,
            self._hits(c, ctx, present),
            prob,
            c.channels,
            self._explanation(c, ctx, article) if explain else None,
        )
        return match
