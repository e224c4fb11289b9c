"""The identity port: records, customers, identifiers, links, merges, splits and apart pairs."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, final

from ..errors import InvalidInputError
from ..models import ApartPair, ChangeSet, Customer, HistoryEvent, Identifier, Profile, SourceRecord
from ..reads import Lookup, StoreStats
from .base import MAX_BATCH, Port, feed_cursor


def _ids(what: str, customer_ids: Collection[str]) -> list[str]:
    if isinstance(customer_ids, str):
        raise InvalidInputError(f"{what} takes a collection of customer ids, not one id")
    ids = list(dict.fromkeys(customer_ids))
    if not all(isinstance(i, str) for i in ids):
        raise InvalidInputError("customer ids are strings")
    return ids


def changed_customers(changes: ChangeSet) -> list[str]:
    """The customers a change set touches: created, merged either way, given records, split, new golden record."""
    ids = [c.id for c in changes.new_customers]
    ids += [x for m in changes.merges for x in (m.survivor, m.merged)]
    ids += changes.final_targets().values()
    ids += [w.customer_id for w in changes.records]
    ids += [m.customer_id for m in changes.moves]
    ids += [x for s in changes.splits for x in (s.source, s.new)]
    ids += changes.goldens
    return sorted(set(ids))


@dataclass(frozen=True, slots=True)
class ChangedCustomer:
    """One entry of the customer change feed: the customer node as it is now and when it last changed.

    ``seq`` is the change sequence of the last write that created the customer, changed its golden
    record or its records (linked, moved, split off), merged it or merged another into it.
    ``changed_at`` is that write's time (None for customers stored before the feed existed).
    """

    seq: int
    changed_at: datetime | None
    customer: Customer


class IdentityPort(Port):
    """Look up records and identifiers, apply a change set, read profiles, find and list customers."""

    @final
    def lookup(self, record_uids: Collection[str], identifier_uids: Collection[str]) -> Lookup:
        """Return what the graph knows of these records and identifiers (missing ones are absent)."""
        if not record_uids and not identifier_uids:
            return Lookup({}, {}, {})
        return self._call("lookup", lambda: self._lookup(list(record_uids), list(identifier_uids)))

    @final
    def records_of(self, customer_ids: Collection[str]) -> dict[str, list[SourceRecord]]:
        """Return the source records currently linked to each of ``customer_ids``."""
        if not customer_ids:
            return {}
        return self._call("records_of", lambda: self._records_of(list(customer_ids)))

    @final
    def apply(self, changes: ChangeSet) -> None:
        """Apply ``changes`` in one transaction: all of it or, on any error, none of it."""
        if changes.is_empty():
            return
        self._call("apply", lambda: self._apply(changes))

    @final
    def resolve(self, customer_id: str) -> str | None:
        """Return the active customer ``customer_id`` is or was merged into, or ``None`` if unknown."""
        return self._call("resolve", lambda: self._resolve_many([customer_id])).get(customer_id)

    @final
    def get_customer(self, customer_id: str) -> Customer | None:
        """Return the customer node itself (active or merged), without following redirects."""
        return self._call("get_customer", lambda: self._get_customers([customer_id])).get(customer_id)

    @final
    def get_profile(self, customer_id: str) -> Profile | None:
        """Return the unified profile of ``customer_id``, following merge redirects; ``None`` if unknown."""
        active = self.resolve(customer_id)
        if active is None:
            return None
        return self._call("get_profile", lambda: self._get_profiles({customer_id: active})).get(customer_id)

    @final
    def get_profiles(self, customer_ids: Collection[str]) -> dict[str, Profile]:
        """Return the unified profile of each known id of ``customer_ids``, keyed by the id as requested.

        Each profile is the one :meth:`get_profile` returns for its id: a merged-away id maps to its
        survivor's profile with ``requested_id`` set to it (two ids merged into one survivor get one each).
        Unknown ids are absent; the keys keep the order of their first request. The whole batch costs a
        fixed number of store round trips, however many ids it holds, at most ``MAX_BATCH`` (1000) ids.
        """
        ids = _ids("get_profiles", customer_ids)
        if not ids:
            return {}
        if len(ids) > MAX_BATCH:
            raise InvalidInputError(f"get_profiles takes at most {MAX_BATCH} ids, not {len(ids)}")
        targets = self._call("get_profiles", lambda: self._resolve_many(ids))
        if not targets:
            return {}
        found = self._call("get_profiles", lambda: self._get_profiles(targets))
        return {rid: found[rid] for rid in ids if rid in found}

    @final
    def list_customers(self, first: int = 50, after: str | None = None) -> tuple[list[str], str | None]:
        """Active customer ids in id order, ``first`` at a time after cursor ``after`` (keyset pagination).

        Returns the page (ids greater than ``after``) and the cursor of the next page, which is the
        page's last id, or ``None`` when no active customer follows.
        """
        if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_BATCH:
            raise InvalidInputError(f"first must be between 1 and {MAX_BATCH}")
        if after is not None and not isinstance(after, str):
            raise InvalidInputError(f"not a customer cursor: {after!r}")
        ids = self._call("list_customers", lambda: self._list_customers(first + 1, after))
        more = len(ids) > first
        ids = ids[:first]
        return ids, (ids[-1] if more and ids else None)

    @final
    def find_by_identifier(self, identifier: Identifier) -> list[str]:
        """Return the active customers whose records carry ``identifier``."""
        return self._call("find_by_identifier", lambda: self._find_by_identifier(identifier.uid))

    @final
    def find_by_name(self, first_name: str | None, last_name: str | None, limit: int = 50) -> list[str]:
        """Return active customers with a record of that first and/or last name (case-insensitive)."""
        if not first_name and not last_name:
            raise InvalidInputError("find_by_name needs a first or a last name")
        first = first_name.casefold() if first_name else None
        last = last_name.casefold() if last_name else None
        return self._call("find_by_name", lambda: self._find_by_name(first, last, limit))

    @final
    def iter_links(self) -> Iterator[tuple[str, str, str]]:
        """Yield ``(source, source_key, customer_id)`` for every record, ordered by source and key."""
        yield from self._call("iter_links", lambda: self._iter_links())

    @final
    def apart(self, *, record_uids: Collection[str] = (), customer_ids: Collection[str] | None = ()) -> list[ApartPair]:
        """Apart pairs (rejected reviews, splits) touching ``record_uids`` or the records of ``customer_ids``.

        ``customer_ids=None`` returns every pair. Each pair carries the records' current customers.
        """
        if customer_ids is None:
            return self._call("apart", lambda: self._apart(None, None))
        if not record_uids and not customer_ids:
            return []
        return self._call("apart", lambda: self._apart(sorted(set(record_uids)), sorted(set(customer_ids))))

    @final
    def iter_records(self) -> Iterator[tuple[SourceRecord, str]]:
        """Yield every stored record with its customer, ordered by record uid."""
        yield from self._call("iter_records", lambda: self._iter_records())

    @final
    def history(self, customer_id: str) -> list[HistoryEvent]:
        """Return every merge into or out of ``customer_id`` and every split from or to it, oldest first."""
        return self._call("history", lambda: self._histories([customer_id])).get(customer_id, [])

    @final
    def flagged_identifiers(self) -> list[tuple[Identifier, str]]:
        """Return identifiers that stopped linking (merge protection) with the reason."""
        return self._call("flagged_identifiers", lambda: self._flagged())

    @final
    def stats(self) -> StoreStats:
        """Return counts of records, customers and identifiers."""
        return self._call("stats", lambda: self._stats())

    @final
    def customer_changes(
        self, *, after: tuple[int, str] | None = None, first: int = MAX_BATCH
    ) -> list[ChangedCustomer]:
        """The change feed: customers (active or merged) in (seq, id) order after cursor ``after``.

        ``after`` is the (seq, customer id) of the last entry read (None: from the start); each customer
        appears once, at the sequence of its last change.
        """
        cursor = feed_cursor(after, first, "a customer feed")
        return self._call("customer_changes", lambda: self._customer_changes(cursor, first))

    # -- hooks -----------------------------------------------------------------------------------------

    @abstractmethod
    def _lookup(self, record_uids: list[str], identifier_uids: list[str]) -> Lookup: ...

    @abstractmethod
    def _records_of(self, customer_ids: list[str]) -> dict[str, list[SourceRecord]]: ...

    @abstractmethod
    def _apply(self, changes: ChangeSet) -> None:
        """Write the change set in one transaction (every domain's part of it)."""

    @abstractmethod
    def _get_customers(self, customer_ids: list[str]) -> dict[str, Customer]:
        """The customer nodes of the known ids of ``customer_ids`` (active or merged), keyed by id."""

    @abstractmethod
    def _resolve_many(self, customer_ids: list[str]) -> dict[str, str]:
        """Map each known id of ``customer_ids`` to its active customer (itself, or its survivor)."""

    @abstractmethod
    def _get_profiles(self, targets: Mapping[str, str]) -> dict[str, Profile]:
        """Profiles of requested id -> active id ``targets``, keyed by requested id, in a fixed number of reads.

        An active id that no longer exists is absent.
        """

    @abstractmethod
    def _list_customers(self, limit: int, after: str | None) -> list[str]:
        """The first ``limit`` active customer ids greater than ``after`` (all, if ``None``), in id order."""

    @abstractmethod
    def _find_by_identifier(self, identifier_uid: str) -> list[str]: ...

    @abstractmethod
    def _find_by_name(self, first: str | None, last: str | None, limit: int) -> list[str]: ...

    @abstractmethod
    def _iter_links(self) -> Iterator[tuple[str, str, str]]: ...

    @abstractmethod
    def _apart(self, record_uids: list[str] | None, customer_ids: list[str] | None) -> list[ApartPair]: ...

    @abstractmethod
    def _iter_records(self) -> Iterator[tuple[SourceRecord, str]]: ...

    @abstractmethod
    def _histories(self, customer_ids: list[str]) -> dict[str, list[HistoryEvent]]:
        """Each customer's merges and splits (either side), oldest first, in a fixed number of reads."""

    @abstractmethod
    def _flagged(self) -> list[tuple[Identifier, str]]: ...

    @abstractmethod
    def _stats(self) -> StoreStats: ...

    def _records_relinked(self, tx: Any, record_uids: list[str]) -> None:
        """Inside write transaction ``tx``: stored records this write gives another customer.

        The journey's backends re-feed their events; no-op otherwise.
        """

    @abstractmethod
    def _customer_changes(self, after: tuple[int, str], limit: int) -> list[ChangedCustomer]:
        """Customers with (seq, id) greater than ``after``, in that order, at most ``limit``."""
