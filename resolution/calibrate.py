"""What stewards' decisions teach the model: a link threshold, and agreement patterns that decide alone.

The model's match probabilities assume its comparisons are independent, which real records are not
(a household shares a surname, an address and a phone), so the configured upper threshold is strict.
Stewards' decisions on review items are labelled pairs from just below it; the lowest probability
above which they rejected nothing (and approved enough) is a threshold the data supports. Review items
are a selection (each record's best candidate), so the labelled pairs show fewer mistakes than all
pairs above a threshold would: no rejection at all is asked for, not a precision rate.

:func:`learn_verdicts` reads the same decisions by agreement pattern: a pattern decided alike often
enough links, or is not asked again, by itself (:class:`~c360.resolution.scorer.Verdicts`).
"""

from __future__ import annotations

from collections.abc import Sequence

from .scorer import Pattern, Verdicts

#: Fewest decisions, and fewest approvals at or above a threshold, before one is derived.
MIN_DECISIONS = 50
MIN_ABOVE = 15
#: Precision the labelled pairs at or above the derived threshold must show: every one approved.
PRECISION = 1.0


def link_threshold(scored: Sequence[tuple[float, bool]]) -> tuple[float, str] | None:
    """The lowest probability at which the labelled pairs at or above it reach :data:`PRECISION`, and why.

    ``scored``: (match probability under the new model, approved). ``None`` with too few decisions.
    """
    if len(scored) < MIN_DECISIONS:
        return None
    ranked = sorted(scored, key=lambda s: -s[0])
    best: tuple[float, int, int] | None = None
    approved = rejected = 0
    for i, (p, same) in enumerate(ranked):
        approved += same
        rejected += not same
        last_of_tie = i + 1 == len(ranked) or ranked[i + 1][0] < p
        if last_of_tie and approved >= MIN_ABOVE and approved / (approved + rejected) >= PRECISION:
            best = (p, approved, rejected)
    if best is None:
        return None
    p, approved, rejected = best
    basis = (
        f"{len(scored)} steward decisions: {approved} approved and {rejected} rejected at or above "
        f"probability {p:.6f} (precision {approved / (approved + rejected):.3f})"
    )
    return p, basis


#: Fewest decisions on one pattern, all alike, before the pattern decides by itself.
MIN_PATTERN_DECISIONS = 5


def learn_verdicts(decided: Sequence[tuple[Pattern, bool]]) -> tuple[Verdicts, list[str]]:
    """The patterns with at least :data:`MIN_PATTERN_DECISIONS` decisions, all approvals or all rejections.

    ``decided``: (pattern under the new model, approved). Returns the verdicts and a line per pattern.
    """
    counts: dict[Pattern, list[int]] = {}
    for pattern, same in decided:
        counts.setdefault(pattern, [0, 0])[0 if same else 1] += 1
    link: set[Pattern] = set()
    never: set[Pattern] = set()
    basis: list[str] = []
    for pattern, (approved, rejected) in sorted(counts.items(), key=lambda kv: (-sum(kv[1]), kv[0])):
        if approved + rejected < MIN_PATTERN_DECISIONS or (approved and rejected):
            continue
        (link if approved else never).add(pattern)
        verb = f"links ({approved} approved)" if approved else f"is not asked again ({rejected} rejected)"
        basis.append(f"{verb}: " + ", ".join(p for p in pattern if not p.endswith(": null")))
    return Verdicts(frozenset(link), frozenset(never)), basis
