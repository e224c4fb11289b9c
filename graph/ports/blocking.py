"""The blocking-key port: records filed under blocking keys, the candidates of the real-time path."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import final

from ..errors import InvalidInputError
from ..reads import Candidate
from .base import Port


class BlockingPort(Port):
    """Read candidates by blocking key; replace every record's keys when a new model needs others."""

    @final
    def candidates(self, keys: Collection[str], per_key: int = 50) -> list[Candidate]:
        """Return the records filed under any of ``keys`` (the first ``per_key`` by uid per key), each once.

        Each candidate names the requested keys it was found under.
        """
        if not keys:
            return []
        if per_key < 1:
            raise InvalidInputError("per_key must be at least 1")
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

    # -- hooks -----------------------------------------------------------------------------------------

    @abstractmethod
    def _candidates(self, keys: list[str], per_key: int) -> list[Candidate]:
        """The first ``per_key`` records by uid under each key, one candidate per (key, record)."""

    @abstractmethod
    def _replace_blocking_keys(self, keys: Mapping[str, Collection[str]], views: Mapping[str, str]) -> None: ...
