"""The ``GraphStore`` port and the registry of its backends.

The port speaks the domain (look up records and identifiers, apply a change set, get a profile, find
customers, list links and history). Its public methods are ``@final``: they check arguments, call one
small abstract hook of the backend and re-raise the backend's own errors as :class:`StoreError`.
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, TypeVar, final

from pydantic import BaseModel, ConfigDict

from .errors import C360Error, ConfigError, ConflictError, InvalidInputError, NotFoundError, StoreError
from .models import (
    ApartPair,
    Candidate,
    ChangeSet,
    Customer,
    DeadLetter,
    HistoryEvent,
    Identifier,
    Lookup,
    Profile,
    ReviewItem,
    SourceRecord,
    StoredEvent,
    StoreStats,
    TimelinePage,
    event_time,
)

T = TypeVar("T")

#: The most customer ids one batched read (:meth:`GraphStore.get_profiles`) or page takes.
MAX_BATCH = 1000


class StoreConfig(BaseModel):
    """Base of every backend's configuration; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GraphStore(ABC):
    """The identity graph. Backends implement the ``_hooks``; callers use the public methods."""

    #: Short name under which the backend is registered (``embedded``, ``neo4j``).
    name: ClassVar[str]
    _writer_lock: ClassVar[threading.Lock] = threading.Lock()

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except C360Error:
            raise
        except Exception as exc:  # backend errors become the domain's own
            raise StoreError(f"{self.name} store: {what} failed: {exc}") from exc

    # -- public API -------------------------------------------------------------------------------------

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
    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the store's write lock from planning to apply, so that concurrent ingests serialise.

        Lookups and the apply inside run as one unit: on error nothing inside is written. A lock that
        cannot be taken (another process holds it too long, the server is down) is a :class:`StoreError`.
        """
        lock = self._exclusive()
        self._call("taking the write lock", lock.__enter__)
        try:
            yield
        except BaseException as exc:
            if not lock.__exit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            self._call("releasing the write lock", lambda: lock.__exit__(None, None, None))

    @final
    def apply(self, changes: ChangeSet) -> None:
        """Apply ``changes`` in one transaction: all of it or, on any error, none of it."""
        if changes.is_empty():
            return
        self._call("apply", lambda: self._apply(changes))

    @final
    def resolve(self, customer_id: str) -> str | None:
        """Return the active customer ``customer_id`` is or was merged into, or ``None`` if unknown."""
        return self._call("resolve", lambda: self._resolve(customer_id))

    @final
    def get_customer(self, customer_id: str) -> Customer | None:
        """Return the customer node itself (active or merged), without following redirects."""
        return self._call("get_customer", lambda: self._get_customer(customer_id))

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
        if isinstance(customer_ids, str):
            raise InvalidInputError("get_profiles takes a collection of customer ids, not one id")
        ids = list(dict.fromkeys(customer_ids))
        if not ids:
            return {}
        if len(ids) > MAX_BATCH:
            raise InvalidInputError(f"get_profiles takes at most {MAX_BATCH} ids, not {len(ids)}")
        if not all(isinstance(i, str) for i in ids):
            raise InvalidInputError("customer ids are strings")
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
            raise StoreError("find_by_name needs a first or a last name")
        first = first_name.casefold() if first_name else None
        last = last_name.casefold() if last_name else None
        return self._call("find_by_name", lambda: self._find_by_name(first, last, limit))

    @final
    def iter_links(self) -> Iterator[tuple[str, str, str]]:
        """Yield ``(source, source_key, customer_id)`` for every record, ordered by source and key."""
        yield from self._call("iter_links", lambda: self._iter_links())

    @final
    def candidates(self, keys: Collection[str], per_key: int = 50) -> list[Candidate]:
        """Return the records filed under any of ``keys`` (the first ``per_key`` by uid per key), each once.

        Each candidate names the requested keys it was found under.
        """
        if not keys:
            return []
        if per_key < 1:
            raise StoreError("per_key must be at least 1")
        found = self._call("candidates", lambda: self._candidates(sorted(set(keys)), per_key))
        unique: dict[str, Candidate] = {}
        for c in found:
            seen = unique.get(c.uid)
            unique[c.uid] = c if seen is None else replace(seen, keys=(*seen.keys, *c.keys))
        return [replace(c, keys=tuple(sorted(set(c.keys)))) for _, c in sorted(unique.items())]

    @final
    def replace_blocking_keys(
        self, keys: Mapping[str, Collection[str]], views: Mapping[str, str] | None = None
    ) -> None:
        """Replace every record's blocking keys (record uid -> keys) in one transaction, as a new model needs.

        ``views`` (record uid -> comparison view) are filed with the keys and come back with candidates.
        """
        self._call("replace_blocking_keys", lambda: self._replace_blocking_keys(keys, views or {}))

    @final
    def review_items(self, status: str | None = "open", limit: int | None = 50) -> list[ReviewItem]:
        """Review items with ``status`` (``None``: all), oldest first; at most ``limit`` (``None``: every one)."""
        if status not in (None, "open", "approved", "rejected"):
            raise StoreError(f"unknown review status {status!r}")
        return self._call("review_items", lambda: self._review_items(status, limit))

    @final
    def get_review(self, review_id: str) -> ReviewItem | None:
        """One review item, or ``None``."""
        return self._call("get_review", lambda: self._get_review(review_id))

    @final
    def decide_review(self, review_id: str, status: str, by: str, reason: str | None, at: datetime) -> ReviewItem:
        """Record a steward's decision on an open item; raise if it is unknown or already decided."""
        if status not in ("approved", "rejected"):
            raise StoreError(f"a decision is approved or rejected, not {status!r}")
        item = self.get_review(review_id)
        if item is None:
            raise NotFoundError(f"no review item {review_id}")
        if item.status != "open":
            raise ConflictError(f"review item {review_id} is already {item.status}")
        self._call("decide_review", lambda: self._decide_review(review_id, status, by, reason, at))
        decided = self.get_review(review_id)
        assert decided is not None
        return decided

    @final
    def rejected_pairs(self, record_uids: Collection[str]) -> set[frozenset[str]]:
        """Record pairs a steward said are not the same, among those involving ``record_uids``."""
        if not record_uids:
            return set()
        return self._call("rejected_pairs", lambda: self._rejected_pairs(sorted(set(record_uids))))

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
        return self._call("history", lambda: self._history(customer_id))

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
        if not 1 <= first <= 1000:
            raise InvalidInputError("first must be between 1 and 1000")
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
    def add_dead_letters(self, letters: Collection[DeadLetter]) -> None:
        """Keep events that could not be applied, with their reasons (in one transaction).

        A letter whose id is kept already is not added again (a redelivered bad event stays one letter).
        """
        if letters:
            self._call("add_dead_letters", lambda: self._add_dead_letters(list(letters)))

    @final
    def dead_letters(self, status: str | None = "open", limit: int | None = 50) -> list[DeadLetter]:
        """Dead letters, oldest first, of one status (None: all)."""
        return self._call("dead_letters", lambda: self._dead_letters(status, limit))

    @final
    def get_dead_letter(self, letter_id: str) -> DeadLetter:
        """One dead letter; NotFoundError if there is none."""
        found = self._call("get_dead_letter", lambda: self._get_dead_letter(letter_id))
        if found is None:
            raise NotFoundError(f"no dead letter {letter_id}")
        return found

    @final
    def mark_replayed(self, letter_id: str) -> None:
        """Mark a dead letter replayed; ConflictError if it already was."""
        letter = self.get_dead_letter(letter_id)
        if letter.status != "open":
            raise ConflictError(f"dead letter {letter_id} was already {letter.status}")
        self._call("mark_replayed", lambda: self._mark_replayed(letter_id))

    @final
    def flagged_identifiers(self) -> list[tuple[Identifier, str]]:
        """Return identifiers that stopped linking (merge protection) with the reason."""
        return self._call("flagged_identifiers", lambda: self._flagged())

    @final
    def stats(self) -> StoreStats:
        """Return counts of records, customers and identifiers."""
        return self._call("stats", lambda: self._stats())

    @final
    def ping(self) -> None:
        """Raise :class:`StoreError` unless the store answers."""
        self._call("ping", lambda: self._ping())

    @final
    def reset(self, *, confirm: bool) -> None:
        """Delete everything in the graph. ``confirm`` must be ``True``."""
        if not confirm:
            raise StoreError("reset deletes the whole graph; pass confirm=True")
        self._call("reset", lambda: self._reset())

    def close(self) -> None:  # noqa: B027 - a backend without resources has nothing to release
        """Release connections and file handles."""

    # -- hooks -----------------------------------------------------------------------------------------

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        # Default: writers in this process serialise. Backends that can lock across processes override it.
        with self._writer_lock:
            yield

    @abstractmethod
    def _lookup(self, record_uids: list[str], identifier_uids: list[str]) -> Lookup: ...

    @abstractmethod
    def _records_of(self, customer_ids: list[str]) -> dict[str, list[SourceRecord]]: ...

    @abstractmethod
    def _apply(self, changes: ChangeSet) -> None: ...

    @abstractmethod
    def _resolve(self, customer_id: str) -> str | None: ...

    @abstractmethod
    def _get_customer(self, customer_id: str) -> Customer | None: ...

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
    def _candidates(self, keys: list[str], per_key: int) -> list[Candidate]: ...

    @abstractmethod
    def _replace_blocking_keys(self, keys: Mapping[str, Collection[str]], views: Mapping[str, str]) -> None: ...

    @abstractmethod
    def _review_items(self, status: str | None, limit: int | None) -> list[ReviewItem]: ...

    @abstractmethod
    def _get_review(self, review_id: str) -> ReviewItem | None: ...

    @abstractmethod
    def _decide_review(self, review_id: str, status: str, by: str, reason: str | None, at: datetime) -> None: ...

    @abstractmethod
    def _rejected_pairs(self, record_uids: list[str]) -> set[frozenset[str]]: ...

    @abstractmethod
    def _apart(self, record_uids: list[str] | None, customer_ids: list[str] | None) -> list[ApartPair]: ...

    @abstractmethod
    def _iter_records(self) -> Iterator[tuple[SourceRecord, str]]: ...

    @abstractmethod
    def _history(self, customer_id: str) -> list[HistoryEvent]: ...

    @abstractmethod
    def _seen_events(self, event_ids: list[str]) -> set[str]: ...

    @abstractmethod
    def _timeline(
        self, customer_id: str, limit: int, before: tuple[str, str] | None, types: list[str] | None
    ) -> list[StoredEvent]: ...

    @abstractmethod
    def _add_dead_letters(self, letters: list[DeadLetter]) -> None: ...

    @abstractmethod
    def _dead_letters(self, status: str | None, limit: int | None) -> list[DeadLetter]: ...

    @abstractmethod
    def _get_dead_letter(self, letter_id: str) -> DeadLetter | None: ...

    @abstractmethod
    def _mark_replayed(self, letter_id: str) -> None: ...

    @abstractmethod
    def _flagged(self) -> list[tuple[Identifier, str]]: ...

    @abstractmethod
    def _stats(self) -> StoreStats: ...

    @abstractmethod
    def _ping(self) -> None: ...

    @abstractmethod
    def _reset(self) -> None: ...


StoreFactory = Callable[[Any], GraphStore]

_REGISTRY: dict[str, tuple[type[StoreConfig], StoreFactory]] = {}


def register_store(name: str, config_cls: type[StoreConfig], factory: StoreFactory) -> None:
    """Register a backend under a short name with its config class."""
    _REGISTRY[name] = (config_cls, factory)


#: Built-in backends, imported on first use so that the neo4j driver loads only when it is chosen.
_BUILTIN: dict[str, tuple[str, str, str]] = {
    "embedded": ("embedded", "EmbeddedConfig", "EmbeddedStore"),
    "neo4j": ("neo4j_store", "Neo4jConfig", "Neo4jStore"),
}


def _load_builtin(name: str) -> None:
    if name in _REGISTRY or name not in _BUILTIN:
        return
    module_name, config_name, store_name = _BUILTIN[name]
    module = importlib.import_module(f"{__package__}.{module_name}")
    register_store(name, getattr(module, config_name), getattr(module, store_name))


def store_names() -> list[str]:
    """Return the registered backend names."""
    return sorted(set(_REGISTRY) | set(_BUILTIN))


def open_store(name: str, config: dict[str, Any] | StoreConfig) -> GraphStore:
    """Open the backend ``name`` with ``config`` (a dict is validated by the backend's config class)."""
    _load_builtin(name)
    try:
        config_cls, factory = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown graph backend {name!r}; choose one of {', '.join(store_names())}") from None
    if not isinstance(config, config_cls):
        try:
            config = config_cls.model_validate(config if isinstance(config, dict) else config.model_dump())
        except Exception as exc:
            raise ConfigError(f"invalid {name} store config: {exc}") from exc
    return factory(config)
