"""The compiled matcher: inflections, scoping, proximity, regexes; agreement with the reference."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import match, matchnodes
from monitor.inflect import forms
from monitor.match import RuleSet
from monitor.matchnodes import rule_score, term_strength, word_starts
from monitor.refmatch import reference_evidence, reference_match
from monitor.rules import load_rules
from monitor.rulespec import Rule, RuleSpec
from monitor.types import Article

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PACK = Path(__file__).parents[1] / "rules"
FIELD_ORDER = ("title", "text", "url", "source", "tags")
_ids = itertools.count()


def article(title: str = "", text: str = "", **kw: object) -> Article:
    return Article(
        id=str(next(_ids)),
        url=str(kw.pop("url", "")),
        title=title,
        text=text,
        source=str(kw.pop("source", "")),
        published=NOW,
        fetched_at=NOW,
        tags=tuple(str(t) for t in kw.pop("tags", ())),  # type: ignore[attr-defined]
    )


def ruleset(**specs: dict[str, object]) -> RuleSet:
    rules = [
        Rule.from_spec(name, f"{name}.yaml", RuleSpec.model_validate(spec))
        for name, spec in specs.items()
    ]
    return RuleSet.compile(rules)


def matched(rs: RuleSet, a: Article, probs: dict[str, float] | None = None) -> list[str]:
    return [m.rule for m in rs.match(a, probs or {})]


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("sanction", {"sanctions", "sanctioned", "sanctioning", "sanctioner", "sanctioners"}),
        ("seize", {"seizes", "seized", "seizing"}),
        ("supply", {"supplies", "supplied", "supplying", "supplier"}),
        ("tax", {"taxes", "taxed"}),
        ("ban", {"bans", "banned", "banning"}),
    ],
)
def test_regular_inflections_are_generated(word: str, expected: set[str]) -> None:
    assert expected <= set(forms(word))
    assert forms(word)[0] == word


def test_inflected_terms_match_on_word_boundaries_case_insensitively() -> None:
    rs = ruleset(r={"topic": "t", "any": ["sanction"]})
    for text in ("New SANCTIONS", "firms were sanctioned.", "Sanctioning X", "sanction-hit"):
        assert matched(rs, article(text)) == ["r"], text
    for text in ("unsanctionable", "sanctionsx", "xsanction", "sanct"):
        assert matched(rs, article(text)) == [], text


def test_exact_terms_do_not_inflect() -> None:
    rs = ruleset(
        q={"topic": "t", "any": ['"troop"']},
        e={"topic": "t", "any": ["=troop"]},
        o={"topic": "t", "any": [{"term": "troop", "exact": True}]},
    )
    assert matched(rs, article("one troop")) == ["q", "e", "o"]
    assert matched(rs, article("many troops")) == []


def test_phrases_inflect_their_last_word_and_span_spaces_or_hyphens() -> None:
    rs = ruleset(r={"topic": "t", "any": ["transit route"]})
    for text in ("cut transit routes", "Transit\n  route", "transit-route", "transit\u00a0routes"):
        assert matched(rs, article(text)) == ["r"], text
    assert matched(rs, article("transits route")) == []


def test_phrase_words_must_be_neighbours_in_the_text() -> None:
    rs = ruleset(r={"topic": "t", "any": ["transit route"]})
    for text in ("transit. Routes", "transit a route", "route transit", "transit, route transit"):
        assert matched(rs, article(text)) == [], text
    assert matched(rs, article("transit, then transit -- routes")) == ["r"]


def test_evidence_is_each_terms_first_whole_word_occurrences() -> None:
    rs = ruleset(r={"topic": "t", "any": ["ban", "gas transit"]})
    text = "2ban, bans_x; Bans banned gas-transits BAN ban ban gas  transit"
    hits = [(h.term, h.start, h.end, h.matched) for h in rs.match(article("", text), {})[0].hits]
    assert hits == [
        ("ban", 14, 18, "Bans"),
        ("ban", 19, 25, "banned"),
        ("gas transit", 26, 38, "gas-transits"),
        ("ban", 39, 42, "BAN"),
        ("gas transit", 51, 63, "gas  transit"),
    ]


def test_one_terms_evidence_is_never_cut() -> None:
    # A rule with one term returns that term's evidence as it is (match.RuleSet._hits).
    assert matchnodes.HITS_PER_TERM * len(matchnodes.FIELDS) <= match.MAX_HITS


def test_evidence_lists_fields_in_order_whatever_the_rule_says() -> None:
    rs = ruleset(r={"topic": "t", "any": [{"term": "ban", "fields": ["text", "title"]}]})
    hits = rs.match(article("A ban", "The ban"), {})[0].hits
    assert [(h.field, h.start) for h in hits] == [("title", 2), ("text", 4)]


def test_evidence_is_looked_for_only_in_the_fields_each_term_was_found_in() -> None:
    rs = ruleset(
        r={"topic": "t", "any": ["ban", "gas transit", "a.b"], "regex": ["x+y"]},
        s={"topic": "t", "any": [{"term": "route", "fields": ["url"]}]},
    )
    a = article("A ban on gas transit", "Gas-transit resumed via a.b, xxy", url="http://n/route")
    ctx = rs._context(a, {})
    atom = {(x.term[0] or x.pattern): x.id for x in rs._atoms}
    # A phrase found in the title is confirmed in the text too, on its own.
    assert ctx.found_in == {
        "title": {atom["ban"], atom["gas transit"]},
        "text": {atom["gas transit"], atom["a.b"], atom["x+y"]},
        "url": {atom["route"]},
    }
    hits = {m.rule: [(h.field, h.matched) for h in m.hits] for m in rs.match(a, {})}
    assert hits == {
        "r": [
            ("title", "ban"),
            ("title", "gas transit"),
            ("text", "Gas-transit"),
            ("text", "a.b"),
            ("text", "xxy"),
        ],
        "s": [("url", "route")],
    }


def test_non_ascii_punctuation_is_a_boundary_but_letters_are_not() -> None:
    rs = ruleset(r={"topic": "t", "any": ["russia"]}, c={"topic": "t", "any": ["café"]})
    assert matched(rs, article("“Russia’s” ports")) == ["r"]
    assert matched(rs, article("Russiaé")) == []
    assert matched(rs, article("le CAFÉ—noir")) == ["c"]
    hit = rs.match(article("“Russia’s” ports"), {})[0].hits[0]
    assert (hit.start, hit.end, hit.matched) == (1, 7, "Russia")


def test_text_is_lower_cased_as_python_does_even_when_compiled() -> None:
    # Python lower-cases a capital sigma that ends a word to the final form (ς); mypyc's own
    # str.lower (Python < 3.13) does not, which made a compiled matcher miss such words.
    rs = ruleset(g={"topic": "t", "any": ["οδος"]})
    a = article("ΟΔΟΣ κλειστή")
    assert matched(rs, a) == ["g"] == list(reference_match(rs.rules, a, {}))


def test_a_candidate_rule_is_decided_unless_any_of_its_terms_suffices() -> None:
    # A rule becomes a candidate when one of its terms is present; only "any of these terms"
    # then holds without deciding it.
    rs = ruleset(
        n={"topic": "t", "any": ["troop", "border"]},
        a={"topic": "t", "all": ["troop", "border"]},
        g={"topic": "t", "any": ["troop", {"all": ["gas", "border"]}]},
    )
    assert matched(rs, article("troop")) == ["n", "g"]
    assert matched(rs, article("border")) == ["n"]
    assert matched(rs, article("border troop")) == ["n", "a", "g"]


def test_a_rule_is_a_candidate_only_with_a_term_its_condition_needs() -> None:
    rs = ruleset(
        a={"topic": "t", "all": [{"any": ["ban", "embargo"]}, "oil"], "none": ["film"]},
        b={"topic": "t", "near": {"terms": ["troop", "border"], "within": 4}},
        c={
            "topic": "t",
            "any": [
                {"all": ["gas", {"any": ["pipe", "pipeline"]}]},
                {"all": [{"any": ["power", "cut"]}, "grid"]},
            ],
        },
        d={"topic": "t", "weights": {"tariff": 2, "duty": 1}, "threshold": 2},
    )

    def candidates(text: str) -> set[str]:
        ctx = rs._context(article("", text), {})
        return {rs.rules[i].id for i in rs._candidates(ctx.matched)}

    assert candidates("ban embargo film border pipe pipeline power cut duty") == {"d"}
    assert candidates("oil") == {"a"}
    assert candidates("troop") == {"b"}
    assert candidates("gas") == candidates("grid") == {"c"}
    assert candidates("tariff") == {"d"}
    assert matched(rs, article("", "A ban on oil, troops at the border, gas pipe, tariff")) == [
        "a",
        "b",
        "c",
        "d",
    ]


def test_all_any_none_groups_nest() -> None:
    rs = ruleset(r={"topic": "t", "all": [{"any": ["troop", "army"]}, "border"], "none": ["scout"]})
    assert matched(rs, article("army at the border")) == ["r"]
    assert matched(rs, article("army far away")) == []
    assert matched(rs, article("scout troop at the border")) == []


def test_field_scoping() -> None:
    rs = ruleset(
        t={"topic": "t", "fields": ["title"], "any": ["embargo"]},
        u={"topic": "t", "any": [{"term": "gov", "fields": ["url"]}]},
        s={"topic": "t", "any": [{"any": ["reuters"], "fields": ["source"]}]},
        g={"topic": "t", "any": [{"term": "energy", "fields": ["tags"]}]},
    )
    assert matched(rs, article("Embargo", "")) == ["t"]
    assert matched(rs, article("", "embargo")) == []
    assert matched(rs, article("", "", url="https://www.state.gov/x")) == ["u"]
    assert matched(rs, article("", "", source="Reuters World")) == ["s"]
    assert matched(rs, article("", "", tags=["energy"])) == ["g"]


def test_near_counts_words_between_terms() -> None:
    rs = ruleset(r={"topic": "t", "near": {"terms": ["troop", "border"], "within": 3}})
    assert matched(rs, article("troops near the border")) == ["r"]  # 3 words apart
    assert matched(rs, article("the border where troops wait")) == ["r"]
    assert matched(rs, article("troops massed near the border")) == []  # 4 words apart
    assert matched(rs, article("troops", "border")) == []  # different fields


@given(st.text(alphabet="ab1_ -.’—éЖж²\u0301\u00a0ǅ𝐀\n", max_size=600))
def test_word_starts_are_where_runs_of_word_characters_start(text: str) -> None:
    assert word_starts(text).tolist() == [m.start() for m in re.finditer(r"\w+", text)]


@given(st.floats(0, 1), st.floats(0, 1))
def test_a_score_is_rounded_to_six_decimals_as_round_does(strength: float, p: float) -> None:
    assert rule_score(strength, p) == round((1 - (1 - strength) * (1 - p)) * 1e6) / 1e6


def test_term_strength_halves_what_is_missing_per_distinct_term() -> None:
    assert [term_strength(n) for n in range(80)] == [1 - 0.5**n for n in range(80)]


@pytest.mark.parametrize(
    ("strength", "expected"),
    [(0.0078125, 0.007812), (0.9765625, 0.976562), (0.0234375, 0.023438), (0.5, 0.5), (1.0, 1.0)],
)
def test_scores_halfway_between_round_to_even(strength: float, expected: float) -> None:
    # k / 128 is exactly 7812.5 k millionths: halfway for odd k, rounded to the even neighbour.
    assert rule_score(strength, 0.0) == expected


def test_regex_runs_on_re2_case_insensitively() -> None:
    rs = ruleset(r={"topic": "t", "regex": r"\b(?:mig|su)-\d{2}\b"})
    assert matched(rs, article("MiG-29 jets")) == ["r"]
    hit = rs.match(article("two Su-35 fighters"), {})[0].hits[0]
    assert hit.matched == "Su-35"


def test_feed_selection_by_name_or_tag() -> None:
    rs = ruleset(
        r={"topic": "t", "any": ["embargo"], "feeds": {"names": ["wire"], "tags": ["gov"]}}
    )
    assert matched(rs, article("embargo", source="wire")) == ["r"]
    assert matched(rs, article("embargo", source="blog", tags=["gov"])) == ["r"]
    assert matched(rs, article("embargo", source="blog")) == []


def test_classifier_alone_or_with_terms() -> None:
    rs = ruleset(
        r={
            "topic": "sanctions",
            "any": [
                {"classifier": {"min": 0.5}},
                {"all": [{"classifier": {"min": 0.3}}, {"any": ["embargo"]}]},
            ],
        }
    )
    assert matched(rs, article("nothing"), {"sanctions": 0.6}) == ["r"]
    assert matched(rs, article("nothing"), {"sanctions": 0.4}) == []
    assert matched(rs, article("an embargo"), {"sanctions": 0.4}) == ["r"]
    assert matched(rs, article("an embargo"), {"sanctions": 0.2}) == []
    assert matched(rs, article("an embargo"), {}) == []  # no classifier: its conditions fail
    (m,) = rs.match(article("nothing"), {"sanctions": 0.6})
    assert m.classifier == 0.6 and m.score == 0.6


def test_weights_and_threshold_grade_the_evidence() -> None:
    rs = ruleset(
        r={"topic": "t", "weights": {"embargo": 2, "sanction": 2, "ban": 1}, "threshold": 3}
    )
    assert matched(rs, article("an embargo")) == []
    (m,) = rs.match(article("an embargo and a ban"), {})
    assert m.score == 0.5  # evidence 3 / (2 x threshold 3)
    (m,) = rs.match(article("embargo, sanctions and bans"), {})
    assert m.score == 0.833333  # 5 / 6, rounded to 6 places


def test_boolean_score_grows_with_distinct_terms_and_the_classifier() -> None:
    rs = ruleset(r={"topic": "t", "any": ["embargo", "sanction", "ban"]})
    assert rs.match(article("embargo"), {})[0].score == 0.5
    assert rs.match(article("embargo embargo sanctions"), {})[0].score == 0.75
    assert rs.match(article("embargo"), {"t": 0.5})[0].score == 0.75


def test_disabled_rules_are_kept_but_never_match() -> None:
    rs = ruleset(r={"topic": "t", "any": ["embargo"], "enabled": False})
    assert [r.id for r in rs.rules] == ["r"]
    assert matched(rs, article("embargo")) == []


def test_explanation_shows_passed_and_failed_conditions() -> None:
    rs = ruleset(r={"topic": "t", "all": ["embargo"], "none": ["football"]})
    (m,) = rs.match(article("Oil embargo"), {}, explain=True)
    assert m.explanation is not None
    cond = m.explanation["conditions"]
    assert cond["passed"] is True
    assert cond["all"][0]["all"][0] == {
        "term": "embargo",
        "fields": ["title", "text"],
        "passed": True,
        "at": [{"field": "title", "start": 4, "end": 11}],
    }
    assert cond["all"][1]["none"][0]["passed"] is False
    why = rs.explain_rule("r", article("football embargo"), {})
    assert why["matched"] is False and why["conditions"]["all"][1]["passed"] is False


HARD_NEGATIVES = [
    "The football association sanctioned the club with a ten-point deduction after a league "
    "inquiry into financial irregularities.",
    "The company's drug pipeline was cut back after two late-stage trials were halted.",
    "Scout troop 12 marched to the lake and deployed their tents near the park border.",
    "City transit workers went on strike on Monday, halting bus and subway routes across town.",
]
THREE_TOPICS = (
    "The leader threatened to cut transit routes and boycott a neighbour's ports if sanctions "
    "are imposed, while ordering troops to combat readiness."
)


@pytest.mark.parametrize("text", HARD_NEGATIVES)
def test_default_pack_ignores_hard_negatives(text: str) -> None:
    rs = load_rules([PACK])
    assert rs.match(article("", text), {}) == ()
    assert rs.match(article(text, text), {}) == ()


def test_default_pack_alerts_on_all_three_topics() -> None:
    rs = load_rules([PACK])
    topics = {m.topic for m in rs.match(article("Leader threatens neighbour", THREE_TOPICS), {})}
    assert topics == {"sanctions", "troop-movements", "energy-transit"}


# Agreement of the compiled matcher with the slow reference, on random rules and articles.
# A small vocabulary, with inflections, odd separators and non-ASCII neighbours, so that rules
# match often and the edge cases (boundaries, folding, proximity limits) come up.
WORDS = ["ban", "troop", "border", "gas", "café", "u.s."]
_text_tokens = st.sampled_from(
    [
        *WORDS,
        "bans",
        "banned",
        "troops",
        "borders",
        "Gas",
        "CAFÉ",
        "U.S.",
        "gasx",
        "the",
        "-",
        " ",
        "’",
        "\u00a0",
        ",",
        "\n",
        "é",
        "_",
        "2",
    ]
)
_texts = st.lists(_text_tokens, max_size=14).map(lambda ts: " ".join(ts) if ts else "")
_spaced = st.lists(_text_tokens, max_size=10).map("".join)
_term = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(WORDS).map(lambda w: "=" + w),
    st.tuples(st.sampled_from(WORDS), st.sampled_from(WORDS)).map(" ".join),
)
_fields = st.sampled_from(
    [["title"], ["text"], ["title", "text"], ["text", "title"], ["url"], ["tags"]]
)


def _cond(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(
        st.fixed_dictionaries({"any": st.lists(children, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"all": st.lists(children, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"none": st.lists(children, min_size=1, max_size=2)}),
        st.fixed_dictionaries(
            {"any": st.lists(children, min_size=1, max_size=2), "fields": _fields}
        ),
    )


_leaf = st.one_of(
    _term,
    st.fixed_dictionaries({"term": _term, "exact": st.booleans(), "fields": _fields}),
    st.fixed_dictionaries(
        {
            "near": st.fixed_dictionaries(
                {
                    "terms": st.lists(st.sampled_from(WORDS), min_size=2, max_size=3),
                    "within": st.integers(1, 4),
                }
            )
        }
    ),
    st.fixed_dictionaries({"regex": st.sampled_from(["ga[sz]", r"\d", "port(al)?", "x y"])}),
    st.fixed_dictionaries(
        {"classifier": st.fixed_dictionaries({"min": st.sampled_from([0.2, 0.5, 0.8])})}
    ),
)
_conditions = st.recursive(_leaf, _cond, max_leaves=6)
_rule = st.one_of(
    st.fixed_dictionaries(
        {"topic": st.just("t"), "any": st.lists(_conditions, min_size=1, max_size=3)}
    ),
    st.fixed_dictionaries(
        {"topic": st.just("t"), "all": st.lists(_conditions, min_size=2, max_size=3)}
    ),
    st.fixed_dictionaries(
        {
            "topic": st.just("t"),
            "all": st.lists(_conditions, min_size=1, max_size=2),
            "none": st.lists(_term, min_size=1, max_size=2),
        }
    ),
    st.fixed_dictionaries(
        {
            "topic": st.just("t"),
            "weights": st.dictionaries(
                _term, st.sampled_from([-1.0, 1.0, 2.0]), min_size=1, max_size=3
            ),
            "threshold": st.sampled_from([1.0, 2.5]),
        }
    ),
    st.fixed_dictionaries(
        {
            "topic": st.just("t"),
            "any": st.lists(_term, min_size=1, max_size=2),
            "feeds": st.fixed_dictionaries({"names": st.just(["wire"])}),
        }
    ),
    st.fixed_dictionaries(
        {
            "topic": st.just("t"),
            "near": st.fixed_dictionaries(
                {
                    "terms": st.lists(
                        st.sampled_from(WORDS[:3]), min_size=2, max_size=3, unique=True
                    ),
                    "within": st.integers(1, 3),
                }
            ),
        }
    ),
)


def needs_c_pass() -> matchnodes.TokenPlaces:
    """The C extension's pass; skips where the project was installed without compiling."""
    if matchnodes.TOKEN_PLACES is None:
        if os.environ.get("MONITOR_TEST_COMPILED_REQUIRED") == "1":
            pytest.fail("MONITOR_TEST_COMPILED_REQUIRED=1 but monitor._scan is not built")
        pytest.skip("installed without compiling (MONITOR_PURE_PYTHON=1?)")
    return matchnodes.TOKEN_PLACES


@pytest.fixture(params=["places", "places-walk", "search"])
def term_finding(request: pytest.FixtureRequest, monitoring: pytest.MonkeyPatch) -> str:
    """How the matcher finds a term's occurrences: from where the tokens stand (the C pass,
    here on every field whatever its length; with "walk", phrases are picked by a walk over
    the tokens, as where many phrase starts are present) or by searching the text (as
    without the C extension, or on short fields)."""
    if request.param.startswith("places"):
        needs_c_pass()
        monitoring.setattr(matchnodes, "PLACES_FROM", 0)
        if request.param == "places-walk":
            monitoring.setattr(match, "PAIRS_FROM", 0)
    else:
        monitoring.setattr(matchnodes, "TOKEN_PLACES", None)
    return str(request.param)


@pytest.fixture
def monitoring() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    specs=st.lists(_rule, min_size=1, max_size=4),
    articles=st.lists(
        st.tuples(
            _spaced,
            _texts,
            _spaced,
            st.lists(_text_tokens, max_size=2),
            st.sampled_from(["wire", "blog"]),
            st.sampled_from([0.0, 0.3, 0.6, 0.9]),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_compiled_matcher_agrees_with_reference(
    term_finding: str,
    specs: list[dict[str, object]],
    articles: list[tuple[str, str, str, list[str], str, float]],
) -> None:
    rules = [Rule.from_spec(f"r{i}", "x", RuleSpec.model_validate(s)) for i, s in enumerate(specs)]
    rs = RuleSet.compile(rules)
    for title, text, url, tags, source, p in articles:
        a = article(title, text, url=url, tags=tags, source=source)
        probs = {"t": p}
        matches = rs.match(a, probs)
        got = {m.rule: m.score for m in matches}
        assert got == reference_match(rules, a, probs), (specs, a)
        # The evidence too: every positive term's first occurrences, at the same offsets.
        evidence = {
            m.rule: sorted(
                ((h.field, h.start, h.end, h.matched) for h in m.hits),
                key=lambda h: (FIELD_ORDER.index(h[0]), h[1], h[2], h[3]),
            )
            for m in matches
        }
        assert evidence == reference_evidence(rules, a, probs), (specs, a)
        for m in matches:  # in field order, then by offset
            order = [(FIELD_ORDER.index(h.field), h.start) for h in m.hits]
            assert order == sorted(order), (specs, a)


def test_a_condition_too_deep_to_generate_code_for_is_still_evaluated() -> None:
    from monitor.matchnodes import AtomNode, BoolNode, Context, Node
    from monitor.rulecode import compile_predicate

    node: Node = AtomNode(0, "term")
    for i in range(250):
        node = BoolNode("all" if i % 2 else "any", (node, AtomNode(1, "term")))
    test = compile_predicate(node)  # nested deeper than Python's parser allows

    def ctx(matched: set[int]) -> Context:
        return Context({}, {}, matched, {}, (), lambda a: None)  # type: ignore[arg-type,return-value]

    assert test({0, 1}, {}, ctx({0, 1})) is True
    assert test(set(), {}, ctx(set())) is False


def test_a_long_fields_terms_are_found_where_its_tokens_stand() -> None:
    rs = ruleset(
        r={"topic": "t", "any": ["ban", "troop movement", "gas"], "fields": ["text"]},
        s={"topic": "t", "near": {"terms": ["ban", "border"], "within": 3}},
    )
    filler = "Nothing to report here today. " * 14  # past PLACES_FROM characters
    text = f"{filler}Troop movements near the border; a ban, bans and banned. A troop movement."
    assert len(text) >= matchnodes.PLACES_FROM
    passes: list[str] = []
    c_pass = needs_c_pass()

    def counted(low: str, words: list[str], wanted: set[str]) -> matchnodes.Places | None:
        passes.append(low)
        return c_pass(low, words, wanted)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(matchnodes, "TOKEN_PLACES", counted)
        placed = rs.match(article("Border ban", text), {})
        patch.setattr(matchnodes, "TOKEN_PLACES", None)
        searched = rs.match(article("Border ban", text), {})
    assert len(passes) == 1  # the text, once for every term; the short title is searched
    assert placed == searched
    hits = {m.rule: [(h.field, h.matched, h.start) for h in m.hits] for m in placed}
    at = text.index("Troop movements")
    assert hits["r"] == [
        ("text", "Troop movements", at),
        ("text", "ban", text.index("ban,")),
        ("text", "bans", text.index("bans")),
        ("text", "banned", text.index("banned")),
        ("text", "troop movement", text.index("troop movement.")),
    ]


def test_a_phrases_occurrences_do_not_overlap(term_finding: str) -> None:
    rules = [
        Rule.from_spec("r", "r.yaml", RuleSpec.model_validate({"topic": "t", "any": ["=ban ban"]}))
    ]
    a = article("", "ban ban ban ban ban, then ban-ban")
    (m,) = RuleSet.compile(rules).match(a, {})
    assert [(h.start, h.end) for h in m.hits] == [(0, 7), (8, 15), (26, 33)]
    assert [(h.field, h.start, h.end, h.matched) for h in m.hits] == reference_evidence(
        rules, a, {}
    )["r"]


def test_without_the_c_extension_named_tuples_are_made_by_tuple_new() -> None:
    from monitor.types import TermHit

    hit = matchnodes._tuple_new(TermHit, "text", "ban", 4, 7, "ban")
    assert type(hit) is TermHit
    assert hit == TermHit("text", "ban", 4, 7, "ban")
