"""A slow, obvious evaluator of rules: the specification the compiled matcher is tested against.

It walks each rule's spec recursively and searches the original text with Python ``re`` for
every term, one rule at a time. Only tests use it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from monitor.inflect import parse_term, reference_pattern
from monitor.matchnodes import rule_score
from monitor.rulespec import DEFAULT_FIELDS, Group, Rule, TermSpec
from monitor.types import Article


def _texts(article: Article) -> dict[str, str]:
    tags = "\n".join((*article.tags, *article.categories))
    return {
        "title": article.title,
        "text": article.text,
        "url": article.url,
        "source": article.source,
        "tags": tags,
    }


class _Eval:
    def __init__(self, rule: Rule, article: Article, probs: Mapping[str, float]) -> None:
        self.rule, self.texts, self.probs = rule, _texts(article), probs
        self.present: set[tuple[str, str, tuple[str, ...]]] = set()  # positive items that held

    def term_spans(self, raw: str, exact: bool, fields: Sequence[str]) -> dict[str, list[int]]:
        text, quoted = parse_term(raw)
        rx = re.compile(reference_pattern(text, exact or quoted), re.IGNORECASE)
        return {f: [m.start() for m in rx.finditer(self.texts[f])] for f in fields}

    def term(self, raw: str, exact: bool, fields: Sequence[str], positive: bool) -> bool:
        found = any(self.term_spans(raw, exact, fields).values())
        if found and positive:
            text, quoted = parse_term(raw)
            self.present.add(("term", reference_pattern(text, exact or quoted), tuple(fields)))
        return found

    def word_index(self, field: str, start: int) -> int:
        # The index of the last word starting at or before ``start``.
        return len([m for m in re.finditer(r"\w+", self.texts[field]) if m.start() <= start]) - 1

    def group(self, g: Group, fields: Sequence[str], positive: bool) -> bool:
        scope = list(g.fields) if g.fields else list(fields)
        results = []
        if g.all is not None:
            results.append(all([self.cond(c, scope, positive) for c in g.all]))
        if g.any is not None:
            results.append(any([self.cond(c, scope, positive) for c in g.any]))
        if g.none is not None:
            results.append(not any([self.cond(c, scope, False) for c in g.none]))
        if g.near is not None:
            nf = list(g.near.fields) if g.near.fields else scope
            found = [self.term(t, False, nf, positive) for t in g.near.terms]
            ok = False
            if all(found):
                for f in nf:
                    spans = [self.term_spans(t, False, nf)[f] for t in g.near.terms]
                    words = [[self.word_index(f, s) for s in sp] for sp in spans]
                    if any(max(c) - min(c) <= g.near.within for c in itertools.product(*words)):
                        ok = True
            results.append(ok)
        for source in g.regex or ():
            rx = re.compile(source, re.IGNORECASE)
            hit = any(rx.search(self.texts[f]) is not None for f in scope if self.texts[f])
            if hit and positive:
                self.present.add(("regex", source, tuple(scope)))
            results.append(hit)
        if g.classifier is not None:
            topic = g.classifier.topic or self.rule.topic
            results.append(self.probs.get(topic, 0.0) >= g.classifier.min)
        return all(results)

    def cond(self, c: str | TermSpec | Group, fields: Sequence[str], positive: bool) -> bool:
        if isinstance(c, str):
            return self.term(c, False, fields, positive)
        if isinstance(c, TermSpec):
            return self.term(c.term, c.exact, list(c.fields) if c.fields else fields, positive)
        return self.group(c, fields, positive)


def reference_match(
    rules: Sequence[Rule], article: Article, probs: Mapping[str, float]
) -> dict[str, float]:
    """rule id -> score, for every enabled rule that matches (see docs/rules.md for the score)."""
    return {rule: score for rule, (score, _hits) in _reference(rules, article, probs).items()}


Evidence = list[tuple[str, int, int, str]]  # (field, start, end, text matched), sorted


def reference_evidence(
    rules: Sequence[Rule], article: Article, probs: Mapping[str, float], *, per_term: int = 3
) -> dict[str, Evidence]:
    """rule id -> its evidence: for every positive term or regex that held, its first
    ``per_term`` occurrences in each of its fields, in field order then by offset."""
    return {
        rule: hits for rule, (_score, hits) in _reference(rules, article, probs, per_term).items()
    }


def _evidence(ev: _Eval, per_term: int) -> Evidence:
    order = ("title", "text", "url", "source", "tags")
    out: Evidence = []
    for _kind, pattern, fields in ev.present:
        rx = re.compile(pattern, re.IGNORECASE)  # a term's reference pattern, or the regex
        for f in fields:
            spans = [m.span() for m in rx.finditer(ev.texts[f]) if m.end() > m.start()]
            out += [(f, s, e, ev.texts[f][s:e]) for s, e in spans[:per_term]]
    return sorted(out, key=lambda h: (order.index(h[0]), h[1], h[2], h[3]))


def _reference(
    rules: Sequence[Rule], article: Article, probs: Mapping[str, float], per_term: int = 3
) -> dict[str, tuple[float, Evidence]]:
    out: dict[str, tuple[float, Evidence]] = {}
    for rule in rules:
        spec = rule.spec
        if not rule.enabled:
            continue
        feeds = spec.feeds
        if feeds and (feeds.names or feeds.tags):
            in_feed = article.source in feeds.names or bool(set(feeds.tags) & set(article.tags))
            if not in_feed:
                continue
        ev = _Eval(rule, article, probs)
        ok = ev.group(spec, DEFAULT_FIELDS, True) if spec.has_condition() else True
        strength: Any = None
        if spec.weights:
            total = sum(
                w for t, w in spec.weights.items() if ev.term(t, False, DEFAULT_FIELDS, w > 0)
            )
            threshold = spec.threshold if spec.threshold is not None else 1.0
            ok = ok and total >= threshold
            strength = min(1.0, max(0.0, total / (2 * threshold)))
        if not ok:
            continue
        if strength is None:
            strength = 1.0 - 0.5 ** len(ev.present)
        p = probs.get(rule.topic) or 0.0
        out[rule.id] = (rule_score(strength, p), _evidence(ev, per_term))
    return out
