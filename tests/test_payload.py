from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import orjson
import pytest

from monitor.payload import (
    MAX_EVIDENCE,
    PAYLOAD_VERSION,
    alert_payload,
    digest_payload,
    excerpt,
    payload_schema,
    test_payload,
)
from monitor.types import Alert, Article, TermHit

NOW = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def make_article(
    n: int = 1, *, text: str = "Ministers agreed new sanctions on Tuesday."
) -> Article:
    return Article(
        id=f"art{n}",
        url=f"https://news.example/{n}",
        title=f"EU adopts sanctions package {n}",
        text=text,
        source="example-wire",
        published=NOW - timedelta(hours=n),
        fetched_at=NOW,
        story_id=f"art{n}",
    )


def make_alert(n: int = 1, *, hits: int = 2, classifier: float | None = 0.91) -> Alert:
    return Alert(
        id=f"alr{n}",
        rule="eu-sanctions",
        topic="sanctions",
        severity="high",
        score=0.8712345,
        article_id=f"art{n}",
        story_id=f"art{n}",
        created_at=NOW,
        evidence=tuple(
            TermHit(field="title", term="sanction*", start=i, end=i + 9, matched="sanctions")
            for i in range(hits)
        ),
        classifier=classifier,
    )


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = payload_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def decode(body: bytes) -> dict[str, Any]:
    value: dict[str, Any] = orjson.loads(body)
    return value


def test_alert_payload_validates_and_carries_the_alert(
    validator: jsonschema.Draft202012Validator,
) -> None:
    doc = decode(alert_payload(make_alert(), make_article(), now=NOW))
    validator.validate(doc)
    assert doc["type"] == "alert.created"
    assert doc["version"] == PAYLOAD_VERSION == "1"
    assert doc["timestamp"] == "2026-03-04T05:06:07Z"
    alert, article = doc["data"]["alert"], doc["data"]["article"]
    assert alert["score"] == 0.8712
    assert alert["classifier"] == 0.91
    assert alert["evidence"][0] == {
        "field": "title",
        "term": "sanction*",
        "matched": "sanctions",
        "start": 0,
        "end": 9,
    }
    assert "'sanction*' in title" in alert["why"] and "0.87" in alert["why"]
    assert article["url"] == "https://news.example/1"
    assert article["published"] == "2026-03-04T04:06:07Z"


def test_alert_without_classifier_or_evidence_validates(
    validator: jsonschema.Draft202012Validator,
) -> None:
    doc = decode(alert_payload(make_alert(hits=0, classifier=None), make_article(), now=NOW))
    validator.validate(doc)
    assert doc["data"]["alert"]["classifier"] is None
    assert doc["data"]["alert"]["evidence"] == []


def test_digest_payload_validates_and_counts(validator: jsonschema.Draft202012Validator) -> None:
    items = [(make_alert(n), make_article(n)) for n in range(1, 6)]
    body = digest_payload(
        items,
        rule="eu-sanctions",
        topic="sanctions",
        window_start=NOW - timedelta(minutes=15),
        window_end=NOW,
        now=NOW,
    )
    doc = decode(body)
    validator.validate(doc)
    assert doc["type"] == "alert.digest"
    assert doc["data"]["group"]["count"] == 5
    assert doc["data"]["group"]["window_start"] == "2026-03-04T04:51:07Z"
    assert [a["alert"]["id"] for a in doc["data"]["alerts"]] == [f"alr{n}" for n in range(1, 6)]


def test_test_payload_validates(validator: jsonschema.Draft202012Validator) -> None:
    doc = decode(test_payload("ops-hook", now=NOW))
    validator.validate(doc)
    assert doc["type"] == "test"
    assert doc["data"]["channel"] == "ops-hook"


def test_schema_rejects_a_payload_with_the_wrong_data_shape(
    validator: jsonschema.Draft202012Validator,
) -> None:
    doc = decode(test_payload("x", now=NOW))
    doc["type"] = "alert.created"  # a test body claiming to be an alert
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(doc)


def test_evidence_is_capped_but_the_total_is_kept(
    validator: jsonschema.Draft202012Validator,
) -> None:
    doc = decode(alert_payload(make_alert(hits=150), make_article(), now=NOW))
    validator.validate(doc)
    assert len(doc["data"]["alert"]["evidence"]) == MAX_EVIDENCE
    assert doc["data"]["alert"]["evidence_total"] == 150


def test_same_inputs_render_the_same_bytes() -> None:
    first = alert_payload(make_alert(), make_article(), now=NOW)
    again = alert_payload(make_alert(), make_article(), now=NOW)
    assert first == again
    assert first.startswith(b'{"type":"alert.created","version":"1",')


def test_times_in_other_zones_are_rendered_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    doc = decode(test_payload("x", now=datetime(2026, 3, 4, 7, 6, 7, tzinfo=plus_two)))
    assert doc["timestamp"] == "2026-03-04T05:06:07Z"


def test_non_ascii_text_survives_as_utf8() -> None:
    article = make_article(text="Санкции против «Газпрома» — новые меры")
    body = alert_payload(make_alert(), article, now=NOW)
    assert "«Газпрома»".encode() in body


def test_short_text_is_kept_whole_with_whitespace_collapsed() -> None:
    assert excerpt("  Oil\n\n transit   halted.  ") == "Oil transit halted."


def test_excerpt_cuts_on_a_word_boundary_within_the_limit() -> None:
    words = " ".join(f"word{i}" for i in range(200))
    cut = excerpt(words, 300)
    assert len(cut) <= 300
    assert cut.endswith("…")
    stem = cut[:-1]
    assert words.startswith(stem)
    assert words[len(stem)] == " "  # the next character was a space: no half word


def test_excerpt_of_one_enormous_word_is_cut_hard() -> None:
    cut = excerpt("x" * 1000, 300)
    assert len(cut) == 300 and cut.endswith("…")


def test_excerpt_exactly_at_the_limit_is_untouched() -> None:
    text = "a" * 300
    assert excerpt(text, 300) == text


def test_excerpt_in_payload_is_bounded(validator: jsonschema.Draft202012Validator) -> None:
    article = make_article(text="Pipeline transit through the corridor was halted. " * 40)
    doc = decode(alert_payload(make_alert(), article, now=NOW))
    validator.validate(doc)
    assert len(doc["data"]["article"]["excerpt"]) <= 300


DOCS = Path(__file__).parents[1] / "docs" / "webhooks.md"


def test_every_documented_example_validates_and_all_types_are_shown(
    validator: jsonschema.Draft202012Validator,
) -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    docs = [orjson.loads(block) for block in blocks]
    for doc in docs:
        validator.validate(doc)
    assert sorted(d["type"] for d in docs) == ["alert.created", "alert.digest", "test"]
