"""Survivorship: which source value each golden-record field takes, configurable per field."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from c360.graph.models import CANONICAL_FIELDS, GoldenValue, SourceRecord

from .config import SurvivorshipConfig


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
