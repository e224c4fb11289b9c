"""The journey port: a customer's events (idempotent by id) and their timeline."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection
from dataclasses import dataclass
from typing import final

from ..errors import InvalidInputError, NotFoundError
from ..models import ChangeSet, StoredEvent, TimelinePage, event_time
from .base import MAX_BATCH, feed_cursor
from .identity import IdentityPort


def moved_records(changes: ChangeSet) -> list[str]:
    """The records a change set gives a customer they may not have had: new, moved, merged, split off."""
    uids = [w.record.uid for w in changes.records if not w.update]
    uids += [m.record_uid for m in changes.moves]
    uids += [u for m in changes.merges for u in m.records]
    uids += [u for s in changes.splits for u in s.records]
    return sorted(set(uids))


@dataclass(frozen=True, slots=True)
class ChangedEvent:
    """One entry of the journey change feed: the event, its feed position and its record's customer now.

    ``seq`` is the change sequence of the write that stored the event or last moved its record to another
    customer (merge, split, record move, the record's first write); ``customer_id`` is None when the
    event names no record or its record is not stored.
    """

    seq: int
    event: StoredEvent
    customer_id: str | None


class JourneyPort(IdentityPort):
    """Which events were applied, and each customer's timeline (events hang off the customer's records)."""

    @final
    def seen_events(self, event_ids: Collection[str]) -> set[str]:
        """Return which of these event ids (``source|event_id``) the graph has already applied."""
        if not event_ids:
            return set()
        return self._call("seen_events", lambda: self._seen_events(sorted(set(event_ids))))

    @final
    def timeline(
        self, customer_id: str, *, first: int = 20, after: str | None = None, types: Collection[str] | None = None
    ) -> TimelinePage:
        """A customer's journey events, newest first, ``first`` at a time from cursor ``after``.

        The events of every record the customer holds now (a merged-away ID reads its survivor's).
        """
        if not 1 <= first <= MAX_BATCH:
            raise InvalidInputError(f"first must be between 1 and {MAX_BATCH}")
        cursor: tuple[str, str] | None = None
        if after is not None:
            at, sep, eid = after.partition("~")
            if not sep or not at or not eid:
                raise InvalidInputError(f"not a timeline cursor: {after!r}")
            cursor = (at, eid)
        active = self.resolve(customer_id)
        if active is None:
            raise NotFoundError(f"no customer {customer_id}")
        wanted = sorted(set(types)) if types is not None else None
        rows = self._call("timeline", lambda: self._timeline(active, first + 1, cursor, wanted))
        more = len(rows) > first
        rows = rows[:first]
        nxt = f"{event_time(rows[-1].occurred_at)}~{rows[-1].id}" if more and rows else None
        return TimelinePage(rows, nxt)

    @final
    def event_changes(
        self, *, after: tuple[int, str] | None = None, first: int = MAX_BATCH, types: Collection[str] | None = None
    ) -> list[ChangedEvent]:
        """The change feed: events in (seq, id) order after cursor ``after`` (None: from the start), ``first`` at most.

        The cursor is the (seq, event id) of the last entry read. Each write takes a higher sequence
        than every write before it (writers are exclusive) and is seen whole or not at all, so paging
        from the last entry read misses nothing. An event comes again when its record changes customer.
        """
        cursor = feed_cursor(after, first, "an event feed")
        wanted = sorted(set(types)) if types is not None else None
        return self._call("event_changes", lambda: self._event_changes(cursor, first, wanted))

    # -- hooks -----------------------------------------------------------------------------------------

    @abstractmethod
    def _seen_events(self, event_ids: list[str]) -> set[str]: ...

    @abstractmethod
    def _timeline(
        self, customer_id: str, limit: int, before: tuple[str, str] | None, types: list[str] | None
    ) -> list[StoredEvent]:
        """The customer's events older than ``before`` (at, id), newest first, at most ``limit``."""

    @abstractmethod
    def _event_changes(self, after: tuple[int, str], limit: int, types: list[str] | None) -> list[ChangedEvent]:
        """Events with (seq, id) greater than ``after``, in that order, at most ``limit``, of ``types`` if given."""
