"""Undoing a wrong link: split records out of a customer into a new one, and keep them apart from then on."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime

from c360.graph.errors import ConflictError, InvalidInputError, NotFoundError
from c360.graph.models import ApartPair, ChangeSet, Customer, Evidence, RecordMove, SplitEvent
from c360.graph.store import GraphStore

from .config import SurvivorshipConfig
from .survivorship import golden_record


def split(
    store: GraphStore,
    customer_id: str,
    records: Collection[str],
    *,
    by: str,
    reason: str,
    now: datetime,
    new_id: Callable[[], str],
    survivorship: SurvivorshipConfig,
) -> SplitEvent:
    """Move ``records`` (``source|key``, or a key unique within the customer) out of ``customer_id``.

    The records become a new customer; every pair of a moved and a remaining record is kept apart, so that
    later ingests and batch runs do not merge them back. Applied in one transaction.
    """
    if not reason.strip():
        raise InvalidInputError("a split needs a reason (--reason)")
    if not records:
        raise InvalidInputError("name the records to split out (--records source|key,...)")
    with store.exclusive():
        active = store.resolve(customer_id)
        if active is None:
            raise NotFoundError(f"no customer {customer_id}")
        if active != customer_id:
            raise ConflictError(f"customer {customer_id} was merged into {active}; split {active} instead")
        held = store.records_of([customer_id]).get(customer_id, [])
        by_uid = {r.uid: r for r in held}
        moving: set[str] = set()
        for given in records:
            if given in by_uid:
                moving.add(given)
                continue
            named = [r.uid for r in held if r.key == given]
            if len(named) != 1:
                problem = "is not a record of" if not named else "names more than one record of"
                raise InvalidInputError(
                    f"{given!r} {problem} customer {customer_id}; its records: {', '.join(sorted(by_uid))}"
                )
            moving.add(named[0])
        staying = sorted(set(by_uid) - moving)
        if not staying:
            raise InvalidInputError(f"that is every record of {customer_id}; at least one must stay")
        new = new_id()
        note = f"split from {customer_id} by {by}: {reason.strip()}"
        evidence = Evidence("split", note=note)
        event = SplitEvent(customer_id, new, tuple(sorted(moving)), now, evidence)
        store.apply(
            ChangeSet(
                new_customers=[Customer(new, now, golden=golden_record([by_uid[u] for u in moving], survivorship))],
                moves=[RecordMove(uid, new, evidence) for uid in sorted(moving)],
                splits=[event],
                apart=[ApartPair(a, b, note) for a in sorted(moving) for b in staying],
                goldens={customer_id: golden_record([by_uid[u] for u in staying], survivorship)},
            )
        )
    return event
