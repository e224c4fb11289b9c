"""A profile of the records to train on: per column, how often it is filled and how much it tells apart.

Training builds its specification from it (:mod:`c360.resolution.choose`): a column that is almost
always empty, or that holds almost one value, carries no evidence and is left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .features import BLOCKING_ONLY, COMPARED


@dataclass(frozen=True, slots=True)
class ColumnProfile:
    """One column: share of records with a value, distinct values, share of the values the commonest holds."""

    column: str
    filled: float
    distinct: int
    top_share: float
    top_value: str | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (the top value is not kept: it may be personal data)."""
        return {
            "filled": round(self.filled, 4),
            "distinct": self.distinct,
            "top_share": round(self.top_share, 4),
        }


def profile(rows: Sequence[Mapping[str, Any]]) -> dict[str, ColumnProfile]:
    """Profile every compared and blocking-only column of the comparison views ``rows``."""
    out: dict[str, ColumnProfile] = {}
    n = len(rows)
    for column in (*COMPARED, *BLOCKING_ONLY):
        counts = Counter(v for row in rows if (v := row.get(column)) is not None)
        filled = sum(counts.values())
        top_value, top = counts.most_common(1)[0] if counts else (None, 0)
        out[column] = ColumnProfile(
            column,
            filled / n if n else 0.0,
            len(counts),
            top / filled if filled else 0.0,
            top_value,
        )
    return out


def informative(p: ColumnProfile, *, min_filled: float, max_top_share: float) -> str | None:
    """``None`` if column ``p`` carries evidence, else why it does not."""
    if p.filled == 0:
        return "absent (no record has it)"
    if p.filled < min_filled:
        return f"nearly absent (filled in {p.filled:.1%} of records, under {min_filled:.0%})"
    if p.distinct < 2:
        return "constant (one value in every record that has it)"
    if p.top_share > max_top_share:
        return f"near-constant (one value holds {p.top_share:.1%} of the values, over {max_top_share:.0%})"
    return None
