"""The dead-letter port: events that could not be applied, kept with the reason until replayed."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection
from typing import final

from ..errors import ConflictError, InvalidInputError, NotFoundError
from ..models import DeadLetter
from .base import Port


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class DeadLetterPort(Port):
    """Keep, list, read and mark replayed the events that could not be applied."""

    @final
    def add_dead_letters(self, letters: Collection[DeadLetter]) -> None:
        """Keep events that could not be applied, with their reasons (in one transaction).

        A letter whose id is kept already is not added again (a redelivered bad event stays one letter).
        Every text must be valid Unicode (no lone surrogates: both backends store UTF-8).
        """
        for d in letters:
            for name in ("id", "reason", "payload", "source", "sender"):
                value = getattr(d, name)
                if value is not None and not _encodes(value):
                    raise InvalidInputError(f"dead letter {d.id!a}: its {name} is not valid Unicode")
        if letters:
            self._call("add_dead_letters", lambda: self._add_dead_letters(list(letters)))

    @final
    def dead_letters(
        self, status: str | None = "open", limit: int | None = 50, *, source: str | None = None
    ) -> list[DeadLetter]:
        """Dead letters, oldest first, of one status (None: all), and of one source if ``source`` is given."""
        if status not in (None, "open", "replayed"):
            raise InvalidInputError(f"unknown dead-letter status {status!r}")
        if limit is not None and limit < 1:
            raise InvalidInputError(f"limit must be at least 1, not {limit}")
        return self._call("dead_letters", lambda: self._dead_letters(status, limit, source))

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

    # -- hooks -----------------------------------------------------------------------------------------

    @abstractmethod
    def _add_dead_letters(self, letters: list[DeadLetter]) -> None: ...

    @abstractmethod
    def _dead_letters(self, status: str | None, limit: int | None, source: str | None) -> list[DeadLetter]: ...

    @abstractmethod
    def _get_dead_letter(self, letter_id: str) -> DeadLetter | None: ...

    @abstractmethod
    def _mark_replayed(self, letter_id: str) -> None: ...
