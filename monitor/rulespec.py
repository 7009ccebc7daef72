"""The rule file format as pydantic models (unknown keys are errors); docs/rules.md explains it.

A condition is a term (a string), a term object (``{term, exact, fields}``) or a group: a mapping
whose keys ``any``, ``all``, ``none``, ``near``, ``regex``, ``classifier`` must all hold. The rule
itself is a group plus metadata, scoring, routing and examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import re2
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from monitor.config import parse_duration
from monitor.inflect import parse_term

FieldName = Literal["title", "text", "url", "source", "tags"]
Severity = Literal["info", "low", "medium", "high", "critical"]
DEFAULT_FIELDS: tuple[str, ...] = ("title", "text")
CONDITION_KEYS = ("any", "all", "none", "near", "regex", "classifier")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _check_term(value: str) -> str:
    text, _exact = parse_term(value)
    if not text.split():
        raise ValueError("empty term")
    return value


def check_regex(value: str) -> str:
    options = re2.Options()
    options.log_errors = False
    try:
        re2.compile(value, options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise ValueError(f"invalid regular expression: {detail}") from None
    return value


Term = Annotated[str, BeforeValidator(lambda v: _check_term(v) if isinstance(v, str) else v)]
Regex = Annotated[str, BeforeValidator(lambda v: check_regex(v) if isinstance(v, str) else v)]
Fields = Annotated[list[FieldName], Field(min_length=1)]


class TermSpec(_Strict):
    """``{term: "troop", exact: true, fields: [title]}``."""

    term: Term
    exact: bool = False
    fields: Fields | None = None


class Near(_Strict):
    """All ``terms`` start within ``within`` words of each other, in one field."""

    terms: Annotated[list[Term], Field(min_length=2)]
    within: int = Field(default=8, ge=1, le=1000)
    fields: Fields | None = None


class ClassifierCond(_Strict):
    """The classifier's probability for ``topic`` (default: the rule's topic) >= ``min``."""

    topic: str | None = None
    min: float = Field(ge=0.0, le=1.0)

    @field_validator("min", mode="before")
    @classmethod
    def _int_ok(cls, v: Any) -> Any:
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


def _kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "<text>"
    if isinstance(value, dict):
        return "<term>" if "term" in value else "<group>"
    return None


Condition = Annotated[
    Annotated[Term, Tag("<text>")]
    | Annotated[TermSpec, Tag("<term>")]
    | Annotated["Group", Tag("<group>")],
    Discriminator(
        _kind,
        custom_error_type="condition_type",
        custom_error_message="expected a term (string) or a condition mapping",
    ),
]
Conditions = Annotated[list[Condition], Field(min_length=1)]


class Group(_Strict):
    any: Conditions | None = None
    all: Conditions | None = None
    none: Conditions | None = None
    near: Near | None = None
    regex: (
        Annotated[
            list[Regex],
            BeforeValidator(lambda v: [v] if isinstance(v, str) else v),
            Field(min_length=1),
        ]
        | None
    ) = None
    classifier: ClassifierCond | None = None
    fields: Fields | None = None

    def has_condition(self) -> bool:
        return any(getattr(self, key) is not None for key in CONDITION_KEYS)

    @model_validator(mode="after")
    def _not_empty(self) -> Group:
        if type(self) is Group and not self.has_condition():
            raise ValueError("empty condition: give any, all, none, near, regex or classifier")
        return self


class ExampleArticle(_Strict):
    title: str = ""
    text: str = ""
    url: str = ""
    source: str = ""
    tags: list[str] = []


Example = Annotated[
    Annotated[str, Tag("<text>")] | Annotated[ExampleArticle, Tag("<article>")],
    Discriminator(
        lambda v: "<text>" if isinstance(v, str) else "<article>" if isinstance(v, dict) else None,
        custom_error_type="example_type",
        custom_error_message="expected a text (string) or an article mapping",
    ),
]


class Examples(_Strict):
    match: list[Example] = []
    no_match: list[Example] = []


class Feeds(_Strict):
    names: list[str] = []
    tags: list[str] = []


def _duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str | int | float) else value


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d|w)\s*)+$"},
                {"type": "number", "minimum": 0},
            ],
            "description": "a duration such as '90s', '5m', '6h' or '1h30m', or seconds",
        }
    ),
]


class RuleSpec(Group):
    """One rule file."""

    topic: str = Field(min_length=1)
    description: str = ""
    owner: str = ""
    severity: Severity = "medium"
    tags: list[str] = []
    enabled: bool = True
    feeds: Feeds | None = None
    weights: Annotated[dict[str, float], Field(min_length=1)] | None = None
    threshold: float | None = Field(default=None, gt=0)
    channels: list[str] = []
    cooldown: Duration | None = None
    group: Duration | None = None
    examples: Examples = Examples()

    @field_validator("weights", mode="before")
    @classmethod
    def _weights(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for key in v:
                _check_term(str(key))
            return {
                k: float(w) if isinstance(w, int) and not isinstance(w, bool) else w
                for k, w in v.items()
            }
        return v

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, v: Any) -> Any:
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _rule_checks(self) -> RuleSpec:
        if not self.has_condition() and not self.weights:
            raise ValueError(
                "rule has no condition: give any, all, none, near, regex, classifier or weights"
            )
        return self


Group.model_rebuild()
RuleSpec.model_rebuild()


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """A validated rule: its identity and routing, plus the spec the matcher compiles."""

    id: str  # the file stem
    file: str
    topic: str
    severity: str
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()
    enabled: bool = True
    channels: tuple[str, ...] = ()
    cooldown: float | None = None  # seconds
    group: float | None = None  # seconds
    spec: RuleSpec

    @classmethod
    def from_spec(cls, rule_id: str, file: str, spec: RuleSpec) -> Rule:
        return cls(
            id=rule_id,
            file=file,
            topic=spec.topic,
            severity=spec.severity,
            description=spec.description,
            owner=spec.owner,
            tags=tuple(spec.tags),
            enabled=spec.enabled,
            channels=tuple(spec.channels),
            cooldown=spec.cooldown,
            group=spec.group,
            spec=spec,
        )
