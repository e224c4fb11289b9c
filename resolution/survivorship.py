"""Survivorship: which source value each golden-record field takes, configurable per field."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from c360.graph.models import CANONICAL_FIELDS, GoldenValue, SourceRecord
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator


class Rule(StrEnum):
    """How a golden field picks its value among a customer's source records."""

    MOST_RECENT = "most_recent"
    SOURCE_PRIORITY = "source_priority"
    MOST_FREQUENT = "most_frequent"


class SurvivorshipConfig(BaseModel):
    """Survivorship rules: a default, per-field overrides and the source priority order."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    _rules: dict[str, Rule] = PrivateAttr(default_factory=dict)

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
        self._rules = {name: self.rule_for(name) for name in CANONICAL_FIELDS}

    @property
    def rules(self) -> dict[str, Rule]:
        """The rule of every canonical field."""
        return self._rules


def _comparable(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def golden_record(records: Iterable[SourceRecord], config: SurvivorshipConfig) -> dict[str, GoldenValue]:
    """Compute the golden record of one customer from its source records.

    Ties are broken by recency, then by source and key, so the result does not depend on input order.
    """
    rules = config.rules
    # Newest first; a stable, total order.
    ordered = sorted(records, key=lambda r: (r.observed_at, r.source, r.key), reverse=True)
    if len(ordered) == 1:  # the common case: every rule picks the only value there is
        only = ordered[0]
        return {
            name: GoldenValue(value, only.source, only.key, only.observed_at, rules[name].value)
            for name in CANONICAL_FIELDS
            if (value := getattr(only, name)) not in (None, "")
        }
    rank = {source: i for i, source in enumerate(config.source_priority)}
    golden: dict[str, GoldenValue] = {}
    for name in CANONICAL_FIELDS:
        candidates = [r for r in ordered if r.value(name) not in (None, "")]
        if not candidates:
            continue
        rule = rules[name]
        if rule is Rule.SOURCE_PRIORITY:
            # min() keeps the first (newest) of equal rank.
            chosen = min(candidates, key=lambda r: rank.get(r.source, len(rank)))
        elif rule is Rule.MOST_FREQUENT:
            counts = Counter(_comparable(r.value(name)) for r in candidates)
            top = max(counts.values())
            chosen = next(r for r in candidates if counts[_comparable(r.value(name))] == top)
        else:
            chosen = candidates[0]
        golden[name] = GoldenValue(chosen.value(name), chosen.source, chosen.key, chosen.observed_at, rule.value)
    return golden
