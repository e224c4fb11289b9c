"""KYC risk scoring by rules read from YAML (issue 16): a score, a category, the reasons, the re-KYC date.

:func:`assess` evaluates every rule of a :class:`RiskRules` (by default the bundled ``kyc_risk.yaml``,
:func:`load_rules`) over one application's :class:`RiskFacts`: the identity checks' verifications, the
screening findings, PEP, product, amount, age, country and the documents given. A rule that holds adds
its score and its description, rendered with the facts, to the reasons; a rule marked ``force_high``
makes the category high whatever the score. The category sets the periodic re-KYC date (by default the
RBI KYC Master Direction's periodic updation: high risk every 2 years, medium every 8, low every 10).

Conditions are data, never code (:mod:`c360.resolution.kyc_conditions`): a small language of named
facts and operators (``{check: pan_service, result: [fail]}``, ``{screening: {max_score: {gte: 0.95}}}``,
``{pep: true}``, ``{amount: {gte: 2000000}}``, ``{product: [auto_loan]}``, ``{document_types:
{includes_any: [passport]}}``, ``{missing: age_years}``, ``{all: [...]}``, ``{any: [...]}``, ``{not:
...}``), validated when the file is loaded: an unknown fact, operator, check or placeholder is an error
naming the file, the rule and the field. A comparison with a fact that is unknown (no age, no country,
no hit) never holds.
"""

from __future__ import annotations

import math
import string
from collections.abc import Hashable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from c360.graph.errors import InvalidInputError
from c360.graph.verification import CHECKS
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator, model_validator

from .kyc_conditions import CONDITION_KINDS, Condition, FactsView, RiskFacts, ScreeningFinding

__all__ = [
    "DEFAULT_RULES",
    "PLACEHOLDERS",
    "Categories",
    "Category",
    "RekycYears",
    "RiskAssessment",
    "RiskFacts",
    "RiskRules",
    "Rule",
    "ScreeningFinding",
    "assess",
    "load_rules",
    "parse_rules",
]

Category = Literal["low", "medium", "high"]
#: The bundled default rules.
DEFAULT_RULES: Final = Path(__file__).resolve().with_name("kyc_risk.yaml")
_MODEL = ConfigDict(extra="forbid", frozen=True)
_TOKEN = r"^[a-z][a-z0-9_]{0,63}$"


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    """The outcome of :func:`assess`.

    ``score`` is the sum of the fired rules' scores; ``reasons`` holds each fired rule's rendered
    description and ``fired`` its id, in the file's order; ``forced_by`` the fired ``force_high`` rules;
    ``rekyc_due`` the date of the next periodic KYC update; ``needs_edd`` (enhanced due diligence) is
    True when the category is high.
    """

    score: float
    category: Category
    reasons: tuple[str, ...]
    fired: tuple[str, ...]
    rekyc_due: date
    needs_edd: bool
    forced_by: tuple[str, ...] = ()


def _values(view: FactsView) -> dict[str, object]:
    """The placeholders of descriptions (:data:`PLACEHOLDERS`) and their values."""
    f = view.facts
    open_ = [h for h in view.findings if not h.suppressed]

    def names(items: Sequence[str] | AbstractSet[str]) -> str:
        return ", ".join(items) or "none"

    return {
        "product": f.product,
        "amount": f.amount,
        "currency": f.currency,
        "age_years": f.age_years,
        "country": f.country,
        "pep": "yes" if f.pep else "no",
        "document_types": names(sorted(f.document_types)),
        "failed_checks": names([c for c in CHECKS if view.results.get(c) == "fail"]),
        "review_checks": names([c for c in CHECKS if view.results.get(c) == "manual_review"]),
        "inconclusive_checks": names([c for c in CHECKS if view.results.get(c) == "inconclusive"]),
        "hits": names([h.entry_key for h in open_]),
        "confirmed": names([h.entry_key for h in open_ if h.confirmed]),
        "programs": names(sorted({p for h in open_ for p in h.programs})),
        "max_score": open_[0].score if open_ else None,
        "unsuppressed_hits": len(open_),
        "suppressed_hits": len(view.findings) - len(open_),
        "confirmed_matches": sum(h.confirmed for h in open_),
    }


#: Placeholders a rule's description may use, with a sample value of each one's type.
PLACEHOLDERS: Final[Mapping[str, object]] = {
    "product": "auto_loan",
    "amount": Decimal("2500000"),
    "currency": "INR",
    "age_years": 30,
    "country": "IN",
    "pep": "yes",
    "document_types": "aadhaar, pan",
    "failed_checks": "pan_service",
    "review_checks": "name_match",
    "inconclusive_checks": "dob_match",
    "hits": "ofac_sdn:1572",
    "confirmed": "ofac_sdn:1572",
    "programs": "SDGT",
    "max_score": 0.97,
    "unsuppressed_hits": 1,
    "suppressed_hits": 0,
    "confirmed_matches": 0,
}


def _render(template: str, values: Mapping[str, object]) -> str:
    """``template`` with its ``{placeholder[:spec]}`` fields filled; an unknown value reads 'unknown'."""
    out: list[str] = []
    for literal, name, spec, _ in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            value = values[name]
            out.append("unknown" if value is None else format(value, spec or ""))
    return "".join(out)


def _check_template(template: str) -> str:
    try:
        fields = [(n, s, c) for _, n, s, c in string.Formatter().parse(template) if n is not None]
    except ValueError as exc:
        raise ValueError(f"unbalanced braces ({exc}); write {{{{ and }}}} for literal braces") from None
    for name, spec, conversion in fields:
        if name not in PLACEHOLDERS:
            raise ValueError(f"unknown placeholder {{{name}}}: expected one of {', '.join(PLACEHOLDERS)}")
        if conversion is not None or (spec and "{" in spec):
            raise ValueError(f"placeholder {{{name}}}: no conversions (!r, !s) or nested fields")
        try:
            format(PLACEHOLDERS[name], spec or "")
        except ValueError as exc:
            raise ValueError(f"placeholder {{{name}:{spec}}}: {exc}") from None
    return template


# --- rules -------------------------------------------------------------------------------------------


class Rule(BaseModel):
    """One risk rule: when its condition holds it adds ``score`` and its reason."""

    model_config = _MODEL
    id: str = Field(pattern=_TOKEN, description="Unique id (lower-case token), kept with the assessment.")
    description: str = Field(
        min_length=1,
        max_length=500,
        description="The reason shown to officers; may use {placeholders} of the facts (PLACEHOLDERS).",
    )
    when: Condition = Field(description="The condition (the safe condition language; no code).")
    score: float = Field(ge=-1000, le=1000, allow_inf_nan=False, description="Added to the score when it fires.")
    force_high: StrictBool = Field(default=False, description="When it fires the category is high whatever the score.")

    @field_validator("description")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        return _check_template(value)


class Categories(BaseModel):
    """Score thresholds: low below ``medium_from``, medium from it to below ``high_from``, high from there."""

    model_config = _MODEL
    medium_from: float = Field(default=30, allow_inf_nan=False, description="Lowest score of the medium category.")
    high_from: float = Field(default=60, allow_inf_nan=False, description="Lowest score of the high category.")

    @model_validator(mode="after")
    def _ordered(self) -> Categories:
        if not self.medium_from < self.high_from:
            raise ValueError(f"medium_from ({self.medium_from}) must be below high_from ({self.high_from})")
        return self


class RekycYears(BaseModel):
    """Years to the next periodic KYC update by category (RBI KYC Master Direction: 2, 8 and 10)."""

    model_config = _MODEL
    high: int = Field(default=2, ge=1, le=10, description="Years between updates of a high-risk customer.")
    medium: int = Field(default=8, ge=1, le=10, description="Years between updates of a medium-risk customer.")
    low: int = Field(default=10, ge=1, le=10, description="Years between updates of a low-risk customer.")

    @model_validator(mode="after")
    def _ordered(self) -> RekycYears:
        if not self.high <= self.medium <= self.low:
            raise ValueError("a riskier category cannot wait longer: need high <= medium <= low")
        return self


class RiskRules(BaseModel):
    """A rules file: the format version, the thresholds, the re-KYC periods and the rules in order."""

    model_config = _MODEL
    version: Literal[1] = Field(description="Format version of the rules file (1).")
    categories: Categories = Field(default_factory=Categories, description="Score thresholds of the categories.")
    rekyc_years: RekycYears = Field(default_factory=RekycYears, description="Re-KYC period by category.")
    rules: tuple[Rule, ...] = Field(min_length=1, description="The rules, evaluated and reported in this order.")

    @model_validator(mode="after")
    def _unique(self) -> RiskRules:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"the rule id {rule.id!r} is given twice")
            seen.add(rule.id)
        return self


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"key {key!r} is given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def _where(data: Mapping[str, Any], loc: tuple[int | str, ...]) -> str:
    """'rule <id>: <field path>' (or the top-level path) of a validation error's location."""
    parts: list[str] = []
    for item in loc:  # a discriminated union repeats the tag before the field of the same name
        if not (parts and isinstance(item, str) and parts[-1] == f".{item}"):
            parts.append(f"[{item}]" if isinstance(item, int) else f".{item}")
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rules = data.get("rules")
        rule = rules[loc[1]] if isinstance(rules, list) and loc[1] < len(rules) else None
        name = rule.get("id") if isinstance(rule, dict) else None
        label = f"rule {name!r}" if isinstance(name, str) else f"rule #{loc[1] + 1}"
        rest = "".join(parts[2:]).lstrip(".")
        return f"{label}: {rest}" if rest else label
    return "".join(parts).lstrip(".") or "the file"


def parse_rules(data: object, *, origin: str = "rules") -> RiskRules:
    """Validate rules given as data (the YAML's mapping); InvalidInputError names ``origin``, the rule, the field."""
    if not isinstance(data, dict):
        raise InvalidInputError(f"{origin}: the rules file must be a mapping (version, categories, rules, ...)")
    try:
        return RiskRules.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # An item that failed leaves its tuple 'too short': that follows from the first, it is no problem of its own.
        errors = [
            e
            for e in errors
            if e["type"] != "too_short" or not any(o is not e and o["loc"][: len(e["loc"])] == e["loc"] for o in errors)
        ]
        first = errors[0]
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        msg = first["msg"].removeprefix("Value error, ")
        given = first.get("input")
        if first["type"] == "condition" and isinstance(given, Mapping) and given:
            msg = f"unknown condition {next(iter(given))!r}: expected one of {', '.join(CONDITION_KINDS)}"
        raise InvalidInputError(f"{origin}: {_where(data, tuple(first['loc']))}: {msg}{more}") from None


def load_rules(path: Path | None = None) -> RiskRules:
    """Read and validate a rules file (None: the bundled ``kyc_risk.yaml``); InvalidInputError names what is wrong."""
    path = DEFAULT_RULES if path is None else path
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # a SafeLoader
    except OSError as exc:
        raise InvalidInputError(f"cannot read the risk rules {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path}: the risk rules are not UTF-8 text") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidInputError(f"{path}: not valid YAML{at}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{path}: not valid YAML: {exc}") from None
    return parse_rules(data, origin=str(path))


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February into a year that has none
        return day.replace(year=day.year + years, day=28)


def assess(rules: RiskRules, facts: RiskFacts, *, today: date) -> RiskAssessment:
    """Evaluate every rule over ``facts``: the score, the category, the reasons and the re-KYC date from ``today``."""
    if not isinstance(rules, RiskRules) or not isinstance(facts, RiskFacts):
        raise InvalidInputError("assess needs RiskRules (load_rules) and RiskFacts")
    if not isinstance(today, date) or isinstance(today, datetime):
        raise InvalidInputError(f"today must be a date, not {type(today).__name__}")
    ctx = FactsView.of(facts)
    values = _values(ctx)
    fired = [r for r in rules.rules if r.when.holds(ctx)]
    score = round(math.fsum(r.score for r in fired), 6)
    forced = tuple(r.id for r in fired if r.force_high)
    cats = rules.categories
    category: Category = (
        "high" if forced or score >= cats.high_from else "medium" if score >= cats.medium_from else "low"
    )
    return RiskAssessment(
        score=score,
        category=category,
        reasons=tuple(_render(r.description, values) for r in fired),
        fired=tuple(r.id for r in fired),
        rekyc_due=_add_years(today, getattr(rules.rekyc_years, category)),
        needs_edd=category == "high",
        forced_by=forced,
    )
