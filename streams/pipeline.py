"""The pipeline: validated events into the identity graph.

Plain code that the Faust agents and the in-process runner both call, so both modes run the same logic.
One call takes a batch of raw payloads: each is validated; an invalid one goes to the dead-letter store
with the reason; valid profile updates are resolved (deterministic rules and, with a trained model, the
real-time scorer) and every valid event is stored, all in one transaction and idempotently by event id:
an event the graph applied before is a duplicate, and so is a repeat of an event id within the batch (the
first occurrence wins, the repeat changes nothing).

A ``consent_change`` is a journey event (it shows on the timeline) that is also recorded in the consent
ledger with a signed receipt (:func:`~c360.graph.consent_ledger.record_consent`), right after the batch's
transaction; one whose purpose is not configured, or whose record is neither stored nor in the batch, is a
dead letter.

Every dead letter says who sent it (``sender``: ``partner:<name>``, ``user:<subject>``, ``cli:<os user>``,
``kafka``), holds only text that can be stored and encoded (lone surrogates become U+FFFD) and at most
:data:`MAX_LETTER_BYTES` of its payload (the reason says when it was cut).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from c360.graph.consent import PURPOSES, ConsentEvent, Notice, check_purpose
from c360.graph.consent_ledger import ReceiptIssuer, record_consent
from c360.graph.errors import ConflictError, InvalidInputError
from c360.graph.models import DeadLetter, SourceRecord, StoredEvent, is_source_name
from c360.graph.store import GraphStore
from c360.resolution.linker import IngestResult, Linker
from pydantic import ValidationError

from .events import JOURNEY_TYPES, ConsentChange, Event, EventBounds, ProfileUpdate, error_message, parse_event

#: Most bytes of one event payload; a larger one is rejected.
MAX_EVENT_BYTES = 64 * 1024
#: Most levels of nested objects and arrays in one event payload (an event needs three).
MAX_EVENT_DEPTH = 8
#: Most bytes of a payload a dead letter keeps; the rest is cut, and the letter's reason says so.
MAX_LETTER_BYTES = 64 * 1024
#: Most consent events signed and appended at once (the store's largest batch).
MAX_CONSENT_BATCH = 1000
#: Most characters of a dead letter's reason, and of an event id echoed in an answer.
MAX_REASON_CHARS = 2000
MAX_ECHO_CHARS = 200

_SURROGATES = re.compile("[\ud800-\udfff]")


def unicode_safe(text: str) -> str:
    """``text`` with lone surrogates (not Unicode; JSON escapes such as a lone high surrogate make them) as U+FFFD."""
    return _SURROGATES.sub("\ufffd", text)


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "\u2026"


def partner_sender(name: str) -> str:
    """The sender of what a partner posts with its key."""
    return f"partner:{name}"


def partner_of(sender: str | None) -> str | None:
    """The partner a sender names, or None when it is not a partner."""
    if sender is not None and sender.startswith("partner:"):
        return sender.removeprefix("partner:")
    return None


def nesting_depth(value: Any, limit: int) -> int:
    """Levels of nested objects and arrays in ``value`` (0 for a scalar), counted without recursion.

    Stops at the first container deeper than ``limit`` and returns its depth.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Collection[Any] = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return depth
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


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


def record_uid(event: ConsentChange) -> str:
    """The source record a consent event hangs off: ``source|customer_key``."""
    return f"{event.source}|{event.customer_key}"


def to_consent(event: ConsentChange) -> ConsentEvent:
    """The consent ledger's event a ``consent_change`` carries; its id is the event's uid, as on the timeline.

    InvalidInputError when the ledger's rules refuse it.
    """
    n = event.notice
    return ConsentEvent(
        event_uid(event),
        record_uid(event),
        event.purpose,
        event.channel,
        event.status,
        event.occurred_at,
        event.actor.kind,
        event.actor.id,
        event.source,
        event.method,
        Notice(n.id, n.version, n.language, n.text_sha256),
        event.jurisdiction,
        event.expires_at,
    )


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
        where = ".".join(_cut(str(p), 60) for p in err["loc"]) or "event"
        parts.append(f"{where}: {_cut(error_message(err), 300)}")
    more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(parts) + more


def payload_text(payload: Any) -> str:
    """A payload as the text a dead letter keeps (valid Unicode; the whole of it, see :func:`dead_letter`)."""
    if isinstance(payload, bytes):
        return payload.decode("utf-8", "replace")
    if isinstance(payload, str):
        return unicode_safe(payload)
    try:
        return json.dumps(payload, default=str)  # ASCII: a lone surrogate stays an escape
    except RecursionError:
        return f"[a payload nested too deep to keep (more than {MAX_EVENT_DEPTH} levels)]"
    except (TypeError, ValueError):
        return unicode_safe(repr(payload))


def letter_id(payload: str) -> str:
    """A dead letter's id: from its content, so that a redelivered bad event is kept once."""
    return "D" + hashlib.sha256(payload.encode("utf-8", "replace")).hexdigest()[:20]


def dead_letter(
    text: str,
    reason: str,
    *,
    received_at: datetime,
    sender: str | None,
    source: object = None,
    key: str | None = None,
    size: int | None = None,
) -> DeadLetter:
    """A dead letter that can be stored and encoded, whatever came in.

    Its id comes from ``key`` (default: the whole ``text``), so a redelivery is kept once; it keeps the first
    :data:`MAX_LETTER_BYTES` of ``text`` (the reason says when it was cut; ``size`` is the payload's whole
    size in bytes when ``text`` is only its beginning); ``source`` only when it is a valid source name (what a
    payload claims is not always a source); lone surrogates become U+FFFD.
    """
    text = unicode_safe(text)
    lid = letter_id(text if key is None else key)
    data = text.encode("utf-8")
    whole = max(size or 0, len(data))
    if whole > len(data) or len(data) > MAX_LETTER_BYTES:
        text = data[:MAX_LETTER_BYTES].decode("utf-8", "ignore")
        kept = len(text.encode("utf-8"))
        reason = f"{reason} [payload truncated: the first {kept} of {whole} bytes kept]"
    return DeadLetter(
        lid,
        received_at,
        _cut(unicode_safe(reason), MAX_REASON_CHARS),
        text,
        source if isinstance(source, str) and is_source_name(source) else None,
        sender=None if sender is None else _cut(unicode_safe(sender), 200),
    )


def topic_value(rejection: Rejection, payload: Any) -> dict[str, Any]:
    """A rejected event as the dead-letter topic carries it: reason, letter id and the payload.

    The payload as it came when it encodes as JSON, else as the text its dead letter keeps (a lone
    surrogate or a nesting too deep for an encoder must not stop the topic).
    """
    try:
        orjson.dumps(payload)
    except (orjson.JSONEncodeError, TypeError):
        payload = payload_text(payload)
    return {"reason": rejection.reason, "dead_letter": rejection.dead_letter, "payload": payload}


def _echo(value: object) -> str | None:
    """An event id as an answer may repeat it: a string, valid Unicode, bounded."""
    return _cut(unicode_safe(value), MAX_ECHO_CHARS) if isinstance(value, str) else None


class Pipeline:
    """Validates, resolves and stores batches of events.

    ``issuer`` signs the receipts of consent events (without one, a ``consent_change`` is a dead letter);
    ``purposes`` are the purposes consent may be given for (``consent.purposes``).
    """

    def __init__(
        self,
        store: GraphStore,
        linker: Linker,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        bounds: EventBounds | None = None,
        issuer: ReceiptIssuer | None = None,
        purposes: Collection[str] = PURPOSES,
    ) -> None:
        self.store = store
        self.linker = linker
        self.clock = clock
        self.bounds = bounds or EventBounds()
        self.issuer = issuer
        self.purposes = frozenset(purposes)

    def _consent_problem(self, event: ConsentChange) -> str | None:
        """Why a consent event cannot be recorded, whatever the store holds (None: it can)."""
        if self.issuer is None:
            return "consent_change: this pipeline records no consent (it has no receipt issuer)"
        try:
            check_purpose(event.purpose, self.purposes)
            to_consent(event)
        except InvalidInputError as exc:
            return f"consent_change: {exc}"
        return None

    def validate(
        self, payloads: Sequence[Any], *, sources: Collection[str] | None = None, sender: str | None = None
    ) -> tuple[list[tuple[int, Event]], list[Rejection], list[DeadLetter]]:
        """Split raw payloads into events and rejections (with the dead letters that keep them).

        With ``sources``, an event of any other source is rejected (a partner sends as itself only). The
        dead letters name ``sender``.
        """
        events: list[tuple[int, Event]] = []
        rejected: list[Rejection] = []
        letters: list[DeadLetter] = []
        now = self.clock()
        window = self.bounds.window(now)
        for i, payload in enumerate(payloads):
            if isinstance(payload, Unreadable):
                letter = dead_letter(
                    payload.text,
                    payload.reason,
                    received_at=now + timedelta(microseconds=i),  # a batch's letters list in input order
                    sender=sender,
                    source=payload.source,
                    key=f"{payload.origin}\n{payload.text}",
                )
                letters.append(letter)
                rejected.append(Rejection(i, None, letter.reason, letter.id))
                continue
            source = payload.get("source") if isinstance(payload, dict) else None
            event_id = payload.get("event_id") if isinstance(payload, dict) else None
            reason = None
            text = payload_text(payload)
            if nesting_depth(payload, MAX_EVENT_DEPTH) > MAX_EVENT_DEPTH:
                reason = f"event nested deeper than {MAX_EVENT_DEPTH} levels"
            elif len(text.encode()) > MAX_EVENT_BYTES:
                reason = f"event larger than {MAX_EVENT_BYTES} bytes"
            else:
                try:
                    event = parse_event(payload, window=window)
                    if sources is not None and event.source not in sources:
                        reason = f"source {event.source!r} is not one this sender may send as"
                    elif isinstance(event, ConsentChange) and (problem := self._consent_problem(event)):
                        reason = problem
                    else:
                        events.append((i, event))
                except ValidationError as exc:
                    reason = _reason(exc)
            if reason is not None:
                letter = dead_letter(
                    text, reason, received_at=now + timedelta(microseconds=i), sender=sender, source=source
                )
                letters.append(letter)
                rejected.append(Rejection(i, _echo(event_id), letter.reason, letter.id))
        return events, rejected, letters

    def process(
        self, payloads: Sequence[Any], *, sources: Collection[str] | None = None, sender: str | None = None
    ) -> Outcome:
        """Apply one batch: valid events in one transaction, invalid ones to the dead-letter store.

        Then the batch's consent events go to the consent ledger, each with its signed receipt.

        Of the events of one id in a batch the first is applied and the others are duplicates.
        """
        events, rejected, letters = self.validate(payloads, sources=sources, sender=sender)
        firsts: dict[str, Event] = {}
        for _, e in events:
            firsts.setdefault(event_uid(e), e)
        repeats = len(events) - len(firsts)
        events = [(i, e) for i, e in events if firsts[event_uid(e)] is e]
        events = self._without_unknown_records(events, payloads, rejected, letters, sender)
        # Dead letters first: if applying the rest fails, the caller redelivers, and nothing is lost.
        self.store.add_dead_letters(letters)
        outcome = Outcome(rejected=sorted(rejected, key=lambda r: r.index))
        outcome.duplicates = repeats
        if not events:
            return outcome
        stored = [to_stored(e) for _, e in events]
        updates = [e for _, e in events if isinstance(e, ProfileUpdate)]
        result = self.linker.ingest_batch(
            [to_record(u) for u in updates],
            events=stored,
            record_events=[event_uid(u) for u in updates],
        )
        # Consent is recorded right after the batch's transaction, not inside it: record_consent takes the
        # store's write lock itself (which does not nest on every backend) and needs the batch's new records
        # stored. The order is safe: if this fails or the process dies here, the batch is not acknowledged
        # (Kafka) or the caller sees the error, and the redelivery finds its events applied (duplicates) but
        # records every consent the ledger does not hold yet - a replay is skipped, its first receipt kept.
        self._record_consent([to_consent(e) for _, e in events if isinstance(e, ConsentChange)])
        outcome.ingest = result
        outcome.duplicates = repeats + result.duplicates
        outcome.accepted = result.events
        return outcome

    def _without_unknown_records(
        self,
        events: list[tuple[int, Event]],
        payloads: Sequence[Any],
        rejected: list[Rejection],
        letters: list[DeadLetter],
        sender: str | None,
    ) -> list[tuple[int, Event]]:
        """``events`` but the consent events whose record is neither stored nor carried by the batch.

        Those become rejections with their dead letters (consent hangs off a stored source record). Records
        are never removed, so one found now is there when the consent is recorded.
        """
        wanted = {record_uid(e) for _, e in events if isinstance(e, ConsentChange)}
        if not wanted:
            return events
        known = {f"{e.source}|{e.profile.customer_key}" for _, e in events if isinstance(e, ProfileUpdate)}
        missing = wanted - known
        if missing:
            found = self.store.lookup(sorted(missing), ()).records
            missing -= set(found)
        if not missing:
            return events
        now = self.clock()
        kept: list[tuple[int, Event]] = []
        for i, e in events:
            if isinstance(e, ConsentChange) and (uid := record_uid(e)) in missing:
                reason = (
                    f"consent_change: no stored record {uid}: consent hangs off a stored source record; "
                    "send its profile_update first (in this batch or before), then replay this dead letter"
                )
                letter = dead_letter(
                    payload_text(payloads[i]),
                    reason,
                    received_at=now + timedelta(microseconds=i),
                    sender=sender,
                    source=e.source,
                )
                letters.append(letter)
                rejected.append(Rejection(i, e.event_id, letter.reason, letter.id))
            else:
                kept.append((i, e))
        return kept

    def _record_consent(self, consents: list[ConsentEvent]) -> None:
        """Sign and append the consent events the ledger does not hold yet (one held is a replay: skipped).

        Like the journey, the first event of an id wins: a later one with other content changes nothing.
        """
        if not consents:
            return
        assert self.issuer is not None  # validate() refuses consent events without one
        for attempt in (1, 2):
            fresh = [c for c in consents if self.store.get_consent(c.id) is None]
            try:
                for start in range(0, len(fresh), MAX_CONSENT_BATCH):
                    record_consent(self.store, self.issuer, fresh[start : start + MAX_CONSENT_BATCH], now=self.clock())
                return
            except ConflictError:
                if attempt == 2:  # another writer recorded one of these ids in between: read again, once
                    raise
