"""Consent facts for many customers at once, decided by the kernel's consent model only.

:func:`consent_facts` reads the ledger in bulk (:meth:`ConsentPort.consent_events_of`, ``CHUNK`` ids per
call) and applies :func:`c360.graph.consent.effective` at one instant: per customer, the (purpose,
channel) pairs permitted then (granted, not expired) and, per pair with any event, the event that decided
its state: the receipt the fact rests on. Nothing here re-derives a consent rule.
:func:`permitted_pairs` gives the shape :func:`c360.ml.segments.backfill` takes for ``consent``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from c360.graph.consent import ConsentState, StateStatus, consent_state, effective
from c360.graph.errors import InvalidInputError
from c360.graph.store import GraphStore

#: Customer ids per bulk read of the ledger (the port's most).
CHUNK = 1000

Pair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Basis:
    """The event that decided a pair's state: its id (the receipt's event), the state it gives, when captured."""

    event_id: str
    status: StateStatus
    captured_at: datetime
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConsentFacts:
    """One customer's consent at ``at``: the permitted (purpose, channel) pairs and what decided each pair.

    ``decided`` holds every pair with a counted event (granted, denied, withdrawn or expired); a pair not
    in it has state ``none``. ``permitted`` is the pairs whose state is ``granted``.
    """

    customer_id: str
    at: datetime
    permitted: frozenset[Pair]
    decided: Mapping[Pair, Basis]

    def status(self, purpose: str, channel: str) -> StateStatus:
        """The pair's state: granted, denied, withdrawn, expired or none."""
        basis = self.decided.get((purpose, channel))
        return "none" if basis is None else basis.status

    def basis(self, purpose: str, channel: str) -> Basis | None:
        """The deciding event of the pair, or None when nothing is recorded for it."""
        return self.decided.get((purpose, channel))


def _basis(state: ConsentState) -> Basis:
    assert state.event is not None  # effective() gives a state per pair only from an event
    return Basis(state.event.id, state.status, state.event.captured_at, state.event.expires_at)


def consent_facts(
    store: GraphStore,
    customer_ids: Collection[str],
    at: datetime,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, ConsentFacts]:
    """The consent facts of each known id of ``customer_ids`` at ``at``, keyed by the id as requested.

    A merged-away id gets its survivor's facts; unknown ids are absent. The ledger is read ``CHUNK`` ids
    per call; ``progress(done, total)`` is called after each chunk.
    """
    if not isinstance(at, datetime) or at.utcoffset() is None:
        raise InvalidInputError("consent facts are taken at an aware datetime")
    if isinstance(customer_ids, str):
        raise InvalidInputError("consent_facts takes a collection of customer ids, not one id")
    ids = list(dict.fromkeys(customer_ids))
    out: dict[str, ConsentFacts] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        for cid, events in store.consent_events_of(chunk, at=at).items():
            states = effective(events, at)
            decided = {pair: _basis(state) for pair, state in states.items()}
            permitted = frozenset(p for p in states if consent_state(states, *p).status == "granted")
            out[cid] = ConsentFacts(cid, at, permitted, decided)
        if progress is not None:
            progress(min(start + CHUNK, len(ids)), len(ids))
    return out


def permitted_pairs(facts: Mapping[str, ConsentFacts]) -> dict[str, frozenset[Pair]]:
    """Customer id -> its permitted (purpose, channel) pairs: ``consent`` of :func:`c360.ml.segments.backfill`."""
    return {cid: f.permitted for cid, f in facts.items()}
