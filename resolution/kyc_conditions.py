"""The facts of a KYC risk assessment and the safe condition language of its rules (issue 16).

:class:`RiskFacts` is what is known of one application; :class:`FactsView` the same facts as conditions
read them (the latest verification per check, the screening findings best first). A condition is data,
never code: a mapping keyed by one named fact or operator (:data:`CONDITION_KINDS`), parsed by pydantic
with ``extra="forbid"`` so that an unknown fact, operator, check or result is an error when the rules
are loaded. A comparison with a fact that is unknown (no age, no country, no hit) never holds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, ClassVar, Final, Literal

from c360.graph.errors import InvalidInputError
from c360.graph.verification import CHECKS, RESULTS, Verification
from c360.graph.watchlist import LIST_NAMES
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .screening import Hit

_TOKEN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


# --- facts -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScreeningFinding:
    """One screening hit as risk sees it: the entry, the score, and what officers decided about it.

    ``suppressed``: a remembered false positive on the entry's current content (it adds no risk);
    ``confirmed``: an officer confirmed the match. ``entry_key`` is ``list_name:entry_id``.
    """

    list_name: str
    entry_key: str
    score: float
    suppressed: bool = False
    programs: tuple[str, ...] = ()
    confirmed: bool = False

    def __post_init__(self) -> None:
        if self.list_name not in LIST_NAMES:
            raise InvalidInputError(f"unknown list {self.list_name!r}: expected one of {', '.join(LIST_NAMES)}")
        if not isinstance(self.entry_key, str) or not self.entry_key.startswith(f"{self.list_name}:"):
            raise InvalidInputError(f"entry key {self.entry_key!r} is not of the list {self.list_name}")
        s = self.score
        if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s) or not 0 <= s <= 1:
            raise InvalidInputError(f"a screening score is a number from 0 to 1, not {s!r}")
        if not isinstance(self.suppressed, bool) or not isinstance(self.confirmed, bool):
            raise InvalidInputError("suppressed and confirmed must be booleans")
        if self.suppressed and self.confirmed:
            raise InvalidInputError(f"the hit on {self.entry_key} cannot be both suppressed and confirmed")
        if isinstance(self.programs, str) or not all(isinstance(p, str) for p in self.programs):
            raise InvalidInputError("programs must be a tuple of strings")
        object.__setattr__(self, "score", float(s))
        object.__setattr__(self, "programs", tuple(self.programs))

    @classmethod
    def from_hit(cls, hit: Hit, *, suppressed: bool = False, confirmed: bool = False) -> ScreeningFinding:
        """The finding of a screener's :class:`~c360.resolution.screening.Hit`."""
        e = hit.entry
        return cls(e.list_name, e.key, hit.score, suppressed, e.programs, confirmed)


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskFacts:
    """What is known of one application when its risk is assessed.

    ``verifications``: the identity checks made (for each check only the latest, by ``at``, counts);
    ``screening``: the screening findings; ``pep``: a politically exposed person (declared or listed);
    ``amount`` in ``currency`` (ISO 4217); ``age_years``; ``country`` (ISO 3166 alpha-2: the applicant's
    nationality or residence, as the workflow supplies it; not a country name); the last two None when
    unknown; ``document_types``: the kinds of documents given (lower-case tokens, graph/kyc_tasks.py
    DOC_TYPES such as ``passport``, ``aadhaar``, ``address_proof``).
    """

    product: str
    amount: Decimal
    currency: str = "INR"
    verifications: Sequence[Verification] = ()
    screening: Sequence[ScreeningFinding] = ()
    pep: bool = False
    age_years: int | None = None
    country: str | None = None
    document_types: AbstractSet[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not isinstance(self.product, str) or not _TOKEN.fullmatch(self.product):
            raise InvalidInputError(f"product must be a lower-case token such as auto_loan, not {self.product!r}")
        amount = self.amount
        if isinstance(amount, int) and not isinstance(amount, bool):
            amount = Decimal(amount)
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount < 0:
            raise InvalidInputError(f"amount must be a finite Decimal of at least 0, not {self.amount!r}")
        object.__setattr__(self, "amount", amount)
        if not isinstance(self.currency, str) or not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise InvalidInputError(f"currency must be an ISO 4217 code such as INR, not {self.currency!r}")
        if self.country is not None and (
            not isinstance(self.country, str) or not re.fullmatch(r"[A-Z]{2}", self.country)
        ):
            raise InvalidInputError(
                f"country must be an ISO 3166 alpha-2 code such as IN, or None, not {self.country!r}"
            )
        age = self.age_years
        if age is not None and (isinstance(age, bool) or not isinstance(age, int) or not 0 <= age <= 150):
            raise InvalidInputError(f"age_years must be a whole number from 0 to 150, or None, not {age!r}")
        if not isinstance(self.pep, bool):
            raise InvalidInputError(f"pep must be a boolean, not {self.pep!r}")
        for name, items, kind in (
            ("verifications", self.verifications, Verification),
            ("screening", self.screening, ScreeningFinding),
        ):
            if isinstance(items, str) or not all(isinstance(i, kind) for i in items):
                raise InvalidInputError(f"{name} must be a sequence of {kind.__name__}")
            object.__setattr__(self, name, tuple(items))
        docs = self.document_types
        if isinstance(docs, str) or not all(isinstance(d, str) and _TOKEN.fullmatch(d) for d in docs):
            raise InvalidInputError(f"document_types must be a set of lower-case tokens, not {docs!r}")
        object.__setattr__(self, "document_types", frozenset(docs))


@dataclass(frozen=True, slots=True)
class FactsView:
    """The facts as the conditions read them, derived once per assessment."""

    facts: RiskFacts
    results: Mapping[str, str]  # check -> the result of its latest verification
    findings: tuple[ScreeningFinding, ...]

    @classmethod
    def of(cls, facts: RiskFacts) -> FactsView:
        """The view of ``facts``: the latest verification of each check, the findings best first."""
        latest: dict[str, Verification] = {}
        for v in facts.verifications:  # the later of equal times wins: the sequence's order
            if v.check not in latest or v.at >= latest[v.check].at:
                latest[v.check] = v
        findings = tuple(sorted(facts.screening, key=lambda f: (-f.score, f.entry_key)))
        return cls(facts, {c: v.result for c, v in latest.items()}, findings)


# --- the condition language --------------------------------------------------------------------------

_MODEL = ConfigDict(extra="forbid", frozen=True)


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _known(what: str, values: object, allowed: Sequence[str]) -> object:
    """``values`` (a list) if each is one of ``allowed``; other shapes are left for pydantic to refuse."""
    if isinstance(values, list):
        unknown = [v for v in values if isinstance(v, str) and v not in allowed]
        if unknown:
            raise ValueError(f"unknown {what} {unknown[0]!r}: expected one of {', '.join(allowed)}")
    return values


class NumberTest(BaseModel):
    """Bounds on a number; every bound given must hold, and an unknown number holds none."""

    model_config = _MODEL
    gte: Decimal | None = Field(default=None, allow_inf_nan=False, description="At least this.")
    gt: Decimal | None = Field(default=None, allow_inf_nan=False, description="More than this.")
    lte: Decimal | None = Field(default=None, allow_inf_nan=False, description="At most this.")
    lt: Decimal | None = Field(default=None, allow_inf_nan=False, description="Less than this.")
    eq: Decimal | None = Field(default=None, allow_inf_nan=False, description="Exactly this.")

    @model_validator(mode="after")
    def _some_bound(self) -> NumberTest:
        if all(b is None for b in (self.gte, self.gt, self.lte, self.lt, self.eq)):
            raise ValueError("give at least one of gte, gt, lte, lt, eq")
        return self

    def holds(self, value: Decimal | float | None) -> bool:
        """Whether ``value`` lies within every bound (False when it is None)."""
        if value is None:
            return False
        v = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        return (
            (self.gte is None or v >= self.gte)
            and (self.gt is None or v > self.gt)
            and (self.lte is None or v <= self.lte)
            and (self.lt is None or v < self.lt)
            and (self.eq is None or v == self.eq)
        )


class TextTest(BaseModel):
    """A text fact in (a list, or ``{in: [...]}``) or not in (``{not_in: [...]}``) a set of values, any case."""

    model_config = _MODEL
    in_: tuple[str, ...] | None = Field(default=None, alias="in", min_length=1, description="One of these.")
    not_in: tuple[str, ...] | None = Field(default=None, min_length=1, description="None of these (known).")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: object) -> object:
        return {"in": _as_list(data)} if isinstance(data, str | list) else data

    @model_validator(mode="after")
    def _one(self) -> TextTest:
        if (self.in_ is None) == (self.not_in is None):
            raise ValueError("give exactly one of in (or a plain list) and not_in")
        return self

    def holds(self, value: str | None) -> bool:
        """Whether the (known) value is in, or not in, the set."""
        if value is None:
            return False
        wanted = {v.casefold() for v in (self.in_ or self.not_in or ())}
        return (value.casefold() in wanted) == (self.in_ is not None)


class SetTest(BaseModel):
    """A set fact (the document types) holding any or all of some values."""

    model_config = _MODEL
    includes_any: tuple[str, ...] | None = Field(default=None, min_length=1, description="Holds one of these.")
    includes_all: tuple[str, ...] | None = Field(default=None, min_length=1, description="Holds all of these.")

    @model_validator(mode="after")
    def _some(self) -> SetTest:
        if self.includes_any is None and self.includes_all is None:
            raise ValueError("give includes_any or includes_all")
        return self

    def holds(self, value: AbstractSet[str]) -> bool:
        """Whether ``value`` includes any (and all) of the values asked for."""
        return (self.includes_any is None or bool(value & set(self.includes_any))) and (
            self.includes_all is None or set(self.includes_all) <= value
        )


class ScreeningTest(BaseModel):
    """Facts of the screening findings; every test given must hold.

    ``unsuppressed_hits``, ``max_score`` and ``programs`` read only hits not suppressed as remembered
    false positives (confirmed matches included); ``max_score`` is unknown (holds nothing) without one.
    """

    model_config = _MODEL
    lists: tuple[str, ...] | None = Field(default=None, min_length=1, description="Read only hits on these lists.")
    unsuppressed_hits: NumberTest | None = Field(default=None, description="Hits not suppressed.")
    suppressed_hits: NumberTest | None = Field(default=None, description="Hits suppressed as false positives.")
    confirmed_matches: NumberTest | None = Field(default=None, description="Hits an officer confirmed.")
    max_score: NumberTest | None = Field(default=None, description="The best score of a hit not suppressed.")
    programs: tuple[str, ...] | None = Field(
        default=None, min_length=1, description="A hit not suppressed is on one of these sanctions programs."
    )

    @field_validator("lists", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _known("list", _as_list(value), LIST_NAMES) if isinstance(value, str | list) else value

    @model_validator(mode="after")
    def _some(self) -> ScreeningTest:
        tests = (self.unsuppressed_hits, self.suppressed_hits, self.confirmed_matches, self.max_score, self.programs)
        if all(t is None for t in tests):
            raise ValueError("give one of unsuppressed_hits, suppressed_hits, confirmed_matches, max_score, programs")
        return self

    def holds(self, findings: Sequence[ScreeningFinding]) -> bool:
        """Whether the findings pass every test given."""
        found = [f for f in findings if self.lists is None or f.list_name in self.lists]
        open_ = [f for f in found if not f.suppressed]
        checks = (
            (self.unsuppressed_hits, len(open_)),
            (self.suppressed_hits, len(found) - len(open_)),
            (self.confirmed_matches, sum(f.confirmed for f in open_)),
            (self.max_score, max((f.score for f in open_), default=None)),
        )
        if not all(test is None or test.holds(value) for test, value in checks):
            return False
        return self.programs is None or any(set(f.programs) & set(self.programs) for f in open_)


class _Node(BaseModel):
    """A condition; a fact condition's one field, named as the fact, holds the test of the fact's value."""

    model_config = _MODEL
    tag: ClassVar[str]

    def holds(self, ctx: FactsView) -> bool:
        """Whether the condition holds for these facts."""
        test: NumberTest | TextTest | SetTest = getattr(self, self.tag)
        return test.holds(getattr(ctx.facts, self.tag))


class AllOf(_Node):
    """Holds when every condition holds."""

    tag = "all"
    all_: tuple[Condition, ...] = Field(alias="all", min_length=1, description="Conditions that must all hold.")

    def holds(self, ctx: FactsView) -> bool:  # noqa: D102
        return all(c.holds(ctx) for c in self.all_)


class AnyOf(_Node):
    """Holds when at least one condition holds."""

    tag = "any"
    any_: tuple[Condition, ...] = Field(alias="any", min_length=1, description="Conditions of which one must hold.")

    def holds(self, ctx: FactsView) -> bool:  # noqa: D102
        return any(c.holds(ctx) for c in self.any_)


class NotOf(_Node):
    """Holds when the condition does not."""

    tag = "not"
    not_: Condition = Field(alias="not", description="The condition that must not hold.")

    def holds(self, ctx: FactsView) -> bool:  # noqa: D102
        return not self.not_.holds(ctx)


class CheckIs(_Node):
    """The latest verification of one of ``check`` has one of ``result`` (a check never made holds none)."""

    tag = "check"
    check: tuple[str, ...] = Field(min_length=1, description="Identity checks (graph/verification.py CHECKS).")
    result: tuple[str, ...] = Field(min_length=1, description="Results: pass, fail, inconclusive, manual_review.")

    @field_validator("check", "result", mode="before")
    @classmethod
    def _known_names(cls, value: object, info: ValidationInfo) -> object:
        allowed = CHECKS if info.field_name == "check" else RESULTS
        return _known(str(info.field_name), _as_list(value), allowed)

    def holds(self, ctx: FactsView) -> bool:  # noqa: D102
        return any(ctx.results.get(c) in self.result for c in self.check)


class ScreeningIs(_Node):
    """Facts of the screening findings hold."""

    tag = "screening"
    screening: ScreeningTest = Field(description="Tests on the screening findings.")

    def holds(self, ctx: FactsView) -> bool:  # noqa: D102
        return self.screening.holds(ctx.findings)


class PepIs(_Node):
    """The applicant is (true) or is not (false) a politically exposed person."""

    tag = "pep"
    pep: StrictBool = Field(description="true: a PEP; false: not a PEP.")

    def holds(self, ctx: FactsView) -> bool:  # noqa: D102
        return ctx.facts.pep == self.pep


class Missing(_Node):
    """A fact that may be unknown is unknown."""

    tag = "missing"
    missing: Literal["age_years", "country"] = Field(description="age_years or country.")

    def holds(self, ctx: FactsView) -> bool:  # noqa: D102
        return getattr(ctx.facts, self.missing) is None


class AmountIs(_Node):
    """The amount, in the application's currency (pair it with a currency condition), is within bounds."""

    tag = "amount"
    amount: NumberTest = Field(description="Bounds on the amount.")


class AgeIs(_Node):
    """The applicant's age in whole years is within bounds (an unknown age never is)."""

    tag = "age_years"
    age_years: NumberTest = Field(description="Bounds on the age.")


class ProductIs(_Node):
    """The product is (not) one of some products."""

    tag = "product"
    product: TextTest = Field(description="Products, e.g. [auto_loan].")


class CurrencyIs(_Node):
    """The currency is (not) one of some ISO 4217 codes."""

    tag = "currency"
    currency: TextTest = Field(description="Currencies, e.g. [INR].")


class CountryIs(_Node):
    """The (known) country is (not) one of some ISO 3166 alpha-2 codes."""

    tag = "country"
    country: TextTest = Field(description="Countries, e.g. [IN] or {not_in: [IN]}.")


class DocumentsAre(_Node):
    """The documents given include any or all of some types."""

    tag = "document_types"
    document_types: SetTest = Field(description="Document types, e.g. {includes_any: [passport, aadhaar]}.")


_NODES: tuple[type[_Node], ...] = (AllOf, AnyOf, NotOf, CheckIs, ScreeningIs, PepIs, Missing, AmountIs, AgeIs)
_NODES += (ProductIs, CurrencyIs, CountryIs, DocumentsAre)
#: The keys a condition may have: the operators and the named facts.
CONDITION_KINDS: Final = tuple(n.tag for n in _NODES)


def _tag(value: object) -> str | None:
    """The condition's kind: its first key that names one (else its first key, which then fails as unknown)."""
    if isinstance(value, _Node):
        return value.tag
    if not isinstance(value, Mapping) or not value:
        return None
    keys = [str(k) for k in value]
    return next((k for k in keys if k in CONDITION_KINDS), keys[0])


Condition = Annotated[
    Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NotOf, Tag("not")]
    | Annotated[CheckIs, Tag("check")]
    | Annotated[ScreeningIs, Tag("screening")]
    | Annotated[PepIs, Tag("pep")]
    | Annotated[AmountIs, Tag("amount")]
    | Annotated[AgeIs, Tag("age_years")]
    | Annotated[ProductIs, Tag("product")]
    | Annotated[CurrencyIs, Tag("currency")]
    | Annotated[CountryIs, Tag("country")]
    | Annotated[DocumentsAre, Tag("document_types")]
    | Annotated[Missing, Tag("missing")],
    Discriminator(
        _tag,
        custom_error_type="condition",
        custom_error_message="a condition is a mapping keyed by one of: " + ", ".join(CONDITION_KINDS),
    ),
]
for _node in (AllOf, AnyOf, NotOf):
    _node.model_rebuild()
