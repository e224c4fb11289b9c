"""The automatic specification: comparisons, blocking rules and EM sessions chosen from a data profile.

Every column that carries evidence (:func:`c360.resolution.profile.informative`) is compared with
the kind of its column; the others are left out, and the reasons say so. Blocking rules are taken from
a list of candidates over the usable columns, in order; each one is costed (``count``: Splink's count
of the pairs it would compare) before anything runs. A rule over the budget is tightened with one more
column (the first that brings it under) or dropped. EM sessions are the cheapest rules that, between
them, leave every comparison free in at least one session.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from c360.graph.errors import InvalidInputError

from .config import TrainingConfig
from .profile import ColumnProfile, informative
from .specification import DEFAULT_KIND, ComparisonSpec, Specification

Rule = tuple[str, ...]
NAMES = ("first_name", "last_name")

#: Prediction blocking candidates, most specific first.
BLOCKING_CANDIDATES: tuple[Rule, ...] = (
    ("national_id",),
    ("email",),
    ("phone",),
    ("name_pair",),
    ("dob",),
    ("last_name", "postcode"),
    ("first_name", "postcode"),
    ("address",),
    ("last_name", "city"),
    ("first_name", "city"),
)
#: Columns that tighten a rule over budget, tried in this order.
TIGHTENERS: tuple[str, ...] = ("dob", "last_name", "first_name", "postcode", "city", "address")
#: EM session candidates: names fixed (estimates the rest), then other columns fixed (estimates the names).
EM_CANDIDATES: tuple[Rule, ...] = (
    ("first_name", "last_name"),
    ("dob",),
    ("national_id",),
    ("email",),
    ("phone",),
    ("address",),
    ("last_name", "postcode"),
    ("postcode",),
    ("city",),
)
#: Rules that are near-certain matches, for the prior.
DETERMINISTIC_CANDIDATES: tuple[Rule, ...] = (
    ("national_id",),
    ("email",),
    ("first_name", "last_name", "dob"),
    ("first_name", "last_name", "address"),
    ("first_name", "last_name", "phone"),
    ("first_name", "last_name", "postcode"),
    ("first_name", "last_name", "city"),
)


#: The least share of an EM session's pairs that must meet a prior rule (be near-certain matches).
MIN_SURE_SHARE = 0.15


@dataclass(slots=True)
class Choice:
    """The chosen specification, what each blocking rule costs, and why each choice was made."""

    spec: Specification
    costs: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)


def usable_columns(profiles: Mapping[str, ColumnProfile], config: TrainingConfig) -> tuple[set[str], list[str]]:
    """The columns that carry evidence, and a reason for each left out."""
    usable: set[str] = set()
    reasons = []
    for column, p in profiles.items():
        why = informative(p, min_filled=config.min_filled, max_top_share=config.max_top_share)
        if why is None:
            usable.add(column)
        elif column in DEFAULT_KIND:
            reasons.append(f"{column}: left out, {why}")
    return usable, reasons


def require_trainable(usable: set[str], profiles: Mapping[str, ColumnProfile]) -> None:
    """Raise :class:`InvalidInputError` saying what is missing when ``usable`` cannot make a model."""
    compared = usable & set(DEFAULT_KIND)
    if not compared & set(NAMES):
        state = ", ".join(f"{c} filled {profiles[c].filled:.0%}" for c in NAMES)
        raise InvalidInputError(f"cannot train: no usable name column ({state}); map first_name or last_name")
    if not compared - set(NAMES):
        raise InvalidInputError(
            f"cannot train: only {', '.join(sorted(compared))} carry evidence; names alone cannot tell namesakes "
            "apart: map at least one more filled field (date of birth, email, phone, address, postcode, city or "
            "a national id)"
        )


def _comparisons(compared: list[str]) -> tuple[ComparisonSpec, ...]:
    """Each usable column with its default kind; address, postcode and city as one location comparison.

    They are far from independent (an address fixes its postcode and city): compared apart, one agreeing
    address would count three times.
    """
    out = []
    location = [c for c in ("address", "postcode", "city") if c in compared]
    for column in compared:
        if location and column == location[0]:
            out.append(ComparisonSpec(column, "location", False, tuple(location[1:])))
        elif column not in location:
            out.append(ComparisonSpec(column, *DEFAULT_KIND[column]))
    return tuple(out)


def _key(rule: Rule) -> str:
    return ",".join(rule)


def _costed(count: Callable[[Rule], int], costs: dict[str, int]) -> Callable[[Rule], int]:
    """``count``, each rule counted once and kept in ``costs``."""

    def cost(rule: Rule) -> int:
        if _key(rule) not in costs:
            costs[_key(rule)] = count(rule)
        return costs[_key(rule)]

    return cost


def choose(profiles: Mapping[str, ColumnProfile], count: Callable[[Rule], int], config: TrainingConfig) -> Choice:
    """Choose the specification for data with these ``profiles``; ``count`` costs a blocking rule."""
    usable, reasons = usable_columns(profiles, config)
    require_trainable(usable, profiles)
    compared = [c for c in DEFAULT_KIND if c in usable]
    comparisons = _comparisons(compared)
    choice = Choice(Specification(comparisons, (), (), (), "automatic"), reasons=reasons)
    costs = choice.costs
    cost = _costed(count, costs)

    budget = config.max_comparisons_per_rule
    blocking: list[Rule] = []
    for rule in BLOCKING_CANDIDATES:
        if not set(rule) <= usable:
            continue
        if cost(rule) <= budget:
            blocking.append(rule)
            continue
        tight = next(
            (
                (*rule, c)
                for c in TIGHTENERS
                if c in usable and c not in rule and not (c in NAMES and "name_pair" in rule)
                if cost((*rule, c)) <= budget
            ),
            None,
        )
        over = f"blocking {_key(rule)}: {cost(rule):,} pairs, over the budget of {budget:,}"
        if tight is None:
            reasons.append(f"{over}; dropped (no column brings it under)")
        elif tight in blocking:
            reasons.append(f"{over}; dropped ({_key(tight)} is chosen already)")
        else:
            blocking.append(tight)
            reasons.append(f"{over}; tightened to {_key(tight)} ({cost(tight):,} pairs)")
    if not blocking:
        raise InvalidInputError(
            f"cannot train: every blocking rule compares more than {budget:,} pairs "
            f"(training.max_comparisons_per_rule); costs: {costs}"
        )

    deterministic = [r for r in DETERMINISTIC_CANDIDATES if set(r) <= usable and cost(r) <= budget][:3]
    if not deterministic:
        deterministic = [blocking[0]]

    def sure_share(rule: Rule) -> float:
        """The share of a session's pairs that a prior rule makes too: near-certain matches."""
        joined = [tuple(dict.fromkeys((*rule, *d))) for d in deterministic if not set(d) <= set(rule)]
        return max((cost(j) for j in joined), default=cost(rule)) / max(cost(rule), 1)

    em: list[Rule] = []
    free = set(compared)  # comparisons no session has estimated yet
    for rule in EM_CANDIDATES:
        if not set(rule) <= usable or not free - set(rule) or cost(rule) == 0:
            continue
        if cost(rule) > config.max_em_comparisons:
            reasons.append(f"EM on {_key(rule)}: {cost(rule):,} pairs, over {config.max_em_comparisons:,}; not used")
            continue
        # EM finds two classes in a session's pairs; with few true matches among them the class it finds
        # is something else (households at one address, people born on one day).
        if (share := sure_share(rule)) < MIN_SURE_SHARE:
            reasons.append(
                f"EM on {_key(rule)}: only {share:.1%} of its {cost(rule):,} pairs also meet a prior rule "
                f"(under {MIN_SURE_SHARE:.0%}: too few matches to learn from); not used"
            )
            continue
        em.append(rule)
        free -= set(compared) - set(rule)
        if not free or len(em) == 3:
            break
    if free:
        reasons.append(f"EM: no session estimates {', '.join(sorted(free))}; their m stay at Splink's defaults")

    choice.spec = Specification(comparisons, tuple(blocking), tuple(em), tuple(deterministic), "automatic")
    return choice


def complete(
    spec: Specification, profiles: Mapping[str, ColumnProfile], count: Callable[[Rule], int], config: TrainingConfig
) -> Choice:
    """Check a user's specification against the budget and fill in its EM sessions and prior rules if absent.

    A user's rule over budget is an error (it is theirs to change), never run.
    """
    choice = Choice(spec)
    cost = _costed(count, choice.costs)
    budget = config.max_comparisons_per_rule
    for name, rules, limit in (
        ("blocking", spec.blocking, budget),
        ("em_sessions", spec.em_sessions, config.max_em_comparisons),
        ("deterministic", spec.deterministic, budget),
    ):
        for rule in rules:
            if (n := cost(rule)) > limit:
                raise InvalidInputError(f"{spec.origin}: {name} rule {_key(rule)} compares {n:,} pairs, over {limit:,}")
    compared = {c.column for c in spec.comparisons}
    empty = [c for c in sorted(compared) if profiles[c].filled == 0]
    if empty:
        choice.reasons.append(f"compared but absent from every record: {', '.join(empty)}")
    if not spec.deterministic:
        fitting = [r for r in DETERMINISTIC_CANDIDATES if set(r) <= compared]
        chosen: list[Rule] = [r for r in fitting if cost(r) <= budget][:3] or [spec.blocking[0]]
        choice.spec = Specification(spec.comparisons, spec.blocking, spec.em_sessions, tuple(chosen), spec.origin)
        choice.reasons.append(f"prior from {'; '.join(_key(r) for r in chosen)} (the file names none)")
    return choice
