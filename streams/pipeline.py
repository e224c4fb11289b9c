"""The pipeline: validated events into the identity graph.

Plain code that the Faust agents and the in-process runner both call, so both modes run the same logic.
One call takes a batch of raw payloads: each is validated; an invalid one goes to the dead-letter store
with the reason; valid profile updates are resolved (deterministic rules and, with a trained model, the
real-time scorer) and every valid event is stored, all in one transaction and idempotently by event id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from c360.graph.models import DeadLetter, SourceRecord, StoredEvent
from c360.graph.store import GraphStore
from c360.resolution.linker import IngestResult, Linker
from pydantic import ValidationError

from .events import JOURNEY_TYPES, Event, ProfileUpdate, parse_event

#: Most bytes of one event payload; a larger one is rejected.
MAX_EVENT_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event that was not applied: its position in the batch, its id if it had one, and why."""

    index: int
    event_id: str | None
    reason: str
    dead_letter: str

    def to_json(self) -> dict[str, Any]:
        """As JSON."""
        return {"index": self.index, "event_id": self.event_id, "reason": self.reason, "dead_letter": self.dead_letter}


@dataclass(slots=True)
class Outcome:
    """What one batch did: the events applied, those seen before, and those rejected."""

    accepted: list[str] = field(default_factory=list)
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    ingest: IngestResult = field(default_factory=IngestResult)

    def to_json(self) -> dict[str, Any]:
        """As JSON (the answer to a partner's POST)."""
        return {
            "accepted": len(self.accepted),
            "duplicates": self.duplicates,
            "rejected": [r.to_json() for r in self.rejected],
            "event_ids": self.accepted,
        }


def event_uid(event: Event) -> str:
    """The graph-wide id of an event: ``source|event_id``."""
    return f"{event.source}|{event.event_id}"


def to_record(update: ProfileUpdate) -> SourceRecord:
    """The source record a profile update carries."""
    p = update.profile
    return SourceRecord(
        update.source,
        p.customer_key,
        update.occurred_at,
        first_name=p.first_name,
        last_name=p.last_name,
        date_of_birth=p.date_of_birth,
        gender=p.gender,
        email=p.email,
        phone=p.phone,
        address_line1=p.address_line1,
        address_line2=p.address_line2,
        city=p.city,
        postcode=p.postcode,
        state=p.state,
        country=p.country,
        national_id=p.national_id,
        national_id_kind=p.national_id_kind,
        customer_number=p.customer_number,
        attributes=dict(p.attributes),
    )


def profile_payload(record: SourceRecord, event_id: str) -> dict[str, Any]:
    """A ``profile_update`` payload carrying ``record`` (how a file or table row becomes an event)."""
    data = record.to_json()
    profile = {k: v for k, v in data.items() if k not in ("source", "key", "observed_at")}
    observed = record.observed_at if record.observed_at.tzinfo else record.observed_at.replace(tzinfo=UTC)
    return {
        "event_id": event_id,
        "type": "profile_update",
        "source": record.source,
        "occurred_at": observed.isoformat(),
        "profile": {"customer_key": record.key, **profile},
    }


def to_stored(event: Event) -> StoredEvent:
    """The event as the graph keeps it; journey events name the record they are about."""
    key = getattr(event, "customer_key", None) if event.type in JOURNEY_TYPES else None
    record = f"{event.source}|{key}" if key else None
    return StoredEvent(event_uid(event), event.type, event.occurred_at, event.model_dump_json(), record)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An input a connector could not turn into an event (a file row without a key, say).

    The pipeline keeps it as a dead letter like an invalid event: ``text`` is what the source held,
    ``origin`` where (it makes the letter's id, so re-reading the same input keeps one letter).
    """

    reason: str
    text: str
    source: str | None
    origin: str


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{where}: {err['msg']}")
    more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(parts) + more


def payload_text(payload: Any) -> str:
    """A payload as the text a dead letter keeps."""
    if isinstance(payload, bytes):
        return payload.decode("utf-8", "replace")
    if isinstance(payload, str):
        return payload
    try:
        return json.dumps(payload, default=str)
    except (TypeError, ValueError):
        return repr(payload)


def letter_id(payload: str) -> str:
    """A dead letter's id: from its content, so that a redelivered bad event is kept once."""
    return "D" + hashlib.sha256(payload.encode("utf-8", "replace")).hexdigest()[:20]


class Pipeline:
    """Validates, resolves and stores batches of events."""

    def __init__(
        self,
        store: GraphStore,
        linker: Linker,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.linker = linker
        self.clock = clock

    def validate(
        self, payloads: Sequence[Any], *, sources: Collection[str] | None = None
    ) -> tuple[list[tuple[int, Event]], list[Rejection], list[DeadLetter]]:
        """Split raw payloads into events and rejections (with the dead letters that keep them).

        With ``sources``, an event of any other source is rejected (a partner sends as itself only).
        """
        events: list[tuple[int, Event]] = []
        rejected: list[Rejection] = []
        letters: list[DeadLetter] = []
        now = self.clock()
        for i, payload in enumerate(payloads):
            if isinstance(payload, Unreadable):
                letter = DeadLetter(
                    letter_id(f"{payload.origin}\n{payload.text}"), now, payload.reason, payload.text, payload.source
                )
                letters.append(letter)
                rejected.append(Rejection(i, None, payload.reason, letter.id))
                continue
            text = payload_text(payload)
            source = payload.get("source") if isinstance(payload, dict) else None
            event_id = payload.get("event_id") if isinstance(payload, dict) else None
            reason = None
            if len(text.encode()) > MAX_EVENT_BYTES:
                reason = f"event larger than {MAX_EVENT_BYTES} bytes"
            else:
                try:
                    event = parse_event(payload)
                    if sources is not None and event.source not in sources:
                        reason = f"source {event.source!r} is not one this sender may send as"
                    else:
                        events.append((i, event))
                except ValidationError as exc:
                    reason = _reason(exc)
            if reason is not None:
                letter = DeadLetter(
                    letter_id(text),
                    now,
                    reason,
                    text,
                    source if isinstance(source, str) else None,
                )
                letters.append(letter)
                rejected.append(Rejection(i, event_id if isinstance(event_id, str) else None, reason, letter.id))
        return events, rejected, letters

    def process(self, payloads: Sequence[Any], *, sources: Collection[str] | None = None) -> Outcome:
        """Apply one batch: valid events in one transaction, invalid ones to the dead-letter store."""
        events, rejected, letters = self.validate(payloads, sources=sources)
        # Dead letters first: if applying the rest fails, the caller redelivers, and nothing is lost.
        self.store.add_dead_letters(letters)
        outcome = Outcome(rejected=rejected)
        if not events:
            return outcome
        stored = [to_stored(e) for _, e in events]
        updates = [e for _, e in events if isinstance(e, ProfileUpdate)]
        result = self.linker.ingest_batch(
            [to_record(u) for u in updates],
            events=stored,
            record_events=[event_uid(u) for u in updates],
        )
        outcome.ingest = result
        outcome.duplicates = result.duplicates
        outcome.accepted = result.events
        return outcome
