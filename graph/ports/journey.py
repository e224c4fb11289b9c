"""The journey port: a customer's events (idempotent by id) and their timeline."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection
from typing import final

from ..errors import InvalidInputError, NotFoundError
from ..models import StoredEvent, TimelinePage, event_time
from .base import MAX_BATCH
from .identity import IdentityPort


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

    # -- hooks -----------------------------------------------------------------------------------------

    @abstractmethod
    def _seen_events(self, event_ids: list[str]) -> set[str]: ...

    @abstractmethod
    def _timeline(
        self, customer_id: str, limit: int, before: tuple[str, str] | None, types: list[str] | None
    ) -> list[StoredEvent]:
        """The customer's events older than ``before`` (at, id), newest first, at most ``limit``."""
