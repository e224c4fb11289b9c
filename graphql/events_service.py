"""Partner events: authorise the partner, read its batch, hand it to the event sink, audit the outcome."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from c360.graph.models import DeadLetter
from c360.streams.pipeline import letter_id

from .principal import ForbiddenError, Principal
from .service import ProfileService

if TYPE_CHECKING:
    from .app import EventSink

#: Most events in one POST, and most bytes of its body.
MAX_EVENTS = 1000
MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class EventsOutcome:
    """The answer to a batch: the sink's answer, or why the batch as a whole was refused."""

    answer: dict[str, Any] | None = None
    status: int = 200
    title: str = ""
    detail: str = ""


async def post_events(*, service: ProfileService, sink: EventSink, who: Principal, body: bytes) -> EventsOutcome:
    """Authorise a partner's batch, submit its events (or keep an unreadable body), audit the outcome."""
    if not service.policy.can(who.role, "post_events"):
        raise ForbiddenError("the policy does not let partners post events")
    if len(body) > MAX_BODY_BYTES:
        return EventsOutcome(None, 413, "Too large", f"a request body may hold at most {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        # Not even a batch: nothing to split into events, but it is kept.
        await sink.dead_letters([_letter(body, f"body is not JSON: {exc}", who.partner or who.subject)])
        return EventsOutcome(None, 400, "Invalid JSON", f"the body is not JSON: {exc}")
    events = data.get("events") if isinstance(data, dict) else data
    if not isinstance(events, list):
        return EventsOutcome(None, 400, "Invalid batch", 'send a JSON array of events, or {"events": [...]}')
    if len(events) > MAX_EVENTS:
        return EventsOutcome(None, 413, "Too many events", f"send at most {MAX_EVENTS} events per request")
    target = who.partner or who.subject
    try:
        answer = await sink.submit(events, who.sources)
    except Exception:
        await service.record(who, "post_events", target, "error", f"{len(events)} events")
        raise
    accepted, rejected = int(answer.get("accepted", 0)), len(answer.get("rejected", ()))
    detail = f"{len(events)} events: {accepted} accepted, {rejected} rejected"
    await service.record(who, "post_events", target, "ok" if not rejected else "partial", detail)
    return EventsOutcome(answer)


def _letter(body: bytes, reason: str, source: str) -> DeadLetter:
    text = body.decode("utf-8", "replace")
    return DeadLetter(letter_id(text), datetime.now(UTC), reason, text, source)
