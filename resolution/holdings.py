"""Sources with one record per person: no customer may hold two records of one of them.

A census counts each person once, a register holds one entry per person, a tax file one return per
filer. When the settings name such sources (``linking.one_record_per_person``), two of their records
are never one customer: not through a shared identifier (a copied or mistyped number) and not through
the model (a household member who scores like the person). Batch resolution applies the rule edge by
edge (:func:`c360.resolution.batch.link`); ingest applies it record by record with :class:`Holdings`.

Batch resolution joins the strongest pairs first; ingest takes records as they arrive, so an earlier,
weaker record of a source may hold the customer a later record of that source fits better. When the
customer holds it by the model alone and the later record's best pair with the customer weighs more
than the holder's own best pair with the customer's other records, the holder moves out into a new
customer and the later record links (:mod:`c360.resolution.displace`, which also lists what "by the
model alone" excludes: identifiers, stewards' approvals and merges). :meth:`Holdings.moved` records it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from c360.graph.store import GraphStore


class Holdings:
    """What each customer met while planning one batch holds of the one-record-per-person sources."""

    def __init__(self, store: GraphStore, sources: Collection[str]) -> None:
        self.sources = frozenset(sources)
        self._store = store
        self._stored: dict[str, frozenset[str]] = {}
        self._planned: dict[str, set[str]] = {}

    def of(self, customers: Collection[str]) -> dict[str, frozenset[str]]:
        """The sources each of ``customers`` holds: stored, planned in this batch, merged in this batch."""
        missing = [c for c in customers if c not in self._stored]
        if missing:
            found = self._store.records_of(missing)
            for cid in missing:
                self._stored[cid] = frozenset(r.source for r in found.get(cid, ())) & self.sources
        return {c: self._stored[c] | self._planned.get(c, set()) for c in customers}

    def admit(self, source: str, joined: Collection[str], candidates: Sequence[str]) -> list[str]:
        """The ``candidates``, taken in order, that a record of ``source`` may join beside ``joined``.

        A candidate is left out when it holds a source that the record, ``joined`` or a candidate
        admitted before it holds already.
        """
        holding = self.of([*joined, *candidates])  # one store read for both
        held = set({source} & self.sources)
        for cid in joined:
            held |= holding[cid]
        admitted = []
        for cid in candidates:
            if not holding[cid] & held:
                admitted.append(cid)
                held |= holding[cid]
        return admitted

    def conflicts(self, source: str, joined: Collection[str], candidate: str) -> frozenset[str]:
        """The sources that keep a record of ``source``, beside ``joined``, out of ``candidate`` (empty: none)."""
        holding = self.of([*joined, candidate])
        held = set({source} & self.sources)
        for cid in joined:
            held |= holding[cid]
        return holding[candidate] & held

    def planned(self, source: str, customer_id: str) -> None:
        """A record of ``source`` was planned into ``customer_id``."""
        if source in self.sources:
            self._planned.setdefault(customer_id, set()).add(source)

    def merged(self, other: str, into: str) -> None:
        """Customer ``other`` was merged into ``into``: what it holds, ``into`` holds."""
        self._planned.setdefault(into, set()).update(self.of([other])[other])

    def moved(self, source: str, from_customer: str, to_customer: str) -> None:
        """The one record of ``source`` that ``from_customer`` held moved to ``to_customer`` (displaced)."""
        self._stored[from_customer] = self.of([from_customer])[from_customer] - {source}
        self._planned.pop(from_customer, None)
        self._stored.setdefault(to_customer, frozenset())  # a new customer: nothing stored to read
        self.planned(source, to_customer)
