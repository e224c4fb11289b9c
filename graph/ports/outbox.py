"""The outbox port: notifications queued durably, leased to one worker at a time, marked sent or failed.

Every write is one transaction and serialised across processes (embedded: SQLite's write lock; neo4j:
the ``(:OutboxLock)`` node, written first), so two workers never claim one message. The state changes are
computed here once (:func:`claimed`, :func:`finished`, :func:`requeued`); a backend reads the items in
its transaction, calls the change and writes :func:`state_values` of what it returns.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, final

from ..errors import ConflictError, InvalidInputError, NotFoundError
from ..outbox import (
    CHANNELS,
    MAX_ERROR,
    MAX_ID,
    STATUSES,
    OutboxItem,
    OutboxMessage,
    Status,
    message_from_json,
    stamp,
    unstamp,
)
from .base import MAX_BATCH, Port

#: The columns (embedded) and properties (neo4j) of a stored message, in this order.
OUTBOX_COLUMNS = (
    "id",
    "channel",
    "message",
    "status",
    "attempts",
    "next_attempt_at",
    "due",
    "last_error",
    "lease_owner",
    "lease_until",
    "sent_at",
    "provider_id",
)

Change = Callable[[Mapping[str, OutboxItem]], list[OutboxItem]]
Claim = Callable[[list[OutboxItem]], list[OutboxItem]]


def state_values(item: OutboxItem) -> dict[str, Any]:
    """The stored state of ``item``; ``due`` is when it can next be claimed (None: sent or dead)."""
    due = {"pending": item.next_attempt_at, "sending": item.lease_until}.get(item.status)
    return {
        "status": item.status,
        "attempts": item.attempts,
        "next_attempt_at": None if item.next_attempt_at is None else stamp(item.next_attempt_at),
        "due": None if due is None else stamp(due),
        "last_error": item.last_error,
        "lease_owner": item.lease_owner,
        "lease_until": None if item.lease_until is None else stamp(item.lease_until),
        "sent_at": None if item.sent_at is None else stamp(item.sent_at),
        "provider_id": item.provider_id,
    }


def item_from_row(row: Mapping[str, Any]) -> OutboxItem:
    """The item a stored row (named by :data:`OUTBOX_COLUMNS`) holds."""
    return OutboxItem(
        message_from_json(row["message"]),
        row["status"],
        int(row["attempts"]),
        unstamp(row["next_attempt_at"]),
        row["last_error"],
        row["lease_owner"],
        unstamp(row["lease_until"]),
        unstamp(row["sent_at"]),
        row["provider_id"],
    )


def new_messages(messages: list[OutboxMessage], stored: Mapping[str, OutboxItem]) -> list[OutboxItem]:
    """The pending items to insert for the ``messages`` whose id is not ``stored`` yet.

    A stored message equal to the given one is a producer's retry and is skipped; one with other content
    under the same id is a :class:`ConflictError`.
    """
    fresh: list[OutboxItem] = []
    for m in messages:
        old = stored.get(m.id)
        if old is None:
            fresh.append(OutboxItem(m, "pending", 0, m.first_attempt_at))
        elif old.message != m:
            raise ConflictError(f"outbox message {m.id} is queued already with other content")
    return fresh


def claimed(items: list[OutboxItem], owner: str, until: datetime) -> list[OutboxItem]:
    """``items`` leased to ``owner`` until ``until``: ``sending``, one attempt more."""
    return [replace(i, status="sending", attempts=i.attempts + 1, lease_owner=owner, lease_until=until) for i in items]


def _held(found: Mapping[str, OutboxItem], message_id: str, owner: str) -> OutboxItem:
    item = found.get(message_id)
    if item is None:
        raise NotFoundError(f"no outbox message {message_id}")
    if item.status != "sending" or item.lease_owner != owner:
        holder = f"leased to {item.lease_owner}" if item.status == "sending" else item.status
        raise ConflictError(f"outbox message {message_id} is not leased to {owner} (it is {holder})")
    return item


def finished(
    message_id: str,
    owner: str,
    at: datetime,
    *,
    provider_id: str | None = None,
    error: str | None = None,
    retry_at: datetime | None = None,
) -> Change:
    """The change that ends ``owner``'s attempt: sent (``provider_id``), or failed (``error``).

    A failure with ``retry_at`` makes the message pending again at that time, without one dead. A repeated
    ``mark_sent`` by the owner that sent it, with the same provider id, changes nothing.
    """

    def change(found: Mapping[str, OutboxItem]) -> list[OutboxItem]:
        item = found.get(message_id)
        if (
            error is None
            and item is not None
            and item.status == "sent"
            and (item.lease_owner, item.provider_id) == (owner, provider_id)
        ):
            return []
        item = _held(found, message_id, owner)
        if error is None:
            return [replace(item, status="sent", lease_until=None, sent_at=at, provider_id=provider_id)]
        status: Status = "dead" if retry_at is None else "pending"
        return [
            replace(item, status=status, next_attempt_at=retry_at, last_error=error, lease_owner=None, lease_until=None)
        ]

    return change


def requeued(ids: list[str], at: datetime) -> Change:
    """The change that makes the dead ones of ``ids`` pending at ``at`` with a fresh count of attempts.

    Ids that are not dead are left as they are (a repeated requeue changes nothing); an unknown id is a
    :class:`NotFoundError` and nothing changes.
    """

    def change(found: Mapping[str, OutboxItem]) -> list[OutboxItem]:
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError(f"no outbox message {', '.join(missing[:5])}")
        return [
            replace(found[i], status="pending", attempts=0, next_attempt_at=at)
            for i in ids
            if found[i].status == "dead"
        ]

    return change


def _aware(what: str, value: object) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInputError(f"{what} must be an aware datetime, not {value!r}")
    return value


def _ident(what: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID:
        raise InvalidInputError(f"{what} must be a non-empty string of at most {MAX_ID} characters")
    return value


def _ids(ids: object) -> list[str]:
    if isinstance(ids, str) or not isinstance(ids, Collection):
        raise InvalidInputError("give a collection of outbox message ids")
    out = list(dict.fromkeys(_ident("outbox id", i) for i in ids))
    if len(out) > MAX_BATCH:
        raise InvalidInputError(f"at most {MAX_BATCH} ids at once, not {len(out)}")
    return out


class OutboxPort(Port):
    """Enqueue notifications, claim due ones under a lease, mark them sent or failed, requeue dead ones."""

    @final
    def enqueue(self, messages: Collection[OutboxMessage]) -> list[str]:
        """Queue ``messages`` in one transaction; return the ids actually added, in the given order.

        Idempotent: an id queued before with equal content is skipped (a producer retrying after a crash
        queues once); the same id with other content is a :class:`ConflictError`, and nothing is added.
        Each new message is ``pending``, due at ``not_before`` (or ``created_at``).
        """
        if isinstance(messages, OutboxMessage) or not isinstance(messages, Collection):
            raise InvalidInputError("enqueue takes a collection of OutboxMessage values")
        batch: dict[str, OutboxMessage] = {}
        for m in messages:
            if not isinstance(m, OutboxMessage):
                raise InvalidInputError(f"enqueue takes OutboxMessage values, not {type(m).__name__}")
            if batch.setdefault(m.id, m) != m:
                raise ConflictError(f"outbox message {m.id} is given twice with different content")
        if len(batch) > MAX_BATCH:
            raise InvalidInputError(f"enqueue takes at most {MAX_BATCH} messages, not {len(batch)}")
        if not batch:
            return []
        return self._call("enqueue", lambda: self._enqueue(list(batch.values())))

    @final
    def claim(
        self, owner: str, now: datetime, lease: timedelta, limit: int, *, channels: Collection[str] | None = None
    ) -> list[OutboxItem]:
        """Lease to ``owner`` up to ``limit`` due messages (of ``channels`` only, if given), oldest due first.

        Due: ``pending`` with ``next_attempt_at <= now``, or ``sending`` with a lease that ended at or
        before ``now`` (its worker crashed or stalled). Each becomes ``sending``, leased to ``owner`` until
        ``now + lease``, with one attempt more. Atomic: two claimers never get the same message.
        """
        _ident("owner", owner)
        _aware("now", now)
        if not isinstance(lease, timedelta) or lease <= timedelta(0):
            raise InvalidInputError(f"lease must be a positive timedelta, not {lease!r}")
        if not isinstance(limit, int) or not 1 <= limit <= MAX_BATCH:
            raise InvalidInputError(f"limit must be between 1 and {MAX_BATCH}, not {limit!r}")
        wanted: list[str] = list(CHANNELS) if channels is None else sorted(set(channels))
        if any(c not in CHANNELS for c in wanted):
            raise InvalidInputError(f"unknown channel in {wanted}: expected email or sms")
        if not wanted:
            return []
        until = now + lease
        return self._call(
            "claim", lambda: self._claim(stamp(now), limit, wanted, lambda items: claimed(items, owner, until))
        )

    @final
    def mark_sent(self, message_id: str, owner: str, at: datetime, provider_id: str) -> None:
        """Record that ``owner`` sent the message at ``at``; the transport's answer is ``provider_id``.

        :class:`ConflictError` unless ``owner`` holds its lease (another worker took it over after the
        lease ended, or it is sent or dead); :class:`NotFoundError` for an unknown id. Repeating the same
        call changes nothing.
        """
        _ident("outbox id", message_id)
        _ident("owner", owner)
        _aware("at", at)
        if not isinstance(provider_id, str) or len(provider_id) > MAX_ERROR:
            raise InvalidInputError(f"provider_id must be a string of at most {MAX_ERROR} characters")
        self._call(
            "mark_sent", lambda: self._change([message_id], finished(message_id, owner, at, provider_id=provider_id))
        )

    @final
    def mark_failed(self, message_id: str, owner: str, at: datetime, error: str, retry_at: datetime | None) -> None:
        """Record that ``owner``'s attempt failed with ``error``: pending again at ``retry_at``, or dead (None).

        The reason is kept (cut to :data:`~c360.graph.outbox.MAX_ERROR` characters). The lease rule is
        :meth:`mark_sent`'s.
        """
        _ident("outbox id", message_id)
        _ident("owner", owner)
        _aware("at", at)
        if retry_at is not None:
            _aware("retry_at", retry_at)
        if not isinstance(error, str) or not error.strip():
            raise InvalidInputError("error must be a non-empty reason")
        reason = error[:MAX_ERROR]
        self._call(
            "mark_failed",
            lambda: self._change([message_id], finished(message_id, owner, at, error=reason, retry_at=retry_at)),
        )

    @final
    def requeue(self, ids: Collection[str], at: datetime) -> list[str]:
        """Make the dead ones of ``ids`` pending, due at ``at``, with their attempts counted from 0 again.

        Returns the ids requeued; ids that are not dead are left alone; an unknown id is a
        :class:`NotFoundError` and nothing changes. The last error stays until the next failure.
        """
        wanted = _ids(ids)
        _aware("at", at)
        if not wanted:
            return []
        changed = self._call("requeue", lambda: self._change(wanted, requeued(wanted, at)))
        return [i.id for i in changed]

    @final
    def outbox_message(self, message_id: str) -> OutboxItem | None:
        """The message with its state, or None."""
        _ident("outbox id", message_id)
        return self._call("outbox_message", lambda: self._outbox_items([message_id])).get(message_id)

    @final
    def outbox_counts(self) -> dict[str, int]:
        """How many messages are in each status (every status is a key, 0 when none)."""
        found = self._call("outbox_counts", lambda: self._outbox_counts())
        return {s: found.get(s, 0) for s in STATUSES}

    @final
    def outbox_messages(self, status: str, *, after: str | None = None, limit: int = 100) -> list[OutboxItem]:
        """Messages of ``status`` in id order, from the first id after ``after`` (the last id of a page)."""
        if status not in STATUSES:
            raise InvalidInputError(f"unknown outbox status {status!r}: expected one of {', '.join(STATUSES)}")
        if after is not None:
            _ident("after", after)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_BATCH:
            raise InvalidInputError(f"limit must be between 1 and {MAX_BATCH}, not {limit!r}")
        return self._call("outbox_messages", lambda: self._outbox_list(status, after, limit))

    # -- hooks -----------------------------------------------------------------------------------------

    @abstractmethod
    def _enqueue(self, messages: list[OutboxMessage]) -> list[str]:
        """In one write transaction: :func:`new_messages` against the stored items of these ids, inserted."""

    @abstractmethod
    def _claim(self, now: str, limit: int, channels: list[str], claim: Claim) -> list[OutboxItem]:
        """Lease due items in one write transaction.

        The first ``limit`` items of ``channels`` with ``due <= now`` in (due, id) order go to ``claim``;
        write and return what it gives.
        """

    @abstractmethod
    def _change(self, ids: list[str], change: Change) -> list[OutboxItem]:
        """Change items in one write transaction.

        The stored items of ``ids`` (by id) go to ``change``; write and return what it gives (it may raise,
        and then nothing is written).
        """

    @abstractmethod
    def _outbox_items(self, ids: list[str]) -> dict[str, OutboxItem]: ...

    @abstractmethod
    def _outbox_counts(self) -> dict[str, int]: ...

    @abstractmethod
    def _outbox_list(self, status: str, after: str | None, limit: int) -> list[OutboxItem]: ...
