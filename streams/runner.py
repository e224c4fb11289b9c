"""The in-process runner: the pipeline in this process, for the CLI, the demo and the API without Kafka.

Every record and event that does not come through Kafka goes through here: ``c360 ingest`` (file rows
as profile updates, :func:`file_payloads`), ``c360 events send``, ``c360 pull postgres``, the demo and
``POST /v1/events`` (:meth:`Runner.submit`). The runner cuts the input into batches, hands each to
:meth:`Pipeline.process` (one transaction; bad input becomes a dead letter) and keeps the totals. Its dead
letters name their sender: ``cli:<os user>`` for what this process reads itself, and the partner for what
``POST /v1/events`` hands over.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from c360.connectors.files import FileSource
from c360.graph.models import DeadLetter, SourceRecord
from c360.resolution.linker import IngestResult

from .pipeline import Outcome, Pipeline, Rejection, Unreadable, profile_payload


@dataclass(slots=True)
class Totals:
    """What a run did, summed over its batches."""

    events: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    ingest: IngestResult = field(default_factory=IngestResult)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Events per second."""
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def add(self, outcome: Outcome, events: int, offset: int, seconds: float) -> None:
        """Count one batch of ``events`` that started at input position ``offset``."""
        self.events += events
        self.accepted += len(outcome.accepted)
        self.duplicates += outcome.duplicates
        self.rejected.extend(Rejection(offset + r.index, r.event_id, r.reason, r.dead_letter) for r in outcome.rejected)
        self.ingest.add(outcome.ingest)
        self.seconds += seconds


def local_sender() -> str:
    """The sender of what this process reads itself (files, tables, ``events send``): ``cli:<os user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


class Runner:
    """Runs batches of payloads through the pipeline, here and now."""

    def __init__(self, pipeline: Pipeline, *, batch_size: int = 500, sender: str | None = None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.pipeline = pipeline
        self.batch_size = batch_size
        self.sender = sender or local_sender()
        self.totals = Totals()
        self._lock = asyncio.Lock()  # the API's batches one at a time: the store serialises writers anyway

    def apply(
        self, payloads: Sequence[Any], *, sources: Collection[str] | None = None, sender: str | None = None
    ) -> Outcome:
        """Apply one batch in one transaction (invalid or unreadable input to the dead-letter store).

        Its dead letters name ``sender`` (default: the runner's).
        """
        started = time.perf_counter()
        outcome = self.pipeline.process(payloads, sources=sources, sender=sender or self.sender)
        self.totals.add(outcome, len(payloads), self.totals.events, time.perf_counter() - started)
        return outcome

    def run(
        self,
        payloads: Iterable[Any],
        *,
        sources: Collection[str] | None = None,
        progress: Callable[[Totals], None] | None = None,
    ) -> Totals:
        """Apply ``payloads`` in batches of :attr:`batch_size`; ``progress`` sees the totals after each."""
        batch: list[Any] = []
        for payload in payloads:
            batch.append(payload)
            if len(batch) >= self.batch_size:
                self.apply(batch, sources=sources)
                batch = []
                if progress:
                    progress(self.totals)
        if batch:
            self.apply(batch, sources=sources)
            if progress:
                progress(self.totals)
        return self.totals

    # -- the API's event sink (graphql.app.EventSink) ----------------------------------------------------

    async def submit(self, payloads: Sequence[Any], sources: Sequence[str], *, sender: str) -> dict[str, Any]:
        """Apply a partner's batch in a worker thread: its events are in the graph when this returns."""
        async with self._lock:
            outcome = await asyncio.to_thread(self.apply, payloads, sources=sources, sender=sender)
        return outcome.to_json()

    async def dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Keep what could not even be split into events in the dead-letter store."""
        await asyncio.to_thread(self.pipeline.store.add_dead_letters, list(letters))

    async def problem(self) -> str | None:
        """None: the pipeline runs here, so events can be taken whenever the store answers."""
        return None


def row_payload(record: SourceRecord) -> dict[str, Any]:
    """A file row's ``profile_update`` payload, its event id from its content and time.

    Re-reading a file changes nothing; a row that changes, or comes back with a later time, is a new event.
    """
    payload = profile_payload(record, "")
    digest = hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
    payload["event_id"] = f"row:{digest[:32]}"
    return payload


def file_payloads(source: FileSource) -> Iterator[dict[str, Any] | Unreadable]:
    """A file's rows as ``profile_update`` payloads; a row that cannot be read or has no key as :class:`Unreadable`."""
    name = source.path.name
    for row in source.rows():
        if isinstance(row, SourceRecord):
            yield row_payload(row)
        else:
            yield Unreadable(f"{name} row {row.row}: {row.reason}", row.raw, source.source, f"{name}:{row.row}")
