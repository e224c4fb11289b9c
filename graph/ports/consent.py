"""The consent port: the append-only consent ledger with its signed receipts, hash-chained per customer.

Consent events hang off the source record they came with, so a customer's events are those of the
records it holds now: they follow merges and splits without being moved. Each event is stored with its
receipt (a compact JWS, :mod:`c360.graph.receipts`) and the chain the receipt belongs to (the customer id
at capture); a chain's receipts are read back in append order, which is the order their ``prev`` links
follow.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import final

from ..consent import ConsentEvent
from ..errors import ConflictError, InvalidInputError, NotFoundError
from .base import MAX_BATCH
from .identity import IdentityPort, _ids

_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_MAX_CHAIN_ID = 200


@dataclass(frozen=True, slots=True)
class ConsentEntry:
    """One ledger entry: the event, its receipt (compact JWS) and the chain the receipt extends."""

    event: ConsentEvent
    receipt: str
    chain_id: str


def new_entries(entries: list[ConsentEntry], stored: Mapping[str, ConsentEntry]) -> list[ConsentEntry]:
    """The entries to write: those whose event id is not in ``stored`` (the stored entries of these ids).

    A stored entry equal to the given one is a replay and is skipped; one that differs in anything (the
    event, its receipt, its chain) is a :class:`ConflictError`. Backends call it inside their transaction.
    """
    fresh: list[ConsentEntry] = []
    for entry in entries:
        old = stored.get(entry.event.id)
        if old is None:
            fresh.append(entry)
        elif old != entry:
            raise ConflictError(
                f"consent event {entry.event.id} is stored already with other content: the ledger is append-only"
            )
    return fresh


def missing_records(entries: list[ConsentEntry], found: Collection[str]) -> None:
    """Raise :class:`NotFoundError` unless every entry's record is among the ``found`` record uids."""
    missing = sorted({e.event.record_uid for e in entries} - set(found))
    if missing:
        raise NotFoundError(f"consent hangs off a stored source record; no record {', '.join(missing)}")


def _check(entry: object) -> ConsentEntry:
    if not isinstance(entry, ConsentEntry):
        raise InvalidInputError(f"append_consent takes ConsentEntry values, not {type(entry).__name__}")
    if not isinstance(entry.event, ConsentEvent):
        raise InvalidInputError(f"a consent entry's event is a ConsentEvent, not {type(entry.event).__name__}")
    if not isinstance(entry.receipt, str) or not _JWS.fullmatch(entry.receipt):
        raise InvalidInputError(f"consent event {entry.event.id}: its receipt is not a compact JWS")
    chain = entry.chain_id
    if not isinstance(chain, str) or not chain.strip() or len(chain) > _MAX_CHAIN_ID:
        raise InvalidInputError(
            f"consent event {entry.event.id}: the chain id must be a non-empty string of at most {_MAX_CHAIN_ID}"
        )
    return entry


def _check_at(at: object) -> None:
    if at is not None and (not isinstance(at, datetime) or at.utcoffset() is None):
        raise InvalidInputError("at must be an aware datetime")


def _until(events: list[ConsentEvent], at: datetime | None) -> list[ConsentEvent]:
    return events if at is None else [e for e in events if e.captured_at <= at]


class ConsentPort(IdentityPort):
    """Append consent events with their receipts; read a customer's events, a chain, one entry."""

    @final
    def append_consent(self, entries: Collection[ConsentEntry]) -> list[str]:
        """Append ``entries`` in one transaction, in their order; return the ids of those appended.

        Append-only: an event id stored before with the same entry is skipped (a replay), with anything
        different it is a :class:`ConflictError`; an event whose record is not stored is a
        :class:`NotFoundError`. On any error nothing of the batch is written. Appends are serialised across
        processes (embedded: SQLite's write lock, or the open :meth:`exclusive` transaction; neo4j: the
        consent sequence node's lock), so sequence numbers follow commit order. A caller that signs a
        receipt after reading :meth:`last_receipt` holds :meth:`exclusive` from the read to this append,
        so that no other writer extends the chain in between.
        """
        if isinstance(entries, ConsentEntry) or not isinstance(entries, Collection):
            raise InvalidInputError("append_consent takes a collection of ConsentEntry values")
        batch: dict[str, ConsentEntry] = {}
        for entry in map(_check, entries):
            first = batch.setdefault(entry.event.id, entry)
            if first != entry:
                raise ConflictError(f"consent event {entry.event.id} is given twice with different content")
        if not batch:
            return []
        if len(batch) > MAX_BATCH:
            raise InvalidInputError(f"append_consent takes at most {MAX_BATCH} entries, not {len(batch)}")
        return self._call("append_consent", lambda: self._append_consent(list(batch.values())))

    @final
    def consent_events(
        self, customer_id: str, at: datetime | None = None, topic: tuple[str, str] | None = None
    ) -> list[ConsentEvent]:
        """The consent events of every record ``customer_id`` holds now, in append order.

        A merged-away id reads its survivor's; with ``at``, only events captured at or before it; with
        ``topic`` (purpose, channel), only that pair's (filtered by the backend, so that the one question
        reads few). :class:`NotFoundError` if the customer is unknown.
        """
        _check_at(at)
        if topic is not None and not (len(topic) == 2 and all(isinstance(t, str) and t for t in topic)):
            raise InvalidInputError(f"topic is a (purpose, channel) pair, not {topic!r}")
        active = self.resolve(customer_id)
        if active is None:
            raise NotFoundError(f"no customer {customer_id}")
        events = self._call("consent_events", lambda: self._consents_of([active], topic)).get(active, [])
        return _until(events, at)

    @final
    def consent_events_of(
        self, customer_ids: Collection[str], at: datetime | None = None
    ) -> dict[str, list[ConsentEvent]]:
        """The consent events of many customers at once: :meth:`consent_events` for each, in bulk.

        Keyed by the id as requested (a merged-away id reads its survivor's events, two ids of one survivor
        get a list each); a known customer without events maps to an empty list; unknown ids are absent.
        Each list is in append order; with ``at``, only events captured at or before it. At most
        ``MAX_BATCH`` (1000) ids; the batch costs a fixed number of store reads, however many ids it holds.
        """
        _check_at(at)
        ids = _ids("consent_events_of", customer_ids)
        if len(ids) > MAX_BATCH:
            raise InvalidInputError(f"consent_events_of takes at most {MAX_BATCH} ids, not {len(ids)}")
        if not ids:
            return {}
        targets = self._call("consent_events_of", lambda: self._resolve_many(ids))
        actives = sorted(set(targets.values()))
        found = self._call("consent_events_of", lambda: self._consents_of(actives, None)) if actives else {}
        return {rid: _until(found.get(targets[rid], []), at) for rid in ids if rid in targets}

    @final
    def consent_chain(self, chain_id: str) -> list[tuple[str, str]]:
        """The chain's ``(event id, receipt)`` pairs in append order (empty for an unknown chain)."""
        return self._call("consent_chain", lambda: self._consent_chain(chain_id))

    @final
    def last_receipt(self, chain_id: str) -> str | None:
        """The chain's last receipt (what the next receipt's ``previous`` is), or ``None``."""
        return self._call("last_receipt", lambda: self._last_receipt(chain_id))

    @final
    def consent_chain_ids(self) -> list[str]:
        """Every chain id, in id order (``c360 consent verify`` checks each chain)."""
        return self._call("consent_chain_ids", lambda: self._consent_chain_ids())

    @final
    def get_consent(self, event_id: str) -> ConsentEntry | None:
        """One ledger entry (the event, its receipt and chain), or ``None``."""
        return self._call("get_consent", lambda: self._get_consents([event_id])).get(event_id)

    # -- hooks -----------------------------------------------------------------------------------------

    @abstractmethod
    def _append_consent(self, entries: list[ConsentEntry]) -> list[str]:
        """Check and write ``entries`` in one write transaction; return the ids written.

        :func:`missing_records`, then :func:`new_entries` against the stored entries of these ids, then the
        new ones written with increasing sequence numbers.
        """

    @abstractmethod
    def _consents_of(self, customer_ids: list[str], topic: tuple[str, str] | None) -> dict[str, list[ConsentEvent]]:
        """The events of each active customer's records (of ``topic`` only, if given), in append order.

        Keyed by customer id (one without events may be absent); one read per chunk of ids, not per customer.
        """

    @abstractmethod
    def _consent_chain(self, chain_id: str) -> list[tuple[str, str]]: ...

    @abstractmethod
    def _last_receipt(self, chain_id: str) -> str | None: ...

    @abstractmethod
    def _consent_chain_ids(self) -> list[str]: ...

    @abstractmethod
    def _get_consents(self, event_ids: list[str]) -> dict[str, ConsentEntry]:
        """The stored entries of the known ids of ``event_ids``, keyed by event id."""
