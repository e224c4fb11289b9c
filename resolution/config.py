"""The resolution settings: deterministic linking, real-time matching and survivorship.

Each is a frozen pydantic model (``extra="forbid"``, every field described) that
:mod:`c360.settings` nests in its sections and passes to the linker, the batch resolver and review.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from c360.graph.models import CANONICAL_FIELDS, IDENTIFIER_KINDS, source_name_problem
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from .normalize import blocklist_key, normalize_email, normalize_phone

DEFAULT_BLOCKLIST = (
    "test@test.com",
    "na@na.com",
    "none@none.com",
    "noemail@noemail.com",
    "no@email.com",
    "email@email.com",
    "example@example.com",
    "a@a.com",
    "0000000000",
    "1111111111",
    "1234567890",
    "9999999999",
)


class LinkingConfig(BaseModel):
    """Deterministic linking: which identifier kinds link, their caps, the junk values, one-record sources."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strong_kinds: list[str] = Field(
        default_factory=lambda: list(IDENTIFIER_KINDS),
        description="Identifier kinds that link records outright (email, phone, national_id, customer_number).",
    )
    caps: dict[str, int] = Field(
        default_factory=lambda: {"email": 5, "phone": 5, "national_id": 3, "customer_number": 3},
        description="Per kind: the most customers one identifier may bring together before it is flagged.",
    )
    blocklist: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BLOCKLIST),
        description="Placeholder values that never link (emails, phone numbers, ids, as sources write them).",
    )
    default_region: str = Field(
        default="US",
        min_length=2,
        max_length=2,
        description="Region (ISO 3166 alpha-2) for national phone numbers.",
    )
    one_record_per_person: list[str] = Field(
        default_factory=list,
        description=(
            "Sources holding at most one record per person (a census, a register, one return per filer): "
            "no customer gets two records of one of them, by a shared identifier or by the model, and "
            "between two of them the model links from `realtime.lower`."
        ),
    )

    @field_validator("one_record_per_person")
    @classmethod
    def _source_names(cls, sources: list[str]) -> list[str]:
        for source in sources:
            if (problem := source_name_problem(source)) is not None:
                raise ValueError(problem)
        return sources

    def blocked_uids(self) -> frozenset[str]:
        """Return the blocklist as identifier uids (each value read as an email and as a phone) and as ids."""
        out: set[str] = set()
        for raw in self.blocklist:
            out.add(blocklist_key(raw))
            if email := normalize_email(raw):
                out.add(f"email|{email}")
            if phone := normalize_phone(raw, self.default_region):
                out.add(f"phone|{phone}")
        return frozenset(out)


class RealtimeConfig(BaseModel):
    """Decision thresholds of real-time probabilistic matching."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Score ingested records once a model is trained.")
    upper: float = Field(
        default=0.99999,
        gt=0,
        le=1,
        description="Match probability at or above which records link (tuned for precision).",
    )
    lower: float = Field(
        default=0.8, gt=0, le=1, description="Match probability from which a pair goes to review (up to upper)."
    )
    per_key: int = Field(
        default=500,
        ge=1,
        description="Most candidates read per blocking key (batch compares every pair a rule blocks: a key with more "
        "records than this is read in part, in record-uid order).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> RealtimeConfig:
        if self.lower > self.upper:
            raise ValueError("realtime.lower must not exceed realtime.upper")
        return self


def link_threshold(linking: LinkingConfig, realtime: RealtimeConfig, a: str, b: str) -> float:
    """The probability from which the model links a record of source ``a`` with one of source ``b``.

    ``realtime.upper``, except between two different one-record-per-person sources: there each record
    can be one customer's only, the constraint keeps household members and namesakes apart, and a link
    needs only ``realtime.lower``.
    """
    single = linking.one_record_per_person
    return realtime.lower if a != b and a in single and b in single else realtime.upper


class Rule(StrEnum):
    """How a golden field picks its value among a customer's source records."""

    MOST_RECENT = "most_recent"
    SOURCE_PRIORITY = "source_priority"
    MOST_FREQUENT = "most_frequent"


class SurvivorshipConfig(BaseModel):
    """Survivorship rules: a default, per-field overrides and the source priority order."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    _rules: dict[str, str] = PrivateAttr(default_factory=dict)

    default: Rule = Field(default=Rule.MOST_RECENT, description="Rule for fields without an override.")
    fields: dict[str, Rule] = Field(
        default_factory=dict, description="Per-field rule, e.g. {'date_of_birth': 'most_frequent'}."
    )
    source_priority: list[str] = Field(
        default_factory=list,
        description="Sources from most to least trusted, for source_priority fields; unlisted sources come last.",
    )

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, Rule]) -> dict[str, Rule]:
        unknown = sorted(set(value) - set(CANONICAL_FIELDS))
        if unknown:
            raise ValueError(f"unknown canonical field(s): {', '.join(unknown)}")
        return value

    def rule_for(self, name: str) -> Rule:
        """Return the rule of field ``name``."""
        return self.fields.get(name, self.default)

    def model_post_init(self, context: Any) -> None:
        """Resolve the rule of every field once."""
        self._rules = {name: self.rule_for(name).value for name in CANONICAL_FIELDS}

    @property
    def rule_names(self) -> dict[str, str]:
        """The rule name of every canonical field."""
        return self._rules


class TrainingConfig(BaseModel):
    """How training profiles the records and chooses its specification, and what blocking may cost."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_comparisons_per_rule: int = Field(
        default=10_000_000,
        ge=1000,
        description="Budget: the most pairs one prediction blocking rule may compare (Splink's count); "
        "a rule over it is tightened with another column or dropped, never run.",
    )
    max_em_comparisons: int = Field(
        default=2_000_000, ge=1000, description="The most pairs one EM training session may compare."
    )
    min_filled: float = Field(
        default=0.01, ge=0, le=1, description="A column filled in fewer records than this share is left out."
    )
    max_top_share: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="A column whose commonest value holds more than this share of its values is left out.",
    )
    u_max_pairs: float = Field(default=1e6, ge=1e3, description="Random pairs sampled to estimate u.")
    prior_recall: float = Field(
        default=0.8, gt=0, le=1, description="Recall assumed of the deterministic rules that estimate the prior."
    )
