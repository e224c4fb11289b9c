"""Why are these the same customer? The evidence between two records, or a record and a customer.

Deterministic evidence is the strong identifiers both sides carry (junk values excluded); probabilistic
evidence is the trained model's score, comparison by comparison, adding up to the final weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from c360.graph.errors import NotFoundError
from c360.graph.models import Evidence, SourceRecord
from c360.graph.store import GraphStore

from .config import LinkingConfig
from .features import features
from .normalize import identifiers_of, is_junk
from .scorer import Score, Scorer


@dataclass(frozen=True, slots=True)
class Side:
    """One side of an explanation: a record, its customer and how it is linked there."""

    record: SourceRecord
    customer_id: str
    link: Evidence


@dataclass(frozen=True, slots=True)
class Explanation:
    """The evidence between two records."""

    left: Side
    right: Side
    shared_identifiers: tuple[str, ...]
    score: Score | None

    @property
    def same_customer(self) -> bool:
        """Whether both records belong to one customer now."""
        return self.left.customer_id == self.right.customer_id

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe document."""
        out: dict[str, Any] = {
            "left": {
                "record": self.left.record.uid,
                "customer": self.left.customer_id,
                "link": self.left.link.to_json(),
            },
            "right": {
                "record": self.right.record.uid,
                "customer": self.right.customer_id,
                "link": self.right.link.to_json(),
            },
            "same_customer": self.same_customer,
            "deterministic": {
                "rule": "shared strong identifier" if self.shared_identifiers else None,
                "identifiers": list(self.shared_identifiers),
            },
        }
        if self.score is not None:
            out["probabilistic"] = {
                "prior_weight": self.score.prior_weight,
                "comparisons": [
                    {"comparison": c.comparison, "level": c.level, "weight": c.weight, "tf_adjustment": c.tf_adjustment}
                    for c in self.score.contributions
                ],
                "match_weight": self.score.match_weight,
                "match_probability": self.score.match_probability,
            }
        return out


def _side(store: GraphStore, uid: str) -> Side:
    found = store.lookup([uid], []).records.get(uid)
    if found is None:
        raise NotFoundError(f"no record {uid} (give source|key)")
    profile = store.get_profile(found.customer_id)
    stored = next((r for r in profile.records if r.record.uid == uid), None) if profile else None
    if stored is None:
        raise NotFoundError(f"record {uid} vanished while reading it; try again")
    return Side(stored.record, stored.customer_id, stored.evidence)


def explain_records(store: GraphStore, a: str, b: str, *, linking: LinkingConfig, scorer: Scorer | None) -> Explanation:
    """Explain the pair of records ``a`` and ``b`` (``source|key`` each)."""
    left, right = _side(store, a), _side(store, b)
    region = linking.default_region
    strong, blocked = set(linking.strong_kinds), linking.blocked_uids()
    ids_left = {i for i in identifiers_of(left.record, region) if i.kind in strong and not is_junk(i, blocked)}
    ids_right = set(identifiers_of(right.record, region))
    shared = tuple(sorted(i.uid for i in ids_left & ids_right))
    score = scorer.score(features(left.record, region), features(right.record, region)) if scorer else None
    return Explanation(left, right, shared, score)


def explain(store: GraphStore, a: str, b: str, *, linking: LinkingConfig, scorer: Scorer | None) -> Explanation:
    """Explain two records, or a record and a customer (against the customer's closest record)."""
    if "|" in a and "|" in b:
        return explain_records(store, a, b, linking=linking, scorer=scorer)
    record, customer = (a, b) if "|" in a else (b, a)
    if "|" not in record:
        raise NotFoundError("give two record keys (source|key), or a record key and a customer ID")
    profile = store.get_profile(customer)
    if profile is None:
        raise NotFoundError(f"no customer {customer}")
    options = [
        explain_records(store, record, r.record.uid, linking=linking, scorer=scorer)
        for r in profile.records
        if r.record.uid != record
    ]
    if not options:
        raise NotFoundError(f"customer {customer} has no record other than {record}")
    # The closest record: shared identifiers first, then the highest match weight.
    return max(options, key=lambda e: (len(e.shared_identifiers), e.score.match_weight if e.score else 0.0))
