"""What every port shares: the error rule, the write lock, ping, reset and close."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import ClassVar, Protocol, Self, TypeVar, final

from ..errors import C360Error, ConflictError, InvalidInputError, StoreError

T = TypeVar("T")


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


E = TypeVar("E", bound=_Identified)


def new_events(events: list[E], stored: Mapping[str, E], what: str) -> list[E]:
    """The events of an append-only history to write: those whose id is not in ``stored`` (the stored ones).

    A stored event equal to the given one is a replay and is skipped; one that differs is a
    :class:`ConflictError` (``what`` names the history: ``case``, ``KYC``). Backends call it inside their
    write transaction.
    """
    fresh: list[E] = []
    for event in events:
        old = stored.get(event.id)
        if old is None:
            fresh.append(event)
        elif old != event:
            raise ConflictError(f"{what} event {event.id} is stored already with other content: {what} is append-only")
    return fresh


#: The most ids one batched read (``get_profiles``) or page takes.
MAX_BATCH = 1000


def feed_cursor(after: tuple[int, str] | None, first: int, what: str) -> tuple[int, str]:
    """A change feed's checked page size and cursor: ``after`` as given, or the start ``(-1, "")``.

    ``first`` must be 1..MAX_BATCH and ``after`` a (sequence, id) pair; :class:`InvalidInputError` names ``what``.
    """
    if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_BATCH:
        raise InvalidInputError(f"first must be between 1 and {MAX_BATCH}")
    if after is not None and (
        not isinstance(after, tuple)
        or len(after) != 2
        or isinstance(after[0], bool)
        or not isinstance(after[0], int)
        or not isinstance(after[1], str)
    ):
        raise InvalidInputError(f"not {what} cursor: {after!r}")
    return after if after is not None else (-1, "")


class Port(ABC):
    """The store's core: backends implement the ``_hooks``; callers use the public methods."""

    #: Short name under which the backend is registered (``embedded``, ``neo4j``).
    name: ClassVar[str]
    _writer_lock: ClassVar[threading.Lock] = threading.Lock()

    def __enter__(self) -> Self:
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
    def ping(self) -> None:
        """Raise :class:`StoreError` unless the store answers."""
        self._call("ping", lambda: self._ping())

    @final
    def reset(self, *, confirm: bool) -> None:
        """Delete everything in the graph. ``confirm`` must be ``True``."""
        if not confirm:
            raise InvalidInputError("reset deletes the whole graph; pass confirm=True")
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
    def _ping(self) -> None: ...

    @abstractmethod
    def _reset(self) -> None:
        """Delete every domain's data (each backend domain module adds its own)."""
