"""The review port: uncertain pairs for data stewards, their decisions and the pairs they rejected."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection
from datetime import datetime
from typing import final

from ..errors import ConflictError, InvalidInputError, NotFoundError
from ..models import ReviewItem
from .base import Port


class ReviewPort(Port):
    """List, read and decide review items; the rejected pairs the linker must keep apart."""

    @final
    def review_items(self, status: str | None = "open", limit: int | None = 50) -> list[ReviewItem]:
        """Review items with ``status`` (``None``: all), oldest first; at most ``limit`` (``None``: every one)."""
        if status not in (None, "open", "approved", "rejected"):
            raise InvalidInputError(f"unknown review status {status!r}")
        return self._call("review_items", lambda: self._review_items(status, limit))

    @final
    def get_review(self, review_id: str) -> ReviewItem | None:
        """One review item, or ``None``."""
        return self._call("get_review", lambda: self._get_review(review_id))

    @final
    def decide_review(self, review_id: str, status: str, by: str, reason: str | None, at: datetime) -> ReviewItem:
        """Record a steward's decision on an open item; raise if it is unknown or already decided."""
        if status not in ("approved", "rejected"):
            raise InvalidInputError(f"a decision is approved or rejected, not {status!r}")
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

    # -- hooks -----------------------------------------------------------------------------------------

    @abstractmethod
    def _review_items(self, status: str | None, limit: int | None) -> list[ReviewItem]: ...

    @abstractmethod
    def _get_review(self, review_id: str) -> ReviewItem | None: ...

    @abstractmethod
    def _decide_review(self, review_id: str, status: str, by: str, reason: str | None, at: datetime) -> None: ...

    @abstractmethod
    def _rejected_pairs(self, record_uids: list[str]) -> set[frozenset[str]]: ...
