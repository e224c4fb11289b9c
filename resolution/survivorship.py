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


def _comparable(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def golden_record(records: Iterable[SourceRecord], config: SurvivorshipConfig) -> dict[str, GoldenValue]:
    """Compute the golden record of one customer from its source records.

    Ties are broken by recency, then by source and key, so the result does not depend on input order.
    """
    rules = config.rule_names
    # Newest first; a stable, total order.
    ordered = sorted(records, key=lambda r: (r.observed_at, r.source, r.key), reverse=True)
    if len(ordered) == 1:  # the common case: every rule picks the only value there is
        only = ordered[0]
        return {
            name: GoldenValue(value, only.source, only.key, only.observed_at, rules[name])
            for name in CANONICAL_FIELDS
            if (value := getattr(only, name)) not in (None, "")
        }
    golden: dict[str, GoldenValue] = {}
    rank: dict[str, int] | None = None
    for name in CANONICAL_FIELDS:
        rule = rules[name]
        if rule == "most_recent":  # the default: the first non-empty value, newest first
            for chosen in ordered:
                if getattr(chosen, name) not in (None, ""):
                    break
            else:
                continue
        else:
            candidates = [r for r in ordered if getattr(r, name) not in (None, "")]
            if not candidates:
                continue
            if rule == "source_priority":
                if rank is None:
                    rank = {source: i for i, source in enumerate(config.source_priority)}
                # min() keeps the first (newest) of equal rank.
                chosen = min(candidates, key=lambda r: rank.get(r.source, len(rank)))
            else:
                counts = Counter(_comparable(getattr(r, name)) for r in candidates)
                top = max(counts.values())
                chosen = next(r for r in candidates if counts[_comparable(getattr(r, name))] == top)
        golden[name] = GoldenValue(getattr(chosen, name), chosen.source, chosen.key, chosen.observed_at, rule)
    return golden
