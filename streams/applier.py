"""Applying a batch from Kafka so that a failure never loses it.

A worker acknowledges a batch only after :meth:`BatchApplier.apply` returned, and that returns only once
every event of the batch is applied or, for an event that fails on its own, kept as a dead letter:

- a store failure (a lock held by another writer, a server that is down or restarting) leaves the batch
  as it is: it is tried again, whole, after a pause that doubles up to ``retry_max`` seconds, logged at
  each try, for as long as the store fails. Stopping the worker meanwhile acknowledges nothing, so the
  next worker gets the batch again; idempotency by event id makes a partly applied try change nothing.
- any other error is an event's own (the store answered, the event could not be applied): the batch is
  halved until the failing events stand alone, the others are applied, and each failing one becomes a
  dead letter with the error as its reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from c360.graph.errors import StoreError

from .pipeline import Outcome, Pipeline, Rejection, dead_letter, payload_text, unicode_safe

log = logging.getLogger(__name__)


def is_store_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the store failed (try again later), not that the batch is bad.

    The store re-raises its backends' errors as :class:`StoreError`, its write lock included.
    """
    return isinstance(exc, StoreError)


@dataclass(slots=True)
class RetryPolicy:
    """How long to wait between tries of a batch that the store refused: doubling, up to ``most``."""

    first: float = 0.5
    most: float = 30.0

    def wait(self, attempt: int) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        return float(min(self.most, self.first * 2 ** (attempt - 1)))


@dataclass(slots=True)
class Applied:
    """What one batch did, and the dead letters of the events that failed on their own."""

    outcome: Outcome
    failed: list[Rejection] = field(default_factory=list)
    attempts: int = 1


class BatchApplier:
    """Applies batches through ``pipeline`` with the failure rules above; one batch at a time per caller."""

    def __init__(
        self,
        pipeline: Callable[[], Pipeline],
        retry: RetryPolicy | None = None,
        *,
        name: str = "batch",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sender: str = "kafka",
    ) -> None:
        self._pipeline = pipeline
        self.retry = retry or RetryPolicy()
        self.name = name
        self.clock = clock
        self.sender = sender

    async def apply(self, payloads: Sequence[Any]) -> Applied:
        """Apply ``payloads``; returns once every event is applied or kept as a dead letter."""
        result = Applied(Outcome())
        await self._apply(list(payloads), list(range(len(payloads))), result)
        return result

    async def _apply(self, payloads: list[Any], indexes: list[int], result: Applied) -> None:
        try:
            outcome = await self._retrying(
                lambda: self._pipeline().process(payloads, sender=self.sender), len(payloads), result
            )
        except Exception as exc:
            if len(payloads) == 1:
                await self._fail(payloads[0], indexes[0], exc, result)
                return
            log.warning("%s of %d events failed (%r): applying it in halves", self.name, len(payloads), exc)
            half = len(payloads) // 2
            await self._apply(payloads[:half], indexes[:half], result)
            await self._apply(payloads[half:], indexes[half:], result)
            return
        merged = result.outcome
        merged.accepted += outcome.accepted
        merged.duplicates += outcome.duplicates
        merged.rejected += [Rejection(indexes[r.index], r.event_id, r.reason, r.dead_letter) for r in outcome.rejected]

    async def _retrying(self, call: Callable[[], Outcome], size: int, result: Applied) -> Outcome:
        """``call`` in a worker thread until the store lets it through; other errors are raised."""
        attempt = 1
        started = time.monotonic()
        while True:
            try:
                outcome = await asyncio.to_thread(call)
            except Exception as exc:
                if not is_store_failure(exc):
                    raise
                pause = self.retry.wait(attempt)
                log.warning(
                    "%s of %d events not applied, the store failed (try %d, %.0f s so far): %r; "
                    "nothing acknowledged, trying again in %.1f s",
                    self.name,
                    size,
                    attempt,
                    time.monotonic() - started,
                    exc,
                    pause,
                )
                await asyncio.sleep(pause)
                attempt += 1
                result.attempts = max(result.attempts, attempt)
                continue
            if attempt > 1:
                log.warning("%s of %d events applied after %d tries", self.name, size, attempt)
            return outcome

    async def _fail(self, payload: Any, index: int, exc: Exception, result: Applied) -> None:
        """One event that fails on its own: a dead letter (written with the store's retry rule)."""
        reason = f"could not be applied: {type(exc).__name__}: {exc}"[:1000]
        source = payload.get("source") if isinstance(payload, dict) else None
        event_id = payload.get("event_id") if isinstance(payload, dict) else None
        event_id = unicode_safe(event_id)[:200] if isinstance(event_id, str) else None
        letter = dead_letter(payload_text(payload), reason, received_at=self.clock(), sender=self.sender, source=source)
        log.error("%s: event %s %s; kept as dead letter %s", self.name, event_id or "?", reason, letter.id)

        def keep() -> Outcome:
            self._pipeline().store.add_dead_letters([letter])
            return Outcome()

        await self._retrying(keep, 1, result)
        rejection = Rejection(index, event_id, letter.reason, letter.id)
        result.failed.append(rejection)
        result.outcome.rejected.append(rejection)
