"""Partner events: authorise the partner, read its batch, hand it to the event sink, audit the outcome.

A partner sends as itself only: the sink rejects an event of a source the partner may not send as, and
every dead letter names the sender (``partner:<name>``). A batch refused as a whole (not JSON, nested too
deep, not a batch, too many events, too large) is a dead letter too, with the first
:data:`~c360.streams.pipeline.MAX_LETTER_BYTES` of the body, and an audit entry.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from c360.streams.pipeline import MAX_EVENT_DEPTH, dead_letter, nesting_depth, partner_sender

from .principal import Principal
from .service import ProfileService

if TYPE_CHECKING:
    from .app import EventSink

#: Most events in one POST, and most bytes of its body.
MAX_EVENTS = 1000
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Most levels of nesting in a body: an event's, in a list, perhaps in ``{"events": [...]}``.
MAX_BODY_DEPTH = MAX_EVENT_DEPTH + 2


@dataclass(frozen=True, slots=True)
class EventsOutcome:
    """The answer to a batch: the sink's answer, or why the batch as a whole was refused."""

    answer: dict[str, Any] | None = None
    status: int = 200
    title: str = ""
    detail: str = ""
    dead_letter: str | None = None


def sender_of(who: Principal) -> str:
    """Who a dead letter says sent it: ``partner:<name>``, or ``user:<subject>`` for a token's holder."""
    return partner_sender(who.partner) if who.partner else f"user:{who.subject}"


async def post_events(
    *, service: ProfileService, sink: EventSink, who: Principal, body: bytes, size: int | None = None
) -> EventsOutcome:
    """Authorise a partner's batch, submit its events (or keep a refused body), audit the outcome.

    ``size``: the body's whole size in bytes when ``body`` is only its beginning (a body over the limit is
    not kept whole).
    """
    size = max(size or 0, len(body))
    target = who.partner or who.subject
    await service.require(who, "post_events", target)  # a refusal is audited once, there
    sender = sender_of(who)

    async def refuse(status: int, title: str, detail: str) -> EventsOutcome:
        # Not a batch the sink can split into events, but it is kept, with who sent it, and audited.
        text = body.decode("utf-8", "replace")
        letter = dead_letter(text, f"batch refused: {detail}", received_at=datetime.now(UTC), sender=sender, size=size)
        await sink.dead_letters([letter])
        await service.record(who, "post_events", target, "refused", f"{status} {title}; dead letter {letter.id}")
        return EventsOutcome(None, status, title, f"{detail} (kept as dead letter {letter.id})", letter.id)

    if size > MAX_BODY_BYTES:
        return await refuse(413, "Too large", f"a request body may hold at most {MAX_BODY_BYTES} bytes")
    data, problem = await asyncio.to_thread(_read, body)  # up to 8 MiB: not on the event loop
    if problem is not None:
        return await refuse(*problem)
    events = data.get("events") if isinstance(data, dict) else data
    if not isinstance(events, list):
        return await refuse(422, "Invalid batch", 'send a JSON array of events, or {"events": [...]}')
    if len(events) > MAX_EVENTS:
        return await refuse(413, "Too many events", f"send at most {MAX_EVENTS} events per request")
    try:
        answer = await sink.submit(events, who.sources, sender=sender)
    except Exception:
        await service.record(who, "post_events", target, "error", f"{len(events)} events")
        raise
    accepted, rejected = int(answer.get("accepted", 0)), len(answer.get("rejected", ()))
    detail = f"{len(events)} events: {accepted} accepted, {rejected} rejected"
    await service.record(who, "post_events", target, "ok" if not rejected else "partial", detail)
    return EventsOutcome(answer)


def _read(body: bytes) -> tuple[Any, tuple[int, str, str] | None]:
    """The body as JSON, or the status, title and detail of why it cannot be a batch."""
    try:
        data = json.loads(body)
    except RecursionError:
        return None, (400, "Invalid JSON", "the body is nested too deep to read")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, (400, "Invalid JSON", f"the body is not JSON: {exc}")
    if nesting_depth(data, MAX_BODY_DEPTH) > MAX_BODY_DEPTH:
        return None, (422, "Invalid batch", f"the body is nested deeper than {MAX_BODY_DEPTH} levels")
    return data, None
